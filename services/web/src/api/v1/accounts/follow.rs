//! Following: `/api/v1/accounts/:id/{follow,unfollow,remove_from_followers,followers,following}`
//! and `/api/v1/accounts/familiar_followers`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use sqlx::Connection;
use stampede_mastodon::{Account, Relationship};
use stampede_social::feeds::keyset;
use stampede_social::follows::{self, Followed, Tell};

use super::relationships::{relationship_on, target_account_on};
use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::error::{ApiError, Context as _};
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Deserialize)]
pub struct FollowParams {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    reblogs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notify: Option<bool>,
}

/// `POST /api/v1/accounts/:id/follow`: follows at once, or asks when the account is locked.
/// Following again updates `reblogs` and `notify`.
pub async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<FollowParams>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    // One connection for the lookup, the follow and the answer: in a surge each acquisition
    // from a busy pool is another wait in its queue.
    let mut conn = state.ctx.db.acquire().await?;
    let target = target_account_on(&mut *conn, &id).await?;
    if target.id == account_id {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    if target.domain.is_some() {
        // Another server decides: ask it, and follow when it Accepts.
        let mut tx = conn.begin().await?;
        let asked = follows::ask_remote(
            &mut tx,
            &state.ids,
            &state.base_url(),
            account_id,
            target.id,
            p.reblogs,
            p.notify,
        )
        .await
        .context("asking a remote account to be followed")?;
        if asked == follows::Asked::Blocked {
            return Err(ApiError::forbidden("This action is not allowed"));
        }
        let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
        tx.commit().await?;
        return Ok(relationship);
    }
    if !target.locked {
        let followed = follows::follow(
            &mut conn,
            &state.ids,
            account_id,
            target.id,
            p.reblogs,
            p.notify,
            Tell::Target,
        )
        .await
        .context("following")?;
        if followed == Followed::Blocked {
            return Err(ApiError::forbidden("This action is not allowed"));
        }
        return relationship_on(&mut *conn, account_id, target.id).await;
    }
    let mut tx = conn.begin().await?;
    if !follows::request(
        &mut tx, &state.ids, account_id, target.id, p.reblogs, p.notify,
    )
    .await
    .context("asking to follow a locked account")?
    {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

pub async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    if target.domain.is_some() {
        follows::undo_remote(&mut tx, &state.base_url(), account_id, target.id)
            .await
            .context("telling a remote account of an unfollow")?;
    }
    follows::withdraw(&mut tx, account_id, target.id)
        .await
        .context("unfollowing")?;
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

async fn follow_list(
    state: &AppState,
    viewer: Viewer,
    id: &str,
    uri: &Uri,
    query: &PageQuery,
    sql: &str,
) -> Result<Page<Account>, ApiError> {
    let viewer = viewer.account(scopes::ACCOUNTS_READ)?;
    let target = state.target_account(id).await?;
    // An account that hides its collections shows them to itself only (Mastodon answers an
    // empty list to everyone else).
    if target.hide_collections && viewer != Some(target.id) {
        return Ok(Page::new(Vec::new(), &state.base_url(), uri, None, None));
    }
    let bounds = query.bounds(40, 80);
    let sql = format!(
        "{sql} AND {keyset} \
         ORDER BY id {} LIMIT $4",
        bounds.order(),
        keyset = keyset("id", 2, 3),
    );
    let rows: Vec<(i64, i64)> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_as(&sql)
                .bind(target.id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(bounds.limit as i64);
            async move { query.fetch_all(&db).await }
        })
        .await?;
    let rows = if bounds.ascending {
        rows.into_iter().rev().collect()
    } else {
        rows
    };
    state.accounts_page(uri, rows).await
}

pub async fn followers(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    follow_list(
        &state,
        viewer,
        &id,
        &uri,
        &query,
        "SELECT id, account_id FROM follows WHERE target_account_id = $1",
    )
    .await
}

pub async fn following(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    follow_list(
        &state,
        viewer,
        &id,
        &uri,
        &query,
        "SELECT id, target_account_id FROM follows WHERE account_id = $1",
    )
    .await
}

/// `POST /api/v1/accounts/:id/remove_from_followers`: the account no longer follows the viewer.
/// A remote follower's server is told with a `Reject` of its `Follow`, as Mastodon does.
pub async fn remove_from_followers(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let follower = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    follows::remove_follower(
        &mut tx,
        &state.base_url(),
        account_id,
        follower.id,
        follower.domain.is_some(),
    )
    .await
    .context("removing a follower")?;
    let relationship = relationship_on(&mut *tx, account_id, follower.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

/// Familiar followers shown per account, at most.
const MAX_FAMILIAR: i64 = 40;

/// `GET /api/v1/accounts/familiar_followers?id[]=…`: for each account, the accounts the viewer
/// follows that follow it.
pub async fn familiar_followers(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<super::IdsQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_READ)?;
    let mut out = Vec::new();
    for target in q.ids()? {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT mine.target_account_id FROM follows mine \
             JOIN follows theirs ON theirs.account_id = mine.target_account_id \
             JOIN accounts a ON a.id = mine.target_account_id \
             WHERE mine.account_id = $1 AND theirs.target_account_id = $2 \
               AND a.suspended_at IS NULL \
             ORDER BY theirs.id DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(target)
        .bind(MAX_FAMILIAR)
        .fetch_all(&state.ctx.db)
        .await?;
        let accounts = state.accounts_in_order(&ids).await?;
        out.push(serde_json::json!({ "id": target.to_string(), "accounts": accounts }));
    }
    Ok(Json(out))
}
