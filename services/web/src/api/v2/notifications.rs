//! `/api/v2/notifications`: notifications grouped as Mastodon 4.3 groups them. Favourites and
//! boosts of one status, and follows, that arrive within 12 hours of their group's first hour
//! share a `group_key` (set when the notification is inserted, see the
//! `notifications_classify` trigger); every other notification is a group of one,
//! `ungrouped-ID`. A page holds `limit` groups, each shown by its newest notification in the
//! page.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stampede_mastodon::time::iso;
use stampede_mastodon::{
    Account, GroupedNotificationsResults, NotificationGroup, PartialAccountWithAvatar,
};
use stampede_social::feeds::keyset;
use stampede_social::render::{NOTIFICATION_COLUMNS, NotificationRow};

use crate::AppState;
use crate::api::v1::notifications::{Selection, shown};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{PageQuery, link_header};
use crate::payload::{Params, flex};
use crate::scopes;

/// The kinds grouped unless `grouped_types[]` names fewer (Mastodon's groupable kinds).
const GROUPABLE: [&str; 4] = ["favourite", "reblog", "follow", "admin.sign_up"];
/// Accounts named per group.
const SAMPLE_ACCOUNTS: i64 = 8;

#[derive(Debug, Deserialize)]
pub struct GroupedQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(flatten)]
    selection: Selection,
    #[serde(default, deserialize_with = "flex::opt_list")]
    grouped_types: Option<Vec<String>>,
    expand_accounts: Option<String>,
}

fn grouped_types(asked: &Option<Vec<String>>) -> Vec<String> {
    match asked {
        Some(kinds) if !kinds.is_empty() => kinds
            .iter()
            .filter(|k| GROUPABLE.contains(&k.as_str()))
            .cloned()
            .collect(),
        _ => GROUPABLE.iter().map(|k| k.to_string()).collect(),
    }
}

/// A notification's group on a page, with the grouped kinds bound at `$6`.
const PAGE_GROUP: &str = "CASE WHEN n.group_key IS NOT NULL AND n.type = ANY($6) \
     THEN n.group_key ELSE 'ungrouped-' || n.id END";

#[derive(Debug, sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    notification: NotificationRow,
    page_group: String,
}

/// What a group holds up to the page's newest notification.
#[derive(Debug, sqlx::FromRow)]
struct GroupData {
    key: String,
    most_recent: Option<i64>,
    samples: Vec<i64>,
    count: i64,
    page_min: Option<i64>,
    latest_at: Option<DateTime<Utc>>,
}

/// The notifications' ids bounding the groups' figures: newest (`hi`) and oldest (`lo`)
/// included, either open.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    lo: Option<i64>,
    hi: Option<i64>,
}

/// Figures of the real groups among `keys` within `range`, by key.
async fn group_data(
    state: &AppState,
    viewer: i64,
    selection: &Selection,
    keys: &[String],
    range: Range,
) -> Result<HashMap<String, GroupData>, ApiError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let in_group = format!(
        "{shown} AND n.group_key = g.key AND ($7::bigint IS NULL OR n.id <= $7)",
        shown = shown()
    );
    let sql = format!(
        "SELECT g.key, \
           (SELECT n.id FROM notifications n WHERE {in_group} ORDER BY n.id DESC LIMIT 1) AS most_recent, \
           ARRAY(SELECT n.from_account_id FROM notifications n WHERE {in_group} \
                 ORDER BY n.id DESC LIMIT $9) AS samples, \
           (SELECT count(*) FROM notifications n WHERE {in_group}) AS count, \
           (SELECT n.id FROM notifications n WHERE {in_group} \
              AND ($8::bigint IS NULL OR n.id >= $8) ORDER BY n.id ASC LIMIT 1) AS page_min, \
           (SELECT n.created_at FROM notifications n WHERE {in_group} \
              ORDER BY n.id DESC LIMIT 1) AS latest_at \
         FROM unnest($6::text[]) AS g (key)"
    );
    let rows: Vec<GroupData> = selection
        .bind(sqlx::query_as(&sql), viewer)
        .bind(keys)
        .bind(range.hi)
        .bind(range.lo)
        .bind(SAMPLE_ACCOUNTS)
        .fetch_all(&state.ctx.db)
        .await?;
    Ok(rows.into_iter().map(|g| (g.key.clone(), g)).collect())
}

/// The groups of `rows` (newest first, one per group) rendered for `viewer`. With a `range`,
/// each group says which of its notifications the page covers.
async fn render(
    state: &AppState,
    viewer: i64,
    selection: &Selection,
    rows: Vec<PageRow>,
    range: Option<Range>,
    partial_avatars: bool,
) -> Result<GroupedNotificationsResults, ApiError> {
    let keys: Vec<String> = rows
        .iter()
        .filter(|r| !r.page_group.starts_with("ungrouped-"))
        .map(|r| r.page_group.clone())
        .collect();
    let data = group_data(state, viewer, selection, &keys, range.unwrap_or_default()).await?;

    let mut groups = Vec::with_capacity(rows.len());
    for row in rows {
        let n = row.notification;
        let group = match data.get(&row.page_group) {
            Some(g) => NotificationGroup {
                group_key: row.page_group,
                notifications_count: g.count,
                kind: n.kind,
                most_recent_notification_id: g.most_recent.unwrap_or(n.id),
                page_min_id: range.map(|_| g.page_min.unwrap_or(n.id).to_string()),
                page_max_id: range.map(|_| g.most_recent.unwrap_or(n.id).to_string()),
                latest_page_notification_at: range
                    .map(|_| iso(g.latest_at.unwrap_or(n.created_at))),
                sample_account_ids: g.samples.iter().map(|a| a.to_string()).collect(),
                status_id: n.status_id.map(|s| s.to_string()),
            },
            None => NotificationGroup {
                group_key: row.page_group,
                notifications_count: 1,
                kind: n.kind,
                most_recent_notification_id: n.id,
                page_min_id: range.map(|_| n.id.to_string()),
                page_max_id: range.map(|_| n.id.to_string()),
                latest_page_notification_at: range.map(|_| iso(n.created_at)),
                sample_account_ids: vec![n.from_account_id.to_string()],
                status_id: n.status_id.map(|s| s.to_string()),
            },
        };
        groups.push(group);
    }

    // Each account and status once; a group whose status the viewer can no longer see, or
    // whose accounts are all suspended, is left out.
    let account_ids: Vec<i64> = groups
        .iter()
        .flat_map(|g| g.sample_account_ids.iter().filter_map(|a| a.parse().ok()))
        .collect::<HashSet<i64>>()
        .into_iter()
        .collect();
    let accounts: HashMap<String, Account> = state
        .render
        .accounts(&account_ids)
        .await?
        .iter()
        .filter(|a| a.suspended_at.is_none())
        .map(|a| (a.id.to_string(), state.render.render_account(a)))
        .collect();
    let status_ids: Vec<i64> = groups
        .iter()
        .filter_map(|g| g.status_id.as_deref()?.parse().ok())
        .collect();
    let statuses = state.render.statuses_by_id(viewer, &status_ids).await?;
    groups.retain_mut(|g| {
        g.sample_account_ids.retain(|a| accounts.contains_key(a));
        !g.sample_account_ids.is_empty()
            && g.status_id
                .as_ref()
                .is_none_or(|s| statuses.contains_key(s))
    });

    let mut full: Vec<Account> = Vec::new();
    let mut partial: Vec<PartialAccountWithAvatar> = Vec::new();
    let mut seen = HashSet::new();
    // The newest account of each group is always rendered in full.
    for g in &groups {
        let newest = &g.sample_account_ids[0];
        if seen.insert(newest.clone()) {
            full.push(accounts[newest].clone());
        }
    }
    for g in &groups {
        for id in &g.sample_account_ids[1..] {
            if seen.insert(id.clone()) {
                if partial_avatars {
                    partial.push(PartialAccountWithAvatar::from(&accounts[id]));
                } else {
                    full.push(accounts[id].clone());
                }
            }
        }
    }
    let mut seen_statuses = HashSet::new();
    let statuses = groups
        .iter()
        .filter_map(|g| g.status_id.as_ref())
        .filter(|s| seen_statuses.insert(s.to_string()))
        .filter_map(|s| statuses.get(s).cloned())
        .collect();
    Ok(GroupedNotificationsResults {
        accounts: full,
        partial_accounts: partial_avatars.then_some(partial),
        statuses,
        notification_groups: groups,
    })
}

fn partial_avatars(expand: &Option<String>) -> Result<bool, ApiError> {
    match expand.as_deref() {
        None | Some("full") => Ok(false),
        Some("partial_avatars") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid value for 'expand_accounts': '{other}', allowed values are 'full' and 'partial_avatars'"
            ),
        )),
    }
}

/// `GET /api/v2/notifications`.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<GroupedQuery>,
) -> Result<Response, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let partial_avatars = partial_avatars(&q.expand_accounts)?;
    let bounds = q.page.bounds(40, 80);
    let grouped = grouped_types(&q.grouped_types);
    // One notification per group, newest first (oldest first for `min_id`): each step takes
    // the next notification whose group the page has not shown yet, until `limit` groups.
    let (cmp, order) = if bounds.ascending {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    let sql = format!(
        "WITH RECURSIVE page (id, groups) AS ( \
           (SELECT n.id, ARRAY[{PAGE_GROUP}] FROM notifications n \
            WHERE {shown} AND {keyset} ORDER BY n.id {order} LIMIT 1) \
           UNION ALL \
           SELECT next.id, wt.groups || next.g \
           FROM (SELECT p.id, p.groups FROM page p WHERE cardinality(p.groups) < $9) wt \
           CROSS JOIN LATERAL ( \
             SELECT n.id, {PAGE_GROUP} AS g FROM notifications n \
             WHERE {shown} AND {keyset} AND n.id {cmp} wt.id \
               AND NOT ({PAGE_GROUP}) = ANY(wt.groups) \
             ORDER BY n.id {order} LIMIT 1) next) \
         SELECT {NOTIFICATION_COLUMNS}, {PAGE_GROUP} AS page_group \
         FROM page JOIN notifications n ON n.id = page.id ORDER BY n.id DESC",
        shown = shown(),
        keyset = keyset("n.id", 7, 8),
    );
    let rows: Vec<PageRow> = q
        .selection
        .bind(sqlx::query_as(&sql), viewer)
        .bind(&grouped)
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(bounds.limit as i64)
        .fetch_all(&state.ctx.db)
        .await?;
    let newest = rows.first().map(|r| r.notification.id);
    let oldest = rows.last().map(|r| r.notification.id);
    // The notifications the page covers; a short page reaches the end it walked towards.
    let mut range = Range {
        lo: oldest,
        hi: newest,
    };
    if rows.len() < bounds.limit {
        if bounds.ascending {
            range.hi = bounds.max.map(|max| max - 1);
        } else {
            range.lo = bounds.min.map(|min| min + 1);
        }
    }
    let results = render(
        &state,
        viewer,
        &q.selection,
        rows,
        Some(range),
        partial_avatars,
    )
    .await?;
    let mut response = Json(results).into_response();
    if let (Some(newest), Some(oldest)) = (newest, oldest)
        && let Ok(link) =
            HeaderValue::from_str(&link_header(&state.base_url(), &uri, newest, oldest))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The condition selecting group `key`'s notifications, binding the key at `$2`: an
/// `ungrouped-ID` key is that one notification.
fn by_group_key(key: &str) -> (&'static str, String) {
    match key.strip_prefix("ungrouped-") {
        Some(id) => ("n.id::text = $2", id.to_string()),
        None => ("n.group_key = $2", key.to_string()),
    }
}

/// `GET /api/v2/notifications/:group_key`: one group, with all its notifications.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<Json<GroupedNotificationsResults>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let (condition, bind) = by_group_key(&key);
    let row: Option<NotificationRow> = sqlx::query_as(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n \
         WHERE n.account_id = $1 AND {condition} ORDER BY n.id DESC LIMIT 1"
    ))
    .bind(viewer)
    .bind(bind)
    .fetch_optional(&state.ctx.db)
    .await?;
    let row = row.ok_or_else(ApiError::not_found)?;
    let selection = Selection::default();
    let page_group = match (&row.group_key, GROUPABLE.contains(&row.kind.as_str())) {
        (Some(group), true) => group.clone(),
        _ => format!("ungrouped-{}", row.id),
    };
    let rows = vec![PageRow {
        notification: row,
        page_group,
    }];
    let results = render(&state, viewer, &selection, rows, None, false).await?;
    if results.notification_groups.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(results))
}

/// `GET /api/v2/notifications/:group_key/accounts`: everyone in the group, newest first.
pub async fn accounts(
    State(state): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let (condition, bind) = by_group_key(&key);
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT n.from_account_id FROM notifications n \
         WHERE n.account_id = $1 AND {condition} ORDER BY n.id DESC LIMIT 80"
    ))
    .bind(viewer)
    .bind(bind)
    .fetch_all(&state.ctx.db)
    .await?;
    if ids.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(state.accounts_in_order(&ids).await?))
}

/// `POST /api/v2/notifications/:group_key/dismiss`: removes every notification of the group.
pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_WRITE)?;
    let (condition, bind) = by_group_key(&key);
    sqlx::query(&format!(
        "DELETE FROM notifications n WHERE n.account_id = $1 AND {condition}"
    ))
    .bind(viewer)
    .bind(bind)
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(serde_json::json!({})))
}

#[derive(Debug, Deserialize)]
pub struct UnreadQuery {
    #[serde(flatten)]
    selection: Selection,
    #[serde(default, deserialize_with = "flex::opt_list")]
    grouped_types: Option<Vec<String>>,
    limit: Option<String>,
}

/// `GET /api/v2/notifications/unread_count`: groups with a notification newer than the
/// `notifications` marker, `limit` at most (100 by default, 1,000 at most).
pub async fn unread_count(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<UnreadQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::NOTIFICATIONS_READ)?;
    let limit = q
        .limit
        .as_deref()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let sql = format!(
        "SELECT count(*) FROM (SELECT DISTINCT {PAGE_GROUP} FROM notifications n \
         WHERE {shown} \
           AND n.id > coalesce((SELECT last_read_id FROM markers \
                                WHERE account_id = $1 AND timeline = 'notifications'), 0) \
         LIMIT $7) unread",
        shown = shown(),
    );
    let (count,): (i64,) = q
        .selection
        .bind(sqlx::query_as(&sql), viewer)
        .bind(grouped_types(&q.grouped_types))
        .bind(limit)
        .fetch_one(&state.ctx.db)
        .await?;
    Ok(Json(serde_json::json!({ "count": count })))
}
