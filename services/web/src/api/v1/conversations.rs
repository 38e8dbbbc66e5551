//! `/api/v1/conversations`: direct-message threads as the viewer sees them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use stampede_mastodon::Conversation;
use stampede_social::feeds::keyset;
use stampede_social::render::ConversationRow as Row;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::Params;
use crate::payload::path_id;
use crate::scopes;

async fn render(
    state: &AppState,
    viewer: i64,
    rows: Vec<Row>,
) -> Result<Vec<Conversation>, ApiError> {
    Ok(state.render.conversations(viewer, rows).await?)
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Conversation>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let bounds = q.bounds(20, 40);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, participant_ids, last_status_id, unread FROM account_conversations \
         WHERE account_id = $1 \
           AND {keyset} \
         ORDER BY last_status_id DESC LIMIT $4",
        keyset = keyset("last_status_id", 2, 3)
    ))
    .bind(account_id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    let newest = rows.first().map(|r| r.last_status_id);
    let oldest = rows.last().map(|r| r.last_status_id);
    let items = render(&state, account_id, rows).await?;
    Ok(Page::new(items, &state.base_url(), &uri, newest, oldest))
}

pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let account_id = auth.account(scopes::CONVERSATIONS_WRITE)?;
    let rows: Vec<Row> = sqlx::query_as(
        "UPDATE account_conversations SET unread = false WHERE id = $1 AND account_id = $2 \
         RETURNING id, participant_ids, last_status_id, unread",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await?;
    render(&state, account_id, rows)
        .await?
        .pop()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::CONVERSATIONS_WRITE)?;
    super::delete_owned(&state, super::Owned::Conversation, &id, account_id).await
}
