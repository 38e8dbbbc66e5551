//! `/api/v1/filters` (deprecated, still called by older apps): each v1 filter is one keyword of
//! a v2 filter, with its filter's contexts and expiry, `irreversible` when its action is `hide`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_mastodon::time::iso;

use crate::AppState;
use crate::api::v2::filters::{check_context, expiry};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    keyword: String,
    whole_word: bool,
    context: Vec<String>,
    action: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn render(row: &Row) -> Value {
    json!({
        "id": row.id.to_string(),
        "phrase": row.keyword,
        "context": row.context,
        "whole_word": row.whole_word,
        "expires_at": row.expires_at.map(iso),
        "irreversible": row.action == "hide",
    })
}

/// The keywords of `account_id`'s filters (only `only` with one) as v1 filters.
async fn rows(state: &AppState, account_id: i64, only: Option<i64>) -> Result<Vec<Row>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT k.id, k.keyword, k.whole_word, f.context, f.action, f.expires_at \
         FROM filter_keywords k JOIN filters f ON f.id = k.filter_id \
         WHERE f.account_id = $1 AND ($2::bigint IS NULL OR k.id = $2) ORDER BY k.id",
    )
    .bind(account_id)
    .bind(only)
    .fetch_all(&state.ctx.db)
    .await?)
}

async fn one(state: &AppState, account_id: i64, id: i64) -> Result<Json<Value>, ApiError> {
    rows(state, account_id, Some(id))
        .await?
        .first()
        .map(|r| Json(render(r)))
        .ok_or_else(ApiError::not_found)
}

#[derive(Debug, Deserialize)]
pub struct V1Params {
    phrase: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    context: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    irreversible: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    whole_word: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    expires_in: Option<i64>,
}

impl V1Params {
    fn check(&self, new: bool) -> Result<(), ApiError> {
        if (new || self.phrase.is_some())
            && self.phrase.as_deref().is_none_or(|p| p.trim().is_empty())
        {
            return Err(ApiError::unprocessable(
                "Validation failed: Keyword can't be blank",
            ));
        }
        if new || self.context.is_some() {
            check_context(self.context.as_deref())?;
        }
        Ok(())
    }

    fn action(&self) -> Option<&'static str> {
        self.irreversible.map(|i| if i { "hide" } else { "warn" })
    }

    fn expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        expiry(self.expires_in)
    }
}

/// `GET /api/v1/filters`.
pub async fn index(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    let list = rows(&state, account_id, None).await?;
    Ok(Json(Value::Array(list.iter().map(render).collect())))
}

/// `GET /api/v1/filters/:id`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_READ)?;
    one(&state, account_id, path_id(&id)?).await
}

/// `POST /api/v1/filters`: a filter titled by its phrase, with that one keyword.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    p.check(true)?;
    let phrase = p.phrase.as_deref().unwrap_or_default().trim().to_string();
    let (filter_id, keyword_id) = (state.ids.next_id().as_i64(), state.ids.next_id().as_i64());
    let mut tx = state.ctx.db.begin().await?;
    sqlx::query(
        "INSERT INTO filters (id, account_id, title, context, action, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(filter_id)
    .bind(account_id)
    .bind(&phrase)
    .bind(p.context.as_deref().unwrap_or_default())
    .bind(p.action().unwrap_or("warn"))
    .bind(p.expiry())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO filter_keywords (id, filter_id, keyword, whole_word) VALUES ($1, $2, $3, $4)",
    )
    .bind(keyword_id)
    .bind(filter_id)
    .bind(&phrase)
    .bind(p.whole_word.unwrap_or(true))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let answer = one(&state, account_id, keyword_id).await?;
    state.filters_changed(account_id).await;
    Ok(answer)
}

/// `PUT /api/v1/filters/:id`: the keyword, and its filter's contexts, action and expiry.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let id = path_id(&id)?;
    p.check(false)?;
    let mut tx = state.ctx.db.begin().await?;
    let filter_id: i64 = sqlx::query_scalar(
        "UPDATE filter_keywords k SET keyword = coalesce($3, k.keyword), \
           whole_word = coalesce($4, k.whole_word) \
         FROM filters f WHERE k.id = $1 AND f.id = k.filter_id AND f.account_id = $2 \
         RETURNING f.id",
    )
    .bind(id)
    .bind(account_id)
    .bind(p.phrase.as_deref().map(str::trim))
    .bind(p.whole_word)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    sqlx::query(
        "UPDATE filters SET context = coalesce($2, context), action = coalesce($3, action), \
           expires_at = CASE WHEN $4 THEN $5 ELSE expires_at END WHERE id = $1",
    )
    .bind(filter_id)
    .bind(p.context.as_deref())
    .bind(p.action())
    .bind(p.expires_in.is_some())
    .bind(p.expiry())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let answer = one(&state, account_id, id).await?;
    state.filters_changed(account_id).await;
    Ok(answer)
}

/// `DELETE /api/v1/filters/:id`: the keyword, and its filter when nothing else is left in it.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account_id = auth.account(scopes::FILTERS_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    let filter_id: i64 = sqlx::query_scalar(
        "DELETE FROM filter_keywords k USING filters f \
         WHERE k.id = $1 AND f.id = k.filter_id AND f.account_id = $2 RETURNING f.id",
    )
    .bind(path_id(&id)?)
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    sqlx::query(
        "DELETE FROM filters f WHERE f.id = $1 \
           AND NOT EXISTS (SELECT 1 FROM filter_keywords WHERE filter_id = f.id) \
           AND NOT EXISTS (SELECT 1 FROM filter_statuses WHERE filter_id = f.id)",
    )
    .bind(filter_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.filters_changed(account_id).await;
    Ok(Json(json!({})))
}
