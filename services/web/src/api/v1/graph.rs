//! The social graph: follow (with requests for locked accounts), block, mute, the lists of
//! each, relationships, an account's statuses, and account search.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use sqlx::{Connection, PgExecutor, Row};
use stampede_mastodon::{Account, Relationship, Status};
use stampede_social::feeds::keyset;
use stampede_social::follows::{self, Followed, Tell};
use stampede_social::visibility::visible;

use crate::AppState;
use crate::accounts;
use crate::api::v1::statuses::{READ, path_id};
use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::paging::{Page, PageQuery, newest_first};
use crate::payload::{Params, flex};
use crate::statuses::Filter;

const FOLLOW_READ: &[&str] = &["read", "read:follows", "follow"];
const FOLLOW_WRITE: &[&str] = &["write", "write:follows", "follow"];
const BLOCK_WRITE: &[&str] = &["write", "write:blocks", "follow"];
const MUTE_WRITE: &[&str] = &["write", "write:mutes", "follow"];
const ACCOUNTS_READ: &[&str] = &["read", "read:accounts"];

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

    async fn relationship(&self, viewer: i64, target: i64) -> Result<Json<Relationship>, ApiError> {
        relationship_on(&self.ctx.db, viewer, target).await
    }

    /// A visible account by path id, or 404.
    pub async fn target_account(&self, id: &str) -> Result<accounts::AccountRow, ApiError> {
        target_account_on(&self.ctx.db, id).await
    }
}

/// A visible account by path id, or 404, read through `db`.
async fn target_account_on(
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
pub struct FollowParams {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    reblogs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notify: Option<bool>,
}

/// `POST /api/v1/accounts/:id/follow`: follows at once, or asks when the account is locked.
/// Following again updates `reblogs` and `notify`.
pub async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<FollowParams>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(FOLLOW_WRITE)?;
    // One connection for the lookup, the follow and the answer: in a surge each acquisition
    // from a busy pool is another wait in its queue.
    let mut conn = state.ctx.db.acquire().await?;
    let target = target_account_on(&mut *conn, &id).await?;
    if target.id == account_id {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    if target.domain.is_some() {
        // Another server decides: ask it, and follow when it Accepts.
        let mut tx = conn.begin().await?;
        let asked = follows::ask_remote(
            &mut tx,
            &state.ids,
            &state.base_url(),
            account_id,
            target.id,
            p.reblogs,
            p.notify,
        )
        .await?;
        if asked == follows::Asked::Blocked {
            return Err(ApiError::forbidden("This action is not allowed"));
        }
        let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
        tx.commit().await?;
        return Ok(relationship);
    }
    if !target.locked {
        let followed = follows::follow(
            &mut conn,
            &state.ids,
            account_id,
            target.id,
            p.reblogs,
            p.notify,
            Tell::Target,
        )
        .await?;
        if followed == Followed::Blocked {
            return Err(ApiError::forbidden("This action is not allowed"));
        }
        return relationship_on(&mut *conn, account_id, target.id).await;
    }
    let mut tx = conn.begin().await?;
    if !follows::request(
        &mut tx, &state.ids, account_id, target.id, p.reblogs, p.notify,
    )
    .await?
    {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

pub async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(FOLLOW_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    if target.domain.is_some() {
        follows::undo_remote(&mut tx, &state.base_url(), account_id, target.id).await?;
    }
    follows::unfollow(&mut tx, account_id, target.id).await?;
    sqlx::query("DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2")
        .bind(account_id)
        .bind(target.id)
        .execute(&mut *tx)
        .await?;
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

/// `POST /api/v1/accounts/:id/block`: also ends follows and requests both ways.
pub async fn block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(BLOCK_WRITE)?;
    let target = state.target_account(&id).await?;
    // Mastodon does nothing and answers the relationship (with oneself).
    if target.id == account_id {
        return state.relationship(account_id, target.id).await;
    }
    let mut tx = state.ctx.db.begin().await?;
    stampede_social::relations::block(
        &mut tx,
        &state.ids,
        &state.base_url(),
        account_id,
        target.id,
        target.domain.is_some(),
    )
    .await?;
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}

pub async fn unblock(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(BLOCK_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let removed =
        sqlx::query("DELETE FROM blocks WHERE account_id = $1 AND target_account_id = $2")
            .bind(account_id)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
    if removed.rows_affected() > 0 && target.domain.is_some() {
        stampede_social::outbound::block(&mut tx, &state.base_url(), account_id, target.id, true)
            .await?;
    }
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}

#[derive(Debug, Deserialize)]
pub struct MuteParams {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    notifications: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    duration: Option<u32>,
}

pub async fn mute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<MuteParams>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(MUTE_WRITE)?;
    let target = state.target_account(&id).await?;
    // Mastodon does nothing and answers the relationship (with oneself).
    if target.id == account_id {
        return state.relationship(account_id, target.id).await;
    }
    let mut conn = state.ctx.db.acquire().await?;
    stampede_social::relations::mute(
        &mut conn,
        &state.ids,
        account_id,
        target.id,
        p.notifications.unwrap_or(true),
        p.duration.unwrap_or(0),
    )
    .await?;
    drop(conn);
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
}

pub async fn unmute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(MUTE_WRITE)?;
    let target = state.target_account(&id).await?;
    sqlx::query("DELETE FROM mutes WHERE account_id = $1 AND target_account_id = $2")
        .bind(account_id)
        .bind(target.id)
        .execute(&state.ctx.db)
        .await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id, target.id]).await;
    state.relationship(account_id, target.id).await
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
    let account_id = auth.account(FOLLOW_READ)?;
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

async fn follow_list(
    state: &AppState,
    viewer: Viewer,
    id: &str,
    uri: &Uri,
    query: &PageQuery,
    sql: &str,
) -> Result<Page<Account>, ApiError> {
    let viewer = viewer.account(ACCOUNTS_READ)?;
    let target = state.target_account(id).await?;
    // An account that hides its collections shows them to itself only (Mastodon answers an
    // empty list to everyone else).
    if target.hide_collections && viewer != Some(target.id) {
        return Ok(Page::new(Vec::new(), &state.base_url(), uri, None, None));
    }
    let bounds = query.bounds(40, 80);
    let sql = format!(
        "{sql} AND {keyset} \
         ORDER BY id {} LIMIT $4",
        bounds.order(),
        keyset = keyset("id", 2, 3),
    );
    let rows: Vec<(i64, i64)> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_as(&sql)
                .bind(target.id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(bounds.limit as i64);
            async move { query.fetch_all(&db).await }
        })
        .await?;
    let rows = if bounds.ascending {
        rows.into_iter().rev().collect()
    } else {
        rows
    };
    state.accounts_page(uri, rows).await
}

pub async fn followers(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    follow_list(
        &state,
        viewer,
        &id,
        &uri,
        &query,
        "SELECT id, account_id FROM follows WHERE target_account_id = $1",
    )
    .await
}

pub async fn following(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    follow_list(
        &state,
        viewer,
        &id,
        &uri,
        &query,
        "SELECT id, target_account_id FROM follows WHERE account_id = $1",
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct AccountStatusesQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pinned: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    only_media: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclude_replies: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclude_reblogs: Option<bool>,
    #[serde(default)]
    tagged: Option<String>,
}

/// `GET /api/v1/accounts/:id/statuses`: what the viewer may see of an account's statuses
/// (direct messages never show on a profile).
pub async fn statuses(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(q): Params<AccountStatusesQuery>,
) -> Result<Page<Status>, ApiError> {
    let viewer = viewer.account(READ)?;
    let target = state.target_account(&id).await?;
    let bounds = q.page.bounds(20, 40);
    let pinned = q.pinned == Some(true);
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE s.account_id = $1 AND s.visibility <> 'direct' \
           AND {keyset} \
           AND (NOT $5 OR s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id) \
           AND (NOT $6 OR s.reblog_of_id IS NULL) \
           AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                                            WHERE st.status_id = s.id AND lower(t.name) = lower($7))) \
           AND (NOT $8 OR EXISTS (SELECT 1 FROM status_pins p WHERE p.status_id = s.id AND p.account_id = s.account_id)) \
           AND (NOT $10 OR {}) \
           AND {} \
         ORDER BY s.id {} LIMIT $9",
        super::timelines::with_media("s"),
        visible("s", "$4"),
        bounds.order(),
        keyset = keyset("s.id", 2, 3),
    );
    let ids: Vec<i64> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_scalar(&sql)
                .bind(target.id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(viewer)
                .bind(q.exclude_replies == Some(true))
                .bind(q.exclude_reblogs == Some(true))
                .bind(q.tagged.as_deref().filter(|t| !t.is_empty()))
                .bind(pinned)
                .bind(bounds.limit as i64)
                .bind(q.only_media == Some(true));
            async move { query.fetch_all(&db).await }
        })
        .await?;
    let ids = newest_first(ids, &bounds);
    let items = state.load_statuses(viewer, &ids, Filter::default()).await?;
    Ok(Page::new(
        items,
        &state.base_url(),
        &uri,
        ids.first().copied(),
        ids.last().copied(),
    ))
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

pub async fn blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        &["read", "read:blocks", "follow"],
        &uri,
        &query,
        "SELECT id, target_account_id FROM blocks WHERE account_id = $1",
    )
    .await
}

pub async fn mutes(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        &["read", "read:mutes", "follow"],
        &uri,
        &query,
        "SELECT id, target_account_id FROM mutes WHERE account_id = $1 \
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .await
}

pub async fn follow_requests(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        FOLLOW_READ,
        &uri,
        &query,
        "SELECT id, account_id FROM follow_requests WHERE target_account_id = $1",
    )
    .await
}

/// `POST /api/v1/follow_requests/:account_id/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(FOLLOW_WRITE)?;
    let requester = path_id(&id)?;
    let mut tx = state.ctx.db.begin().await?;
    let request = sqlx::query(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 \
         RETURNING show_reblogs, notify, uri",
    )
    .bind(requester)
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    // The target chose this follow: no `follow` notification for it.
    follows::follow(
        &mut tx,
        &state.ids,
        requester,
        account_id,
        Some(request.try_get("show_reblogs")?),
        Some(request.try_get("notify")?),
        Tell::Nobody,
    )
    .await?;
    stampede_social::outbound::answer_follow(
        &mut tx,
        &state.base_url(),
        account_id,
        requester,
        request.try_get("uri")?,
        true,
    )
    .await?;
    let relationship = relationship_on(&mut *tx, account_id, requester).await?;
    tx.commit().await?;
    Ok(relationship)
}

pub async fn reject(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(FOLLOW_WRITE)?;
    let requester = path_id(&id)?;
    let mut tx = state.ctx.db.begin().await?;
    let removed: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 RETURNING uri",
    )
    .bind(requester)
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(follow_uri) = removed else {
        return Err(ApiError::not_found());
    };
    stampede_social::outbound::answer_follow(
        &mut tx,
        &state.base_url(),
        account_id,
        requester,
        follow_uri,
        false,
    )
    .await?;
    let relationship = relationship_on(&mut *tx, account_id, requester).await?;
    tx.commit().await?;
    Ok(relationship)
}

#[derive(Debug, Deserialize)]
pub struct AccountSearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    offset: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    following: Option<bool>,
}

/// Accounts whose username or display name starts with (or contains) `q`, local and visible,
/// without those the viewer blocks or is blocked by.
pub async fn search_accounts(
    state: &AppState,
    viewer: Option<i64>,
    q: &str,
    following: bool,
    limit: u32,
    offset: u32,
) -> Result<Vec<Account>, ApiError> {
    let q = q.trim().trim_start_matches('@');
    let (user, domain) = q.split_once('@').unwrap_or((q, ""));
    if user.is_empty()
        || !(domain.is_empty()
            || domain.eq_ignore_ascii_case(&state.ctx.config.local_domain)
            || domain.eq_ignore_ascii_case(&state.ctx.config.web_domain))
    {
        return Ok(Vec::new());
    }
    let pattern = format!(
        "{}%",
        user.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
            .to_lowercase()
    );
    let ids: Vec<i64> = state.ctx.reads.read(|db| {
    let query = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.domain IS NULL AND a.suspended_at IS NULL AND u.approved AND NOT u.disabled \
           AND u.confirmed_at IS NOT NULL \
           AND (lower(a.username) LIKE $1 OR lower(a.display_name) LIKE $1 \
                OR lower(a.display_name) LIKE '% ' || $1) \
           AND ($2::bigint IS NULL OR NOT EXISTS (SELECT 1 FROM blocks b \
                WHERE (b.account_id = $2 AND b.target_account_id = a.id) \
                   OR (b.account_id = a.id AND b.target_account_id = $2))) \
           AND (NOT $3 OR EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $2 AND f.target_account_id = a.id)) \
         ORDER BY (lower(a.username) = $4) DESC, a.id LIMIT $5 OFFSET $6",
    )
    .bind(&pattern)
    .bind(viewer)
    .bind(following && viewer.is_some())
    .bind(user.to_lowercase())
    .bind(i64::from(limit.clamp(1, 80)))
    .bind(i64::from(offset));
    async move { query.fetch_all(&db).await }
    }).await?;
    let found = &ids;
    let rows: HashMap<i64, accounts::AccountRow> = state
        .ctx
        .reads
        .read(|db| async move { accounts::find_many(&db, found).await })
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    Ok(ids
        .iter()
        .filter_map(|id| rows.get(id))
        .map(|a| state.render_account(a))
        .collect())
}

pub async fn search(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<AccountSearchQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let account_id = auth.account(&["read", "read:accounts"])?;
    Ok(Json(
        search_accounts(
            &state,
            Some(account_id),
            &q.q,
            q.following.unwrap_or(false),
            q.limit.unwrap_or(40),
            q.offset.unwrap_or(0),
        )
        .await?,
    ))
}

/// `POST /api/v1/accounts/:id/remove_from_followers`: the account no longer follows the viewer.
/// A remote follower's server is told with a `Reject` of its `Follow`, as Mastodon does.
pub async fn remove_from_followers(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(FOLLOW_WRITE)?;
    let follower = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let follow_uri: Option<Option<String>> = sqlx::query_scalar(
        "SELECT uri FROM follows WHERE account_id = $1 AND target_account_id = $2",
    )
    .bind(follower.id)
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(uri) = follow_uri {
        if follower.domain.is_some() {
            stampede_social::outbound::answer_follow(
                &mut tx,
                &state.base_url(),
                account_id,
                follower.id,
                uri,
                false,
            )
            .await?;
        }
        follows::unfollow(&mut tx, follower.id, account_id).await?;
    }
    let relationship = relationship_on(&mut *tx, account_id, follower.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

/// Familiar followers shown per account, at most.
const MAX_FAMILIAR: i64 = 40;

/// `GET /api/v1/accounts/familiar_followers?id[]=…`: for each account, the accounts the viewer
/// follows that follow it.
pub async fn familiar_followers(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<super::accounts::IdsQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let account_id = auth.account(FOLLOW_READ)?;
    let mut out = Vec::new();
    for target in q.ids()? {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT mine.target_account_id FROM follows mine \
             JOIN follows theirs ON theirs.account_id = mine.target_account_id \
             JOIN accounts a ON a.id = mine.target_account_id \
             WHERE mine.account_id = $1 AND theirs.target_account_id = $2 \
               AND a.suspended_at IS NULL \
             ORDER BY theirs.id DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(target)
        .bind(MAX_FAMILIAR)
        .fetch_all(&state.ctx.db)
        .await?;
        let accounts = state.accounts_in_order(&ids).await?;
        out.push(serde_json::json!({ "id": target.to_string(), "accounts": accounts }));
    }
    Ok(Json(out))
}
