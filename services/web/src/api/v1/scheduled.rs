//! `/api/v1/scheduled_statuses`: statuses to be posted later. The delivery service publishes
//! them when their time comes (see `stampede_social::post::publish_due`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::FromRow;
use stampede_mastodon::ScheduledStatus;
use stampede_mastodon::time::iso;
use stampede_social::post::NewStatus;

use crate::AppState;
use crate::api::v1::statuses::path_id;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::Params;

const READ: &[&str] = &["read", "read:statuses"];
const WRITE: &[&str] = &["write", "write:statuses"];

#[derive(Debug, FromRow)]
struct Row {
    id: i64,
    scheduled_at: DateTime<Utc>,
    params: sqlx::types::Json<NewStatus>,
}

fn render(row: Row) -> ScheduledStatus {
    let p = row.params.0;
    ScheduledStatus {
        id: row.id.to_string(),
        scheduled_at: iso(row.scheduled_at),
        params: serde_json::json!({
            "text": p.text,
            "spoiler_text": if p.spoiler_text.is_empty() { None } else { Some(p.spoiler_text) },
            "sensitive": p.sensitive,
            "visibility": p.visibility,
            "language": p.language,
            "in_reply_to_id": p.in_reply_to_id.map(|i| i.to_string()),
            "poll": p.poll.map(|poll| serde_json::json!({
                "options": poll.options,
                "expires_in": poll.expires_in.to_string(),
                "multiple": poll.multiple,
                "hide_totals": poll.hide_totals,
            })),
            "media_ids": null,
            "scheduled_at": null,
            "application_id": null,
            "idempotency": null,
            "with_rate_limit": false,
        }),
        media_attachments: Vec::new(),
    }
}

/// Stores a validated status for later.
pub async fn schedule(
    state: &AppState,
    account_id: i64,
    application_id: Option<i64>,
    at: DateTime<Utc>,
    new: &NewStatus,
) -> Result<ScheduledStatus, ApiError> {
    let row: Row = sqlx::query_as(
        "INSERT INTO scheduled_statuses (id, account_id, application_id, scheduled_at, params) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id, scheduled_at, params",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(account_id)
    .bind(application_id)
    .bind(at)
    .bind(sqlx::types::Json(new))
    .fetch_one(&state.ctx.db)
    .await?;
    Ok(render(row))
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<ScheduledStatus>, ApiError> {
    let account_id = auth.account(READ)?;
    let bounds = q.bounds(20, 40);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, scheduled_at, params FROM scheduled_statuses WHERE account_id = $1 \
           AND ($2::bigint IS NULL OR id < $2) AND ($3::bigint IS NULL OR id > $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(account_id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    let newest = rows.first().map(|r| r.id);
    let oldest = rows.last().map(|r| r.id);
    Ok(Page::new(
        rows.into_iter().map(render).collect(),
        &state.base_url(),
        &uri,
        newest,
        oldest,
    ))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ScheduledStatus>, ApiError> {
    let account_id = auth.account(READ)?;
    let row: Row = sqlx::query_as(
        "SELECT id, scheduled_at, params FROM scheduled_statuses WHERE id = $1 AND account_id = $2",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(row)))
}

#[derive(Debug, Deserialize)]
pub struct UpdateParams {
    scheduled_at: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<UpdateParams>,
) -> Result<Json<ScheduledStatus>, ApiError> {
    let account_id = auth.account(WRITE)?;
    let at = p
        .scheduled_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t >= Utc::now() + chrono::Duration::minutes(5))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "Validation failed: Scheduled at The scheduled date must be in the future",
            )
        })?;
    let row: Row = sqlx::query_as(
        "UPDATE scheduled_statuses SET scheduled_at = $3 WHERE id = $1 AND account_id = $2 \
         RETURNING id, scheduled_at, params",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .bind(at)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(row)))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(WRITE)?;
    super::delete_owned(&state, super::Owned::ScheduledStatus, &id, account_id).await
}
