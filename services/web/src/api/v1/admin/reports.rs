//! `/api/v1/admin/reports`: the reports users filed, for moderators to assign, resolve and
//! reopen (each change in the audit log).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_mastodon::time::iso;
use stampede_social::feeds::keyset;
use stampede_social::moderation;

use crate::AppState;
use crate::accounts;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, flex};

const READ: &[&str] = &["admin:read", "admin:read:reports"];
const WRITE: &[&str] = &["admin:write", "admin:write:reports"];

#[derive(Debug, sqlx::FromRow)]
struct ReportRow {
    id: i64,
    account_id: i64,
    target_account_id: i64,
    assigned_account_id: Option<i64>,
    action_taken_by_account_id: Option<i64>,
    status_ids: Vec<i64>,
    rule_ids: Vec<i64>,
    category: String,
    comment: String,
    forwarded: bool,
    action_taken_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, target_account_id, assigned_account_id, \
     action_taken_by_account_id, status_ids, rule_ids, category, comment, forwarded, \
     action_taken_at, created_at, updated_at";

/// An account as the admin API shows it: with its login for a local one, its domain for a
/// remote one.
pub async fn admin_account(state: &AppState, id: i64) -> Result<Value, ApiError> {
    let account = accounts::find(&state.ctx.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let user = accounts::user_of(&state.ctx.db, id).await?;
    Ok(state.render_any_admin_account(&account, user.as_ref(), None))
}

async fn render(state: &AppState, row: ReportRow) -> Result<Value, ApiError> {
    let mut people: HashMap<i64, Value> = HashMap::new();
    for id in [
        Some(row.account_id),
        Some(row.target_account_id),
        row.assigned_account_id,
        row.action_taken_by_account_id,
    ]
    .into_iter()
    .flatten()
    {
        if let std::collections::hash_map::Entry::Vacant(slot) = people.entry(id) {
            slot.insert(admin_account(state, id).await?);
        }
    }
    // Moderators see the reported statuses whatever their visibility (Mastodon's admin view).
    let statuses = state.render.load_published(&row.status_ids).await?;
    let rules: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, text, hint FROM server_rules WHERE id = ANY($1) ORDER BY position, id",
    )
    .bind(&row.rule_ids)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(json!({
        "id": row.id.to_string(),
        "action_taken": row.action_taken_at.is_some(),
        "action_taken_at": row.action_taken_at.map(iso),
        "category": row.category,
        "comment": row.comment,
        "forwarded": row.forwarded,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "account": people.get(&row.account_id),
        "target_account": people.get(&row.target_account_id),
        "assigned_account": row.assigned_account_id.and_then(|id| people.get(&id)),
        "action_taken_by_account": row.action_taken_by_account_id.and_then(|id| people.get(&id)),
        "statuses": statuses,
        "rules": rules.into_iter().map(|(id, text, hint)| json!({ "id": id.to_string(), "text": text, "hint": hint })).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    resolved: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    account_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    target_account_id: Option<i64>,
}

/// `GET /api/v1/admin/reports`: unresolved ones by default (`resolved=true` for the others),
/// by reporter or reported account, newest first.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<ListQuery>,
) -> Result<Page<Value>, ApiError> {
    auth.require(READ)?;
    auth.staff()?;
    let bounds = q.page.bounds(100, 200);
    let mut rows: Vec<ReportRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM reports \
         WHERE (action_taken_at IS NOT NULL) = $1 \
           AND ($2::bigint IS NULL OR account_id = $2) \
           AND ($3::bigint IS NULL OR target_account_id = $3) \
           AND {keyset} ORDER BY id {} LIMIT $6",
        bounds.order(),
        keyset = keyset("id", 4, 5),
    ))
    .bind(q.resolved.unwrap_or(false))
    .bind(q.account_id)
    .bind(q.target_account_id)
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
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(render(&state, row).await?);
    }
    Ok(Page::new(items, &state.base_url(), &uri, newest, oldest))
}

async fn one(state: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let row: ReportRow = sqlx::query_as(&format!("SELECT {COLUMNS} FROM reports WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.ctx.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(state, row).await?))
}

/// `GET /api/v1/admin/reports/:id`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(READ)?;
    auth.staff()?;
    one(&state, &id).await
}

#[derive(Clone, Copy)]
enum Change {
    AssignToSelf,
    Unassign,
    Resolve,
    Reopen,
}

async fn change(
    state: &AppState,
    auth: &Auth,
    id: &str,
    change: Change,
) -> Result<Json<Value>, ApiError> {
    auth.require(WRITE)?;
    let moderator = auth.staff()?.account_id;
    let report: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM reports WHERE id = $1")
        .bind(report)
        .fetch_optional(&state.ctx.db)
        .await?;
    exists.ok_or_else(ApiError::not_found)?;
    let mut tx = state.ctx.db.begin().await?;
    match change {
        Change::AssignToSelf => {
            moderation::assign(&mut tx, &state.ids, moderator, report, true).await?
        }
        Change::Unassign => {
            moderation::assign(&mut tx, &state.ids, moderator, report, false).await?
        }
        Change::Resolve => {
            moderation::resolve(&mut tx, &state.ids, moderator, report).await?;
        }
        Change::Reopen => moderation::reopen(&mut tx, &state.ids, moderator, report).await?,
    }
    tx.commit().await?;
    one(state, id).await
}

macro_rules! report_change {
    ($name:ident, $change:expr, $doc:literal) => {
        #[doc = $doc]
        pub async fn $name(
            State(state): State<AppState>,
            auth: Auth,
            Path(id): Path<String>,
        ) -> Result<Json<Value>, ApiError> {
            change(&state, &auth, &id, $change).await
        }
    };
}

report_change!(
    assign_to_self,
    Change::AssignToSelf,
    "`POST /api/v1/admin/reports/:id/assign_to_self`."
);
report_change!(
    unassign,
    Change::Unassign,
    "`POST /api/v1/admin/reports/:id/unassign`."
);
report_change!(
    resolve,
    Change::Resolve,
    "`POST /api/v1/admin/reports/:id/resolve`."
);
report_change!(
    reopen,
    Change::Reopen,
    "`POST /api/v1/admin/reports/:id/reopen`."
);
