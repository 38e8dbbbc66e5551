//! `/api/v1/notifications`: what happened to the viewer, newest first.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use stampede_mastodon::Notification;
use stampede_social::feeds::keyset;
use stampede_social::notification;
use stampede_social::render::{NOTIFICATION_COLUMNS, NotificationRow};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

/// Hidden at read time as well as at creation: notifications from accounts the viewer blocks
/// or is blocked by, or mutes with notifications hidden, or whose domain the viewer blocks.
const HIDDEN: &str = "NOT EXISTS (SELECT 1 FROM blocks b \
        WHERE (b.account_id = n.account_id AND b.target_account_id = n.from_account_id) \
           OR (b.account_id = n.from_account_id AND b.target_account_id = n.account_id)) \
    AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.account_id = n.account_id \
        AND m.target_account_id = n.from_account_id AND m.hide_notifications \
        AND (m.expires_at IS NULL OR m.expires_at > now())) \
    AND NOT EXISTS (SELECT 1 FROM account_domain_blocks db JOIN accounts da ON da.domain = db.domain \
        WHERE db.account_id = n.account_id AND da.id = n.from_account_id)";

/// The notifications a list shows, binding `$1` the viewer, `$2` the kinds asked for, `$3`
/// the kinds excluded, `$4` one sender or NULL, `$5` whether filtered ones are included
/// (see [`Selection::bind`]).
pub(crate) fn shown() -> String {
    format!(
        "n.account_id = $1 AND n.type = ANY($2) AND NOT n.type = ANY($3) \
         AND ($4::bigint IS NULL OR n.from_account_id = $4) AND ($5 OR NOT n.filtered) AND {HIDDEN}"
    )
}

/// The selection parameters every notification list takes (v1 and v2).
#[derive(Debug, Default, Deserialize)]
pub struct Selection {
    #[serde(default, deserialize_with = "flex::opt_list")]
    types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    exclude_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    account_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    include_filtered: Option<bool>,
}

impl Selection {
    /// Binds `$1`…`$5` of [`shown`] for `viewer`.
    pub(crate) fn bind<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        viewer: i64,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        let types: Vec<String> = self
            .types
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| notification::ALL.iter().map(|t| t.to_string()).collect());
        query
            .bind(viewer)
            .bind(types)
            .bind(self.exclude_types.clone().unwrap_or_default())
            .bind(self.account_id)
            .bind(self.include_filtered.unwrap_or(false))
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(flatten)]
    selection: Selection,
}

pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<ListQuery>,
) -> Result<Page<Notification>, ApiError> {
    let account_id = auth.account(scopes::NOTIFICATIONS_READ)?;
    let bounds = q.page.bounds(40, 80);
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n \
         WHERE {shown} AND {keyset} ORDER BY n.id {} LIMIT $8",
        bounds.order(),
        shown = shown(),
        keyset = keyset("n.id", 6, 7),
    );
    let rows: Vec<NotificationRow> = q
        .selection
        .bind(sqlx::query_as(&sql), account_id)
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(bounds.limit as i64)
        .fetch_all(&state.ctx.db)
        .await?;
    let mut rows = rows;
    if bounds.ascending {
        rows.reverse();
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let items = state.render.notifications(account_id, rows).await?;
    Ok(Page::new(
        items,
        &state.base_url(),
        &uri,
        ids.first().copied(),
        ids.last().copied(),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let account_id = auth.account(scopes::NOTIFICATIONS_READ)?;
    let rows: Vec<NotificationRow> = sqlx::query_as(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n \
         WHERE n.id = $1 AND n.account_id = $2 AND {HIDDEN}"
    ))
    .bind(path_id(&id)?)
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await?;
    state
        .render
        .notifications(account_id, rows)
        .await?
        .pop()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    super::delete_owned(&state, super::Owned::Notification, &id, account_id).await
}

pub async fn clear(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    sqlx::query("DELETE FROM notifications WHERE account_id = $1")
        .bind(account_id)
        .execute(&state.ctx.db)
        .await?;
    Ok(Json(serde_json::json!({})))
}

/// The most `unread_count` counts (Mastodon's cap).
const MAX_UNREAD: i64 = 1000;

/// `GET /api/v1/notifications/unread_count`: notifications newer than the `notifications`
/// marker (all of them without one), at most 1,000; `types[]`, `exclude_types[]` and
/// `account_id` filter as on the list.
pub async fn unread_count(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::NOTIFICATIONS_READ)?;
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM notifications n \
         WHERE {shown} \
           AND n.id > coalesce((SELECT last_read_id FROM markers \
                                WHERE account_id = $1 AND timeline = 'notifications'), 0) \
         LIMIT $6) unread",
        shown = shown(),
    );
    let (count,): (i64,) = q
        .selection
        .bind(sqlx::query_as(&sql), account_id)
        .bind(MAX_UNREAD)
        .fetch_one(&state.ctx.db)
        .await?;
    Ok(Json(serde_json::json!({ "count": count })))
}
