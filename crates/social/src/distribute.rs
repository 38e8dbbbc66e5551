//! The `distribute` queue: local fan-out.
//!
//! One message per status — not one per follower — carries a status into the home feeds of
//! every active local follower: the followers are read in one query and the feeds written in
//! pipelined batches of 2,000. Authors above the hybrid threshold are skipped here and merged in
//! at read time (see [`crate::feeds::hybrid_ids`]). Every handler is idempotent (feeds are sets,
//! notifications are unique), so a redelivered message does no harm.

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
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue, Worker};
use stampede_telemetry::Metrics;

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
#[derive(Debug)]
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

/// What fan-out needs to know about a status.
#[derive(Debug, sqlx::FromRow)]
struct Facts {
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

/// Handles every kind above.
pub struct Distributor {
    metrics: Arc<Metrics>,
    db: Db,
    cache: Cache,
    config: StatusesConfig,
    ids: Arc<IdGenerator>,
    render: Renderer,
    documents: Documents,
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
        Arc::new(Distributor {
            documents: Documents::new(render.clone(), local_domain),
            render,
            metrics,
            db,
            cache,
            config,
            ids: Arc::new(IdGenerator::new()),
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
    async fn active_followers(
        &self,
        author: i64,
        reblog: bool,
        reply_to: Option<i64>,
    ) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT f.account_id FROM follows f \
             JOIN users u ON u.account_id = f.account_id \
             WHERE f.target_account_id = $1 \
               AND u.last_active_at > now() - make_interval(days => $2) \
               AND (NOT $3 OR f.show_reblogs) \
               AND ($4::bigint IS NULL OR $4 = $1 OR f.account_id = $4 OR EXISTS ( \
                     SELECT 1 FROM follows f2 WHERE f2.account_id = f.account_id \
                       AND f2.target_account_id = $4))",
        )
        .bind(author)
        .bind(self.config.active_days as i32)
        .bind(reblog)
        .bind(reply_to)
        .fetch_all(&self.db)
        .await
    }

    async fn facts(&self, status_id: i64) -> Result<Option<Facts>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.account_id, s.visibility, s.reblog_of_id, r.account_id AS reblog_author, \
                    s.in_reply_to_account_id, a.domain IS NULL AS local, \
                    a.silenced_at IS NOT NULL AS silenced, \
                    coalesce(st.followers_count, 0) AS followers, \
                    ARRAY(SELECT m.account_id FROM mentions m WHERE m.status_id = s.id) AS mentioned, \
                    ARRAY(SELECT lower(t.name) FROM statuses_tags x JOIN tags t ON t.id = x.tag_id \
                          WHERE x.status_id = s.id) AS tags \
             FROM statuses s JOIN accounts a ON a.id = s.account_id \
             LEFT JOIN statuses r ON r.id = s.reblog_of_id \
             LEFT JOIN account_stats st ON st.account_id = s.account_id \
             WHERE s.id = $1",
        )
        .bind(status_id)
        .fetch_optional(&self.db)
        .await
    }

    /// The local accounts whose home feed (and user stream) gets the status, in two parts: its
    /// author's active followers, and the others — the author, active followers of its hashtags,
    /// and the mentioned for private and direct statuses.
    async fn home_audience(&self, status_id: i64, facts: &Facts) -> Result<Audience, sqlx::Error> {
        let visibility = facts.visibility.as_str();
        let reblog = facts.reblog_of_id.is_some();
        let followers = if visibility == "direct" {
            Vec::new()
        } else {
            self.active_followers(facts.account_id, reblog, facts.in_reply_to_account_id)
                .await?
        };
        let mut others: Vec<i64> = vec![facts.account_id];
        if visibility == "public" && !reblog {
            // Followers of its hashtags.
            let tagged: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT tf.account_id FROM statuses_tags st \
                 JOIN tag_follows tf ON tf.tag_id = st.tag_id \
                 JOIN users u ON u.account_id = tf.account_id \
                 WHERE st.status_id = $1 \
                   AND u.last_active_at > now() - make_interval(days => $2)",
            )
            .bind(status_id)
            .bind(self.config.active_days as i32)
            .fetch_all(&self.db)
            .await?;
            others.extend(tagged);
        }
        if visibility == "private" || visibility == "direct" {
            let mentioned: Vec<i64> = sqlx::query_scalar(
                "SELECT m.account_id FROM mentions m JOIN users u ON u.account_id = m.account_id \
                 WHERE m.status_id = $1",
            )
            .bind(status_id)
            .fetch_all(&self.db)
            .await?;
            others.extend(mentioned);
        }
        Ok(Audience { followers, others })
    }

    /// Lists that include the author (never for direct statuses).
    async fn lists_of(&self, author: i64, visibility: &str) -> Result<Vec<i64>, sqlx::Error> {
        if visibility == "direct" {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT list_id FROM list_accounts WHERE account_id = $1")
            .bind(author)
            .fetch_all(&self.db)
            .await
    }

    /// Publishes `event` (`update` or `status.update`) for the status to every stream it
    /// belongs on.
    async fn publish_status(
        &self,
        event: &str,
        status_id: i64,
        facts: &Facts,
        home: Vec<i64>,
    ) -> Result<(), JobError> {
        let Some(status) = self.render.load_published(&[status_id]).await?.pop() else {
            return Ok(());
        };
        let payload = serde_json::to_string(&status).map_err(|e| JobError::Permanent(e.into()))?;
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
            lists: self.lists_of(facts.account_id, &facts.visibility).await?,
        };
        stream::publish(&self.cache, stream::STATUS_CHANNEL, &message).await;
        Ok(())
    }

    async fn status_created(
        &self,
        status_id: i64,
        committed_at: DateTime<Utc>,
    ) -> Result<(), JobError> {
        let started = Instant::now();
        let Some(facts) = self.facts(status_id).await? else {
            return Ok(()); // deleted before it was distributed
        };
        let author = facts.account_id;
        let reblog = facts.reblog_of_id.is_some();
        let visibility = facts.visibility.as_str();
        let audience = self.home_audience(status_id, &facts).await?;
        let home = audience.all();
        // Above the threshold, feeds do without the followers (they are merged in at read
        // time); streams still get every active follower, since streaming has no such merge.
        let feeds_to: Vec<i64> = if facts.followers > self.config.fanout_threshold {
            merged(&[], &audience.others)
        } else {
            home.clone()
        };
        feeds::push(&self.cache, &feeds_to, status_id)
            .await
            .map_err(cache_error)?;
        let since_commit = (Utc::now() - committed_at).to_std().unwrap_or_default();
        self.metrics
            .fanout_duration
            .observe(since_commit.as_secs_f64());
        self.metrics
            .fanout_feeds_written
            .inc_by(feeds_to.len() as u64);
        self.publish_status("update", status_id, &facts, home)
            .await?;
        tracing::info!(
            status_id,
            feeds = feeds_to.len(),
            fanout_ms = started.elapsed().as_millis() as u64,
            since_commit_ms = since_commit.as_millis() as u64,
            "status distributed"
        );
        if visibility == "direct" {
            self.publish_conversations(status_id).await?;
        }

        // Followers who asked to be told about this account's posts.
        if !reblog && visibility != "direct" {
            let subscribers: Vec<i64> = sqlx::query_scalar(
                "SELECT account_id FROM follows WHERE target_account_id = $1 AND notify",
            )
            .bind(author)
            .fetch_all(&self.db)
            .await?;
            let mut conn = self.db.acquire().await?;
            for subscriber in subscribers {
                notification::create(
                    &mut conn,
                    self.ids.next_id().as_i64(),
                    subscriber,
                    author,
                    notification::STATUS,
                    Some(status_id),
                )
                .await?;
            }
        }
        if facts.local {
            self.federate(status_id, &facts, false).await?;
        }
        Ok(())
    }

    /// Queues the status's activity (Create, or Announce for a boost; Update of the Note after
    /// an edit) for the remote servers that should have it: the author's remote followers
    /// (unless it is direct), the remote accounts it mentions, and a boosted status's author.
    async fn federate(&self, status_id: i64, facts: &Facts, edited: bool) -> Result<(), JobError> {
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
        let mut targets = self
            .active_followers(deleted.account_id, false, None)
            .await?;
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
            lists: self.lists_of(deleted.account_id, "public").await?,
            home: targets,
            ..StatusEvent::default()
        };
        stream::publish(&self.cache, stream::STATUS_CHANNEL, &message).await;
        Ok(())
    }

    async fn status_updated(&self, status_id: i64) -> Result<(), JobError> {
        let Some(facts) = self.facts(status_id).await? else {
            return Ok(());
        };
        let home = self.home_audience(status_id, &facts).await?.all();
        self.publish_status("status.update", status_id, &facts, home)
            .await?;
        if facts.local && facts.reblog_of_id.is_none() {
            self.federate(status_id, &facts, true).await?;
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
        // Authors above the hybrid threshold are merged at read time, never into feeds.
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT s.id FROM statuses s WHERE s.account_id = $2 \
               AND coalesce((SELECT followers_count FROM account_stats \
                             WHERE account_id = $2), 0) <= $3 \
               AND {} ORDER BY s.id DESC LIMIT 100",
            visibility::visible("s", "$1")
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
                    self.status_created(r.status_id, envelope.created_at).await
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
                RemoteFanout::StatusCreated(r) => {
                    self.status_created(r.status_id, envelope.created_at).await
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
