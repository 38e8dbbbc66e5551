//! `/api/v1/follow_requests`: requests to follow the viewer's locked account, and answering them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use stampede_mastodon::{Account, Relationship};
use stampede_social::follows;

use super::accounts::{own_list, relationship_on};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Context as _};
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, path_id};
use crate::scopes;

pub async fn follow_requests(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        scopes::FOLLOWS_READ,
        &uri,
        &query,
        "SELECT id, account_id FROM follow_requests WHERE target_account_id = $1",
    )
    .await
}

/// `POST /api/v1/follow_requests/:account_id/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let requester = path_id(&id)?;
    let mut tx = state.ctx.db.begin().await?;
    if !follows::authorize(
        &mut tx,
        &state.ids,
        &state.base_url(),
        account_id,
        requester,
    )
    .await
    .context("authorizing a follow request")?
    {
        return Err(ApiError::not_found());
    }
    let relationship = relationship_on(&mut *tx, account_id, requester).await?;
    tx.commit().await?;
    Ok(relationship)
}

pub async fn reject(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let requester = path_id(&id)?;
    let mut tx = state.ctx.db.begin().await?;
    if !follows::reject(&mut tx, &state.base_url(), account_id, requester)
        .await
        .context("rejecting a follow request")?
    {
        return Err(ApiError::not_found());
    }
    let relationship = relationship_on(&mut *tx, account_id, requester).await?;
    tx.commit().await?;
    Ok(relationship)
}
