//! `/api/v1/scheduled_statuses`: statuses to be posted later. The delivery service publishes
//! them when their time comes (see `stampede_social::post::publish_due`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::FromRow;
use stampede_mastodon::time::iso;
use stampede_mastodon::{MediaAttachment, ScheduledStatus};
use stampede_social::feeds::keyset;
use stampede_social::post::NewStatus;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::Params;
use crate::payload::path_id;
use crate::scopes;

#[derive(Debug, FromRow)]
struct Row {
    id: i64,
    scheduled_at: DateTime<Utc>,
    params: sqlx::types::Json<NewStatus>,
    application_id: Option<i64>,
}

/// Scheduled statuses with their attachments (loaded in one query).
async fn render_all(state: &AppState, rows: Vec<Row>) -> Result<Vec<ScheduledStatus>, ApiError> {
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.params.0.media_ids.iter().copied())
        .collect();
    let files = state.render.files();
    let media: Vec<MediaAttachment> = stampede_social::media::by_ids(&state.ctx.db, &ids)
        .await?
        .iter()
        .map(|m| files.render(m))
        .collect();
    Ok(rows.into_iter().map(|row| render(row, &media)).collect())
}

async fn render_one(state: &AppState, row: Row) -> Result<ScheduledStatus, ApiError> {
    render_all(state, vec![row])
        .await?
        .pop()
        .ok_or_else(ApiError::not_found)
}

fn render(row: Row, media: &[MediaAttachment]) -> ScheduledStatus {
    let p = row.params.0;
    let application_id = row.application_id;
    let media_attachments = p
        .media_ids
        .iter()
        .filter_map(|id| media.iter().find(|m| m.id == id.to_string()).cloned())
        .collect();
    ScheduledStatus {
        id: row.id.to_string(),
        scheduled_at: iso(row.scheduled_at),
        params: with_application(
            serde_json::json!({
                "text": p.text,
                "spoiler_text": if p.spoiler_text.is_empty() { None } else { Some(p.spoiler_text) },
                "sensitive": p.sensitive,
                "visibility": p.visibility,
                "language": p.language,
                // A number in Mastodon's stored parameters, unlike ids elsewhere.
                "in_reply_to_id": p.in_reply_to_id,
                "poll": p.poll.map(|poll| serde_json::json!({
                    "options": poll.options,
                    "expires_in": poll.expires_in.to_string(),
                    "multiple": poll.multiple,
                    "hide_totals": poll.hide_totals,
                })),
                "media_ids": (!p.media_ids.is_empty())
                    .then(|| p.media_ids.iter().map(i64::to_string).collect::<Vec<_>>()),
                "scheduled_at": null,
                "idempotency": null,
                "with_rate_limit": false,
            }),
            application_id,
        ),
        media_attachments,
    }
}

/// Mastodon's stored parameters name the posting application by its (numeric) id; a token
/// made without one names none.
fn with_application(
    mut params: serde_json::Value,
    application_id: Option<i64>,
) -> serde_json::Value {
    if let Some(id) = application_id {
        params["application_id"] = id.into();
    }
    params
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
         VALUES ($1, $2, $3, $4, $5) RETURNING id, scheduled_at, params, application_id",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(account_id)
    .bind(application_id)
    .bind(at)
    .bind(sqlx::types::Json(new))
    .fetch_one(&state.ctx.db)
    .await?;
    render_one(state, row).await
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<ScheduledStatus>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let bounds = q.bounds(20, 40);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, scheduled_at, params, application_id FROM scheduled_statuses WHERE account_id = $1 \
           AND {keyset} \
         ORDER BY id DESC LIMIT $4",
        keyset = keyset("id", 2, 3)
    ))
    .bind(account_id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    let newest = rows.first().map(|r| r.id);
    let oldest = rows.last().map(|r| r.id);
    Ok(Page::new(
        render_all(&state, rows).await?,
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
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let row: Row = sqlx::query_as(
        "SELECT id, scheduled_at, params, application_id FROM scheduled_statuses WHERE id = $1 AND account_id = $2",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(Json(render_one(&state, row).await?))
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
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
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
         RETURNING id, scheduled_at, params, application_id",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .bind(at)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(Json(render_one(&state, row).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    super::delete_owned(&state, super::Owned::ScheduledStatus, &id, account_id).await
}
