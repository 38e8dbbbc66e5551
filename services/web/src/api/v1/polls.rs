//! `/api/v1/polls`: reading a poll and voting in it.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::Row;
use stampede_mastodon::Poll;

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;
use crate::statuses;

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Poll>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    Ok(Json(statuses::poll(&state, viewer, path_id(&id)?).await?))
}

#[derive(Debug, Deserialize)]
pub struct VoteParams {
    #[serde(default, deserialize_with = "flex::opt_list")]
    choices: Option<Vec<String>>,
}

/// `POST /api/v1/polls/:id/votes`: one vote per account (several choices only in a
/// multiple-choice poll), before the poll ends, not in one's own poll.
pub async fn vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<VoteParams>,
) -> Result<Json<Poll>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let poll_id = path_id(&id)?;
    // Visibility first: a poll the voter cannot see does not exist for them.
    statuses::poll(&state, Some(account_id), poll_id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let poll = sqlx::query(
        "SELECT p.options, p.multiple, p.expires_at, s.account_id, s.id AS status_id FROM polls p \
         JOIN statuses s ON s.id = p.status_id WHERE p.id = $1 FOR UPDATE OF p",
    )
    .bind(poll_id)
    .fetch_one(&mut *tx)
    .await?;
    let options: Vec<String> = poll.try_get("options")?;
    let multiple: bool = poll.try_get("multiple")?;
    let expires_at: DateTime<Utc> = poll.try_get("expires_at")?;
    let author: i64 = poll.try_get("account_id")?;
    let status_id: i64 = poll.try_get("status_id")?;
    let invalid = |m: &str| ApiError::unprocessable(format!("Validation failed: {m}"));
    if expires_at <= Utc::now() {
        return Err(invalid("The poll has already ended"));
    }
    if author == account_id {
        return Err(invalid("You cannot vote in your own poll"));
    }
    let mut choices: Vec<i32> = Vec::new();
    for choice in p.choices.unwrap_or_default() {
        match choice.parse::<i32>() {
            Ok(c) if c >= 0 && (c as usize) < options.len() => choices.push(c),
            _ => return Err(invalid("Choice is not a valid option")),
        }
    }
    choices.sort_unstable();
    choices.dedup();
    if choices.is_empty() {
        return Err(invalid("Choices can't be blank"));
    }
    if !multiple && choices.len() > 1 {
        return Err(invalid("This poll allows only one choice"));
    }
    let voted: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM poll_votes WHERE poll_id = $1 AND account_id = $2)",
    )
    .bind(poll_id)
    .bind(account_id)
    .fetch_one(&mut *tx)
    .await?;
    if voted {
        return Err(invalid("You have already voted on this poll"));
    }
    sqlx::query(
        "INSERT INTO poll_votes (poll_id, account_id, choice) SELECT $1, $2, unnest($3::int[])",
    )
    .bind(poll_id)
    .bind(account_id)
    .bind(&choices)
    .execute(&mut *tx)
    .await?;
    // A vote in another server's poll goes to its author there.
    let names: Vec<String> = choices
        .iter()
        .map(|&c| options[c as usize].clone())
        .collect();
    stampede_social::outbound::vote(&mut tx, &state.base_url(), account_id, status_id, &names)
        .await?;
    tx.commit().await?;
    Ok(Json(
        statuses::poll(&state, Some(account_id), poll_id).await?,
    ))
}
