//! `/api/v1/lists`: the viewer's lists of followed accounts, and their members.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use sqlx::FromRow;
use stampede_mastodon::{Account, List};
use stampede_social::feeds::keyset;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, FromRow)]
struct ListRow {
    id: i64,
    title: String,
    replies_policy: String,
    exclusive: bool,
}

fn render(row: ListRow) -> List {
    List {
        id: row.id.to_string(),
        title: row.title,
        replies_policy: row.replies_policy,
        exclusive: row.exclusive,
    }
}

async fn own(state: &AppState, account_id: i64, id: &str) -> Result<ListRow, ApiError> {
    sqlx::query_as(
        "SELECT id, title, replies_policy, exclusive FROM lists WHERE id = $1 AND account_id = $2",
    )
    .bind(path_id(id)?)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)
}

pub async fn index(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<List>>, ApiError> {
    let account_id = auth.account(scopes::LISTS_READ)?;
    let rows: Vec<ListRow> = sqlx::query_as(
        "SELECT id, title, replies_policy, exclusive FROM lists WHERE account_id = $1 ORDER BY id",
    )
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(rows.into_iter().map(render).collect()))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    replies_policy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclusive: Option<bool>,
}

impl ListParams {
    fn check(&self, creating: bool) -> Result<(), ApiError> {
        if (creating || self.title.is_some())
            && self.title.as_deref().is_none_or(|t| t.trim().is_empty())
        {
            return Err(ApiError::unprocessable(
                "Validation failed: Title can't be blank",
            ));
        }
        if let Some(policy) = &self.replies_policy
            && !["followed", "list", "none"].contains(&policy.as_str())
        {
            return Err(ApiError::unprocessable(
                "Validation failed: Replies policy is not included in the list",
            ));
        }
        Ok(())
    }
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<ListParams>,
) -> Result<Json<List>, ApiError> {
    let account_id = auth.account(scopes::LISTS_WRITE)?;
    p.check(true)?;
    let row: ListRow = sqlx::query_as(
        "INSERT INTO lists (id, account_id, title, replies_policy, exclusive) \
         VALUES ($1, $2, $3, coalesce($4, 'list'), coalesce($5, false)) \
         RETURNING id, title, replies_policy, exclusive",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(account_id)
    .bind(p.title.as_deref().map(str::trim))
    .bind(&p.replies_policy)
    .bind(p.exclusive)
    .fetch_one(&state.ctx.db)
    .await?;
    Ok(Json(render(row)))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<List>, ApiError> {
    let account_id = auth.account(scopes::LISTS_READ)?;
    Ok(Json(render(own(&state, account_id, &id).await?)))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<ListParams>,
) -> Result<Json<List>, ApiError> {
    let account_id = auth.account(scopes::LISTS_WRITE)?;
    let list = own(&state, account_id, &id).await?;
    p.check(false)?;
    let row: ListRow = sqlx::query_as(
        "UPDATE lists SET title = coalesce($2, title), replies_policy = coalesce($3, replies_policy), \
           exclusive = coalesce($4, exclusive) WHERE id = $1 \
         RETURNING id, title, replies_policy, exclusive",
    )
    .bind(list.id)
    .bind(p.title.as_deref().map(str::trim))
    .bind(&p.replies_policy)
    .bind(p.exclusive)
    .fetch_one(&state.ctx.db)
    .await?;
    Ok(Json(render(row)))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::LISTS_WRITE)?;
    super::delete_owned(&state, super::Owned::List, &id, account_id).await
}

pub async fn accounts(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    let account_id = auth.account(scopes::LISTS_READ)?;
    let list = own(&state, account_id, &id).await?;
    // limit=0 means every member.
    let all = q.limit.as_deref() == Some("0");
    let bounds = q.bounds(40, 80);
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT account_id, account_id FROM list_accounts WHERE list_id = $1 \
           AND {keyset} \
         ORDER BY account_id DESC LIMIT $4",
        keyset = keyset("account_id", 2, 3)
    ))
    .bind(list.id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(if all { i64::MAX } else { bounds.limit as i64 })
    .fetch_all(&state.ctx.db)
    .await?;
    state.accounts_page(&uri, rows).await
}

#[derive(Debug, Deserialize)]
pub struct MembersParams {
    #[serde(default, deserialize_with = "flex::opt_list")]
    account_ids: Option<Vec<String>>,
}

fn member_ids(p: MembersParams) -> Vec<i64> {
    p.account_ids
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.parse().ok())
        .collect()
}

/// Adds accounts the viewer follows; any other is refused and nothing is added.
pub async fn add_accounts(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<MembersParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::LISTS_WRITE)?;
    let list = own(&state, account_id, &id).await?;
    let ids = member_ids(p);
    let followed: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT target_account_id) FROM follows \
         WHERE account_id = $1 AND target_account_id = ANY($2)",
    )
    .bind(account_id)
    .bind(&ids)
    .fetch_one(&state.ctx.db)
    .await?;
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if followed != distinct.len() as i64 {
        return Err(ApiError::unprocessable(
            "Validation failed: Account has not been followed",
        ));
    }
    sqlx::query(
        "INSERT INTO list_accounts (list_id, account_id) SELECT $1, unnest($2::bigint[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(list.id)
    .bind(&distinct)
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(serde_json::json!({})))
}

pub async fn remove_accounts(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<MembersParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::LISTS_WRITE)?;
    let list = own(&state, account_id, &id).await?;
    sqlx::query("DELETE FROM list_accounts WHERE list_id = $1 AND account_id = ANY($2)")
        .bind(list.id)
        .bind(member_ids(p))
        .execute(&state.ctx.db)
        .await?;
    Ok(Json(serde_json::json!({})))
}

/// `GET /api/v1/accounts/:id/lists`: the viewer's lists that hold the account.
pub async fn of_account(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<List>>, ApiError> {
    let account_id = auth.account(scopes::LISTS_READ)?;
    let rows: Vec<ListRow> = sqlx::query_as(
        "SELECT l.id, l.title, l.replies_policy, l.exclusive FROM lists l \
         JOIN list_accounts la ON la.list_id = l.id \
         WHERE l.account_id = $1 AND la.account_id = $2 ORDER BY l.id",
    )
    .bind(account_id)
    .bind(path_id(&id)?)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(rows.into_iter().map(render).collect()))
}
