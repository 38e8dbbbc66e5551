//! The `distribute` queue: local fan-out.
//!
//! One message per status — not one per follower — carries a status into the home feeds of
//! every active local follower: the followers are read in one query and the feeds written in
//! pipelined batches of 2,000. New local statuses that arrive together are fanned out together
//! (ADR 0033): one statement per step and one Redis pipeline for the whole batch. Authors above
//! the hybrid threshold are skipped here and merged in at read time (see
//! [`crate::feeds::hybrid_ids`]). Every handler is idempotent (feeds are sets, notifications are
//! unique), so a redelivered message does no harm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use stampede_cache::Cache;
use stampede_config::StatusesConfig;
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use stampede_mastodon::status::Status;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue, Worker};
use stampede_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::activitypub::{Documents, with_context};
use crate::outbound;
use crate::render::{ConversationRow, NOTIFICATION_COLUMNS, NotificationRow, Renderer};
use crate::stream::{self, AccountEvent, AccountStream, StatusEvent};
use crate::{feeds, notification, visibility};

/// What the `distribute` queue carries: fresh work that readers wait for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Fanout {
    /// A status was created: write it into feeds, notify subscribers.
    #[serde(rename = "status.created")]
    StatusCreated(StatusRef),
    /// A status was deleted: take it out of feeds.
    #[serde(rename = "status.deleted")]
    StatusDeleted(Deleted),
    /// A status was edited: notify those who boosted it.
    #[serde(rename = "status.updated")]
    StatusUpdated(StatusRef),
    /// A notification was created: push it to the recipient's streams.
    #[serde(rename = "notification.created")]
    NotificationCreated(NotificationRef),
}

impl Message for Fanout {
    const QUEUE: WorkQueue = WorkQueue::Distribute;
    const KINDS: &'static [&'static str] = &[
        "status.created",
        "status.deleted",
        "status.updated",
        "notification.created",
    ];
}

/// What the `remote_fanout` queue carries: statuses that arrived from other servers, spread to
/// local followers' feeds and streams like local ones, on their own queue so that a flood from
/// outside never delays [`Fanout`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum RemoteFanout {
    #[serde(rename = "remote_status.created")]
    StatusCreated(StatusRef),
    #[serde(rename = "remote_status.updated")]
    StatusUpdated(StatusRef),
}

impl Message for RemoteFanout {
    const QUEUE: WorkQueue = WorkQueue::RemoteFanout;
    const KINDS: &'static [&'static str] = &["remote_status.created", "remote_status.updated"];
}

/// What the `backfill` queue carries: bulk feed work, which must never delay [`Fanout`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Backfill {
    /// `account_id` now follows `target_account_id`: merge the target's recent statuses.
    #[serde(rename = "feed.merge")]
    FeedMerge(Pair),
    /// `account_id` no longer follows (or blocked) `target_account_id`: take them out.
    #[serde(rename = "feed.unmerge")]
    FeedUnmerge(Pair),
}

impl Message for Backfill {
    const QUEUE: WorkQueue = WorkQueue::Backfill;
    const KINDS: &'static [&'static str] = &["feed.merge", "feed.unmerge"];
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusRef {
    pub status_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Deleted {
    pub status_id: i64,
    pub account_id: i64,
    #[serde(default)]
    pub mentioned: Vec<i64>,
    /// It was on the public timelines (public, not a boost).
    #[serde(default)]
    pub public: bool,
    /// Its hashtags, lower-cased.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NotificationRef {
    pub notification_id: i64,
}

/// Who gets a status in their home feed and user stream.
#[derive(Debug, Default)]
struct Audience {
    followers: Vec<i64>,
    others: Vec<i64>,
}

impl Audience {
    /// Everyone, once each.
    fn all(&self) -> Vec<i64> {
        merged(&self.followers, &self.others)
    }
}

fn merged(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut all: Vec<i64> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Account ids by status (or author) id.
type Grouped = HashMap<i64, Vec<i64>>;

fn grouped(rows: Vec<(i64, i64)>) -> Grouped {
    let mut out = Grouped::new();
    for (key, value) in rows {
        out.entry(key).or_default().push(value);
    }
    out
}

/// Most `status.created` messages fanned out together.
const CREATED_BATCH: usize = 64;
/// Batches of `status.created` in flight at once (see [`Distributor::created_loop`]).
const CREATED_LOOPS: usize = 2;
/// The fewest `distribute` messages a worker should hold at once: enough to fill every batch,
/// and one more batch waiting. A message is held until its batch is written, so with fewer the
/// batches stay small and the queue's throughput is the prefetch divided by a batch's time; with
/// exactly the batches' worth, a loop that finishes finds only the messages that arrived since
/// the broker saw its acks, and batches split in halves.
pub const IN_FLIGHT: u16 = (CREATED_BATCH * (CREATED_LOOPS + 1)) as u16;

/// A created status to fan out, and when its transaction committed.
#[derive(Debug, Clone, Copy)]
struct Created {
    status_id: i64,
    committed_at: DateTime<Utc>,
}

/// A message's status waiting for its batch, and where its outcome goes.
struct Pending {
    created: Created,
    done: oneshot::Sender<Result<(), JobError>>,
}

/// A batch's failure, for each of its messages (each is retried on its own).
fn shared(error: &JobError) -> JobError {
    let again = anyhow::anyhow!("{error}");
    match error {
        JobError::Retry(_) => JobError::Retry(again),
        JobError::Permanent(_) => JobError::Permanent(again),
        JobError::Unavailable(_) => JobError::Unavailable(again),
    }
}

/// What fan-out needs to know about a status.
#[derive(Debug, Default, sqlx::FromRow)]
struct Facts {
    id: i64,
    account_id: i64,
    visibility: String,
    reblog_of_id: Option<i64>,
    reblog_author: Option<i64>,
    in_reply_to_account_id: Option<i64>,
    local: bool,
    /// The author is silenced: its statuses stay off the public and hashtag streams.
    silenced: bool,
    followers: i64,
    mentioned: Vec<i64>,
    tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pair {
    pub account_id: i64,
    pub target_account_id: i64,
}

/// Which followers [`Distributor::followers_of`] reads.
#[derive(Debug, Clone, Copy)]
enum Followers {
    /// Local accounts that used the API within the activity window.
    Active,
    /// Every local follower (from the `follows_target_local` index alone).
    Local,
}

/// Handles every kind above.
pub struct Distributor {
    metrics: Arc<Metrics>,
    db: Db,
    cache: Cache,
    config: StatusesConfig,
    ids: Arc<IdGenerator>,
    render: Renderer,
    documents: Documents,
    /// `status.created` messages on their way to a batch ([`Distributor::created_loop`]).
    arrivals: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor").finish_non_exhaustive()
    }
}

/// Redis failed: most often for a moment (a Sentinel failover), so the worker tries again within
/// seconds before the retry tiers.
fn cache_error(error: stampede_cache::CacheError) -> JobError {
    JobError::Unavailable(error.into())
}

impl Distributor {
    pub fn new(
        db: Db,
        cache: Cache,
        config: StatusesConfig,
        metrics: Arc<Metrics>,
        render: Renderer,
        local_domain: String,
    ) -> Arc<Self> {
        let (arrivals, received) = mpsc::channel(CREATED_BATCH * CREATED_LOOPS);
        let received = Arc::new(tokio::sync::Mutex::new(received));
        Arc::new_cyclic(|this| {
            for _ in 0..CREATED_LOOPS {
                tokio::spawn(Self::created_loop(this.clone(), received.clone()));
            }
            Distributor {
                documents: Documents::new(render.clone(), local_domain),
                render,
                metrics,
                db,
                cache,
                config,
                ids: Arc::new(IdGenerator::new()),
                arrivals,
            }
        })
    }

    /// Registers both message types on `worker` (the distribute and the backfill worker each
    /// take both, so messages an older version queued on the other queue still find a handler).
    pub fn register(self: &Arc<Self>, worker: Worker) -> Worker {
        worker
            .consume::<Fanout, _>(self.clone())
            .consume::<Backfill, _>(self.clone())
            .consume::<RemoteFanout, _>(self.clone())
    }

    /// Active local followers of `author` (those who used the API within the window).
    async fn active_followers(&self, author: i64) -> Result<Vec<i64>, sqlx::Error> {
        let ask = Facts {
            account_id: author,
            ..Facts::default()
        };
        Ok(self
            .followers_of(&[&ask], Followers::Active)
            .await?
            .remove(&ask.id)
            .unwrap_or_default())
    }

    /// The local followers each status goes to, by status id: its author's, less those who hid
    /// the author's boosts (for a boost), and for a reply to someone else only those who follow
    /// that someone too (or are them); with [`Followers::Active`], only those who used the API
    /// within the activity window.
    async fn followers_of(
        &self,
        statuses: &[&Facts],
        which: Followers,
    ) -> Result<Grouped, sqlx::Error> {
        let mut ids = Vec::with_capacity(statuses.len());
        let mut authors = Vec::with_capacity(statuses.len());
        let mut reblogs = Vec::with_capacity(statuses.len());
        let mut replies_to = Vec::with_capacity(statuses.len());
        for facts in statuses {
            ids.push(facts.id);
            authors.push(facts.account_id);
            reblogs.push(facts.reblog_of_id.is_some());
            replies_to.push(facts.in_reply_to_account_id);
        }
        // One status (the common case when posts are few, and the one with the most followers
        // to write) as a one-row source: PostgreSQL then plans as for a single author (the
        // active followers' follows–users join as a hash join), where the `unnest` form's
        // estimate led it to a merge join through the users index, 1.8 times slower at 100,000
        // followers.
        let source = if statuses.len() == 1 {
            "(SELECT $1[1], $2[1], $3[1], $4[1])"
        } else {
            "unnest($1, $2, $3, $4)"
        };
        // Fan-out writes only the feeds Redis keeps (see `feeds::push`), so it needs no
        // activity filter, and the follows index tells the local followers: 64 statuses'
        // 12,800 followers in 3 ms, against 33 ms with a `users` probe for each.
        let followers = match which {
            Followers::Active => {
                "JOIN users u ON u.account_id = f.account_id \
                 AND u.last_active_at > now() - make_interval(days => $5)"
            }
            Followers::Local => "AND f.follower_local",
        };
        let sql = format!(
            "SELECT x.id, f.account_id FROM {source} AS x(id, author, reblog, reply_to) \
             JOIN follows f ON f.target_account_id = x.author {followers} \
             WHERE (NOT x.reblog OR f.show_reblogs) \
               AND (x.reply_to IS NULL OR x.reply_to = x.author OR f.account_id = x.reply_to \
                    OR EXISTS (SELECT 1 FROM follows f2 WHERE f2.account_id = f.account_id \
                               AND f2.target_account_id = x.reply_to))"
        );
        let query = sqlx::query_as(&sql)
            .bind(&ids)
            .bind(&authors)
            .bind(&reblogs)
            .bind(&replies_to);
        let query = match which {
            Followers::Active => query.bind(self.config.active_days as i32),
            Followers::Local => query,
        };
        Ok(grouped(query.fetch_all(&self.db).await?))
    }

    /// What fan-out needs to know about each of `ids` that still exists.
    async fn facts(&self, ids: &[i64]) -> Result<Vec<Facts>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.id, s.account_id, s.visibility, s.reblog_of_id, \
                    r.account_id AS reblog_author, s.in_reply_to_account_id, \
                    a.domain IS NULL AS local, a.silenced_at IS NOT NULL AS silenced, \
                    coalesce(st.followers_count, 0) AS followers, \
                    ARRAY(SELECT m.account_id FROM mentions m WHERE m.status_id = s.id) AS mentioned, \
                    ARRAY(SELECT lower(t.name) FROM statuses_tags x JOIN tags t ON t.id = x.tag_id \
                          WHERE x.status_id = s.id) AS tags \
             FROM statuses s JOIN accounts a ON a.id = s.account_id \
             LEFT JOIN statuses r ON r.id = s.reblog_of_id \
             LEFT JOIN account_stats st ON st.account_id = s.account_id \
             WHERE s.id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.db)
        .await
    }

    /// Which of `statuses` have somewhere to go outside: local ones with a remote follower of
    /// their author (unless direct), or a remote account they mention or boost. One statement,
    /// run after the feeds are written, so that it never delays them.
    async fn federating(&self, statuses: &[&Facts]) -> Result<Vec<i64>, sqlx::Error> {
        let local: Vec<&&Facts> = statuses.iter().filter(|f| f.local).collect();
        if local.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = local.iter().map(|f| f.id).collect();
        let authors: Vec<i64> = local.iter().map(|f| f.account_id).collect();
        let direct: Vec<bool> = local.iter().map(|f| f.visibility == "direct").collect();
        let reblogged: Vec<Option<i64>> = local.iter().map(|f| f.reblog_author).collect();
        sqlx::query_scalar(
            "SELECT x.id FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::bigint[]) \
               AS x(id, author, direct, reblogged) \
             WHERE (NOT x.direct AND EXISTS ( \
                      SELECT 1 FROM follows f JOIN accounts fa ON fa.id = f.account_id \
                      WHERE f.target_account_id = x.author \
                        AND fa.domain IS NOT NULL AND fa.inbox_url IS NOT NULL)) \
                OR EXISTS ( \
                      SELECT 1 FROM accounts a \
                      WHERE a.id = ANY(array_append( \
                              ARRAY(SELECT m.account_id FROM mentions m WHERE m.status_id = x.id), \
                              x.reblogged)) \
                        AND a.domain IS NOT NULL AND a.inbox_url IS NOT NULL)",
        )
        .bind(&ids)
        .bind(&authors)
        .bind(&direct)
        .bind(&reblogged)
        .fetch_all(&self.db)
        .await
    }

    /// The local accounts whose home feed (and user stream) gets each status, in two parts: its
    /// author's local followers (active or not: the feed writes keep only the feeds Redis
    /// holds), and the others — the author, active followers of its hashtags, and the
    /// mentioned for private and direct statuses. Three statements whatever the number of
    /// statuses.
    async fn audiences(&self, statuses: &[Facts]) -> Result<HashMap<i64, Audience>, sqlx::Error> {
        let not_direct: Vec<&Facts> = statuses
            .iter()
            .filter(|f| f.visibility != "direct")
            .collect();
        let mut followers = if not_direct.is_empty() {
            Grouped::new()
        } else {
            self.followers_of(&not_direct, Followers::Local).await?
        };
        let tagged_ids: Vec<i64> = statuses
            .iter()
            .filter(|f| f.visibility == "public" && f.reblog_of_id.is_none() && !f.tags.is_empty())
            .map(|f| f.id)
            .collect();
        let mut tagged = if tagged_ids.is_empty() {
            Grouped::new()
        } else {
            grouped(
                sqlx::query_as(
                    "SELECT DISTINCT st.status_id, tf.account_id FROM statuses_tags st \
                     JOIN tag_follows tf ON tf.tag_id = st.tag_id \
                     JOIN users u ON u.account_id = tf.account_id \
                     WHERE st.status_id = ANY($1) \
                       AND u.last_active_at > now() - make_interval(days => $2)",
                )
                .bind(&tagged_ids)
                .bind(self.config.active_days as i32)
                .fetch_all(&self.db)
                .await?,
            )
        };
        let addressed_ids: Vec<i64> = statuses
            .iter()
            .filter(|f| {
                matches!(f.visibility.as_str(), "private" | "direct") && !f.mentioned.is_empty()
            })
            .map(|f| f.id)
            .collect();
        let mut addressed = if addressed_ids.is_empty() {
            Grouped::new()
        } else {
            grouped(
                sqlx::query_as(
                    "SELECT m.status_id, m.account_id FROM mentions m \
                     JOIN users u ON u.account_id = m.account_id WHERE m.status_id = ANY($1)",
                )
                .bind(&addressed_ids)
                .fetch_all(&self.db)
                .await?,
            )
        };
        Ok(statuses
            .iter()
            .map(|facts| {
                let mut others = vec![facts.account_id];
                others.extend(tagged.remove(&facts.id).unwrap_or_default());
                others.extend(addressed.remove(&facts.id).unwrap_or_default());
                let followers = followers.remove(&facts.id).unwrap_or_default();
                (facts.id, Audience { followers, others })
            })
            .collect())
    }

    /// The lists that include each of `authors`, by author.
    async fn lists_of(&self, authors: &[i64]) -> Result<Grouped, sqlx::Error> {
        Ok(grouped(
            sqlx::query_as(
                "SELECT account_id, list_id FROM list_accounts WHERE account_id = ANY($1)",
            )
            .bind(authors)
            .fetch_all(&self.db)
            .await?,
        ))
    }

    /// Publishes `event` (`update` or `status.update`) for each status to every stream it
    /// belongs on, with the accounts whose home it is in: one rendering of them all.
    async fn publish_statuses(
        &self,
        event: &str,
        statuses: Vec<(&Facts, Vec<i64>)>,
    ) -> Result<(), JobError> {
        let ids: Vec<i64> = statuses.iter().map(|(facts, _)| facts.id).collect();
        let mut rendered: HashMap<String, Status> = self
            .render
            .load_published(&ids)
            .await?
            .into_iter()
            .map(|status| (status.id.clone(), status))
            .collect();
        let authors: Vec<i64> = statuses.iter().map(|(f, _)| f.account_id).collect();
        let lists = self.lists_of(&authors).await?;
        let mut events = Vec::with_capacity(statuses.len());
        for (facts, home) in statuses {
            let Some(status) = rendered.remove(&facts.id.to_string()) else {
                continue; // deleted meanwhile
            };
            let payload =
                serde_json::to_string(&status).map_err(|e| JobError::Permanent(e.into()))?;
            let public =
                facts.visibility == "public" && facts.reblog_of_id.is_none() && !facts.silenced;
            let mut involved = vec![facts.account_id];
            involved.extend(facts.reblog_author);
            involved.extend(facts.mentioned.iter().copied());
            let message = StatusEvent {
                event: event.to_string(),
                payload,
                published_ms: stream::now_ms(),
                author: facts.account_id,
                involved,
                public,
                local: facts.local,
                media: !status.media_attachments.is_empty(),
                tags: if public {
                    facts.tags.clone()
                } else {
                    Vec::new()
                },
                home,
                lists: if facts.visibility == "direct" {
                    Vec::new()
                } else {
                    lists.get(&facts.account_id).cloned().unwrap_or_default()
                },
            };
            events.push(message);
        }
        // Sent together: the connection is multiplexed, so they go out as one pipeline.
        futures_util::future::join_all(
            events
                .iter()
                .map(|event| stream::publish(&self.cache, stream::STATUS_CHANNEL, event)),
        )
        .await;
        Ok(())
    }

    /// Fans out newly created statuses together: the statements and Redis round trips are per
    /// batch, not per status, so a burst of posts costs a handful of each (see
    /// [`Distributor::created_loop`]).
    async fn statuses_created(&self, batch: &[Created]) -> Result<(), JobError> {
        let started = Instant::now();
        let ids: Vec<i64> = batch.iter().map(|c| c.status_id).collect();
        // Statuses deleted before they were distributed are simply absent.
        let statuses = self.facts(&ids).await?;
        if statuses.is_empty() {
            return Ok(());
        }
        let mut audiences = self.audiences(&statuses).await?;
        let audiences_at = started.elapsed();
        // Above the threshold, feeds do without the followers (they are merged in at read
        // time); streams still get every local follower, since streaming has no such merge.
        let mut writes: Vec<(i64, i64)> = Vec::new(); // (account, status)
        let mut homes = Vec::with_capacity(statuses.len());
        let mut feeds_of = HashMap::with_capacity(statuses.len());
        for facts in &statuses {
            let audience = audiences.remove(&facts.id).unwrap_or_default();
            let home = audience.all();
            let others;
            let feeds_to = if facts.followers > self.config.fanout_threshold {
                others = merged(&[], &audience.others);
                &others
            } else {
                &home
            };
            feeds_of.insert(facts.id, feeds_to.len());
            writes.extend(feeds_to.iter().map(|account| (*account, facts.id)));
            homes.push((facts, home));
        }
        // Each feed once, with every status of the batch it gets.
        writes.sort_unstable();
        let mut feeds: Vec<(i64, Vec<i64>)> = Vec::new();
        for (account, status) in writes {
            match feeds.last_mut() {
                Some((last, ids)) if *last == account => ids.push(status),
                _ => feeds.push((account, vec![status])),
            }
        }
        let pushing_at = started.elapsed();
        let written = feeds::push(&self.cache, feeds).await.map_err(cache_error)?;
        let now = Utc::now();
        for created in batch {
            let Some(feeds) = feeds_of.get(&created.status_id) else {
                continue;
            };
            let since_commit = (now - created.committed_at).to_std().unwrap_or_default();
            self.metrics
                .fanout_duration
                .observe(since_commit.as_secs_f64());
            tracing::info!(
                status_id = created.status_id,
                feeds,
                batch = batch.len(),
                batch_written = written,
                fanout_ms = started.elapsed().as_millis() as u64,
                audiences_ms = audiences_at.as_millis() as u64,
                feeds_ms = (started.elapsed() - pushing_at).as_millis() as u64,
                since_commit_ms = since_commit.as_millis() as u64,
                "status distributed"
            );
        }
        let fanned_out = started.elapsed();
        self.metrics.fanout_feeds_written.inc_by(written as u64);
        self.publish_statuses("update", homes).await?;
        for facts in statuses.iter().filter(|f| f.visibility == "direct") {
            self.publish_conversations(facts.id).await?;
        }

        // Followers who asked to be told about these accounts' posts.
        let announced: Vec<&Facts> = statuses
            .iter()
            .filter(|f| f.reblog_of_id.is_none() && f.visibility != "direct")
            .collect();
        if !announced.is_empty() {
            let authors: Vec<i64> = announced.iter().map(|f| f.account_id).collect();
            let subscribers = grouped(
                sqlx::query_as(
                    "SELECT target_account_id, account_id FROM follows \
                     WHERE target_account_id = ANY($1) AND notify",
                )
                .bind(&authors)
                .fetch_all(&self.db)
                .await?,
            );
            if !subscribers.is_empty() {
                let mut conn = self.db.acquire().await?;
                for facts in &announced {
                    for subscriber in subscribers.get(&facts.account_id).into_iter().flatten() {
                        notification::create(
                            &mut conn,
                            self.ids.next_id().as_i64(),
                            *subscriber,
                            facts.account_id,
                            notification::STATUS,
                            Some(facts.id),
                        )
                        .await?;
                    }
                }
            }
        }
        // Only statuses with somewhere to go outside (a remote follower of the author, or a
        // remote account mentioned or boosted) cost the federation statements.
        let all: Vec<&Facts> = statuses.iter().collect();
        let federating = self.federating(&all).await?;
        for facts in statuses.iter().filter(|f| federating.contains(&f.id)) {
            self.federate(facts, false).await?;
        }
        tracing::debug!(
            batch = batch.len(),
            fanout_ms = fanned_out.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "status.created batch done"
        );
        Ok(())
    }

    /// Gathers the `status.created` messages the worker hands over concurrently into batches
    /// for [`Distributor::statuses_created`]: whatever arrived while the previous batch ran (at
    /// most [`CREATED_BATCH`]), so a lone status goes at once and a burst shares statements.
    /// [`CREATED_LOOPS`] loops take turns, one gathering while another writes.
    async fn created_loop(
        this: std::sync::Weak<Self>,
        arrivals: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    ) {
        loop {
            let mut batch = Vec::new();
            {
                let mut arrivals = arrivals.lock().await;
                let Some(first) = arrivals.recv().await else {
                    return; // the distributor is gone
                };
                batch.push(first);
                while batch.len() < CREATED_BATCH
                    && let Ok(next) = arrivals.try_recv()
                {
                    batch.push(next);
                }
            }
            let Some(this) = this.upgrade() else {
                return;
            };
            let created: Vec<Created> = batch.iter().map(|p| p.created).collect();
            // A panic is a bug; like the worker, the loop parks the messages rather than die
            // with them (and leave fan-out with one loop fewer).
            let outcome = std::panic::AssertUnwindSafe(this.statuses_created(&created))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(JobError::Permanent(anyhow::anyhow!(
                        "the status.created batch panicked"
                    )))
                });
            drop(this);
            for pending in batch {
                let _ = pending.done.send(match &outcome {
                    Ok(()) => Ok(()),
                    Err(error) => Err(shared(error)),
                });
            }
        }
    }

    /// Fans out one created status as part of the next batch.
    async fn status_created(&self, created: Created) -> Result<(), JobError> {
        let (done, outcome) = oneshot::channel();
        if self.arrivals.send(Pending { created, done }).await.is_err() {
            return Err(JobError::Retry(anyhow::anyhow!(
                "the fan-out loops stopped"
            )));
        }
        outcome.await.unwrap_or_else(|_| {
            Err(JobError::Retry(anyhow::anyhow!(
                "the fan-out batch was lost"
            )))
        })
    }

    /// Queues the status's activity (Create, or Announce for a boost; Update of the Note after
    /// an edit) for the remote servers that should have it: the author's remote followers
    /// (unless it is direct), the remote accounts it mentions, and a boosted status's author.
    async fn federate(&self, facts: &Facts, edited: bool) -> Result<(), JobError> {
        let status_id = facts.id;
        let mut conn = self.db.acquire().await?;
        let mut inboxes = if facts.visibility == "direct" {
            Vec::new()
        } else {
            outbound::follower_inboxes(&mut conn, facts.account_id).await?
        };
        let mut others = facts.mentioned.clone();
        others.extend(facts.reblog_author);
        inboxes.extend(outbound::inboxes_of(&mut conn, &others).await?);
        drop(conn);
        if inboxes.is_empty() {
            return Ok(());
        }
        let Some(status) = self.render.load_published(&[status_id]).await?.pop() else {
            return Ok(());
        };
        let activity = if edited {
            let (to, cc) = self.documents.addressing(&status).await?;
            let note = self.documents.note(&status).await?;
            with_context(serde_json::json!({
                "id": format!("{}#updates/{}", status.uri, Utc::now().timestamp_millis()),
                "type": "Update",
                "actor": note["attributedTo"],
                "to": to,
                "cc": cc,
                "object": note,
            }))
        } else {
            with_context(self.documents.publication(&status).await?)
        };
        let mut tx = self.db.begin().await?;
        outbound::send(&mut tx, facts.account_id, &activity, inboxes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `conversation` event, to each local participant's direct stream.
    async fn publish_conversations(&self, status_id: i64) -> Result<(), JobError> {
        let rows: Vec<(i64, i64, Vec<i64>, bool)> = sqlx::query_as(
            "SELECT account_id, id, participant_ids, unread FROM account_conversations \
             WHERE last_status_id = $1",
        )
        .bind(status_id)
        .fetch_all(&self.db)
        .await?;
        for (account, id, participant_ids, unread) in rows {
            let row = ConversationRow {
                id,
                participant_ids,
                last_status_id: status_id,
                unread,
            };
            if let Some(conversation) = self.render.conversations(account, vec![row]).await?.pop() {
                let payload = serde_json::to_string(&conversation)
                    .map_err(|e| JobError::Permanent(e.into()))?;
                let event = AccountEvent {
                    account,
                    stream: AccountStream::Direct,
                    event: "conversation".to_string(),
                    payload,
                    published_ms: stream::now_ms(),
                };
                stream::publish(&self.cache, stream::ACCOUNT_CHANNEL, &event).await;
            }
        }
        Ok(())
    }

    async fn status_deleted(&self, deleted: Deleted) -> Result<(), JobError> {
        let mut targets = self.active_followers(deleted.account_id).await?;
        targets.push(deleted.account_id);
        targets.extend(deleted.mentioned);
        targets.sort_unstable();
        targets.dedup();
        feeds::remove(&self.cache, &targets, &[deleted.status_id])
            .await
            .map_err(cache_error)?;
        let message = StatusEvent {
            event: "delete".to_string(),
            payload: deleted.status_id.to_string(),
            published_ms: stream::now_ms(),
            author: deleted.account_id,
            public: deleted.public,
            tags: deleted.tags,
            lists: self
                .lists_of(&[deleted.account_id])
                .await?
                .remove(&deleted.account_id)
                .unwrap_or_default(),
            home: targets,
            ..StatusEvent::default()
        };
        stream::publish(&self.cache, stream::STATUS_CHANNEL, &message).await;
        Ok(())
    }

    async fn status_updated(&self, status_id: i64) -> Result<(), JobError> {
        let Some(facts) = self.facts(&[status_id]).await?.pop() else {
            return Ok(());
        };
        let home = self
            .audiences(std::slice::from_ref(&facts))
            .await?
            .remove(&status_id)
            .unwrap_or_default()
            .all();
        self.publish_statuses("status.update", vec![(&facts, home)])
            .await?;
        if facts.reblog_of_id.is_none() && !self.federating(&[&facts]).await?.is_empty() {
            self.federate(&facts, true).await?;
        }
        let boosters: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT account_id FROM statuses WHERE reblog_of_id = $1")
                .bind(status_id)
                .fetch_all(&self.db)
                .await?;
        let mut conn = self.db.acquire().await?;
        for booster in boosters {
            notification::create(
                &mut conn,
                self.ids.next_id().as_i64(),
                booster,
                facts.account_id,
                notification::UPDATE,
                Some(status_id),
            )
            .await?;
        }
        Ok(())
    }

    async fn notification_created(&self, notification_id: i64) -> Result<(), JobError> {
        let row: Option<NotificationRow> = sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE n.id = $1 AND NOT n.filtered"
        ))
        .bind(notification_id)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(()); // dismissed already, or filtered into a request
        };
        let account = row.account_id;
        let (from, kind) = (row.from_account_id, row.kind.clone());
        // Web Push subscriptions that want it, through the outbox: a look-up, and an insert only
        // when a subscription wants it (no transaction is needed for one write).
        {
            let mut conn = self.db.acquire().await?;
            crate::push::queue(&mut conn, notification_id, account, from, &kind).await?;
        }
        // Rendered only for streams someone holds (see `stream`'s module docs).
        if !stream::is_listening(&self.cache, account).await {
            return Ok(());
        }
        let Some(notification) = self.render.notifications(account, vec![row]).await?.pop() else {
            return Ok(());
        };
        let payload =
            serde_json::to_string(&notification).map_err(|e| JobError::Permanent(e.into()))?;
        let event = AccountEvent {
            account,
            stream: AccountStream::Notification,
            event: "notification".to_string(),
            payload,
            published_ms: stream::now_ms(),
        };
        stream::publish(&self.cache, stream::ACCOUNT_CHANNEL, &event).await;
        Ok(())
    }

    async fn merge(&self, pair: Pair) -> Result<(), JobError> {
        // Only a feed that is being kept up to date; others are rebuilt on the next read.
        if self
            .cache
            .get(&feeds::ready_key(pair.account_id))
            .await
            .map_err(cache_error)?
            .is_none()
        {
            return Ok(());
        }
        // Authors above the hybrid threshold are merged at read time, never into feeds. The
        // statuses merged are those fan-out would have written: no boosts from an account whose
        // boosts the follower hides, no replies to accounts the follower does not follow.
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT s.id FROM statuses s WHERE s.account_id = $2 \
               AND coalesce((SELECT followers_count FROM account_stats \
                             WHERE account_id = $2), 0) <= $3 \
               AND {} AND {} ORDER BY s.id DESC LIMIT 100",
            visibility::visible("s", "$1"),
            feeds::fanout_rules!()
        ))
        .bind(pair.account_id)
        .bind(pair.target_account_id)
        .bind(self.config.fanout_threshold)
        .fetch_all(&self.db)
        .await?;
        self.cache
            .feed_add(&feeds::home_key(pair.account_id), &ids, feeds::FEED_MAX)
            .await
            .map_err(cache_error)
    }

    async fn unmerge(&self, pair: Pair) -> Result<(), JobError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM statuses WHERE account_id = $1 ORDER BY id DESC LIMIT 2000",
        )
        .bind(pair.target_account_id)
        .fetch_all(&self.db)
        .await?;
        feeds::remove(&self.cache, &[pair.account_id], &ids)
            .await
            .map_err(cache_error)
    }
}

impl Consume<Fanout> for Distributor {
    fn consume<'a>(
        &'a self,
        message: Fanout,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            match message {
                Fanout::StatusCreated(r) => {
                    self.status_created(Created {
                        status_id: r.status_id,
                        committed_at: envelope.created_at,
                    })
                    .await
                }
                Fanout::StatusDeleted(deleted) => self.status_deleted(deleted).await,
                Fanout::StatusUpdated(r) => self.status_updated(r.status_id).await,
                Fanout::NotificationCreated(r) => {
                    self.notification_created(r.notification_id).await
                }
            }
        }
        .boxed()
    }
}

impl Consume<RemoteFanout> for Distributor {
    fn consume<'a>(
        &'a self,
        message: RemoteFanout,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            match message {
                // Not gathered with local statuses: a flood from outside must not delay them.
                RemoteFanout::StatusCreated(r) => {
                    self.statuses_created(&[Created {
                        status_id: r.status_id,
                        committed_at: envelope.created_at,
                    }])
                    .await
                }
                RemoteFanout::StatusUpdated(r) => self.status_updated(r.status_id).await,
            }
        }
        .boxed()
    }
}

impl Consume<Backfill> for Distributor {
    fn consume<'a>(
        &'a self,
        message: Backfill,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            match message {
                Backfill::FeedMerge(pair) => self.merge(pair).await,
                Backfill::FeedUnmerge(pair) => self.unmerge(pair).await,
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use stampede_queue::message::assert_kinds;

    use super::*;

    #[test]
    fn every_kind_is_listed_and_round_trips() {
        assert_kinds(&[
            Fanout::StatusCreated(StatusRef { status_id: 1 }),
            Fanout::StatusDeleted(Deleted {
                status_id: 1,
                account_id: 2,
                mentioned: vec![3],
                public: true,
                tags: vec!["cats".into()],
            }),
            Fanout::StatusUpdated(StatusRef { status_id: 1 }),
            Fanout::NotificationCreated(NotificationRef { notification_id: 4 }),
        ]);
        let pair = || Pair {
            account_id: 1,
            target_account_id: 2,
        };
        assert_kinds(&[Backfill::FeedMerge(pair()), Backfill::FeedUnmerge(pair())]);
        assert_kinds(&[
            RemoteFanout::StatusCreated(StatusRef { status_id: 1 }),
            RemoteFanout::StatusUpdated(StatusRef { status_id: 1 }),
        ]);
    }
}
