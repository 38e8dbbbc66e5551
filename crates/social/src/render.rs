//! Statuses, accounts, notifications and conversations as the API shows them — shared by the web
//! service (responses) and the delivery service (streaming events).
//!
//! Statuses are loaded in batches: one statement for the page's versions, the authors' counts
//! and the viewer's flags; the statuses and accounts themselves from the process's cache when it
//! holds those versions (ADR 0032), else one statement each; polls when there are any. They are
//! filtered through [`crate::visibility`] — so nothing a viewer may not see can leave here — and
//! rendered to Mastodon's entities.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use stampede_db::Db;
use stampede_mastodon::time::{day, iso};
use stampede_mastodon::{
    Account, Conversation, Field, Mention, Notification, Poll, PollOption, Status, StatusAccount,
    StatusApplication, StatusTag,
};
use stampede_telemetry::metrics::{Counter, Metrics};

use crate::accounts::{self, AccountRow, render_note};
use crate::emojis::EmojiCache;
use crate::entity_cache::VersionedCache;
use crate::media::{self, Files, MediaRow};
use crate::text::escape;
use crate::viewer_cache::{Flags, Versions, ViewerCache};
use crate::visibility;

/// Renders entities for one server (its base URL) from one database.
#[derive(Clone, Debug)]
pub struct Renderer {
    db: Db,
    /// Where a viewer's reads go when a read replica may serve them (`None`: always `db`).
    reads: Option<stampede_db::Reads>,
    base: String,
    files: Files,
    emojis: Arc<EmojiCache>,
    /// Statuses and accounts as last read, by version (ADR 0032).
    entities: Arc<Entities>,
    /// Where the cache's hits and misses are counted, if anywhere.
    lookups: Option<Arc<Lookups>>,
}

/// The entity cache's look-ups, as `stampede_entity_cache_lookups_total`.
#[derive(Debug)]
struct Lookups {
    status_hit: Counter,
    status_miss: Counter,
    account_hit: Counter,
    account_miss: Counter,
    flags_hit: Counter,
    flags_miss: Counter,
}

/// What [`Renderer`]s of one process keep between requests.
#[derive(Debug)]
struct Entities {
    statuses: VersionedCache<StatusEntity>,
    accounts: VersionedCache<AccountEntity>,
    /// Viewers' flags, by the viewer's version (ADR 0043).
    viewers: ViewerCache,
}

/// An account as kept between requests: its row, and the row as rendered, made on first use.
/// Both live as long as the entry (the row's version, at most [`crate::entity_cache::MAX_AGE`]);
/// the counts, which change without a new version, are set afresh on each page.
#[derive(Debug)]
struct AccountEntity {
    row: AccountRow,
    rendered: std::sync::OnceLock<Arc<Account>>,
    /// As an author was last shown: with those counts, and its JSON (ADR 0038).
    shown: parking_lot::Mutex<Option<(Counts, StatusAccount)>>,
}

/// An account on a page: the kept entity, and for an author the counts read with the page.
#[derive(Debug, Clone)]
struct PageAccount {
    entity: Arc<AccountEntity>,
    counts: Option<Counts>,
}

/// An author's counts as a page's statement read them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    statuses: i64,
    following: i64,
    followers: i64,
    last_status_at: Option<DateTime<Utc>>,
}

impl PageAccount {
    /// A kept account, its counts as kept (a page sets an author's afterwards).
    fn kept(entity: Arc<AccountEntity>) -> Self {
        PageAccount {
            entity,
            counts: None,
        }
    }
}

impl std::ops::Deref for PageAccount {
    type Target = AccountRow;

    /// The row as kept: its counts may be older than the page's (see [`Renderer::page_account`]).
    fn deref(&self) -> &AccountRow {
        &self.entity.row
    }
}

impl Entities {
    fn new(statuses: usize) -> Self {
        Entities {
            statuses: VersionedCache::new(statuses),
            accounts: VersionedCache::new(statuses / 2),
            viewers: ViewerCache::new(statuses / 4),
        }
    }
}

impl Renderer {
    /// A renderer reading `db`, with links under `base` (`https://WEB_DOMAIN`) and media
    /// files under `files`.
    pub fn new(db: Db, base: String, files: Files) -> Self {
        Renderer {
            db,
            reads: None,
            base,
            files,
            emojis: Arc::default(),
            entities: Arc::new(Entities::new(0)),
            lookups: None,
        }
    }

    /// Counts the entity cache's hits and misses in `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.lookups = Some(Arc::new(Lookups {
            status_hit: metrics.entity_cache("status", "hit"),
            status_miss: metrics.entity_cache("status", "miss"),
            account_hit: metrics.entity_cache("account", "hit"),
            account_miss: metrics.entity_cache("account", "miss"),
            flags_hit: metrics.entity_cache("viewer_flags", "hit"),
            flags_miss: metrics.entity_cache("viewer_flags", "miss"),
        }));
        self
    }

    /// Keeps up to `statuses` statuses (and half as many accounts) between requests.
    pub fn with_entity_cache(mut self, statuses: usize) -> Self {
        self.entities = Arc::new(Entities::new(statuses));
        self
    }

    /// Statuses rendered for a viewer are read where `reads` says (the read replica while it
    /// keeps up); a status the replica does not hold yet is read from the primary.
    pub fn with_reads(mut self, reads: stampede_db::Reads) -> Self {
        self.reads = Some(reads);
        self
    }

    /// The renderer for a server's configuration.
    pub fn for_config(db: Db, config: &stampede_config::Config) -> Self {
        Renderer::new(
            db,
            crate::post::base_url(config),
            Files::from_config(config),
        )
        .with_entity_cache(config.web.entity_cache_statuses)
    }

    /// Where media files are served from.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// `https://WEB_DOMAIN`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The custom emojis, reloaded first when they changed.
    pub async fn emojis(&self) -> Result<&EmojiCache, sqlx::Error> {
        self.refresh_emojis().await?;
        Ok(&self.emojis)
    }

    /// Reloads the custom emojis when they changed (a look at most once a second). Called
    /// before a connection is taken for the rest of the work.
    async fn refresh_emojis(&self) -> Result<(), sqlx::Error> {
        if self.emojis.due() {
            let mut conn = self.db.acquire().await?;
            self.emojis.refresh(&mut conn, &self.files).await?;
        }
        Ok(())
    }
}

/// What a status is, whoever looks at it: kept between requests under its row's version
/// (`xmin`, see [`crate::entity_cache`]).
#[derive(Debug, Clone, FromRow)]
pub struct StatusEntity {
    pub id: i64,
    /// The row's `xmin`: any change to the status, or to what it is shown with, moves it.
    pub version: i64,
    pub account_id: i64,
    pub application_id: Option<i64>,
    pub text: String,
    pub content: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub visibility: String,
    pub language: Option<String>,
    pub in_reply_to_id: Option<i64>,
    pub in_reply_to_account_id: Option<i64>,
    pub reblog_of_id: Option<i64>,
    pub conversation_id: i64,
    pub replies_count: i64,
    pub reblogs_count: i64,
    pub favourites_count: i64,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub app_name: Option<String>,
    pub app_website: Option<String>,
    pub has_poll: bool,
    pub has_media: bool,
    pub mention_ids: Vec<i64>,
    pub tag_names: Vec<String>,
    /// Remote: the object's id and page.
    pub uri: Option<String>,
    pub url: Option<String>,
    /// The link preview, when its page was fetched and described.
    pub card: Option<sqlx::types::Json<crate::cards::CardRow>>,
    /// Who may quote it.
    pub quote_approval_policy: String,
    /// The quote it makes, if any.
    pub quote: Option<sqlx::types::Json<QuoteRow>>,
    /// Accepted quotes of it.
    pub quotes_count: i64,
    /// Its attachments, in order (read when `has_media`).
    #[sqlx(skip)]
    pub media: Vec<MediaRow>,
}

/// What a page reads afresh about each status, whatever is cached and whoever looks: its version
/// and its author's, and the author's counts.
#[derive(Debug, Clone, FromRow)]
struct Fresh {
    id: i64,
    version: i64,
    account_version: i64,
    statuses_count: i64,
    following_count: i64,
    followers_count: i64,
    last_status_at: Option<DateTime<Utc>>,
}

/// What a page knows of each status: [`Fresh`] and the viewer's flags, read with it or kept
/// (see [`crate::viewer_cache`]).
#[derive(Debug, Clone, FromRow)]
struct Live {
    #[sqlx(flatten)]
    fresh: Fresh,
    #[sqlx(flatten)]
    flags: Flags,
    /// The viewer's version, their rows of it, and the seconds to their next mute's expiry
    /// (the same on every row; only in statements for one viewer's given statuses).
    #[sqlx(default)]
    viewer_version: Option<i64>,
    #[sqlx(default)]
    viewer_rows: Option<i64>,
    #[sqlx(default)]
    mute_expires_in: Option<f64>,
}

/// What a page of a viewer whose flags are kept reads about each status: [`Fresh`], which
/// decides whether a kept flag holds, and the viewer's version.
#[derive(Debug, Clone, FromRow)]
struct Versioned {
    #[sqlx(flatten)]
    fresh: Fresh,
    viewer_version: i64,
}

impl std::ops::Deref for Live {
    type Target = Fresh;

    fn deref(&self) -> &Fresh {
        &self.fresh
    }
}

impl Fresh {
    /// The versions a viewer's flags for this status are kept under.
    fn versions(&self) -> Versions {
        Versions {
            status: self.version,
            account: self.account_version,
        }
    }
}

impl Live {
    /// A status's page row from its versions and its kept flags.
    fn kept(v: Versioned, flags: Flags) -> Live {
        Live {
            fresh: v.fresh,
            flags,
            viewer_version: Some(v.viewer_version),
            viewer_rows: None,
            mute_expires_in: None,
        }
    }
}

/// A status as one viewer sees it: the shared entity with this page's flags. It dereferences to
/// the entity, so rendering reads both alike.
#[derive(Debug, Clone)]
struct StatusRow {
    entity: Arc<StatusEntity>,
    live: Live,
}

impl std::ops::Deref for StatusRow {
    type Target = StatusEntity;

    fn deref(&self) -> &StatusEntity {
        &self.entity
    }
}

/// A quote a status makes (`quotes`' columns).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct QuoteRow {
    pub quoted_status_id: Option<i64>,
    pub state: String,
}

/// The statuses `$1` as anyone sees them, with their versions: what is cached.
const ENTITY_QUERY: &str = "\
WITH men AS (SELECT status_id, array_agg(account_id) AS ids FROM mentions \
             WHERE status_id = ANY($1) GROUP BY status_id), \
     tg AS (SELECT st.status_id, array_agg(t.name ORDER BY t.name) AS names \
             FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
             WHERE st.status_id = ANY($1) GROUP BY st.status_id), \
     pl AS (SELECT status_id FROM polls WHERE status_id = ANY($1)), \
     cd AS (SELECT pcs.status_id, to_jsonb(pc) AS card FROM preview_cards_statuses pcs \
            JOIN preview_cards pc ON pc.id = pcs.preview_card_id \
            WHERE pcs.status_id = ANY($1) AND pc.title <> ''), \
     qt AS (SELECT q.status_id, to_jsonb(q) AS quote FROM quotes q WHERE q.status_id = ANY($1)), \
     qc AS (SELECT q.quoted_status_id, count(*) AS n FROM quotes q \
            WHERE q.quoted_status_id = ANY($1) AND q.state = 'accepted' GROUP BY 1) \
SELECT s.id, s.xmin::text::bigint AS version, s.account_id, s.application_id, s.text, s.content, \
       s.spoiler_text, s.sensitive, s.visibility, s.language, s.in_reply_to_id, \
       s.in_reply_to_account_id, s.reblog_of_id, s.conversation_id, s.replies_count, \
       s.reblogs_count, s.favourites_count, s.created_at, s.edited_at, s.uri, s.url, \
       app.name AS app_name, app.website AS app_website, \
       pl.status_id IS NOT NULL AS has_poll, \
       EXISTS (SELECT 1 FROM media_attachments ma WHERE ma.status_id = s.id AND ma.position >= 0) \
         AS has_media, \
       coalesce(men.ids, '{}') AS mention_ids, \
       coalesce(tg.names, '{}') AS tag_names, \
       cd.card, s.quote_approval_policy, qt.quote, coalesce(qc.n, 0) AS quotes_count \
FROM statuses s LEFT JOIN oauth_applications app ON app.id = s.application_id \
     LEFT JOIN men ON men.status_id = s.id \
     LEFT JOIN tg ON tg.status_id = s.id \
     LEFT JOIN pl ON pl.status_id = s.id \
     LEFT JOIN cd ON cd.status_id = s.id \
     LEFT JOIN qt ON qt.status_id = s.id \
     LEFT JOIN qc ON qc.quoted_status_id = s.id \
WHERE s.id = ANY($1)";

/// What the viewer `$2` may see of the statuses `$1` and their flags, with the versions of the
/// statuses and their authors and the authors' counts: read for every page. The viewer's
/// flags are read once for the whole page (one index scan each) rather than probed row by row.
/// A boost's visibility and mutes are its own row's: the boosted status is read as a row too,
/// and the two are combined in [`Renderer::load_from`] and `render_status` (each subquery is a
/// plan node PostgreSQL sets up on every execution, whether it runs or not).
///
/// `prechecked`: the statuses' own visibility and mutes are not asked (see [`Filter`]).
fn live_query(prechecked: bool) -> String {
    live_query_of("$1", "$2", "", prechecked, false)
}

/// [`live_query`] (not prechecked) with the viewer's version, their rows of it, and the seconds
/// to their next mute's expiry: what the flags are kept under (see [`crate::viewer_cache`]).
fn live_versioned_query() -> String {
    live_query_of("$1", "$2", VIEWER_VERSION, false, true)
}

/// The viewer `$2`'s version (see [`crate::viewer_cache`]), with how many rows it is the sum
/// of and the seconds to their next mute's expiry.
const VIEWER_VERSION: &str = "\
vv AS (SELECT coalesce(sum(weight), 0)::bigint AS version, count(*) AS n, \
              (SELECT extract(epoch FROM min(expires_at) - now())::float8 FROM mutes \
               WHERE account_id = $2 AND expires_at > now()) AS mute_expires_in \
       FROM viewer_changes WHERE account_id = $2), ";

/// A viewer's rows of `viewer_changes` past which they are folded into one.
const FOLD_VIEWER_ROWS: i64 = 32;

/// What a page of a viewer whose flags are kept reads: the statuses `$1`'s versions and
/// authors' counts, and the viewer `$2`'s version.
const VERSIONS_QUERY: &str = "\
SELECT s.id, s.xmin::text::bigint AS version, a.xmin::text::bigint AS account_version, \
       coalesce(st.statuses_count, 0) AS statuses_count, \
       coalesce(st.following_count, 0) AS following_count, \
       coalesce(st.followers_count, 0) AS followers_count, st.last_status_at, \
       vv.version AS viewer_version \
FROM statuses s JOIN accounts a ON a.id = s.account_id \
     LEFT JOIN account_stats st ON st.account_id = s.account_id \
     CROSS JOIN (SELECT coalesce(sum(weight), 0)::bigint AS version FROM viewer_changes \
                 WHERE account_id = $2) vv \
WHERE s.id = ANY($1)";

/// The same for the statuses a caller's statement chooses (see [`Chosen`]): that statement runs
/// as the first part of this one, so a page is one round trip, not two.
fn chosen_live_query(chosen: &str) -> String {
    live_query_of(
        "(SELECT array_agg(id) FROM chosen)::bigint[]",
        Chosen::VIEWER,
        &format!("chosen AS ({chosen}), "),
        true,
        false,
    )
}

/// [`live_query`] over the statuses `ids` (an array expression) for the viewer `viewer` (a
/// parameter), after the common table expressions `with` (empty or ending in ", ").
/// `versioned`: `with` includes [`VIEWER_VERSION`], whose columns are then selected.
fn live_query_of(ids: &str, viewer: &str, with: &str, prechecked: bool, versioned: bool) -> String {
    let (viewer_columns, viewer_join) = if versioned {
        (
            "vv.version AS viewer_version, vv.n AS viewer_rows, vv.mute_expires_in, ",
            "CROSS JOIN vv ",
        )
    } else {
        ("", "")
    };
    let (visible, muted) = if prechecked {
        ("true".to_owned(), "false".to_owned())
    } else {
        (
            visibility::visible_itself("s", viewer),
            visibility::muted_itself("s", viewer),
        )
    };
    format!(
        "\
WITH {with}\
     fav AS (SELECT coalesce(array_agg(status_id), '{{}}') AS ids FROM favourites \
             WHERE account_id = {viewer} AND status_id = ANY({ids})), \
     reb AS (SELECT coalesce(array_agg(reblog_of_id), '{{}}') AS ids FROM statuses \
             WHERE account_id = {viewer} AND reblog_of_id = ANY({ids})), \
     bm AS (SELECT coalesce(array_agg(status_id), '{{}}') AS ids FROM bookmarks \
             WHERE account_id = {viewer} AND status_id = ANY({ids})), \
     pin AS (SELECT coalesce(array_agg(status_id), '{{}}') AS ids FROM status_pins \
             WHERE account_id = {viewer} AND status_id = ANY({ids})), \
     cm AS (SELECT coalesce(array_agg(conversation_id), '{{}}') AS ids FROM conversation_mutes \
             WHERE account_id = {viewer}) \
SELECT {viewer_columns}s.id, s.xmin::text::bigint AS version, \
       a.xmin::text::bigint AS account_version, \
       coalesce(st.statuses_count, 0) AS statuses_count, \
       coalesce(st.following_count, 0) AS following_count, \
       coalesce(st.followers_count, 0) AS followers_count, st.last_status_at, \
       {visible} AS visible, {muted} AS muted, \
       s.id = ANY(fav.ids) AS favourited, \
       s.id = ANY(reb.ids) AS reblogged, \
       s.id = ANY(bm.ids) AS bookmarked, \
       s.id = ANY(pin.ids) AS pinned, \
       s.conversation_id = ANY(cm.ids) AS conversation_muted, \
       (s.quote_approval_policy = 'followers' AND EXISTS (SELECT 1 FROM follows vf \
          WHERE vf.account_id = {viewer} AND vf.target_account_id = s.account_id)) AS viewer_follows, \
       EXISTS (SELECT 1 FROM filters WHERE account_id = {viewer}) AS viewer_filters \
FROM statuses s JOIN accounts a ON a.id = s.account_id \
     LEFT JOIN account_stats st ON st.account_id = s.account_id \
     CROSS JOIN fav CROSS JOIN reb CROSS JOIN bm CROSS JOIN pin CROSS JOIN cm {viewer_join}\
WHERE s.id = ANY({ids})"
    )
}

/// A page's statuses as chosen by a statement of the caller's (the public, hashtag and link
/// timelines): `sql` selects their ids in an `id` column, already checked for the viewer as
/// [`Filter::PRECHECKED`] says, with `args` as its parameters, the viewer being `$3`.
#[derive(Debug, Clone)]
pub struct Chosen<'a> {
    pub sql: &'a str,
    pub args: sqlx::postgres::PgArguments,
    /// Oldest first (a `min_id` page), else newest first.
    pub ascending: bool,
}

impl Chosen<'_> {
    /// The parameter a chosen statement gives the viewer in.
    pub const VIEWER: &'static str = "$3";
}

/// Which statuses a page loads: given ids, or those a statement chooses.
enum Pick<'a> {
    Ids(&'a [i64]),
    Chosen(Chosen<'a>),
}

impl Renderer {
    /// Loads statuses (visible or not) by id: the viewer's flags and the versions from
    /// PostgreSQL, the rest from the cache when it holds that version.
    async fn fetch_rows(
        &self,
        db: &mut PgConnection,
        viewer: Option<i64>,
        ids: &[i64],
        prechecked: bool,
    ) -> Result<HashMap<i64, StatusRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(viewer) = viewer.filter(|_| !prechecked) {
            let live = self.viewer_rows(db, viewer, ids).await?;
            return self.complete_rows(db, live).await;
        }
        static LIVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| live_query(false));
        static LIVE_PRECHECKED: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| live_query(true));
        let sql: &str = if prechecked { &LIVE_PRECHECKED } else { &LIVE };
        let live: Vec<Live> = sqlx::query_as(sql)
            .bind(ids)
            .bind(viewer)
            .fetch_all(&mut *db)
            .await?;
        self.complete_rows(db, live).await
    }

    /// The live rows of the statuses `ids` for `viewer`: for a viewer whose flags are kept, the
    /// versions first and the flags from the cache where those versions still hold; the rest
    /// with the full statement, whose flags are then kept (ADR 0043).
    async fn viewer_rows(
        &self,
        db: &mut PgConnection,
        viewer: i64,
        ids: &[i64],
    ) -> Result<Vec<Live>, sqlx::Error> {
        let cache = &self.entities.viewers;
        let mut live = Vec::with_capacity(ids.len());
        let mut ask = ids.to_vec();
        if cache.holds(viewer) {
            let versioned: Vec<Versioned> = sqlx::query_as(VERSIONS_QUERY)
                .bind(ids)
                .bind(viewer)
                .fetch_all(&mut *db)
                .await?;
            let version = versioned.first().map_or(0, |v| v.viewer_version);
            let kept = cache.lookup(
                viewer,
                version,
                versioned.iter().map(|v| (v.fresh.id, v.fresh.versions())),
            );
            ask.clear();
            for (v, flags) in versioned.into_iter().zip(kept) {
                match flags {
                    Some(flags) => live.push(Live::kept(v, flags)),
                    None => ask.push(v.fresh.id),
                }
            }
            if let Some(lookups) = &self.lookups {
                lookups.flags_hit.inc_by(live.len() as u64);
                lookups.flags_miss.inc_by(ask.len() as u64);
            }
        }
        if ask.is_empty() {
            return Ok(live);
        }
        static LIVE_VERSIONED: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(live_versioned_query);
        let fresh: Vec<Live> = sqlx::query_as(&LIVE_VERSIONED)
            .bind(&ask)
            .bind(viewer)
            .fetch_all(&mut *db)
            .await?;
        if let Some(first) = fresh.first() {
            let expires_in = first
                .mute_expires_in
                .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
            cache.store(
                viewer,
                first.viewer_version.unwrap_or_default(),
                expires_in,
                fresh.iter().map(|l| (l.id, l.versions(), l.flags)),
            );
            if first.viewer_rows.unwrap_or_default() > FOLD_VIEWER_ROWS {
                self.fold_viewer_changes(viewer);
            }
        }
        live.extend(fresh);
        Ok(live)
    }

    /// Folds `viewer`'s rows of `viewer_changes` into one, on the primary, in the background:
    /// their version stays, and reading it stays one short index scan.
    fn fold_viewer_changes(&self, viewer: i64) {
        let db = self.db.clone();
        tokio::spawn(async move {
            let folded = async {
                let mut conn = db.acquire().await?;
                sqlx::query("SELECT stampede_fold_viewer_changes($1)")
                    .bind(viewer)
                    .execute(&mut *conn)
                    .await
            };
            if let Err(error) = folded.await {
                tracing::warn!(viewer, %error, "folding a viewer's changes failed");
            }
        });
    }

    /// The statuses whose live rows were read: each entity from the cache when it holds that
    /// version, else from PostgreSQL.
    async fn complete_rows(
        &self,
        db: &mut PgConnection,
        live: Vec<Live>,
    ) -> Result<HashMap<i64, StatusRow>, sqlx::Error> {
        let cache = &self.entities.statuses;
        let mut rows = HashMap::with_capacity(live.len());
        let mut missing: HashMap<i64, Live> = HashMap::new();
        let kept = cache.get_many(live.iter().map(|l| (l.id, l.version)));
        for (live, kept) in live.into_iter().zip(kept) {
            match kept {
                Some(entity) => {
                    rows.insert(live.id, StatusRow { entity, live });
                }
                None => {
                    missing.insert(live.id, live);
                }
            }
        }
        if let Some(lookups) = &self.lookups {
            lookups.status_hit.inc_by(rows.len() as u64);
            lookups.status_miss.inc_by(missing.len() as u64);
        }
        if missing.is_empty() {
            return Ok(rows);
        }
        let ids: Vec<i64> = missing.keys().copied().collect();
        let mut entities: Vec<StatusEntity> = sqlx::query_as(ENTITY_QUERY)
            .bind(&ids)
            .fetch_all(&mut *db)
            .await?;
        let with_media: Vec<i64> = entities
            .iter()
            .filter(|e| e.has_media)
            .map(|e| e.id)
            .collect();
        if !with_media.is_empty() {
            let mut media: HashMap<i64, Vec<MediaRow>> = HashMap::new();
            for row in media::of_statuses(&mut *db, &with_media).await? {
                media
                    .entry(row.status_id.unwrap_or_default())
                    .or_default()
                    .push(row);
            }
            for entity in &mut entities {
                entity.media = media.remove(&entity.id).unwrap_or_default();
            }
        }
        for entity in entities {
            // Deleted since the flags were read: left out, as if it had been gone then.
            let Some(live) = missing.remove(&entity.id) else {
                continue;
            };
            let entity = Arc::new(entity);
            cache.put(entity.id, entity.version, entity.clone());
            rows.insert(live.id, StatusRow { entity, live });
        }
        Ok(rows)
    }

    /// The accounts `ids` (authors and mentioned), each author with the version and counts read
    /// with its statuses; from the cache when it holds that version.
    async fn fetch_accounts(
        &self,
        db: &mut PgConnection,
        rows: &HashMap<i64, StatusRow>,
    ) -> Result<HashMap<i64, PageAccount>, sqlx::Error> {
        let authors: HashMap<i64, &Live> = rows.values().map(|r| (r.account_id, &r.live)).collect();
        let mentioned: HashSet<i64> = rows
            .values()
            .flat_map(|r| r.mention_ids.iter().copied())
            .filter(|id| !authors.contains_key(id))
            .collect();
        let cache = &self.entities.accounts;
        let mut accounts = HashMap::with_capacity(authors.len() + mentioned.len());
        let mut missing = Vec::new();
        for (&id, live) in &authors {
            match cache.get(id, live.account_version) {
                Some(entity) => {
                    accounts.insert(id, PageAccount::kept(entity));
                }
                None => missing.push(id),
            }
        }
        for &id in &mentioned {
            // A mention shows a name and a page, which do not change.
            match cache.get_any(id) {
                Some(entity) => {
                    accounts.insert(id, PageAccount::kept(entity));
                }
                None => missing.push(id),
            }
        }
        if let Some(lookups) = &self.lookups {
            lookups.account_hit.inc_by(accounts.len() as u64);
            lookups.account_miss.inc_by(missing.len() as u64);
        }
        if !missing.is_empty() {
            for (row, version) in accounts::find_many_versioned(&mut *db, &missing).await? {
                let id = row.id;
                let entity = Arc::new(AccountEntity {
                    row,
                    rendered: std::sync::OnceLock::new(),
                    shown: parking_lot::Mutex::new(None),
                });
                cache.put(id, version, entity.clone());
                accounts.insert(id, PageAccount::kept(entity));
            }
        }
        // The counts as read with the page.
        for (id, live) in authors {
            if let Some(account) = accounts.get_mut(&id) {
                account.counts = Some(Counts {
                    statuses: live.statuses_count,
                    following: live.following_count,
                    followers: live.followers_count,
                    last_status_at: live.last_status_at,
                });
            }
        }
        Ok(accounts)
    }
}

#[derive(Debug, FromRow)]
struct PollRow {
    id: i64,
    status_id: i64,
    options: Vec<String>,
    multiple: bool,
    hide_totals: bool,
    expires_at: DateTime<Utc>,
    counts: Vec<i64>,
    voters: i64,
    own: Vec<i32>,
}

async fn polls(
    db: &mut PgConnection,
    viewer: Option<i64>,
    status_ids: &[i64],
) -> Result<HashMap<i64, PollRow>, sqlx::Error> {
    let rows: Vec<PollRow> = sqlx::query_as(
        "SELECT p.id, p.status_id, p.options, p.multiple, p.hide_totals, p.expires_at, \
           coalesce(p.remote_counts, \
             ARRAY(SELECT count(v.choice) FROM generate_subscripts(p.options, 1) i \
                   LEFT JOIN poll_votes v ON v.poll_id = p.id AND v.choice = i - 1 \
                   GROUP BY i ORDER BY i)) AS counts, \
           coalesce(p.remote_voters, \
             (SELECT count(DISTINCT v.account_id) FROM poll_votes v WHERE v.poll_id = p.id)) AS voters, \
           ARRAY(SELECT v.choice FROM poll_votes v WHERE v.poll_id = p.id AND v.account_id = $2 \
                 ORDER BY v.choice) AS own \
         FROM polls p WHERE p.status_id = ANY($1)",
    )
    .bind(status_ids)
    .bind(viewer)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|p| (p.status_id, p)).collect())
}

/// Which statuses to leave out besides those the viewer may not see.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Leave out statuses by (or boosting) accounts the viewer mutes: timelines, search,
    /// notifications. A status looked up directly is shown.
    pub hide_muted: bool,
    /// The ids come from a statement that already left out what the viewer may not see and what
    /// they mute, and none is a boost (the public, hashtag and link timelines): the page's
    /// statement does not check them again. What they quote is checked as always.
    pub prechecked: bool,
}

impl Filter {
    /// Timelines, search, notifications: muted accounts' statuses left out.
    pub const HIDE_MUTED: Filter = Filter {
        hide_muted: true,
        prechecked: false,
    };
    /// Ids already checked by the statement that chose them (see `prechecked`).
    pub const PRECHECKED: Filter = Filter {
        hide_muted: true,
        prechecked: true,
    };
}

impl Renderer {
    /// The statuses `ids` as `viewer` may see them, in the order given; the others are left out.
    pub async fn load_statuses(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
        filter: Filter,
    ) -> Result<Vec<Status>, sqlx::Error> {
        self.load(viewer, ids, filter, true).await
    }

    /// The statuses `ids` as published to the streaming service: whatever their visibility,
    /// without any viewer's flags. The audience is decided by whoever publishes them.
    pub async fn load_published(&self, ids: &[i64]) -> Result<Vec<Status>, sqlx::Error> {
        self.load(None, ids, Filter::default(), false).await
    }

    async fn load(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
        filter: Filter,
        checked: bool,
    ) -> Result<Vec<Status>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.refresh_emojis().await?;
        if let Some(reads) = self.reads.as_ref().filter(|_| checked) {
            let db = reads.db();
            if db.name() != self.db.name() {
                // The replica may not hold the newest statuses yet (a feed entry written after
                // the primary's commit): then the whole page is read from the primary, as it is
                // when the replica fails the read.
                match self
                    .load_from(db, viewer, Pick::Ids(ids), filter, checked, true)
                    .await
                {
                    Ok(Some((_, page))) => return Ok(page),
                    Ok(None) => {}
                    Err(error) if reads.replica_failed(&error) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(self
            .load_from(&self.db, viewer, Pick::Ids(ids), filter, checked, false)
            .await?
            .map(|(_, page)| page)
            .unwrap_or_default())
    }

    /// The page a statement chooses (see [`Chosen`]), read where lag-tolerant reads go (the
    /// replica, when there is a usable one): the chosen ids in page order, and the statuses as
    /// `viewer` sees them in that order.
    pub async fn load_chosen(
        &self,
        viewer: Option<i64>,
        chosen: Chosen<'_>,
    ) -> Result<(Vec<i64>, Vec<Status>), sqlx::Error> {
        self.refresh_emojis().await?;
        let load = |db: Db| {
            let chosen = chosen.clone();
            async move {
                self.load_from(
                    &db,
                    viewer,
                    Pick::Chosen(chosen),
                    Filter::PRECHECKED,
                    true,
                    false,
                )
                .await
            }
        };
        let page = match &self.reads {
            Some(reads) => reads.read(load).await?,
            None => load(self.db.clone()).await?,
        };
        Ok(page.unwrap_or_default())
    }

    /// The page from `db`: the ids picked in page order and the statuses shown; `None` when
    /// `complete` is asked for and a status of the given ids is missing.
    async fn load_from(
        &self,
        db: &Db,
        viewer: Option<i64>,
        pick: Pick<'_>,
        filter: Filter,
        checked: bool,
        complete: bool,
    ) -> Result<Option<(Vec<i64>, Vec<Status>)>, sqlx::Error> {
        // One connection for the one to four statements: each acquisition from a busy pool is
        // another wait in its queue.
        let mut conn = db.acquire().await?;
        let (ids, mut rows) = match pick {
            Pick::Ids(ids) => {
                let prechecked = checked && filter.prechecked;
                let rows = self.fetch_rows(&mut conn, viewer, ids, prechecked).await?;
                if complete && rows.len() < ids.iter().collect::<HashSet<_>>().len() {
                    return Ok(None);
                }
                (ids.to_vec(), rows)
            }
            Pick::Chosen(chosen) => {
                let sql = chosen_live_query(chosen.sql);
                let live: Vec<Live> = sqlx::query_as_with(&sql, chosen.args)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut ids: Vec<i64> = live.iter().map(|l| l.id).collect();
                ids.sort_unstable();
                if !chosen.ascending {
                    ids.reverse();
                }
                (ids, self.complete_rows(&mut conn, live).await?)
            }
        };
        // Boosted statuses, then the statuses quoted by any of them (one level: a quoted
        // status shows its own quote by id only).
        for _ in 0..2 {
            let missing: Vec<i64> = rows
                .values()
                .flat_map(|r| {
                    let quoted = r
                        .quote
                        .as_ref()
                        .filter(|q| q.state == "accepted")
                        .and_then(|q| q.quoted_status_id);
                    r.reblog_of_id.into_iter().chain(quoted)
                })
                .filter(|id| !rows.contains_key(id))
                .collect::<HashSet<i64>>()
                .into_iter()
                .collect();
            if missing.is_empty() {
                break;
            }
            let more = self.fetch_rows(&mut conn, viewer, &missing, false).await?;
            rows.extend(more);
        }
        let accounts = self.fetch_accounts(&mut conn, &rows).await?;
        let with_polls: Vec<i64> = rows.values().filter(|r| r.has_poll).map(|r| r.id).collect();
        let polls = if with_polls.is_empty() {
            HashMap::new()
        } else {
            polls(&mut conn, viewer, &with_polls).await?
        };
        // The viewer's filters mark what they match (signed-in reads only; most have none,
        // which the page's statement told).
        let filtered = rows.values().any(|r| r.live.flags.viewer_filters);
        let matcher = match viewer.filter(|_| checked && filtered) {
            Some(viewer) => crate::filters::Matcher::new(
                crate::filters::load(&mut conn, viewer, None, true).await?,
            ),
            None => crate::filters::Matcher::default(),
        };
        drop(conn);
        let set = Loaded {
            matcher: &matcher,
            rows: &rows,
            accounts: &accounts,
            polls: &polls,
            viewer,
            checked,
        };
        let page = ids
            .iter()
            .filter_map(|id| {
                let row = rows.get(id)?;
                // A boost is muted when it or the status it boosts is (a boost's own
                // visibility and its original's are checked in `render_status`).
                let muted = row.live.flags.muted
                    || row
                        .reblog_of_id
                        .and_then(|original| rows.get(&original))
                        .is_some_and(|original| original.live.flags.muted);
                if (set.checked && !row.live.flags.visible) || (filter.hide_muted && muted) {
                    return None;
                }
                self.render_status(&set, row, true)
            })
            .collect();
        Ok(Some((ids, page)))
    }

    /// One status as `viewer` may see it.
    pub async fn load_status(
        &self,
        viewer: Option<i64>,
        id: i64,
    ) -> Result<Option<Status>, sqlx::Error> {
        Ok(self
            .load_statuses(viewer, &[id], Filter::default())
            .await?
            .pop())
    }

    /// A single poll by its id, as `viewer` sees it (through its status's visibility).
    pub async fn poll(
        &self,
        viewer: Option<i64>,
        poll_id: i64,
    ) -> Result<Option<Poll>, sqlx::Error> {
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT p.status_id FROM polls p JOIN statuses s ON s.id = p.status_id \
                 WHERE p.id = $1 AND {}",
                visibility::visible("s", "$2")
            )
        });
        let mut conn = self.db.acquire().await?;
        let status_id: Option<i64> = sqlx::query_scalar(&QUERY)
            .bind(poll_id)
            .bind(viewer)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(status_id) = status_id else {
            return Ok(None);
        };
        let polls = polls(&mut conn, viewer, &[status_id]).await?;
        Ok(polls
            .get(&status_id)
            .map(|p| render_poll(p, viewer.is_some())))
    }

    /// A kept account as rendered (once per entry).
    fn rendered<'e>(&self, entity: &'e AccountEntity) -> &'e Arc<Account> {
        entity
            .rendered
            .get_or_init(|| Arc::new(self.render_account(&entity.row)))
    }

    /// An account on a page: as rendered, with an author's counts as the page read them. An
    /// author is rendered and serialized once for as long as its counts stay the same, and
    /// shared by every status and page that shows it.
    fn page_account(&self, account: &PageAccount) -> StatusAccount {
        let rendered = self.rendered(&account.entity);
        let Some(counts) = &account.counts else {
            return StatusAccount::new(rendered.clone());
        };
        let mut shown = account.entity.shown.lock();
        if let Some((kept, author)) = shown.as_ref()
            && kept == counts
        {
            return author.clone();
        }
        let mut author = (**rendered).clone();
        author.statuses_count = counts.statuses;
        author.following_count = counts.following;
        author.followers_count = counts.followers;
        if counts.last_status_at != account.entity.row.last_status_at {
            author.last_status_at = last_status_day(counts.last_status_at);
        }
        let author = StatusAccount::with_json(author);
        *shown = Some((counts.clone(), author.clone()));
        author
    }

    /// The public view of an account.
    pub fn render_account(&self, row: &AccountRow) -> Account {
        let base = &self.base;
        let image =
            |key: &Option<String>, remote: &Option<String>, missing: &str| match (key, remote) {
                (Some(key), _) => self.files.url(key),
                (None, Some(remote)) => remote.clone(),
                (None, None) => format!("{base}/{missing}"),
            };
        let avatar = image(
            &row.avatar_key,
            &row.avatar_remote_url,
            "avatars/original/missing.png",
        );
        let header = image(
            &row.header_key,
            &row.header_remote_url,
            "headers/original/missing.png",
        );
        let (acct, url, uri) = match &row.domain {
            None => (
                row.username.clone(),
                format!("{base}/@{}", row.username),
                format!("{base}/users/{}", row.username),
            ),
            Some(domain) => {
                let uri = row
                    .uri
                    .clone()
                    .unwrap_or_else(|| format!("https://{domain}/users/{}", row.username));
                (
                    format!("{}@{domain}", row.username),
                    row.url.clone().unwrap_or_else(|| uri.clone()),
                    uri,
                )
            }
        };
        Account {
            id: row.id.to_string(),
            username: row.username.clone(),
            acct,
            display_name: row.display_name.clone(),
            locked: row.locked,
            bot: row.bot,
            discoverable: row.discoverable,
            indexable: row.indexable,
            group: false,
            created_at: day(row.created_at),
            // A remote account's note arrives as HTML and is sanitized when stored.
            note: if row.domain.is_some() {
                row.note.clone()
            } else {
                render_note(&row.note)
            },
            url,
            uri,
            avatar: avatar.clone(),
            avatar_static: avatar,
            header: header.clone(),
            header_static: header,
            followers_count: row.followers_count,
            following_count: row.following_count,
            statuses_count: row.statuses_count,
            last_status_at: last_status_day(row.last_status_at),
            hide_collections: Some(row.hide_collections),
            noindex: !row.indexable,
            emojis: {
                let mut texts = vec![row.display_name.as_str(), row.note.as_str()];
                texts.extend(row.fields.0.iter().map(|f| f.value.as_str()));
                self.emojis.used_in(row.domain.as_deref(), &texts)
            },
            roles: Vec::new(),
            fields: row
                .fields
                .0
                .iter()
                .map(|f| Field {
                    name: escape(&f.name),
                    value: escape(&f.value),
                    verified_at: None,
                })
                .collect(),
            moved: None,
        }
    }

    /// A quote as the viewer may see it: the quoted status when accepted and visible (its own
    /// quote by id only); `deleted` when the quoted status is gone, `unauthorized` when the
    /// viewer may not see it.
    fn render_quote(&self, set: &Loaded<'_>, quote: &QuoteRow, deep: bool) -> serde_json::Value {
        let quoted = quote.quoted_status_id.and_then(|id| set.rows.get(&id));
        let state = match (quote.state.as_str(), quote.quoted_status_id, quoted) {
            ("accepted", None, _) => "deleted",
            ("accepted", Some(_), Some(q)) if set.checked && !q.live.flags.visible => {
                "unauthorized"
            }
            ("accepted", Some(_), None) => "deleted",
            (state, _, _) => state,
        };
        if !deep {
            return serde_json::json!({
                "state": state,
                "quoted_status_id": quote.quoted_status_id.map(|id| id.to_string()),
            });
        }
        let shown = (state == "accepted")
            .then(|| quoted.and_then(|q| self.render_status(set, q, false)))
            .flatten();
        serde_json::json!({ "state": state, "quoted_status": shown })
    }

    /// Renders `row`; with `deep`, a quote shows the quoted status (else only its id).
    fn render_status(&self, set: &Loaded<'_>, row: &StatusRow, deep: bool) -> Option<Status> {
        let account = set.accounts.get(&row.account_id)?;
        let base = &self.base;
        let reblog = match row.reblog_of_id {
            None => None,
            Some(original) => {
                let original = set.rows.get(&original)?;
                if set.checked && !original.live.flags.visible {
                    return None;
                }
                Some(Box::new(self.render_status(set, original, deep)?))
            }
        };
        let quote = row
            .quote
            .as_ref()
            .map(|q| self.render_quote(set, &q.0, deep));
        let own_status = set.viewer == Some(row.account_id);
        let current_user = match set.viewer {
            None => "unknown",
            Some(_) => crate::quotes::decision(
                &row.quote_approval_policy,
                &row.visibility,
                own_status,
                row.live.flags.viewer_follows,
            ),
        };
        let automatic: Vec<&str> =
            match (row.quote_approval_policy.as_str(), row.visibility.as_str()) {
                (_, "private" | "direct") | ("nobody", _) => Vec::new(),
                ("followers", _) => vec!["followers"],
                _ => vec!["public"],
            };
        let quote_approval = serde_json::json!({
            "automatic": automatic,
            "manual": [],
            "current_user": current_user,
        });
        let path = format!("{base}/users/{}/statuses/{}", account.username, row.id);
        let own = set.viewer == Some(row.account_id);
        let flags = set.viewer.is_some();
        let source = reblog.as_deref();
        let (uri, url) = match &row.uri {
            // From another server: its own id and page.
            Some(uri) => (uri.clone(), row.url.clone().or_else(|| Some(uri.clone()))),
            None => (
                if reblog.is_some() {
                    format!("{path}/activity")
                } else {
                    path
                },
                Some(format!("{base}/@{}/{}", account.username, row.id)),
            ),
        };
        Some(Status {
            id: row.id.to_string(),
            uri,
            url,
            created_at: iso(row.created_at),
            account: self.page_account(account),
            content: row.content.clone(),
            visibility: row.visibility.clone(),
            // A moderator's `sensitive` action puts the account's media behind a warning.
            sensitive: row.sensitive || account.sensitized_at.is_some(),
            spoiler_text: row.spoiler_text.clone(),
            media_attachments: row.media.iter().map(|m| self.files.render(m)).collect(),
            application: if own {
                row.app_name.as_ref().map(|name| StatusApplication {
                    name: name.clone(),
                    website: row.app_website.clone(),
                })
            } else {
                None
            },
            mentions: row
                .mention_ids
                .iter()
                .filter_map(|id| set.accounts.get(id))
                .map(|a| {
                    let rendered = self.rendered(&a.entity);
                    Mention {
                        id: rendered.id.clone(),
                        username: rendered.username.clone(),
                        url: rendered.url.clone(),
                        acct: rendered.acct.clone(),
                    }
                })
                .collect(),
            tags: row
                .tag_names
                .iter()
                .map(|name| StatusTag {
                    name: name.to_lowercase(),
                    url: format!("{base}/tags/{}", name.to_lowercase()),
                })
                .collect(),
            emojis: {
                let mut texts = vec![row.content.as_str(), row.spoiler_text.as_str()];
                if let Some(poll) = set.polls.get(&row.id) {
                    texts.extend(poll.options.iter().map(String::as_str));
                }
                self.emojis.used_in(account.domain.as_deref(), &texts)
            },
            reblogs_count: row.reblogs_count,
            favourites_count: row.favourites_count,
            replies_count: row.replies_count,
            in_reply_to_id: row.in_reply_to_id.map(|i| i.to_string()),
            in_reply_to_account_id: row.in_reply_to_account_id.map(|i| i.to_string()),
            poll: set.polls.get(&row.id).map(|p| render_poll(p, flags)),
            card: row.card.as_ref().map(|c| crate::cards::render(&c.0)),
            quote,
            quote_approval,
            quotes_count: row.quotes_count,
            language: row.language.clone(),
            text: None,
            edited_at: row.edited_at.map(iso),
            favourited: flags.then_some(
                source.map_or(row.live.flags.favourited, |s| s.favourited == Some(true)),
            ),
            reblogged: flags
                .then_some(source.map_or(row.live.flags.reblogged, |s| s.reblogged == Some(true))),
            muted: flags.then_some(row.live.flags.conversation_muted),
            bookmarked: flags.then_some(
                source.map_or(row.live.flags.bookmarked, |s| s.bookmarked == Some(true)),
            ),
            pinned: (flags && own && row.reblog_of_id.is_none()).then_some(row.live.flags.pinned),
            filtered: flags.then(|| {
                if set.matcher.is_empty() {
                    Vec::new()
                } else {
                    set.matcher.results(
                        row.id,
                        &crate::filters::plain_text(&row.content),
                        &row.spoiler_text,
                    )
                }
            }),
            reblog,
        })
    }
}

struct Loaded<'a> {
    rows: &'a HashMap<i64, StatusRow>,
    accounts: &'a HashMap<i64, PageAccount>,
    polls: &'a HashMap<i64, PollRow>,
    matcher: &'a crate::filters::Matcher,
    viewer: Option<i64>,
    /// Leave out what the viewer may not see.
    checked: bool,
}

/// An account's `last_status_at` as Mastodon shows it: the day only.
fn last_status_day(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.date_naive().to_string())
}

fn render_poll(p: &PollRow, signed_in: bool) -> Poll {
    let expired = p.expires_at <= Utc::now();
    let show = !p.hide_totals || expired;
    Poll {
        id: p.id.to_string(),
        expires_at: Some(iso(p.expires_at)),
        expired,
        multiple: p.multiple,
        votes_count: p.counts.iter().sum(),
        voters_count: p.multiple.then_some(p.voters),
        options: p
            .options
            .iter()
            .enumerate()
            .map(|(i, title)| PollOption {
                title: title.clone(),
                votes_count: show.then(|| p.counts.get(i).copied().unwrap_or(0)),
            })
            .collect(),
        emojis: Vec::new(),
        voted: signed_in.then_some(!p.own.is_empty()),
        own_votes: signed_in.then(|| p.own.iter().map(|c| i64::from(*c)).collect()),
    }
}

/// A row of `notifications`, as rendered.
#[derive(Debug, Clone, FromRow)]
pub struct NotificationRow {
    pub id: i64,
    /// The recipient.
    pub account_id: i64,
    pub from_account_id: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub group_key: Option<String>,
}

/// The columns a [`NotificationRow`] reads, from `notifications n`.
pub const NOTIFICATION_COLUMNS: &str =
    "n.id, n.account_id, n.from_account_id, n.type, n.status_id, n.created_at, n.group_key";

/// A row of `account_conversations`, as rendered.
#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    pub id: i64,
    pub participant_ids: Vec<i64>,
    pub last_status_id: i64,
    pub unread: bool,
}

impl Renderer {
    /// Account rows by id (in no particular order).
    pub async fn accounts(&self, ids: &[i64]) -> Result<Vec<AccountRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.refresh_emojis().await?;
        accounts::find_many(&self.db, ids).await
    }

    pub async fn accounts_by_id(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, AccountRow>, sqlx::Error> {
        self.refresh_emojis().await?;
        Ok(accounts::find_many(&self.db, ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect())
    }

    pub async fn statuses_by_id(
        &self,
        viewer: i64,
        ids: &[i64],
    ) -> Result<HashMap<String, Status>, sqlx::Error> {
        Ok(self
            .load_statuses(Some(viewer), ids, Filter::default())
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect())
    }

    /// `viewer`'s notifications. One whose actor is suspended, or whose status the viewer can
    /// no longer see, is left out.
    pub async fn notifications(
        &self,
        viewer: i64,
        rows: Vec<NotificationRow>,
    ) -> Result<Vec<Notification>, sqlx::Error> {
        let account_ids: Vec<i64> = rows.iter().map(|r| r.from_account_id).collect();
        let found = self.accounts_by_id(&account_ids).await?;
        let status_ids: Vec<i64> = rows.iter().filter_map(|r| r.status_id).collect();
        let statuses = self.statuses_by_id(viewer, &status_ids).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let account = found.get(&r.from_account_id)?;
                if account.suspended_at.is_some() {
                    return None;
                }
                let status = match r.status_id {
                    Some(id) => Some(statuses.get(&id.to_string())?.clone()),
                    None => None,
                };
                Some(Notification {
                    id: r.id.to_string(),
                    kind: r.kind,
                    group_key: r.group_key.unwrap_or_else(|| format!("ungrouped-{}", r.id)),
                    created_at: iso(r.created_at),
                    account: self.render_account(account),
                    status,
                })
            })
            .collect())
    }

    /// `viewer`'s direct-message threads.
    pub async fn conversations(
        &self,
        viewer: i64,
        rows: Vec<ConversationRow>,
    ) -> Result<Vec<Conversation>, sqlx::Error> {
        let account_ids: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.participant_ids.iter().copied())
            .collect();
        let found = self.accounts_by_id(&account_ids).await?;
        let status_ids: Vec<i64> = rows.iter().map(|r| r.last_status_id).collect();
        let statuses = self.statuses_by_id(viewer, &status_ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| Conversation {
                id: r.id.to_string(),
                unread: r.unread,
                accounts: r
                    .participant_ids
                    .iter()
                    .filter_map(|a| found.get(a))
                    .map(|a| self.render_account(a))
                    .collect(),
                last_status: statuses.get(&r.last_status_id.to_string()).cloned(),
            })
            .collect())
    }
}
