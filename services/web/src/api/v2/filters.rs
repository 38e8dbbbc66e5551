//! `/api/v2/filters`: an account's filters with their keywords and statuses (Mastodon's 14
//! operations). Statuses rendered for the account carry the matches (`filtered`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use stampede_social::filters::{self, CONTEXTS};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

/// Mastodon's limit on a keyword's length.
const MAX_KEYWORD: usize = 512;

#[derive(Debug, Deserialize)]
pub struct KeywordParams {
    #[serde(default, deserialize_with = "flex::opt_id")]
    id: Option<i64>,
    keyword: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    whole_word: Option<bool>,
    #[serde(default, rename = "_destroy", deserialize_with = "flex::opt_bool")]
    destroy: Option<bool>,
}

/// `keywords_attributes[][…]` as a list, or Rails' index-keyed hash.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeywordList {
    List(Vec<KeywordParams>),
    Map(BTreeMap<String, KeywordParams>),
}

impl KeywordList {
    fn into_vec(self) -> Vec<KeywordParams> {
        match self {
            KeywordList::List(list) => list,
            KeywordList::Map(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
                entries.into_iter().map(|(_, v)| v).collect()
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct FilterParams {
    title: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    context: Option<Vec<String>>,
    filter_action: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    expires_in: Option<i64>,
    keywords_attributes: Option<KeywordList>,
}

fn check_keyword(keyword: &str) -> Result<(), ApiError> {
    if keyword.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "Validation failed: Keyword can't be blank",
        ));
    }
    if keyword.chars().count() > MAX_KEYWORD {
        return Err(ApiError::unprocessable(format!(
            "Validation failed: Keyword is too long (maximum is {MAX_KEYWORD} characters)"
        )));
    }
    Ok(())
}

/// The filter `id` of `account_id` as the API shows it, or 404.
async fn one(conn: &mut PgConnection, account_id: i64, id: i64) -> Result<Value, ApiError> {
    filters::load(conn, account_id, Some(id), false)
        .await?
        .first()
        .map(filters::render)
        .ok_or_else(ApiError::not_found)
}

/// Checks the title, contexts and action that are given (all are, for a new filter).
fn check(p: &FilterParams, new: bool) -> Result<(), ApiError> {
    if (new || p.title.is_some()) && p.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(ApiError::unprocessable(
            "Validation failed: Title can't be blank",
        ));
    }
    if new || p.context.is_some() {
        check_context(p.context.as_deref())?;
    }
    if let Some(action) = &p.filter_action
        && !["warn", "hide", "blur"].contains(&action.as_str())
    {
        return Err(ApiError::unprocessable(
            "Validation failed: Filter action is not included in the list",
        ));
    }
    Ok(())
}

/// Applies `keywords_attributes` to filter `filter_id`: new keywords, changed ones (by `id`),
/// and `_destroy` ones.
async fn apply_keywords(
    state: &AppState,
    conn: &mut PgConnection,
    filter_id: i64,
    keywords: Vec<KeywordParams>,
) -> Result<(), ApiError> {
    for k in keywords {
        match (k.id, k.destroy == Some(true)) {
            (Some(id), true) => {
                sqlx::query("DELETE FROM filter_keywords WHERE id = $1 AND filter_id = $2")
                    .bind(id)
                    .bind(filter_id)
                    .execute(&mut *conn)
                    .await?;
            }
            (Some(id), false) => {
                if let Some(keyword) = &k.keyword {
                    check_keyword(keyword)?;
                }
                sqlx::query(
                    "UPDATE filter_keywords SET keyword = coalesce($3, keyword), \
                       whole_word = coalesce($4, whole_word) WHERE id = $1 AND filter_id = $2",
                )
                .bind(id)
                .bind(filter_id)
                .bind(&k.keyword)
                .bind(k.whole_word)
                .execute(&mut *conn)
                .await?;
            }
            (None, true) => {}
            (None, false) => {
                let keyword = k.keyword.unwrap_or_default();
                check_keyword(&keyword)?;
                sqlx::query(
                    "INSERT INTO filter_keywords (id, filter_id, keyword, whole_word) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(state.ids.next_id().as_i64())
                .bind(filter_id)
                .bind(keyword)
                .bind(k.whole_word.unwrap_or(true))
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Checks a filter's contexts: at least one, each Mastodon's.
pub(crate) fn check_context(context: Option<&[String]>) -> Result<(), ApiError> {
    let context = context.unwrap_or_default();
    if context.is_empty() || context.iter().any(|c| !CONTEXTS.contains(&c.as_str())) {
        return Err(ApiError::unprocessable(
            "Validation failed: Context can't be blank or contains invalid values",
        ));
    }
    Ok(())
}

/// When a filter given `expires_in` seconds expires (never for none or 0; ten years at most).
pub(crate) fn expiry(expires_in: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    expires_in
        .filter(|s| *s > 0)
        .map(|s| chrono::Utc::now() + chrono::Duration::seconds(s.min(10 * 365 * 86_400)))
}

/// `GET /api/v2/filters`.
pub async fn index(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let mut conn = state.ctx.db.acquire().await?;
    let list = filters::load(&mut conn, account_id, None, false).await?;
    Ok(Json(Value::Array(
        list.iter().map(filters::render).collect(),
    )))
}

/// `GET /api/v2/filters/:id`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let mut conn = state.ctx.db.acquire().await?;
    Ok(Json(one(&mut conn, account_id, path_id(&id)?).await?))
}

/// `POST /api/v2/filters`: with its keywords, in one transaction.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    check(&p, true)?;
    let id = state.ids.next_id().as_i64();
    let mut tx = state.ctx.db.begin().await?;
    sqlx::query(
        "INSERT INTO filters (id, account_id, title, context, action, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(account_id)
    .bind(p.title.as_deref().unwrap_or_default().trim())
    .bind(p.context.as_deref().unwrap_or_default())
    .bind(p.filter_action.as_deref().unwrap_or("warn"))
    .bind(expiry(p.expires_in))
    .execute(&mut *tx)
    .await?;
    let keywords = p.keywords_attributes.map(KeywordList::into_vec);
    apply_keywords(&state, &mut tx, id, keywords.unwrap_or_default()).await?;
    let filter = one(&mut tx, account_id, id).await?;
    tx.commit().await?;
    state.filters_changed(account_id).await;
    Ok(Json(filter))
}

/// `PUT /api/v2/filters/:id`: what is given changes; `expires_in` empty or 0 never expires.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let id = path_id(&id)?;
    check(&p, false)?;
    let mut tx = state.ctx.db.begin().await?;
    let changed = sqlx::query(
        "UPDATE filters SET title = coalesce($3, title), context = coalesce($4, context), \
           action = coalesce($5, action), \
           expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END \
         WHERE id = $1 AND account_id = $2",
    )
    .bind(id)
    .bind(account_id)
    .bind(p.title.as_deref().map(str::trim))
    .bind(p.context.as_deref())
    .bind(p.filter_action.as_deref())
    .bind(p.expires_in.is_some())
    .bind(expiry(p.expires_in))
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    let keywords = p.keywords_attributes.map(KeywordList::into_vec);
    apply_keywords(&state, &mut tx, id, keywords.unwrap_or_default()).await?;
    let filter = one(&mut tx, account_id, id).await?;
    tx.commit().await?;
    state.filters_changed(account_id).await;
    Ok(Json(filter))
}

/// `DELETE /api/v2/filters/:id`: `{}`.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let answer =
        crate::api::v1::delete_owned(&state, crate::api::v1::Owned::Filter, &id, account_id)
            .await?;
    state.filters_changed(account_id).await;
    Ok(answer)
}

/// The filter that keyword (or filtered status) `id` belongs to, if it is `account_id`'s.
async fn owner_of(
    state: &AppState,
    table: &str,
    account_id: i64,
    id: i64,
) -> Result<i64, ApiError> {
    sqlx::query_scalar(&format!(
        "SELECT f.id FROM {table} x JOIN filters f ON f.id = x.filter_id \
         WHERE x.id = $1 AND f.account_id = $2"
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// `account_id`'s filter `id` (as the path gave it), or 404.
async fn own_filter(state: &AppState, account_id: i64, id: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT id FROM filters WHERE id = $1 AND account_id = $2")
        .bind(path_id(id)?)
        .bind(account_id)
        .fetch_optional(&state.ctx.db)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/v2/filters/:filter_id/keywords`.
pub async fn keywords(
    State(state): State<AppState>,
    auth: Auth,
    Path(filter_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let filter_id = own_filter(&state, account_id, &filter_id).await?;
    let mut conn = state.ctx.db.acquire().await?;
    let filter = filters::load(&mut conn, account_id, Some(filter_id), false).await?;
    Ok(Json(Value::Array(
        filter
            .iter()
            .flat_map(|f| f.keywords.iter().map(filters::render_keyword))
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
pub struct OneKeyword {
    keyword: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    whole_word: Option<bool>,
}

async fn keyword_by_id(state: &AppState, id: i64) -> Result<Value, ApiError> {
    let keyword: filters::Keyword = sqlx::query_as(
        "SELECT id, filter_id, keyword, whole_word FROM filter_keywords WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(filters::render_keyword(&keyword))
}

/// `POST /api/v2/filters/:filter_id/keywords`.
pub async fn add_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(filter_id): Path<String>,
    Params(p): Params<OneKeyword>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let filter_id = own_filter(&state, account_id, &filter_id).await?;
    let keyword = p.keyword.unwrap_or_default();
    check_keyword(&keyword)?;
    let id = state.ids.next_id().as_i64();
    sqlx::query(
        "INSERT INTO filter_keywords (id, filter_id, keyword, whole_word) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(filter_id)
    .bind(&keyword)
    .bind(p.whole_word.unwrap_or(true))
    .execute(&state.ctx.db)
    .await?;
    state.filters_changed(account_id).await;
    Ok(Json(keyword_by_id(&state, id).await?))
}

/// `GET /api/v2/filters/keywords/:id`.
pub async fn show_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let id = path_id(&id)?;
    owner_of(&state, "filter_keywords", account_id, id).await?;
    Ok(Json(keyword_by_id(&state, id).await?))
}

/// `PUT /api/v2/filters/keywords/:id`.
pub async fn update_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<OneKeyword>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let id = path_id(&id)?;
    owner_of(&state, "filter_keywords", account_id, id).await?;
    if let Some(keyword) = &p.keyword {
        check_keyword(keyword)?;
    }
    sqlx::query(
        "UPDATE filter_keywords SET keyword = coalesce($2, keyword), \
           whole_word = coalesce($3, whole_word) WHERE id = $1",
    )
    .bind(id)
    .bind(&p.keyword)
    .bind(p.whole_word)
    .execute(&state.ctx.db)
    .await?;
    state.filters_changed(account_id).await;
    Ok(Json(keyword_by_id(&state, id).await?))
}

/// `DELETE /api/v2/filters/keywords/:id`: `{}`.
pub async fn delete_keyword(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let id = path_id(&id)?;
    owner_of(&state, "filter_keywords", account_id, id).await?;
    sqlx::query("DELETE FROM filter_keywords WHERE id = $1")
        .bind(id)
        .execute(&state.ctx.db)
        .await?;
    state.filters_changed(account_id).await;
    Ok(Json(json!({})))
}

/// `GET /api/v2/filters/:filter_id/statuses`.
pub async fn statuses(
    State(state): State<AppState>,
    auth: Auth,
    Path(filter_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let filter_id = own_filter(&state, account_id, &filter_id).await?;
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, status_id FROM filter_statuses WHERE filter_id = $1 ORDER BY id",
    )
    .bind(filter_id)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(Value::Array(
        rows.into_iter().map(filters::render_status).collect(),
    )))
}

#[derive(Debug, Deserialize)]
pub struct OneStatus {
    #[serde(default, deserialize_with = "flex::opt_id")]
    status_id: Option<i64>,
}

/// `POST /api/v2/filters/:filter_id/statuses`: a status the viewer can see.
pub async fn add_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(filter_id): Path<String>,
    Params(p): Params<OneStatus>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let filter_id = own_filter(&state, account_id, &filter_id).await?;
    let status_id = p
        .status_id
        .ok_or_else(|| ApiError::unprocessable("Validation failed: Status can't be blank"))?;
    state.load_status(Some(account_id), status_id).await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO filter_statuses (id, filter_id, status_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(filter_id)
    .bind(status_id)
    .fetch_optional(&state.ctx.db)
    .await?;
    let id = id.ok_or_else(|| {
        ApiError::unprocessable("Validation failed: Status has already been taken")
    })?;
    state.filters_changed(account_id).await;
    Ok(Json(filters::render_status((id, status_id))))
}

async fn status_by_id(state: &AppState, account_id: i64, id: &str) -> Result<(i64, i64), ApiError> {
    let id = path_id(id)?;
    owner_of(state, "filter_statuses", account_id, id).await?;
    let status_id: i64 = sqlx::query_scalar("SELECT status_id FROM filter_statuses WHERE id = $1")
        .bind(id)
        .fetch_one(&state.ctx.db)
        .await?;
    Ok((id, status_id))
}

/// `GET /api/v2/filters/statuses/:id`.
pub async fn show_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    Ok(Json(filters::render_status(
        status_by_id(&state, account_id, &id).await?,
    )))
}

/// `DELETE /api/v2/filters/statuses/:id`: `{}`.
pub async fn delete_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let (id, _) = status_by_id(&state, account_id, &id).await?;
    sqlx::query("DELETE FROM filter_statuses WHERE id = $1")
        .bind(id)
        .execute(&state.ctx.db)
        .await?;
    state.filters_changed(account_id).await;
    Ok(Json(json!({})))
}
