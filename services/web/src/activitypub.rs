//! The ActivityPub documents other servers read: actors (people and the instance actor), their
//! collections, and statuses as Notes with their Create/Announce activities. Mastodon's shapes
//! and addressing (`to`/`cc` by visibility) are the reference, so Mastodon, GoToSocial and
//! Fedify-based servers read them as they read Mastodon's.
//!
//! Served at the URLs they name: `/users/:username` (with `/followers`, `/following`,
//! `/outbox`, `/collections/featured`, `/statuses/:id`, `/statuses/:id/activity`) and `/actor`.
//! A browser asking for `/users/:username` is sent to the profile page `/@:username`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_mastodon::Status;
use stampede_social::activitypub::{actor_uri, context, person, with_context};
use stampede_social::keys;

use crate::AppState;
use crate::accounts::{self, AccountRow};
use crate::error::ApiError;

/// The content type of every document served here.
pub const ACTIVITY_JSON: &str = "application/activity+json; charset=utf-8";

/// Items per collection page, as Mastodon.
const PAGE_SIZE: i64 = 20;

pub fn router(state: &AppState) -> Router<AppState> {
    let documents = Router::new()
        .route("/users/{username}", get(actor))
        .route("/users/{username}/followers", get(followers))
        .route("/users/{username}/following", get(following))
        .route("/users/{username}/outbox", get(outbox))
        .route("/users/{username}/collections/featured", get(featured))
        .route("/users/{username}/statuses/{id}", get(note))
        .route("/users/{username}/statuses/{id}/activity", get(activity))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorized_fetch,
        ));
    // The instance actor stays public: servers fetch it to check our signed fetches.
    Router::new()
        .route("/actor", get(instance_actor))
        .merge(documents)
}

/// With AUTHORIZED_FETCH, a document is served to a GET signed by another server's actor only
/// (401 otherwise); a browser asking for a page is not affected.
pub async fn check_fetch(
    state: &AppState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if state.ctx.config.federation.authorized_fetch && wants_activity_json(headers) {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        crate::inbox::verified_signer(state, method, path, headers).await?;
    }
    Ok(())
}

async fn authorized_fetch(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match check_fetch(&state, request.method(), request.uri(), request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Whether the client asked for ActivityPub JSON (`application/activity+json`, or JSON-LD with
/// the ActivityStreams profile), rather than a page.
pub fn wants_activity_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| {
            accept.contains("application/activity+json")
                || accept.contains("application/ld+json")
                || accept.contains("application/json")
        })
}

/// A document with ActivityPub's content type.
pub fn document(value: Value) -> Response {
    ([(header::CONTENT_TYPE, ACTIVITY_JSON)], Json(value)).into_response()
}

/// A local, unsuspended account by username, or 404.
async fn local_account(state: &AppState, username: &str) -> Result<AccountRow, ApiError> {
    let row = accounts::find_local(&state.ctx.db, username)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if row.suspended_at.is_some() {
        return Err(ApiError::not_found());
    }
    Ok(row)
}

/// `GET /users/:username`: the Person (Service for bots), or a redirect to the profile page
/// for a browser.
async fn actor(
    State(state): State<AppState>,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = local_account(&state, &username).await?;
    if !wants_activity_json(&headers) {
        return Ok(Redirect::to(&format!("/@{}", row.username)).into_response());
    }
    actor_document(&state, &row).await
}

/// The actor document of `row` (a local account), its key assigned on first use.
pub async fn actor_document(state: &AppState, row: &AccountRow) -> Result<Response, ApiError> {
    let key = keys::account_key(&state.ctx.db, row.id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    let account = state.render_account(row);
    let base = state.base_url();
    let mut doc = person(&base, &account, row.indexable, &key.public_key);
    let mut conn = state.ctx.db.acquire().await?;
    let (aliases, moved) = stampede_social::moves::identity(&mut conn, &base, row.id).await?;
    stampede_social::moves::decorate(&mut doc, aliases, moved);
    Ok(document(doc))
}

/// `GET /actor`: the instance actor, which signs the server's own fetches.
async fn instance_actor(State(state): State<AppState>) -> Result<Response, ApiError> {
    let key = keys::instance_key(&state.ctx.db)
        .await
        .map_err(ApiError::internal)?;
    let base = state.base_url();
    let id = format!("{base}/actor");
    Ok(document(json!({
        "@context": context(),
        "id": id,
        "type": "Application",
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "preferredUsername": state.ctx.config.local_domain,
        "url": format!("{base}/about/more?instance_actor=true"),
        "manuallyApprovesFollowers": true,
        "publicKey": {
            "id": format!("{id}#main-key"),
            "owner": id,
            "publicKeyPem": key.public_key,
        },
        "endpoints": { "sharedInbox": format!("{base}/inbox") },
    })))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
    max_id: Option<i64>,
}

/// An OrderedCollection with its count and a link to the first page, or (with `?page=true`)
/// one page of `items`, newest first, paged by `max_id`.
fn collection(id: &str, total: i64, query: &PageQuery, items: Vec<(i64, Value)>) -> Value {
    if query.page.is_none() {
        return json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": id,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": format!("{id}?page=true"),
        });
    }
    let page_id = match query.max_id {
        Some(max) => format!("{id}?page=true&max_id={max}"),
        None => format!("{id}?page=true"),
    };
    let next = (items.len() as i64 == PAGE_SIZE)
        .then(|| {
            items
                .last()
                .map(|(key, _)| format!("{id}?page=true&max_id={key}"))
        })
        .flatten();
    let mut page = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": page_id,
        "type": "OrderedCollectionPage",
        "totalItems": total,
        "partOf": id,
        "orderedItems": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        page["next"] = Value::String(next);
    }
    page
}

/// The actor URIs of one page of a follow list (`column` is whose side the account is on).
async fn follow_page(
    state: &AppState,
    row: &AccountRow,
    query: &PageQuery,
    followers: bool,
) -> Result<Vec<(i64, Value)>, ApiError> {
    if query.page.is_none() {
        return Ok(Vec::new());
    }
    let sql = if followers {
        "SELECT f.id, a.username, a.domain, a.uri FROM follows f JOIN accounts a ON a.id = f.account_id \
         WHERE f.target_account_id = $1 AND ($2::bigint IS NULL OR f.id < $2) \
           AND a.suspended_at IS NULL ORDER BY f.id DESC LIMIT $3"
    } else {
        "SELECT f.id, a.username, a.domain, a.uri FROM follows f JOIN accounts a ON a.id = f.target_account_id \
         WHERE f.account_id = $1 AND ($2::bigint IS NULL OR f.id < $2) \
           AND a.suspended_at IS NULL ORDER BY f.id DESC LIMIT $3"
    };
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(sql)
        .bind(row.id)
        .bind(query.max_id)
        .bind(PAGE_SIZE)
        .fetch_all(&state.ctx.db)
        .await?;
    let base = state.base_url();
    Ok(rows
        .into_iter()
        .map(|(id, username, domain, uri)| {
            let uri = match (domain, uri) {
                (None, _) => actor_uri(&base, &username),
                (Some(_), Some(uri)) => uri,
                (Some(domain), None) => format!("https://{domain}/users/{username}"),
            };
            (id, Value::String(uri))
        })
        .collect())
}

/// `GET /users/:username/followers`.
async fn followers(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let row = local_account(&state, &username).await?;
    let items = follow_page(&state, &row, &query, true).await?;
    let id = format!("{}/followers", actor_uri(&state.base_url(), &row.username));
    Ok(document(collection(
        &id,
        row.followers_count,
        &query,
        items,
    )))
}

/// `GET /users/:username/following`.
async fn following(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let row = local_account(&state, &username).await?;
    let items = follow_page(&state, &row, &query, false).await?;
    let id = format!("{}/following", actor_uri(&state.base_url(), &row.username));
    Ok(document(collection(
        &id,
        row.following_count,
        &query,
        items,
    )))
}

/// `GET /users/:username/outbox`: the public and unlisted statuses as Create (or Announce)
/// activities.
async fn outbox(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let row = local_account(&state, &username).await?;
    let id = format!("{}/outbox", actor_uri(&state.base_url(), &row.username));
    let mut items = Vec::new();
    if query.page.is_some() {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM statuses WHERE account_id = $1 \
               AND visibility IN ('public', 'unlisted') \
               AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(row.id)
        .bind(query.max_id)
        .bind(PAGE_SIZE)
        .fetch_all(&state.ctx.db)
        .await?;
        let statuses = state.render.load_published(&ids).await?;
        for status in &statuses {
            let key = status.id.parse().unwrap_or_default();
            items.push((key, state.documents.publication(status).await?));
        }
    }
    Ok(document(collection(&id, row.statuses_count, &query, items)))
}

/// `GET /users/:username/collections/featured`: the pinned statuses, as Notes.
async fn featured(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    let row = local_account(&state, &username).await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT p.status_id FROM status_pins p JOIN statuses s ON s.id = p.status_id \
         WHERE p.account_id = $1 AND s.visibility IN ('public', 'unlisted') \
         ORDER BY p.id DESC",
    )
    .bind(row.id)
    .fetch_all(&state.ctx.db)
    .await?;
    let statuses = state.render.load_published(&ids).await?;
    let base = state.base_url();
    let mut notes = Vec::with_capacity(statuses.len());
    for status in &statuses {
        notes.push(state.documents.note(status).await?);
    }
    let id = format!("{}/collections/featured", actor_uri(&base, &row.username));
    Ok(document(json!({
        "@context": context(),
        "id": id,
        "type": "OrderedCollection",
        "totalItems": notes.len(),
        "orderedItems": notes,
    })))
}

/// A status others may read without signing in: public or unlisted, by `username`.
async fn public_status(state: &AppState, username: &str, id: &str) -> Result<Status, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let status = state
        .render
        .load_published(&[id])
        .await?
        .pop()
        .ok_or_else(ApiError::not_found)?;
    let readable = matches!(status.visibility.as_str(), "public" | "unlisted");
    if !readable || !status.account.acct.eq_ignore_ascii_case(username) {
        return Err(ApiError::not_found());
    }
    Ok(status)
}

/// `GET /users/:username/statuses/:id`: the Note (a boost has no Note: its activity is the
/// Announce, at `/activity`).
async fn note(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let status = public_status(&state, &username, &id).await?;
    if !wants_activity_json(&headers) {
        let url = status.url.clone().unwrap_or_else(|| status.uri.clone());
        return Ok(Redirect::to(&url).into_response());
    }
    if status.reblog.is_some() {
        return Err(ApiError::not_found());
    }
    Ok(document(with_context(state.documents.note(&status).await?)))
}

/// `GET /users/:username/statuses/:id/activity`: the Create (or, for a boost, the Announce).
async fn activity(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let status = public_status(&state, &username, &id).await?;
    Ok(document(with_context(
        state.documents.publication(&status).await?,
    )))
}
