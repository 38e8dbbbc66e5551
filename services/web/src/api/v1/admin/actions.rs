//! Moderators' actions on accounts (`POST /api/v1/admin/accounts/:id/action` and the
//! reversals), through `stampede_social::moderation`; each is in the audit log.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;
use stampede_social::deletion;
use stampede_social::moderation::{self, AccountAction, Undo};
use stampede_social::stream::{self, Control};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};

const WRITE: &[&str] = &["admin:write", "admin:write:accounts"];

#[derive(Debug, Deserialize)]
pub struct ActionParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    report_id: Option<i64>,
    text: Option<String>,
}

/// The account `id` (local or remote), or 404.
async fn target(state: &AppState, id: &str) -> Result<(i64, bool), ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let local: Option<bool> =
        sqlx::query_scalar("SELECT domain IS NULL FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.ctx.db)
            .await?;
    local.map(|l| (id, l)).ok_or_else(ApiError::not_found)
}

/// 403 unless `moderator`'s role ranks above `target`'s (Mastodon's rule: a moderator cannot act
/// on an admin, nor an admin on another admin).
async fn outranks(state: &AppState, moderator: i64, target: i64) -> Result<(), ApiError> {
    let roles: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT role FROM users WHERE account_id = $1), \
                (SELECT role FROM users WHERE account_id = $2)",
    )
    .bind(moderator)
    .bind(target)
    .fetch_one(&state.ctx.db)
    .await?;
    let rank = |role: Option<&str>| match role {
        Some("admin") => 2,
        Some("moderator") => 1,
        _ => 0,
    };
    if rank(roles.0.as_deref()) > rank(roles.1.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::forbidden("This action is not allowed"))
    }
}

/// Ends the account's streams: a suspended account or disabled login is heard no more.
async fn disconnect(state: &AppState, account: i64) {
    state.grants.forget_account(account);
    stream::publish(
        &state.ctx.cache,
        stream::CONTROL_CHANNEL,
        &Control::Disconnect { account },
    )
    .await;
}

/// `POST /api/v1/admin/accounts/:id/action`: `type` is `none`, `disable`, `sensitive`,
/// `silence` or `suspend`; `report_id` is resolved with it; `text` is the warning's text.
/// Answers `{}`.
pub async fn action(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<ActionParams>,
) -> Result<Json<Value>, ApiError> {
    auth.require(WRITE)?;
    let moderator = auth.staff()?.account_id;
    let (target, local) = target(&state, &id).await?;
    let action = AccountAction::parse(p.kind.as_deref().unwrap_or("none")).ok_or_else(|| {
        ApiError::unprocessable("Validation failed: Type is not included in the list")
    })?;
    if action == AccountAction::Disable && !local {
        return Err(ApiError::unprocessable(
            "Validation failed: Only local logins can be disabled",
        ));
    }
    if target == moderator && action != AccountAction::None {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    outranks(&state, moderator, target).await?;
    if let Some(report) = p.report_id {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM reports WHERE id = $1 AND target_account_id = $2")
                .bind(report)
                .bind(target)
                .fetch_optional(&state.ctx.db)
                .await?;
        known.ok_or_else(ApiError::not_found)?;
    }
    let mut tx = state.ctx.db.begin().await?;
    moderation::act(
        &mut tx,
        &state.ids,
        moderator,
        target,
        action,
        p.text.as_deref().unwrap_or_default(),
        p.report_id,
    )
    .await?;
    // A local account's suspension is also a deletion request: its data is purged after the
    // grace period unless the suspension is lifted (Mastodon's rule).
    if action == AccountAction::Suspend && local {
        let grace = state.ctx.config.registrations.deletion_grace_days;
        let due = chrono::Utc::now() + chrono::Duration::days(i64::from(grace));
        deletion::request(&mut tx, target, deletion::Reason::Suspension, due).await?;
    }
    tx.commit().await?;
    if matches!(action, AccountAction::Suspend | AccountAction::Disable) {
        disconnect(&state, target).await;
    }
    Ok(Json(serde_json::json!({})))
}

async fn reverse(
    state: &AppState,
    auth: &Auth,
    id: &str,
    undo: Undo,
) -> Result<Json<Value>, ApiError> {
    auth.require(WRITE)?;
    let moderator = auth.staff()?.account_id;
    let (target, _) = target(state, id).await?;
    outranks(state, moderator, target).await?;
    let mut tx = state.ctx.db.begin().await?;
    if undo == Undo::Unsuspend {
        // An account its owner deleted stays deleted.
        if deletion::deleted_by_owner(&mut tx, target).await? {
            return Err(ApiError::forbidden("This action is not allowed"));
        }
        deletion::cancel(&mut tx, target).await?;
    }
    moderation::undo(&mut tx, &state.ids, moderator, target, undo).await?;
    tx.commit().await?;
    // Its tokens may act again: on this process's very next request, too.
    state.grants.forget_account(target);
    Ok(Json(super::reports::admin_account(state, target).await?))
}

/// `POST /api/v1/admin/accounts/:id/enable`.
pub async fn enable(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reverse(&state, &auth, &id, Undo::Enable).await
}

/// `POST /api/v1/admin/accounts/:id/unsilence`.
pub async fn unsilence(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reverse(&state, &auth, &id, Undo::Unsilence).await
}

/// `POST /api/v1/admin/accounts/:id/unsensitive`.
pub async fn unsensitive(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reverse(&state, &auth, &id, Undo::Unsensitive).await
}

/// `POST /api/v1/admin/accounts/:id/unsuspend`.
pub async fn unsuspend(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reverse(&state, &auth, &id, Undo::Unsuspend).await
}

/// `DELETE /api/v1/admin/accounts/:id`: purges a suspended local account whose deletion is
/// pending now, instead of after the grace period (403 otherwise, as Mastodon answers). Needs
/// an admin (Mastodon's `delete_user_data`).
pub async fn destroy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(WRITE)?;
    let moderator = auth.staff()?;
    if moderator.role != "admin" {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    let moderator = moderator.account_id;
    let (target, _) = target(&state, &id).await?;
    outranks(&state, moderator, target).await?;
    let shown = super::reports::admin_account(&state, target).await?;
    let mut tx = state.ctx.db.begin().await?;
    if !deletion::pending(&mut tx, target).await? {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    deletion::purge(&mut tx, target, Some(&state.base_url())).await?;
    moderation::log(&mut tx, &state.ids, moderator, "destroy", "Account", target).await?;
    tx.commit().await?;
    Ok(Json(shown))
}
