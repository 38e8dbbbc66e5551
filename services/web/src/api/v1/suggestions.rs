//! Follow suggestions (`/api/v2/suggestions`, `/api/v1/suggestions`) and the profile directory
//! (`/api/v1/directory`), computed from the social graph as it is.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_mastodon::Account;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Deserialize)]
pub struct SuggestionQuery {
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
}

/// Accounts worth following for `viewer`, best first, with why: followed by accounts the viewer
/// follows (`friends_of_friends`, the more the better), then the most followed discoverable
/// local accounts (`most_followed`). Never the viewer, anyone already followed or asked, blocked
/// either way, muted, dismissed, suspended, or not discoverable.
async fn suggest(
    state: &AppState,
    viewer: i64,
    limit: i64,
) -> Result<Vec<(Account, &'static str)>, ApiError> {
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "WITH excluded AS ( \
           SELECT $1 AS id \
           UNION SELECT target_account_id FROM follows WHERE account_id = $1 \
           UNION SELECT target_account_id FROM follow_requests WHERE account_id = $1 \
           UNION SELECT target_account_id FROM blocks WHERE account_id = $1 \
           UNION SELECT account_id FROM blocks WHERE target_account_id = $1 \
           UNION SELECT target_account_id FROM mutes WHERE account_id = $1 \
           UNION SELECT target_account_id FROM suggestion_dismissals WHERE account_id = $1), \
         fof AS ( \
           SELECT theirs.target_account_id AS id, count(*) AS n FROM follows mine \
           JOIN follows theirs ON theirs.account_id = mine.target_account_id \
           WHERE mine.account_id = $1 GROUP BY theirs.target_account_id), \
         popular AS ( \
           SELECT st.account_id AS id, st.followers_count AS n FROM account_stats st \
           JOIN accounts a ON a.id = st.account_id WHERE a.domain IS NULL \
           ORDER BY st.followers_count DESC LIMIT 200), \
         ranked AS ( \
           SELECT id, true AS friends, n FROM fof \
           UNION ALL SELECT id, false, n FROM popular WHERE id NOT IN (SELECT id FROM fof)) \
         SELECT r.id, r.friends FROM ranked r JOIN accounts a ON a.id = r.id \
         WHERE r.id NOT IN (SELECT id FROM excluded) AND a.suspended_at IS NULL \
           AND a.discoverable IS NOT FALSE \
           AND (a.domain IS NOT NULL OR EXISTS (SELECT 1 FROM users u WHERE u.account_id = a.id \
                AND u.approved AND u.confirmed_at IS NOT NULL AND NOT u.disabled)) \
         ORDER BY r.friends DESC, r.n DESC, r.id DESC LIMIT $2",
    )
    .bind(viewer)
    .bind(limit)
    .fetch_all(&state.ctx.db)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let accounts = crate::accounts::find_many(&state.ctx.db, &ids).await?;
    Ok(rows
        .iter()
        .filter_map(|(id, friends)| {
            let row = accounts.iter().find(|a| a.id == *id)?;
            let source = if *friends {
                "friends_of_friends"
            } else {
                "most_followed"
            };
            Some((state.render_account(row), source))
        })
        .collect())
}

fn limit(query: &SuggestionQuery) -> i64 {
    i64::from(query.limit.unwrap_or(40).clamp(1, 80))
}

/// `GET /api/v2/suggestions`: Suggestion entities (`account` and `sources`).
pub async fn v2(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<SuggestionQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let viewer = auth.account(scopes::ACCOUNTS_READ)?;
    Ok(Json(
        suggest(&state, viewer, limit(&q))
            .await?
            .into_iter()
            .map(|(account, source)| {
                let legacy = if source == "friends_of_friends" {
                    "past_interactions"
                } else {
                    "global"
                };
                json!({ "source": legacy, "sources": [source], "account": account })
            })
            .collect(),
    ))
}

/// `GET /api/v1/suggestions`: the same accounts, without reasons.
pub async fn v1(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<SuggestionQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let viewer = auth.account(scopes::ACCOUNTS_READ)?;
    Ok(Json(
        suggest(&state, viewer, limit(&q))
            .await?
            .into_iter()
            .map(|(account, _)| account)
            .collect(),
    ))
}

/// `DELETE /api/v1/suggestions/:account_id`: never suggest that account again.
pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let viewer = auth.account(scopes::ACCOUNTS_WRITE)?;
    let target = state.target_account(&id).await?;
    sqlx::query(
        "INSERT INTO suggestion_dismissals (account_id, target_account_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(viewer)
    .bind(target.id)
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
pub struct DirectoryQuery {
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    offset: Option<u32>,
    order: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    local: Option<bool>,
}

/// `GET /api/v1/directory`: discoverable accounts, recently active first (`order=active`) or
/// newest first (`order=new`); `local=true` keeps this server's.
pub async fn directory(
    State(state): State<AppState>,
    Params(q): Params<DirectoryQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let order = match q.order.as_deref() {
        None | Some("active") => "st.last_status_at DESC NULLS LAST, a.id DESC",
        Some("new") => "a.id DESC",
        Some(_) => return Err(ApiError::unprocessable("order must be active or new")),
    };
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT a.id FROM accounts a LEFT JOIN account_stats st ON st.account_id = a.id \
         WHERE a.discoverable AND a.suspended_at IS NULL AND (NOT $1 OR a.domain IS NULL) \
           AND (a.domain IS NOT NULL OR EXISTS (SELECT 1 FROM users u WHERE u.account_id = a.id \
                AND u.approved AND u.confirmed_at IS NOT NULL AND NOT u.disabled)) \
         ORDER BY {order} LIMIT $2 OFFSET $3"
    ))
    .bind(q.local == Some(true))
    .bind(i64::from(q.limit.unwrap_or(40).clamp(1, 80)))
    .bind(i64::from(q.offset.unwrap_or(0)))
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(state.accounts_in_order(&ids).await?))
}
