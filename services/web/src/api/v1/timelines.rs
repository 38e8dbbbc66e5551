//! Timelines: home (from the Redis feed, merged with hybrid-fan-out authors, rebuilt from
//! PostgreSQL when missing), public, hashtag and list; and the viewer's bookmarks and
//! favourites.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde::Deserialize;
use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use stampede_mastodon::Status;
use stampede_social::feeds::{self, Bounds, keyset};
use stampede_social::render::Chosen;
use stampede_social::visibility::{limited, muted, muted_itself, visible, visible_itself};

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;
use crate::statuses::Filter;

impl AppState {
    /// A page of at most `bounds.limit` statuses from candidate ids in the order the query
    /// produced them (oldest first for `min_id`): loaded, filtered for the viewer, put newest
    /// first, linked by the statuses shown — or, when every candidate was filtered out, by the
    /// candidates, so paging goes on past them.
    async fn status_page(
        &self,
        viewer: Option<i64>,
        uri: &Uri,
        ids: Vec<i64>,
        filter: Filter,
        bounds: &Bounds,
    ) -> Result<Page<Status>, ApiError> {
        let items = self.load_statuses(viewer, &ids, filter).await?;
        Ok(self.page_of(items, &ids, uri, bounds))
    }

    /// A page of the statuses `sql` chooses, already checked for the viewer (`$3`), with `args`
    /// as its parameters: one statement reads the ids with the viewer's flags and the versions
    /// (see [`Chosen`]).
    async fn chosen_page(
        &self,
        viewer: Option<i64>,
        uri: &Uri,
        sql: &str,
        args: Args,
        bounds: &Bounds,
    ) -> Result<Page<Status>, ApiError> {
        let chosen = Chosen {
            sql,
            args: args.done()?,
            ascending: bounds.ascending,
        };
        let (ids, items) = self.render.load_chosen(viewer, chosen).await?;
        Ok(self.page_of(items, &ids, uri, bounds))
    }

    /// The page of `items`, loaded from the candidates `ids` (see [`Self::status_page`]).
    fn page_of(
        &self,
        mut items: Vec<Status>,
        ids: &[i64],
        uri: &Uri,
        bounds: &Bounds,
    ) -> Page<Status> {
        items.truncate(bounds.limit);
        if bounds.ascending {
            items.reverse();
        }
        let shown = |s: Option<&Status>| s.and_then(|s| s.id.parse::<i64>().ok());
        let (newest, oldest) = if items.is_empty() {
            (ids.iter().max().copied(), ids.iter().min().copied())
        } else {
            (shown(items.first()), shown(items.last()))
        };
        Page::new(items, &self.base_url(), uri, newest, oldest)
    }
}

/// A chosen statement's parameters, in order; the first that cannot be encoded fails the page.
struct Args(PgArguments, Result<(), sqlx::error::BoxDynError>);

impl Args {
    fn new() -> Self {
        Args(PgArguments::default(), Ok(()))
    }

    fn bind<'q, T>(mut self, value: T) -> Self
    where
        T: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + 'q,
    {
        if self.1.is_ok() {
            self.1 = self.0.add(value);
        }
        self
    }

    fn done(self) -> Result<PgArguments, ApiError> {
        self.1.map_err(sqlx::Error::Encode)?;
        Ok(self.0)
    }
}

/// Merges two id lists (each newest first, or oldest first when `ascending`), without
/// duplicates, keeping the first `limit` in page order.
fn merge(mut a: Vec<i64>, b: Vec<i64>, bounds: &Bounds) -> Vec<i64> {
    a.extend(b);
    a.sort_unstable();
    a.dedup();
    if !bounds.ascending {
        a.reverse();
    }
    a.truncate(bounds.limit);
    a
}

/// `GET /api/v1/timelines/home`. Answers 206 (Mastodon's "being regenerated") when the feed
/// had to be rebuilt; the statuses then come straight from PostgreSQL, so nothing is missing.
pub async fn home(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let bounds = q.bounds(20, 40);
    let config = &state.ctx.config.statuses;
    // Candidates deleted or hidden since they were written make a page short, as in
    // Mastodon; the Link header still leads past them.
    let feed = if bounds.ascending {
        // The feed holds at most FEED_MAX: read the whole range above min_id, oldest first.
        state
            .ctx
            .cache
            .feed_read(
                &feeds::home_key(account_id),
                &feeds::ready_key(account_id),
                feeds::ready_ttl(config),
                bounds.max,
                bounds.min,
                feeds::FEED_MAX,
            )
            .await
            .map(|ids| {
                ids.map(|mut ids| {
                    ids.reverse();
                    ids.truncate(bounds.limit);
                    ids
                })
            })
    } else {
        state
            .ctx
            .cache
            .feed_read(
                &feeds::home_key(account_id),
                &feeds::ready_key(account_id),
                feeds::ready_ttl(config),
                bounds.max,
                bounds.min,
                bounds.limit,
            )
            .await
    };
    let hide = Filter::HIDE_MUTED;
    match feed {
        Ok(Some(ids)) => {
            let big = state.big_accounts.get(&state.ctx.db).await?;
            let big = &big;
            let hybrid = state
                .ctx
                .reads
                .read(|db| async move { feeds::hybrid_ids(&db, account_id, big, bounds).await })
                .await?;
            let ids = merge(ids, hybrid, &bounds);
            state
                .status_page(Some(account_id), &uri, ids, hide, &bounds)
                .await
        }
        other => {
            if let Err(error) = &other {
                tracing::warn!(%error, "home feed unavailable; reading from PostgreSQL");
            }
            // Rebuild in the background (once), answer from PostgreSQL now.
            let rebuild = state.clone();
            tokio::spawn(async move {
                let ctx = &rebuild.ctx;
                if let Err(error) =
                    feeds::rebuild_home(&ctx.jobs, &ctx.cache, &ctx.config.statuses, account_id)
                        .await
                {
                    tracing::warn!(error = %format!("{error:#}"), account_id, "feed rebuild failed");
                }
            });
            let ids = state
                .ctx
                .reads
                .read(|db| async move { feeds::home_from_db(&db, account_id, bounds).await })
                .await?;
            let mut page = state
                .status_page(Some(account_id), &uri, ids, hide, &bounds)
                .await?;
            page.status = StatusCode::PARTIAL_CONTENT;
            Ok(page)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PublicQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    local: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    remote: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    only_media: Option<bool>,
}

/// `GET /api/v1/timelines/public`: public, original statuses (no boosts), newest first.
pub async fn public(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Params(q): Params<PublicQuery>,
) -> Result<Page<Status>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let bounds = q.page.bounds(20, 40);
    // No boosts, so the row's own visibility and mutes are the whole check (`*_itself`: no plan
    // nodes for a boosted status, which PostgreSQL would set up on every page).
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE s.visibility = 'public' AND s.reblog_of_id IS NULL \
           AND ($5::boolean IS NULL OR (s.uri IS NULL) = $5) \
           AND {keyset} \
           AND (NOT $6 OR {}) \
           AND {} AND NOT {} AND NOT {} \
         ORDER BY s.id {} LIMIT $4",
        with_media("s"),
        visible_itself("s", "$3"),
        muted_itself("s", "$3"),
        limited("s", "$3"),
        bounds.order(),
        keyset = keyset("s.id", 1, 2),
    );
    let args = Args::new()
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(viewer)
        .bind(bounds.limit as i64)
        .bind(locality(q.local, q.remote))
        .bind(q.only_media == Some(true));
    state.chosen_page(viewer, &uri, &sql, args, &bounds).await
}

/// An SQL predicate: status `alias` shows media.
pub fn with_media(alias: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM media_attachments ma \
                 WHERE ma.status_id = {alias}.id AND ma.position >= 0)"
    )
}

/// `local=true` keeps this server's statuses, `remote=true` the others' (local wins, as in
/// Mastodon); `None` keeps both.
fn locality(local: Option<bool>, remote: Option<bool>) -> Option<bool> {
    if local == Some(true) {
        Some(true)
    } else if remote == Some(true) {
        Some(false)
    } else {
        None
    }
}

#[derive(Debug, Deserialize)]
pub struct TagQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    remote: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    only_media: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    any: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    all: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    none: Option<Vec<String>>,
}

/// `GET /api/v1/timelines/tag/:hashtag` (with `any`, `all`, `none`).
pub async fn tag(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    uri: Uri,
    Params(q): Params<TagQuery>,
) -> Result<Page<Status>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let bounds = q.page.bounds(20, 40);
    let lower = |v: Option<Vec<String>>| -> Vec<String> {
        v.unwrap_or_default()
            .into_iter()
            .map(|t| t.trim_start_matches('#').to_lowercase())
            .collect()
    };
    let mut any = lower(q.any);
    any.push(name.trim_start_matches('#').to_lowercase());
    let all = lower(q.all);
    let none = lower(q.none);
    // Walked from each wanted tag's own index range (statuses_tags' key, newest first), each
    // taking at most a page of visible statuses, then merged: a page costs about a page of rows
    // whether the tag is on every fourth status or on one in a million. (Filtering the whole
    // timeline for the tag read every tagged status before sorting: ~100 ms for a tag on
    // 10,000 statuses.)
    let sql = format!(
        "SELECT DISTINCT page.id FROM tags t, LATERAL ( \
           SELECT s.id FROM statuses_tags st JOIN statuses s ON s.id = st.status_id \
           WHERE st.tag_id = t.id AND s.visibility = 'public' AND s.reblog_of_id IS NULL \
             AND (cardinality($6) = 0 \
                  OR (SELECT count(DISTINCT lower(a.name)) FROM statuses_tags sa JOIN tags a ON a.id = sa.tag_id \
                      WHERE sa.status_id = s.id AND lower(a.name) = ANY($6)) = cardinality($6)) \
             AND (cardinality($7) = 0 \
                  OR NOT EXISTS (SELECT 1 FROM statuses_tags sn JOIN tags n ON n.id = sn.tag_id \
                                 WHERE sn.status_id = s.id AND lower(n.name) = ANY($7))) \
             AND {keyset} \
             AND ($8::boolean IS NULL OR (s.uri IS NULL) = $8) \
             AND (NOT $9 OR {}) \
             AND {} AND NOT {} AND NOT {} \
           ORDER BY st.status_id {order} LIMIT $4) page \
         WHERE lower(t.name) = ANY($5) \
         ORDER BY page.id {order} LIMIT $4",
        with_media("s"),
        visible_itself("s", "$3"),
        muted_itself("s", "$3"),
        limited("s", "$3"),
        order = bounds.order(),
        keyset = keyset("st.status_id", 1, 2),
    );
    let args = Args::new()
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(viewer)
        .bind(bounds.limit as i64)
        .bind(any)
        .bind(all)
        .bind(none)
        .bind(locality(None, q.remote))
        .bind(q.only_media == Some(true));
    state.chosen_page(viewer, &uri, &sql, args, &bounds).await
}

/// `GET /api/v1/timelines/list/:id`: statuses of the list's members the owner may see
/// (replies per the list's policy), read from PostgreSQL.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::LISTS_READ)?;
    let list_id = path_id(&id)?;
    let policy: String = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_scalar(
                "SELECT replies_policy FROM lists WHERE id = $1 AND account_id = $2",
            )
            .bind(list_id)
            .bind(account_id);
            async move { query.fetch_optional(&db).await }
        })
        .await?
        .ok_or_else(ApiError::not_found)?;
    let bounds = q.bounds(20, 40);
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE s.account_id IN (SELECT account_id FROM list_accounts WHERE list_id = $1) \
           AND {keyset} \
           AND (s.in_reply_to_account_id IS NULL OR s.in_reply_to_account_id = s.account_id \
                OR ($5 = 'followed' AND EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $4 \
                                               AND f.target_account_id = s.in_reply_to_account_id)) \
                OR ($5 = 'list' AND s.in_reply_to_account_id IN \
                       (SELECT account_id FROM list_accounts WHERE list_id = $1))) \
           AND {} AND NOT {} \
         ORDER BY s.id {} LIMIT $6",
        visible("s", "$4"),
        muted("s", "$4"),
        bounds.order(),
        keyset = keyset("s.id", 2, 3),
    );
    let ids: Vec<i64> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_scalar(&sql)
                .bind(list_id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(account_id)
                .bind(&policy)
                .bind(bounds.limit as i64);
            async move { query.fetch_all(&db).await }
        })
        .await?;
    state
        .status_page(Some(account_id), &uri, ids, Filter::HIDE_MUTED, &bounds)
        .await
}

/// Bookmarks and favourites page by the bookmark's or favourite's id.
async fn marked(
    state: &AppState,
    account_id: i64,
    uri: &Uri,
    q: &PageQuery,
    table: &str,
) -> Result<Page<Status>, ApiError> {
    let bounds = q.bounds(20, 40);
    let sql = format!(
        "SELECT id, status_id FROM {table} WHERE account_id = $1 \
           AND {keyset} \
         ORDER BY id DESC LIMIT $4",
        keyset = keyset("id", 2, 3),
    );
    let rows: Vec<(i64, i64)> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_as(&sql)
                .bind(account_id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(bounds.limit as i64);
            async move { query.fetch_all(&db).await }
        })
        .await?;
    let ids: Vec<i64> = rows.iter().map(|(_, s)| *s).collect();
    let items = state
        .load_statuses(Some(account_id), &ids, Filter::default())
        .await?;
    Ok(Page::new(
        items,
        &state.base_url(),
        uri,
        rows.first().map(|r| r.0),
        rows.last().map(|r| r.0),
    ))
}

pub async fn bookmarks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::BOOKMARKS_READ)?;
    marked(&state, account_id, &uri, &q, "bookmarks").await
}

pub async fn favourites(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::FAVOURITES_READ)?;
    marked(&state, account_id, &uri, &q, "favourites").await
}

/// `GET /api/v1/timelines/direct` (deprecated by Mastodon in favour of conversations, still
/// called by old clients): direct statuses the viewer wrote or is mentioned in, newest first.
pub async fn direct(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let bounds = q.bounds(20, 40);
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE s.visibility = 'direct' \
           AND (s.account_id = $3 \
                OR EXISTS (SELECT 1 FROM mentions m WHERE m.status_id = s.id AND m.account_id = $3)) \
           AND {keyset} AND NOT {} \
         ORDER BY s.id {} LIMIT $4",
        muted("s", "$3"),
        bounds.order(),
        keyset = keyset("s.id", 1, 2),
    );
    let ids: Vec<i64> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_scalar(&sql)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(account_id)
                .bind(bounds.limit as i64);
            async move { query.fetch_all(&db).await }
        })
        .await?;
    state
        .status_page(Some(account_id), &uri, ids, Filter::HIDE_MUTED, &bounds)
        .await
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    #[serde(flatten)]
    page: PageQuery,
    url: Option<String>,
}

/// `GET /api/v1/timelines/link?url=`: public statuses that share the link (whose preview card
/// is `url`), newest first; 404 for a link no status previews.
pub async fn link(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Params(q): Params<LinkQuery>,
) -> Result<Page<Status>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let url = q.url.as_deref().map(str::trim).unwrap_or_default();
    let card: Option<i64> = state
        .ctx
        .reads
        .read(|db| {
            let query =
                sqlx::query_scalar("SELECT id FROM preview_cards WHERE url = $1 AND title <> ''")
                    .bind(url);
            async move { query.fetch_optional(&db).await }
        })
        .await?;
    let card = card.ok_or_else(ApiError::not_found)?;
    let bounds = q.page.bounds(20, 40);
    let sql = format!(
        "SELECT s.id FROM preview_cards_statuses pcs JOIN statuses s ON s.id = pcs.status_id \
         WHERE pcs.preview_card_id = $5 AND s.visibility = 'public' AND s.reblog_of_id IS NULL \
           AND {keyset} AND {} AND NOT {} \
         ORDER BY s.id {} LIMIT $4",
        visible_itself("s", "$3"),
        muted_itself("s", "$3"),
        bounds.order(),
        keyset = keyset("s.id", 1, 2),
    );
    let args = Args::new()
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(viewer)
        .bind(bounds.limit as i64)
        .bind(card);
    state.chosen_page(viewer, &uri, &sql, args, &bounds).await
}
