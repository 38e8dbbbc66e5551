//! `/api/v1/accounts/search`, and the account half of `/api/v2/search`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use stampede_mastodon::Account;

use crate::AppState;
use crate::accounts;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Deserialize)]
pub struct AccountSearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    offset: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    following: Option<bool>,
}

/// Accounts whose username or display name starts with (or contains) `q`, local and visible,
/// without those the viewer blocks or is blocked by.
pub async fn search_accounts(
    state: &AppState,
    viewer: Option<i64>,
    q: &str,
    following: bool,
    limit: u32,
    offset: u32,
) -> Result<Vec<Account>, ApiError> {
    let q = q.trim().trim_start_matches('@');
    let (user, domain) = q.split_once('@').unwrap_or((q, ""));
    if user.is_empty()
        || !(domain.is_empty()
            || domain.eq_ignore_ascii_case(&state.ctx.config.local_domain)
            || domain.eq_ignore_ascii_case(&state.ctx.config.web_domain))
    {
        return Ok(Vec::new());
    }
    let pattern = format!(
        "{}%",
        user.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
            .to_lowercase()
    );
    let ids: Vec<i64> = state.ctx.reads.read(|db| {
    let query = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.domain IS NULL AND a.suspended_at IS NULL AND u.approved AND NOT u.disabled \
           AND u.confirmed_at IS NOT NULL \
           AND (lower(a.username) LIKE $1 OR lower(a.display_name) LIKE $1 \
                OR lower(a.display_name) LIKE '% ' || $1) \
           AND ($2::bigint IS NULL OR NOT EXISTS (SELECT 1 FROM blocks b \
                WHERE (b.account_id = $2 AND b.target_account_id = a.id) \
                   OR (b.account_id = a.id AND b.target_account_id = $2))) \
           AND (NOT $3 OR EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $2 AND f.target_account_id = a.id)) \
         ORDER BY (lower(a.username) = $4) DESC, a.id LIMIT $5 OFFSET $6",
    )
    .bind(&pattern)
    .bind(viewer)
    .bind(following && viewer.is_some())
    .bind(user.to_lowercase())
    .bind(i64::from(limit.clamp(1, 80)))
    .bind(i64::from(offset));
    async move { query.fetch_all(&db).await }
    }).await?;
    let found = &ids;
    let rows: HashMap<i64, accounts::AccountRow> = state
        .ctx
        .reads
        .read(|db| async move { accounts::find_many(&db, found).await })
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    Ok(ids
        .iter()
        .filter_map(|id| rows.get(id))
        .map(|a| state.render_account(a))
        .collect())
}

pub async fn search(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<AccountSearchQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_READ)?;
    Ok(Json(
        search_accounts(
            &state,
            Some(account_id),
            &q.q,
            q.following.unwrap_or(false),
            q.limit.unwrap_or(40),
            q.offset.unwrap_or(0),
        )
        .await?,
    ))
}
