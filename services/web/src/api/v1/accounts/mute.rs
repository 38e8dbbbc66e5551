//! `/api/v1/accounts/:id/{mute,unmute}`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use stampede_mastodon::Relationship;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Context as _};
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Deserialize)]
pub struct MuteParams {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notifications: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    duration: Option<u32>,
}

pub async fn mute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<MuteParams>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::MUTES_WRITE)?;
    let target = state.target_account(&id).await?;
    // Mastodon does nothing and answers the relationship (with oneself).
    if target.id == account_id {
        return state.relationship(account_id, target.id).await;
    }
    let mut conn = state.ctx.db.acquire().await?;
    stampede_social::relations::mute(
        &mut conn,
        &state.ids,
        account_id,
        target.id,
        p.notifications.unwrap_or(true),
        p.duration.unwrap_or(0),
    )
    .await
    .context("muting")?;
    drop(conn);
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}

pub async fn unmute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::MUTES_WRITE)?;
    let target = state.target_account(&id).await?;
    stampede_social::relations::unmute(&state.ctx.db, account_id, target.id)
        .await
        .context("unmuting")?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}
