//! `GET /api/v2/search`: accounts, hashtags and statuses (PostgreSQL full-text search over
//! what the viewer may see).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use stampede_mastodon::SearchResults;
use stampede_social::feeds::keyset;
use stampede_social::visibility::{muted, visible};

use crate::AppState;
use crate::api::v1::accounts::search::search_accounts;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::scopes;
use crate::statuses::Filter;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    resolve: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    following: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    account_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    max_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    min_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    offset: Option<u32>,
}

pub async fn search(
    State(state): State<AppState>,
    viewer: Viewer,
    Params(q): Params<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let viewer = viewer.account(scopes::SEARCH_READ)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 40);
    let offset = q.offset.unwrap_or(0);
    // Without a signed-in user Mastodon refuses paging into results.
    if viewer.is_none() && offset > 0 {
        return Err(ApiError::unauthorized(
            "Search queries pagination is not supported without authentication",
        ));
    }
    let wants = |k: &str| q.kind.as_deref().is_none_or(|t| t.is_empty() || t == k);
    let text = q.q.trim();
    let mut results = SearchResults {
        accounts: Vec::new(),
        statuses: Vec::new(),
        hashtags: Vec::new(),
    };
    if text.is_empty() {
        return Ok(Json(results));
    }
    // `resolve=true` (signed in): a handle or actor URL from another server is looked up
    // there (WebFinger, the actor document) and stored, so it can be followed.
    let mut resolved = None;
    if wants("accounts") && viewer.is_some() && q.resolve.unwrap_or(false) {
        resolved = resolve_account(&state, text).await;
    }
    if wants("accounts") {
        results.accounts = search_accounts(
            &state,
            viewer,
            text,
            q.following.unwrap_or(false),
            limit,
            offset,
        )
        .await?;
        if let Some(row) = resolved {
            results.accounts.retain(|a| a.id != row.id.to_string());
            results.accounts.insert(0, state.render_account(&row));
            results.accounts.truncate(limit as usize);
        }
    }
    if wants("hashtags") {
        let name = text.trim_start_matches('#').to_lowercase();
        let tags: Vec<(i64, String)> = state
            .ctx
            .reads
            .read(|db| {
                let query = sqlx::query_as(
                    "SELECT id, name FROM tags WHERE lower(name) LIKE $1 || '%' \
             ORDER BY (lower(name) = $1) DESC, length(name), name LIMIT $2 OFFSET $3",
                )
                .bind(name.replace('%', "").replace('_', "\\_"))
                .bind(i64::from(limit))
                .bind(i64::from(offset));
                async move { query.fetch_all(&db).await }
            })
            .await?;
        for (id, name) in tags {
            results
                .hashtags
                .push(state.render_tag(id, &name, viewer).await?);
        }
    }
    // `resolve=true` with a status's URL from another server: fetched there and stored.
    if wants("statuses")
        && q.resolve.unwrap_or(false)
        && let Some(viewer_id) = viewer
        && let Some(id) = resolve_status(&state, text).await?
    {
        results.statuses = state
            .load_statuses(Some(viewer_id), &[id], Filter::default())
            .await?;
        return Ok(Json(results));
    }
    // Statuses are searched only for a signed-in viewer, as in Mastodon.
    if wants("statuses") && viewer.is_some() {
        let sql = format!(
            "SELECT s.id FROM statuses s \
             WHERE s.search @@ plainto_tsquery('simple', $1) AND s.reblog_of_id IS NULL \
               AND ($2::bigint IS NULL OR s.account_id = $2) \
               AND {keyset} \
               AND {} AND NOT {} \
             ORDER BY s.id DESC LIMIT $6 OFFSET $7",
            visible("s", "$5"),
            muted("s", "$5"),
            keyset = keyset("s.id", 3, 4),
        );
        let ids: Vec<i64> = state
            .ctx
            .reads
            .read(|db| {
                let query = sqlx::query_scalar(&sql)
                    .bind(text)
                    .bind(q.account_id)
                    .bind(q.max_id)
                    .bind(q.min_id)
                    .bind(viewer)
                    .bind(i64::from(limit))
                    .bind(i64::from(offset));
                async move { query.fetch_all(&db).await }
            })
            .await?;
        results.statuses = state
            .load_statuses(viewer, &ids, Filter::HIDE_MUTED)
            .await?;
    }
    Ok(Json(results))
}

/// The remote account `text` names (`@user@domain`, `user@domain` or an actor URL), fetched and
/// stored; `None` when it names none (or its server cannot be reached: search still answers).
async fn resolve_account(state: &AppState, text: &str) -> Option<crate::accounts::AccountRow> {
    let found = if text.starts_with("http://") || text.starts_with("https://") {
        state.resolver.by_uri(text, false).await.map(Some)
    } else {
        let handle = text.trim_start_matches('@');
        let (user, domain) = handle.split_once('@')?;
        if user.is_empty() || domain.is_empty() || domain.contains(['/', ' ', '@']) {
            return None;
        }
        state.resolver.by_handle(user, domain).await
    };
    match found {
        Ok(Some(remote)) => crate::accounts::find(&state.ctx.db, remote.id)
            .await
            .ok()
            .flatten(),
        Ok(None) => None,
        Err(error) => {
            tracing::info!(%error, query = text, "could not resolve a remote account");
            None
        }
    }
}

/// The status another server's URL `text` names, fetched there and stored (its author too).
/// `None` when `text` is not such a URL or its server does not give a Note.
async fn resolve_status(state: &AppState, text: &str) -> Result<Option<i64>, ApiError> {
    if !(text.starts_with("http://") || text.starts_with("https://"))
        || text.starts_with(&state.base_url())
    {
        return Ok(None);
    }
    let known: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1 OR url = $1")
            .bind(text)
            .fetch_optional(&state.ctx.db)
            .await?;
    if known.is_some() {
        return Ok(known);
    }
    let fetched = match state.resolver.note(text).await {
        Ok(fetched) => fetched,
        Err(error) => {
            tracing::info!(%error, query = text, "could not resolve a remote status");
            return Ok(None);
        }
    };
    let Some((author, note)) = fetched else {
        return Ok(None);
    };
    let mut tx = state.ctx.db.begin().await?;
    let id = stampede_social::inbox::store_note(
        &mut tx,
        &state.ids,
        &state.base_url(),
        &author,
        &note,
        true,
        state.resolver.caches_media(&author.domain),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
