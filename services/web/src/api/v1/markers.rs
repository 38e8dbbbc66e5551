//! `/api/v1/markers`: where the viewer stopped reading home and notifications.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stampede_mastodon::Marker;
use stampede_mastodon::time::iso;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::scopes;

const TIMELINES: [&str; 2] = ["home", "notifications"];

async fn read(
    state: &AppState,
    account_id: i64,
    timelines: &[String],
) -> Result<BTreeMap<String, Marker>, ApiError> {
    let rows: Vec<(String, i64, i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT timeline, last_read_id, version, updated_at FROM markers \
         WHERE account_id = $1 AND timeline = ANY($2)",
    )
    .bind(account_id)
    .bind(timelines)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(timeline, last_read_id, version, updated_at)| {
            (
                timeline,
                Marker {
                    last_read_id: last_read_id.to_string(),
                    version,
                    updated_at: iso(updated_at),
                },
            )
        })
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default, deserialize_with = "flex::opt_list")]
    timeline: Option<Vec<String>>,
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<ShowQuery>,
) -> Result<Json<BTreeMap<String, Marker>>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let timelines = q.timeline.unwrap_or_default();
    Ok(Json(read(&state, account_id, &timelines).await?))
}

#[derive(Debug, Deserialize)]
pub struct Position {
    #[serde(default, deserialize_with = "flex::opt_id")]
    last_read_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct SaveParams {
    home: Option<Position>,
    notifications: Option<Position>,
}

pub async fn save(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<SaveParams>,
) -> Result<Json<BTreeMap<String, Marker>>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    for (timeline, position) in TIMELINES.iter().zip([p.home, p.notifications]) {
        let Some(last_read_id) = position.and_then(|p| p.last_read_id) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO markers (account_id, timeline, last_read_id) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, timeline) DO UPDATE SET last_read_id = EXCLUDED.last_read_id, \
               version = markers.version + 1, updated_at = now()",
        )
        .bind(account_id)
        .bind(timeline)
        .bind(last_read_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let all: Vec<String> = TIMELINES.iter().map(|t| t.to_string()).collect();
    Ok(Json(read(&state, account_id, &all).await?))
}
