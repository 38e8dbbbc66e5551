//! `/@:username`: an account's public profile page with its latest public posts. ActivityPub
//! clients asking for the same URL get the actor document.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::accounts;
use crate::activitypub;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/@{username}", get(profile))
}

async fn profile(
    State(state): State<AppState>,
    Path(username): Path<String>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = accounts::find_local(&state.ctx.db, &username)
        .await?
        .filter(|r| r.suspended_at.is_none())
        .ok_or_else(ApiError::not_found)?;
    if activitypub::wants_activity_json(&headers) {
        activitypub::check_fetch(&state, &method, &uri, &headers).await?;
        return activitypub::actor_document(&state, &row).await;
    }
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM statuses WHERE account_id = $1 AND visibility = 'public' \
           AND reblog_of_id IS NULL ORDER BY id DESC LIMIT 20",
    )
    .bind(row.id)
    .fetch_all(&state.ctx.db)
    .await?;
    let statuses = state.render.load_published(&ids).await?;
    Ok(state.page(
        StatusCode::OK,
        "profile.html",
        json!({ "account": state.render_account(&row), "statuses": statuses }),
        Vec::new(),
    ))
}
