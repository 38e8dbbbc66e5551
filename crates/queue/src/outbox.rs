//! The transactional outbox.
//!
//! [`enqueue`] writes a message in the caller's transaction, so the message exists if and only if
//! the change that causes it commits. The [`Relay`] publishes committed rows and deletes each one
//! only after the broker confirms it: a relay that dies between publishing and deleting publishes
//! the row again after restart (consumers deduplicate, see [`crate::dedupe`]), and one that dies
//! before publishing loses nothing. Relays wake on `NOTIFY stampede_outbox` (sent by a trigger at
//! commit) and poll as a fallback; rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number
//! of relays can run side by side.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, Row};
use stampede_db::Leases;
use stampede_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use crate::{Envelope, Queue, WorkQueue};

/// The channel the outbox trigger notifies.
pub const CHANNEL: &str = "stampede_outbox";

/// The advisory lock the leading relay holds (per database).
const RELAY_LOCK: i64 = 0x5354_414d_5045_4445; // "STAMPEDE"

/// Writes `envelope` for `queue` within the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    queue: WorkQueue,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (queue, envelope) VALUES ($1, $2)")
        .bind(queue.name())
        .bind(sqlx::types::Json(envelope))
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `messages` for their queue within the caller's transaction, in one statement (a post
/// to a thousand inboxes is one round trip, not a thousand).
pub async fn send_all<M: crate::Message>(
    conn: &mut PgConnection,
    messages: &[M],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let envelopes: Vec<sqlx::types::Json<Envelope>> = messages
        .iter()
        .map(|m| sqlx::types::Json(Envelope::of(m)))
        .collect();
    sqlx::query("INSERT INTO outbox (queue, envelope) SELECT $1, unnest($2::jsonb[])")
        .bind(M::QUEUE.name())
        .bind(envelopes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `message` for its queue within the caller's transaction.
pub async fn send<M: crate::Message>(
    conn: &mut PgConnection,
    message: &M,
) -> Result<(), sqlx::Error> {
    enqueue(conn, M::QUEUE, &Envelope::of(message)).await
}

/// Publishes committed outbox rows.
#[derive(Clone, Debug)]
pub struct Relay {
    /// Rounds run on a leased connection: no ping when it is handed back.
    db: Leases,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// How often to look for rows when no notification arrives.
    pub poll_interval: Duration,
    /// After a round that published rows, how long to let the next ones gather before the next
    /// round. A round costs three round trips to PostgreSQL however many rows it carries, so under
    /// sustained traffic this trades at most this much latency for fewer, fuller rounds; after a
    /// quiet spell the first row goes at once.
    pub gather: Duration,
}

impl Relay {
    pub fn new(db: Leases, queue: Queue, metrics: Arc<Metrics>) -> Self {
        Relay {
            db,
            queue,
            metrics,
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            gather: Duration::from_millis(20),
        }
    }

    /// Sets [`Relay::gather`].
    pub fn gathering(mut self, gather: Duration) -> Self {
        self.gather = gather;
        self
    }

    /// Claims up to one batch of rows, publishes them, and deletes those the broker confirmed.
    /// Returns how many were published.
    ///
    /// Three round trips to PostgreSQL per batch: BEGIN, a DELETE that claims and returns the
    /// rows, COMMIT. The deletion commits only if every row was confirmed; should a publish
    /// fail, the whole batch rolls back and is published again later (the rows the broker did
    /// confirm arrive twice, and consumers skip them, see [`crate::dedupe`]).
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        self.round().await.map(|(published, _)| published)
    }

    /// One round of [`Self::relay_once`]; returns how many rows it published and the ids of all
    /// it took out of the outbox (published, or set aside as unreadable).
    async fn round(&self) -> anyhow::Result<(usize, Vec<i64>)> {
        let known: Vec<&str> = WorkQueue::ALL.iter().map(|q| q.name()).collect();
        // The deletion need not wait for the disk: should it be lost in a crash, the rows are
        // published again and consumers skip what they already handled.
        let mut conn = self.db.take().await?;
        let mut tx = conn
            .begin_with("BEGIN; SET LOCAL synchronous_commit TO OFF")
            .await?;
        let rows = sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE queue = ANY($1) \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, queue, envelope, created_at",
        )
        .bind(&known)
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            conn.finish();
            return Ok((0, Vec::new()));
        }
        let mut taken = Vec::with_capacity(rows.len());

        let mut jobs = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            taken.push(id);
            let queue_name: String = row.try_get("queue")?;
            let created_at: DateTime<Utc> = row.try_get("created_at")?;
            let raw: sqlx::types::Json<serde_json::Value> = row.try_get("envelope")?;
            // Filtered by `queue = ANY(known)` above.
            let Some(queue) = WorkQueue::from_name(&queue_name) else {
                continue;
            };
            // One row this build cannot read (written by a newer one, say) must not stop the
            // rest: it is set aside, kept for an operator, and the batch goes on.
            match serde_json::from_value::<Envelope>(raw.0.clone()) {
                Ok(envelope) => jobs.push((id, queue, created_at, envelope)),
                Err(error) => {
                    tracing::error!(outbox_id = id, %queue, %error, envelope = %raw.0,
                        "outbox row is not an envelope this build reads; set aside as unreadable");
                    unreadable.push((id, format!("unreadable:{queue_name}"), raw, created_at));
                }
            }
        }
        for (id, queue, envelope, created_at) in &unreadable {
            sqlx::query(
                "INSERT INTO outbox (id, queue, envelope, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(queue)
            .bind(envelope)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        }

        let results = join_all(
            jobs.iter()
                .map(|(id, queue, created_at, envelope)| async move {
                    let outcome = self.queue.publish(*queue, envelope).await;
                    (*id, *queue, *created_at, outcome)
                }),
        )
        .await;

        let mut failed = 0usize;
        for (id, queue, _, outcome) in &results {
            if let Err(error) = outcome {
                failed += 1;
                tracing::warn!(outbox_id = id, %queue, %error, "outbox row not published; will retry");
            }
        }
        if failed > 0 {
            tx.rollback().await?;
            anyhow::bail!(
                "{failed} of {} outbox rows not published; the batch stays in the outbox",
                results.len()
            );
        }
        tx.commit().await?;
        conn.finish();
        for (_, queue, created_at, _) in &results {
            self.metrics
                .messages_published
                .get_or_create(&Metrics::queue(queue.name()))
                .inc();
            let lag = (Utc::now() - *created_at).to_std().unwrap_or_default();
            self.metrics.outbox_publish_lag.observe(lag.as_secs_f64());
        }
        self.metrics.outbox_published.inc_by(results.len() as u64);
        Ok((results.len(), taken))
    }

    /// Rows waiting to be published.
    pub async fn backlog(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(self.db.pool())
            .await
    }

    /// Relays until `shutdown` is cancelled.
    ///
    /// One relay per database leads: it holds a session advisory lock on its listener
    /// connection, LISTENs, and relays at each commit. The others stand by, polling once per
    /// `poll_interval` (which also covers a leader that stopped without letting go) and trying
    /// for the lock; when the leader's connection ends, one of them takes over within a poll.
    /// So N web replicas cost one wake-up per commit, not N. Leadership is an economy, not a
    /// guarantee: should two relays both lead for a moment, `SKIP LOCKED` keeps them apart.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut conn: Option<PgListener> = None;
        let mut leading = false;
        let mut failures = 0u32;
        let mut backlog_sampled: Option<std::time::Instant> = None;
        // A fresh database may not be migrated yet (`stampede all` migrates as it starts): wait
        // for the table quietly rather than log a failure every second.
        while !shutdown.is_cancelled() && !self.table_exists().await {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.poll_interval.min(Duration::from_secs(1))) => {}
            }
        }
        // The ids the last two rounds took: a notification for one of them (its commit raced
        // the round that took it) needs no round of its own.
        let mut last = HashSet::new();
        let mut before_last;
        'relay: while !shutdown.is_cancelled() {
            if !leading {
                leading = self.try_lead(&mut conn).await;
            }
            // A publish can wait (a full in-process queue, a slow broker); shutdown must not wait
            // for ever. A round gets a few seconds to finish after shutdown (cutting a healthy one
            // short would publish its rows twice); one cut short rolls back, and its rows are
            // published again later.
            let round = tokio::select! {
                _ = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                } => break,
                round = self.round() => round,
            };
            match round {
                Ok((_, ids)) => {
                    failures = 0;
                    let n = ids.len();
                    before_last = std::mem::replace(&mut last, ids.into_iter().collect());
                    if n as i64 >= self.batch_size {
                        continue; // more is waiting
                    }
                    if n > 0 && !self.gather.is_zero() {
                        tokio::select! {
                            _ = shutdown.cancelled() => break 'relay,
                            _ = tokio::time::sleep(self.gather) => {}
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "outbox relay failed; backing off");
                    let delay = crate::worker::reconnect_delay(failures);
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'relay,
                        _ = tokio::time::sleep(delay) => continue 'relay,
                    }
                }
            }
            // count(*) is not free: sample the backlog at most once a second.
            if backlog_sampled.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                backlog_sampled = Some(std::time::Instant::now());
                if let Ok(backlog) = self.backlog().await {
                    self.metrics.outbox_backlog.set(backlog);
                }
            }
            let poll = tokio::time::sleep(self.poll_interval);
            tokio::pin!(poll);
            loop {
                let listener = if leading { conn.as_mut() } else { None };
                tokio::select! {
                    _ = shutdown.cancelled() => break 'relay,
                    _ = &mut poll => break,
                    notified = wait(listener) => match notified {
                        // Commits that arrived meanwhile are all picked up by the next round:
                        // one round for the lot, not one per notification.
                        Ok(id) => {
                            let fresh = |id: &str| {
                                id.parse::<i64>()
                                    .map_or(true, |id| !last.contains(&id) && !before_last.contains(&id))
                            };
                            let mut any_fresh = fresh(&id);
                            if let Some(l) = conn.as_mut() {
                                while let Some(n) = l.next_buffered() {
                                    any_fresh |= fresh(n.payload());
                                }
                            }
                            if any_fresh {
                                break;
                            }
                        }
                        // Lost the connection, and with it the lock: stand by and try again.
                        Err(_) => {
                            conn = None;
                            leading = false;
                            break;
                        }
                    },
                }
            }
        }
    }

    async fn table_exists(&self) -> bool {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass('outbox') IS NOT NULL")
            .fetch_one(self.db.pool())
            .await
            .unwrap_or(false)
    }

    /// Tries to become the leading relay on `conn` (connecting it if needed).
    async fn try_lead(&self, conn: &mut Option<PgListener>) -> bool {
        if conn.is_none() {
            // The listener keeps its connection for as long as it lives: one of its own, not one
            // of the requests' pool, which it would take away from requests for good.
            let own = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_lazy_with((*self.db.pool().pool().connect_options()).clone());
            *conn = PgListener::connect_with(&own).await.ok();
        }
        let Some(listener) = conn.as_mut() else {
            return false;
        };
        let locked: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut *listener)
                .await;
        match locked {
            Ok(true) => {
                if listener.listen(CHANNEL).await.is_ok() {
                    tracing::debug!("leading the outbox relay");
                    true
                } else {
                    *conn = None;
                    false
                }
            }
            Ok(false) => false,
            Err(_) => {
                *conn = None;
                false
            }
        }
    }
}

/// The next notification's payload: the highest outbox id its statement inserted.
async fn wait(listener: Option<&mut PgListener>) -> Result<String, sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(|n| n.payload().to_string()),
        None => std::future::pending().await,
    }
}
