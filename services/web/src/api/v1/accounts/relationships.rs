//! Relationships between accounts (`/api/v1/accounts/relationships`), and what the other
//! account routes share: the target account, paged account lists, relationship answers.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Deserialize;
use sqlx::{PgExecutor, Row};
use stampede_mastodon::{Account, Relationship};
use stampede_social::feeds::keyset;

use crate::AppState;
use crate::accounts;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, flex, path_id};
use crate::scopes;

impl AppState {
    /// Accounts in the order of `rows` (`(paging id, account id)`), suspended ones left out,
    /// with a Link header paging by the first column.
    pub async fn accounts_page(
        &self,
        uri: &Uri,
        rows: Vec<(i64, i64)>,
    ) -> Result<Page<Account>, ApiError> {
        let ids: Vec<i64> = rows.iter().map(|(_, a)| *a).collect();
        let items = self.accounts_in_order(&ids).await?;
        Ok(Page::new(
            items,
            &self.base_url(),
            uri,
            rows.first().map(|r| r.0),
            rows.last().map(|r| r.0),
        ))
    }

    /// The accounts `ids`, rendered in that order; missing and suspended ones left out.
    pub async fn accounts_in_order(&self, ids: &[i64]) -> Result<Vec<Account>, ApiError> {
        let found: HashMap<i64, accounts::AccountRow> = accounts::find_many(&self.ctx.db, ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id))
            .filter(|a| a.suspended_at.is_none())
            .map(|a| self.render_account(a))
            .collect())
    }

    /// Relationships of `viewer` with each of `targets`, in order.
    pub async fn relationships(
        &self,
        viewer: i64,
        targets: &[i64],
    ) -> Result<Vec<Relationship>, ApiError> {
        Ok(relationships_on(&self.ctx.db, viewer, targets).await?)
    }

    pub(crate) async fn relationship(
        &self,
        viewer: i64,
        target: i64,
    ) -> Result<Json<Relationship>, ApiError> {
        relationship_on(&self.ctx.db, viewer, target).await
    }

    /// A visible account by path id, or 404.
    pub async fn target_account(&self, id: &str) -> Result<accounts::AccountRow, ApiError> {
        target_account_on(&self.ctx.db, id).await
    }
}

/// A visible account by path id, or 404, read through `db`.
pub(crate) async fn target_account_on(
    db: impl PgExecutor<'_>,
    id: &str,
) -> Result<accounts::AccountRow, ApiError> {
    let account = accounts::find(db, path_id(id)?)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if account.suspended_at.is_some() {
        return Err(ApiError::not_found());
    }
    Ok(account)
}

/// The relationship of `viewer` with `target`, read through `db` (inside a write's
/// transaction, so that the answer costs no second connection).
pub(crate) async fn relationship_on(
    db: impl PgExecutor<'_>,
    viewer: i64,
    target: i64,
) -> Result<Json<Relationship>, ApiError> {
    relationships_on(db, viewer, &[target])
        .await?
        .pop()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// Relationships of `viewer` with each of `targets`, in order, read through `db`.
async fn relationships_on(
    db: impl PgExecutor<'_>,
    viewer: i64,
    targets: &[i64],
) -> Result<Vec<Relationship>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT t.id, \
           f.id IS NOT NULL AS following, \
           coalesce(f.show_reblogs, r.show_reblogs, false) AS showing_reblogs, \
           coalesce(f.notify, r.notify, false) AS notifying, \
           EXISTS (SELECT 1 FROM follows x WHERE x.account_id = t.id AND x.target_account_id = $1) AS followed_by, \
           EXISTS (SELECT 1 FROM blocks x WHERE x.account_id = $1 AND x.target_account_id = t.id) AS blocking, \
           EXISTS (SELECT 1 FROM blocks x WHERE x.account_id = t.id AND x.target_account_id = $1) AS blocked_by, \
           m.id IS NOT NULL AS muting, coalesce(m.hide_notifications, false) AS muting_notifications, \
           r.id IS NOT NULL AS requested, \
           EXISTS (SELECT 1 FROM follow_requests x WHERE x.account_id = t.id AND x.target_account_id = $1) AS requested_by, \
           EXISTS (SELECT 1 FROM account_pins x WHERE x.account_id = $1 AND x.target_account_id = t.id) AS endorsed, \
           coalesce((SELECT comment FROM account_notes x WHERE x.account_id = $1 AND x.target_account_id = t.id), '') AS note \
         FROM unnest($2::bigint[]) WITH ORDINALITY t(id, n) \
         LEFT JOIN follows f ON f.account_id = $1 AND f.target_account_id = t.id \
         LEFT JOIN follow_requests r ON r.account_id = $1 AND r.target_account_id = t.id \
         LEFT JOIN mutes m ON m.account_id = $1 AND m.target_account_id = t.id \
                           AND (m.expires_at IS NULL OR m.expires_at > now()) \
         ORDER BY t.n",
    )
    .bind(viewer)
    .bind(targets)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Relationship {
                id: r.try_get::<i64, _>("id")?.to_string(),
                following: r.try_get("following")?,
                showing_reblogs: r.try_get("showing_reblogs")?,
                notifying: r.try_get("notifying")?,
                languages: None,
                followed_by: r.try_get("followed_by")?,
                blocking: r.try_get("blocking")?,
                blocked_by: r.try_get("blocked_by")?,
                muting: r.try_get("muting")?,
                muting_notifications: r.try_get("muting_notifications")?,
                requested: r.try_get("requested")?,
                requested_by: r.try_get("requested_by")?,
                domain_blocking: false,
                endorsed: r.try_get("endorsed")?,
                note: r.try_get("note")?,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct RelationshipsQuery {
    #[serde(default, deserialize_with = "flex::opt_list")]
    id: Option<Vec<String>>,
}

pub async fn relationships(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<RelationshipsQuery>,
) -> Result<Json<Vec<Relationship>>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_READ)?;
    let ids: Vec<i64> =
        q.id.unwrap_or_default()
            .iter()
            .filter_map(|i| i.parse().ok())
            .take(40)
            .collect();
    let existing: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM unnest($1::bigint[]) WITH ORDINALITY t(id, n) \
                             WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.id) ORDER BY n",
    )
    .bind(&ids)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(state.relationships(account_id, &existing).await?))
}

/// Lists of the viewer's own relations, paged by the relation's id.
pub(crate) async fn own_list(
    state: &AppState,
    auth: &Auth,
    scopes: &[&str],
    uri: &Uri,
    query: &PageQuery,
    sql: &str,
) -> Result<Page<Account>, ApiError> {
    let account_id = auth.account(scopes)?;
    let bounds = query.bounds(40, 80);
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "{sql} AND {keyset} \
         ORDER BY id DESC LIMIT $4",
        keyset = keyset("id", 2, 3),
    ))
    .bind(account_id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    state.accounts_page(uri, rows).await
}
