//! `/api/v1/featured_tags` and `/api/v1/accounts/:id/featured_tags`: hashtags an account
//! features on its profile, with how often it used them.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::Params;
use crate::scopes;

/// Mastodon's limit of featured tags per account.
pub const MAX_FEATURED_TAGS: i64 = 10;

/// A featured tag with its owner's name and use.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    username: String,
    uses: i64,
    last: Option<chrono::DateTime<chrono::Utc>>,
}

/// The featured tags of `account_id` (or only `only`), with the account's use of each.
async fn featured(
    state: &AppState,
    account_id: i64,
    only: Option<i64>,
) -> Result<Vec<Value>, ApiError> {
    let rows: Vec<Row> =
        sqlx::query_as(
            "SELECT ft.id, t.name, a.username, \
               (SELECT count(*) FROM statuses_tags st JOIN statuses s ON s.id = st.status_id \
                WHERE st.tag_id = t.id AND s.account_id = a.id AND s.visibility IN ('public', 'unlisted')) AS uses, \
               (SELECT max(s.created_at) FROM statuses_tags st JOIN statuses s ON s.id = st.status_id \
                WHERE st.tag_id = t.id AND s.account_id = a.id AND s.visibility IN ('public', 'unlisted')) AS last \
             FROM featured_tags ft JOIN tags t ON t.id = ft.tag_id JOIN accounts a ON a.id = ft.account_id \
             WHERE ft.account_id = $1 AND ($2::bigint IS NULL OR ft.id = $2) ORDER BY ft.id",
        )
        .bind(account_id)
        .bind(only)
        .fetch_all(&state.ctx.db)
        .await?;
    let base = state.base_url();
    Ok(rows
        .into_iter()
        .map(|row| {
            let name = row.name.to_lowercase();
            json!({
                "id": row.id.to_string(),
                "url": format!("{base}/@{}/tagged/{name}", row.username),
                "name": name,
                "statuses_count": row.uses.to_string(),
                "last_status_at": row.last.map(|t| t.date_naive().to_string()),
            })
        })
        .collect())
}

/// `GET /api/v1/featured_tags`: the viewer's own.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Value>>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_READ)?;
    Ok(Json(featured(&state, account_id, None).await?))
}

/// `GET /api/v1/accounts/:id/featured_tags`: an account's, for anyone who may see it.
pub async fn of_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let account = state.target_account(&id).await?;
    Ok(Json(featured(&state, account.id, None).await?))
}

#[derive(Debug, Deserialize)]
pub struct CreateParams {
    #[serde(default)]
    name: String,
}

/// Features hashtag `name` (made a hashtag if it is not one yet) for `account_id`: at most ten.
/// Featuring one already featured is 422 when `strict` (the featured-tags API), and changes
/// nothing otherwise (the tag API). Returns the tag's id and name.
pub async fn feature(
    state: &AppState,
    account_id: i64,
    name: &str,
    strict: bool,
) -> Result<(i64, String), ApiError> {
    let name = name.trim().trim_start_matches('#');
    if name.is_empty()
        || name.chars().count() > 100
        || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
    {
        return Err(ApiError::unprocessable("Validation failed: Tag is invalid"));
    }
    let mut tx = state.ctx.db.begin().await?;
    // Serialises one account's features, so two requests cannot both pass the count.
    sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    let (tag_id, tag_name): (i64, String) = sqlx::query_as(
        "INSERT INTO tags (name) VALUES ($1) \
         ON CONFLICT (lower(name)) DO UPDATE SET name = tags.name RETURNING id, name",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let (count, already): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(bool_or(tag_id = $2), false) FROM featured_tags \
         WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(tag_id)
    .fetch_one(&mut *tx)
    .await?;
    if already {
        if strict {
            return Err(ApiError::unprocessable(
                "Validation failed: Tag has already been taken",
            ));
        }
        return Ok((tag_id, tag_name));
    }
    if count >= MAX_FEATURED_TAGS {
        return Err(ApiError::unprocessable(format!(
            "Validation failed: You can only feature up to {MAX_FEATURED_TAGS} hashtags"
        )));
    }
    sqlx::query("INSERT INTO featured_tags (id, account_id, tag_id) VALUES ($1, $2, $3)")
        .bind(state.ids.next_id().as_i64())
        .bind(account_id)
        .bind(tag_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((tag_id, tag_name))
}

/// `POST /api/v1/featured_tags`: features `name`; at most ten, each once (422 otherwise).
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<CreateParams>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let (tag_id, _) = feature(&state, account_id, &p.name, true).await?;
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM featured_tags WHERE account_id = $1 AND tag_id = $2")
            .bind(account_id)
            .bind(tag_id)
            .fetch_one(&state.ctx.db)
            .await?;
    featured(&state, account_id, Some(id))
        .await?
        .pop()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// `DELETE /api/v1/featured_tags/:id`: `{}`.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    super::delete_owned(&state, super::Owned::FeaturedTag, &id, account_id).await
}

/// `GET /api/v1/featured_tags/suggestions`: the hashtags the viewer used most in their last
/// statuses and does not feature yet (at most ten).
pub async fn suggestions(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<stampede_mastodon::Tag>>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_READ)?;
    let tags: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.id, t.name FROM ( \
           SELECT st.tag_id, count(*) AS uses FROM ( \
             SELECT id FROM statuses WHERE account_id = $1 ORDER BY id DESC LIMIT 1000) s \
           JOIN statuses_tags st ON st.status_id = s.id GROUP BY st.tag_id) used \
         JOIN tags t ON t.id = used.tag_id \
         WHERE NOT EXISTS (SELECT 1 FROM featured_tags ft WHERE ft.account_id = $1 AND ft.tag_id = t.id) \
         ORDER BY used.uses DESC, t.id LIMIT 10",
    )
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await?;
    let mut out = Vec::with_capacity(tags.len());
    for (id, name) in tags {
        out.push(state.render_tag(id, &name, Some(account_id)).await?);
    }
    Ok(Json(out))
}
