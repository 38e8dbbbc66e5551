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
use sqlx::{PgPool, Row};
use stampede_cache::Cache;
use stampede_config::StatusesConfig;
use stampede_core::id::IdGenerator;
use stampede_queue::{Envelope, Handler, JobError, Worker};
use stampede_telemetry::Metrics;

use crate::{feeds, notification, visibility};

/// A status was created: write it into feeds, notify subscribers.
pub const STATUS_CREATED: &str = "status.created";
/// A status was deleted: take it out of feeds.
pub const STATUS_DELETED: &str = "status.deleted";
/// A status was edited: notify those who boosted it.
pub const STATUS_UPDATED: &str = "status.updated";
/// `account_id` now follows `target_account_id`: merge the target's recent statuses.
pub const FEED_MERGE: &str = "feed.merge";
/// `account_id` no longer follows (or blocked) `target_account_id`: take them out.
pub const FEED_UNMERGE: &str = "feed.unmerge";

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
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pair {
    pub account_id: i64,
    pub target_account_id: i64,
}

/// Handles every kind above.
pub struct Distributor {
    metrics: Arc<Metrics>,
    db: PgPool,
    cache: Cache,
    config: StatusesConfig,
    ids: Arc<IdGenerator>,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor").finish_non_exhaustive()
    }
}

fn payload<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, JobError> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| JobError::Permanent(anyhow::anyhow!("{}: {e}", envelope.kind)))
}

fn cache_error(error: stampede_cache::CacheError) -> JobError {
    JobError::Retry(error.into())
}

impl Distributor {
    pub fn new(
        db: PgPool,
        cache: Cache,
        config: StatusesConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Distributor {
            metrics,
            db,
            cache,
            config,
            ids: Arc::new(IdGenerator::new()),
        })
    }

    /// Registers every kind on `worker`.
    pub fn register(self: &Arc<Self>, worker: Worker) -> Worker {
        [
            STATUS_CREATED,
            STATUS_DELETED,
            STATUS_UPDATED,
            FEED_MERGE,
            FEED_UNMERGE,
        ]
        .into_iter()
        .fold(worker, |w, kind| w.handle(kind, self.clone()))
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

    async fn status_created(
        &self,
        status_id: i64,
        committed_at: DateTime<Utc>,
    ) -> Result<(), JobError> {
        let started = Instant::now();
        let Some(row) = sqlx::query(
            "SELECT s.account_id, s.visibility, s.reblog_of_id IS NOT NULL AS reblog, \
                    s.in_reply_to_account_id, coalesce(st.followers_count, 0) AS followers \
             FROM statuses s LEFT JOIN account_stats st ON st.account_id = s.account_id \
             WHERE s.id = $1",
        )
        .bind(status_id)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(()); // deleted before it was distributed
        };
        let author: i64 = row.try_get("account_id")?;
        let visibility: String = row.try_get("visibility")?;
        let reblog: bool = row.try_get("reblog")?;
        let reply_to: Option<i64> = row.try_get("in_reply_to_account_id")?;
        let followers: i64 = row.try_get("followers")?;

        let mut targets: Vec<i64> = vec![author];
        if visibility != "direct" && followers <= self.config.fanout_threshold {
            targets.extend(self.active_followers(author, reblog, reply_to).await?);
        }
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
            targets.extend(tagged);
        }
        if visibility == "private" || visibility == "direct" {
            let mentioned: Vec<i64> = sqlx::query_scalar(
                "SELECT m.account_id FROM mentions m JOIN users u ON u.account_id = m.account_id \
                 WHERE m.status_id = $1",
            )
            .bind(status_id)
            .fetch_all(&self.db)
            .await?;
            targets.extend(mentioned);
        }
        targets.sort_unstable();
        targets.dedup();
        feeds::push(&self.cache, &targets, status_id)
            .await
            .map_err(cache_error)?;
        let since_commit = (Utc::now() - committed_at).to_std().unwrap_or_default();
        self.metrics
            .fanout_duration
            .observe(since_commit.as_secs_f64());
        self.metrics
            .fanout_feeds_written
            .inc_by(targets.len() as u64);
        tracing::info!(
            status_id,
            feeds = targets.len(),
            fanout_ms = started.elapsed().as_millis() as u64,
            since_commit_ms = since_commit.as_millis() as u64,
            "status distributed"
        );

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
            .map_err(cache_error)
    }

    async fn status_updated(&self, status_id: i64) -> Result<(), JobError> {
        let boosters: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT account_id FROM statuses WHERE reblog_of_id = $1")
                .bind(status_id)
                .fetch_all(&self.db)
                .await?;
        let author: Option<i64> =
            sqlx::query_scalar("SELECT account_id FROM statuses WHERE id = $1")
                .bind(status_id)
                .fetch_optional(&self.db)
                .await?;
        let Some(author) = author else { return Ok(()) };
        let mut conn = self.db.acquire().await?;
        for booster in boosters {
            notification::create(
                &mut conn,
                self.ids.next_id().as_i64(),
                booster,
                author,
                notification::UPDATE,
                Some(status_id),
            )
            .await?;
        }
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
            .feed_fill(
                &feeds::home_key(pair.account_id),
                &ids,
                feeds::FEED_MAX,
                &feeds::ready_key(pair.account_id),
                feeds::ready_ttl(&self.config),
            )
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

impl Handler for Distributor {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            match envelope.kind.as_str() {
                STATUS_CREATED => {
                    let r: StatusRef = payload(envelope)?;
                    self.status_created(r.status_id, envelope.created_at).await
                }
                STATUS_DELETED => self.status_deleted(payload(envelope)?).await,
                STATUS_UPDATED => {
                    let r: StatusRef = payload(envelope)?;
                    self.status_updated(r.status_id).await
                }
                FEED_MERGE => self.merge(payload(envelope)?).await,
                FEED_UNMERGE => self.unmerge(payload(envelope)?).await,
                other => Err(JobError::Permanent(anyhow::anyhow!(
                    "distribute: unknown kind {other}"
                ))),
            }
        }
        .boxed()
    }
}
