//! `/api/v1/accounts/:id/{block,unblock}`.

use axum::Json;
use axum::extract::{Path, State};
use stampede_mastodon::Relationship;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Context as _};
use crate::scopes;

/// `POST /api/v1/accounts/:id/block`: also ends follows and requests both ways.
pub async fn block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::BLOCKS_WRITE)?;
    let target = state.target_account(&id).await?;
    // Mastodon does nothing and answers the relationship (with oneself).
    if target.id == account_id {
        return state.relationship(account_id, target.id).await;
    }
    let mut tx = state.ctx.db.begin().await?;
    stampede_social::relations::block(
        &mut tx,
        &state.ids,
        &state.base_url(),
        account_id,
        target.id,
        target.domain.is_some(),
    )
    .await
    .context("blocking")?;
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}

pub async fn unblock(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::BLOCKS_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    stampede_social::relations::unblock(
        &mut tx,
        &state.base_url(),
        account_id,
        target.id,
        target.domain.is_some(),
    )
    .await
    .context("unblocking")?;
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}
