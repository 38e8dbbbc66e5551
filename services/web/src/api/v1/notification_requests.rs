//! The notification policy (`/api/v2/notifications/policy`) and the requests it files
//! (`/api/v1/notifications/requests`): mentions from people the user chose not to hear from
//! directly, one request per sender, to accept or dismiss.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stampede_mastodon::time::iso;
use stampede_mastodon::{
    NotificationPolicy, NotificationPolicySummary, NotificationRequest as RequestEntity,
};
use stampede_social::feeds::keyset;
use stampede_social::notification_requests::{self as requests, POLICY_FIELDS};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, sqlx::FromRow)]
struct RequestRow {
    id: i64,
    from_account_id: i64,
    last_status_id: Option<i64>,
    notifications_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const REQUEST_COLUMNS: &str =
    "r.id, r.from_account_id, r.last_status_id, r.notifications_count, r.created_at, r.updated_at";

/// Requests from senders the viewer has since blocked are not shown.
const NOT_BLOCKED: &str = "NOT EXISTS (SELECT 1 FROM blocks b \
     WHERE (b.account_id = r.account_id AND b.target_account_id = r.from_account_id) \
        OR (b.account_id = r.from_account_id AND b.target_account_id = r.account_id))";

/// Renders `rows` in order; one whose sender is suspended is left out.
async fn render(
    state: &AppState,
    viewer: i64,
    rows: Vec<RequestRow>,
) -> Result<Vec<RequestEntity>, ApiError> {
    let account_ids: Vec<i64> = rows.iter().map(|r| r.from_account_id).collect();
    let accounts = state.render.accounts_by_id(&account_ids).await?;
    let status_ids: Vec<i64> = rows.iter().filter_map(|r| r.last_status_id).collect();
    let statuses = state.render.statuses_by_id(viewer, &status_ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let account = accounts.get(&r.from_account_id)?;
            if account.suspended_at.is_some() {
                return None;
            }
            Some(RequestEntity {
                id: r.id.to_string(),
                created_at: iso(r.created_at),
                updated_at: iso(r.updated_at),
                account: state.render.render_account(account),
                notifications_count: r.notifications_count.to_string(),
                last_status: r
                    .last_status_id
                    .and_then(|s| statuses.get(&s.to_string()).cloned()),
            })
        })
        .collect())
}

/// `GET /api/v1/notifications/requests`.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(page): Params<PageQuery>,
) -> Result<Page<RequestEntity>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let bounds = page.bounds(40, 80);
    let mut rows: Vec<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM notification_requests r \
         WHERE r.account_id = $1 AND {NOT_BLOCKED} AND {keyset} ORDER BY r.id {} LIMIT $4",
        bounds.order(),
        keyset = keyset("r.id", 2, 3),
    ))
    .bind(viewer)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    if bounds.ascending {
        rows.reverse();
    }
    let newest = rows.first().map(|r| r.id);
    let oldest = rows.last().map(|r| r.id);
    let items = render(&state, viewer, rows).await?;
    Ok(Page::new(items, &state.base_url(), &uri, newest, oldest))
}

/// `GET /api/v1/notifications/requests/:id`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<RequestEntity>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let rows: Vec<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM notification_requests r \
         WHERE r.id = $1 AND r.account_id = $2 AND {NOT_BLOCKED}"
    ))
    .bind(path_id(&id)?)
    .bind(viewer)
    .fetch_all(&state.ctx.db)
    .await?;
    render(&state, viewer, rows)
        .await?
        .pop()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

#[derive(Clone, Copy)]
enum Decision {
    Accept,
    Dismiss,
}

async fn decide(
    state: &AppState,
    viewer: i64,
    ids: &[i64],
    decision: Decision,
) -> Result<u64, ApiError> {
    let mut tx = state.ctx.db.begin().await?;
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_requests WHERE account_id = $1 AND id = ANY($2)",
    )
    .bind(viewer)
    .bind(ids)
    .fetch_one(&mut *tx)
    .await?;
    match decision {
        Decision::Accept => requests::accept(&mut tx, viewer, ids).await?,
        Decision::Dismiss => requests::dismiss(&mut tx, viewer, ids).await?,
    };
    tx.commit().await?;
    Ok(exists as u64)
}

async fn decide_one(
    state: &AppState,
    auth: &Auth,
    id: &str,
    decision: Decision,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    if decide(state, viewer, &[path_id(id)?], decision).await? == 0 {
        return Err(ApiError::not_found());
    }
    Ok(Json(serde_json::json!({})))
}

/// `POST /api/v1/notifications/requests/:id/accept`.
pub async fn accept(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide_one(&state, &auth, &id, Decision::Accept).await
}

/// `POST /api/v1/notifications/requests/:id/dismiss`.
pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide_one(&state, &auth, &id, Decision::Dismiss).await
}

#[derive(Debug, Deserialize)]
pub struct Ids {
    #[serde(default, deserialize_with = "flex::opt_list")]
    id: Option<Vec<String>>,
}

async fn decide_many(
    state: &AppState,
    auth: &Auth,
    ids: Ids,
    decision: Decision,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    // Unknown or malformed ids are skipped, as Mastodon skips requests it cannot find.
    let ids: Vec<i64> = ids
        .id
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.trim().parse().ok())
        .collect();
    decide(state, viewer, &ids, decision).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /api/v1/notifications/requests/accept` with `id[]`.
pub async fn accept_many(
    State(state): State<AppState>,
    auth: Auth,
    Params(ids): Params<Ids>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide_many(&state, &auth, ids, Decision::Accept).await
}

/// `POST /api/v1/notifications/requests/dismiss` with `id[]`.
pub async fn dismiss_many(
    State(state): State<AppState>,
    auth: Auth,
    Params(ids): Params<Ids>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide_many(&state, &auth, ids, Decision::Dismiss).await
}

/// `GET /api/v1/notifications/requests/merged`: whether accepted requests' notifications have
/// joined the list. Accepting does that in its own transaction, so it is always done.
pub async fn merged(auth: Auth) -> Result<Json<serde_json::Value>, ApiError> {
    auth.account(scopes::NOTIFICATIONS_READ)?;
    Ok(Json(serde_json::json!({ "merged": true })))
}

async fn policy_of(state: &AppState, viewer: i64) -> Result<NotificationPolicy, ApiError> {
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT for_not_following, for_not_followers, for_new_accounts, for_private_mentions, \
                for_limited_accounts FROM notification_policies WHERE account_id = $1",
    )
    .bind(viewer)
    .fetch_optional(&state.ctx.db)
    .await?;
    let (a, b, c, d, e) = row.unwrap_or_else(|| {
        let accept = || "accept".to_string();
        let filter = || "filter".to_string();
        (accept(), accept(), accept(), filter(), filter())
    });
    let (requests, notifications): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), coalesce(sum(r.notifications_count), 0)::bigint \
         FROM notification_requests r WHERE r.account_id = $1 AND {NOT_BLOCKED}"
    ))
    .bind(viewer)
    .fetch_one(&state.ctx.db)
    .await?;
    Ok(NotificationPolicy {
        for_not_following: a,
        for_not_followers: b,
        for_new_accounts: c,
        for_private_mentions: d,
        for_limited_accounts: e,
        summary: NotificationPolicySummary {
            pending_requests_count: requests,
            pending_notifications_count: notifications,
        },
    })
}

/// `GET /api/v2/notifications/policy`.
pub async fn policy(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<NotificationPolicy>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    Ok(Json(policy_of(&state, viewer).await?))
}

/// `PATCH /api/v2/notifications/policy`: any of the five settings, each `accept`, `filter`
/// or `drop`; 422 for another value, with nothing changed.
pub async fn update_policy(
    State(state): State<AppState>,
    auth: Auth,
    Params(params): Params<HashMap<String, serde_json::Value>>,
) -> Result<Json<NotificationPolicy>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    let mut values: [Option<String>; 5] = Default::default();
    for (slot, field) in values.iter_mut().zip(POLICY_FIELDS) {
        let Some(value) = params.get(field) else {
            continue;
        };
        let value = value.as_str().unwrap_or_default();
        if !matches!(value, "accept" | "filter" | "drop") {
            return Err(ApiError::unprocessable(format!(
                "Validation failed: {field} is not included in the list"
            )));
        }
        *slot = Some(value.to_string());
    }
    let mut tx = state.ctx.db.begin().await?;
    requests::set_policy(&mut tx, viewer, &values).await?;
    tx.commit().await?;
    Ok(Json(policy_of(&state, viewer).await?))
}
