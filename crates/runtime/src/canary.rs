//! Canaries: synthetic jobs that travel the whole pipeline — outbox, relay, broker, worker —
//! so an operator can see that work flows and how long it takes (`stampede admin canary`), and
//! so the tests can kill a worker in the middle of a job.
//!
//! A canary's effect is to stamp its row once: `applied_count` must end at exactly 1 however
//! often the message is delivered, which is the idempotency every real job must also have.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use stampede_queue::{Envelope, Handler, JobError, WorkQueue, dedupe, outbox};

/// The message kind.
pub const KIND: &str = "canary";

/// The longest a canary may hold its worker.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    canary_id: i64,
}

/// Sends one canary to `queue`; the worker will hold it for `hold` before stamping it.
/// Returns its id.
pub async fn send(pool: &PgPool, queue: WorkQueue, hold: Duration) -> anyhow::Result<i64> {
    anyhow::ensure!(
        hold <= MAX_HOLD,
        "a canary may hold its worker for at most {MAX_HOLD:?}"
    );
    let mut tx = pool.begin().await?;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO canaries (queue, hold_ms) VALUES ($1, $2) RETURNING id")
            .bind(queue.name())
            .bind(hold.as_millis() as i32)
            .fetch_one(&mut *tx)
            .await?;
    let envelope = Envelope::new(KIND, serde_json::json!(Payload { canary_id: id }));
    outbox::enqueue(&mut tx, queue, &envelope).await?;
    tx.commit().await?;
    Ok(id)
}

/// Where a canary is.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: i64,
    pub queue: String,
    /// Seconds from its commit to its worker's stamp, once stamped.
    pub latency_s: Option<f64>,
    /// How many times its effect was applied: 1 when done, never more.
    pub applied_count: i32,
}

/// The status of each canary in `ids`.
pub async fn status(pool: &PgPool, ids: &[i64]) -> anyhow::Result<Vec<Status>> {
    let rows = sqlx::query(
        "SELECT id, queue, applied_count, \
                extract(epoch FROM completed_at - created_at)::float8 AS latency_s \
         FROM canaries WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let latency_s: Option<f64> = row.try_get("latency_s")?;
            Ok(Status {
                id: row.try_get("id")?,
                queue: row.try_get("queue")?,
                latency_s,
                applied_count: row.try_get("applied_count")?,
            })
        })
        .collect()
}

/// Deletes canaries older than `retention`.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let result =
        sqlx::query("DELETE FROM canaries WHERE created_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(pool)
            .await?;
    Ok(result.rows_affected())
}

/// Stamps canaries; registered on every worker's queue.
#[derive(Debug)]
pub struct CanaryHandler {
    pool: PgPool,
}

impl CanaryHandler {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(CanaryHandler { pool })
    }

    async fn stamp(&self, envelope: &Envelope) -> Result<(), JobError> {
        let payload: Payload = envelope.payload()?;
        let mut tx = self.pool.begin().await?;
        if !dedupe::first_time(&mut tx, envelope.id).await? {
            tracing::info!(
                canary_id = payload.canary_id,
                "canary already stamped; skipping"
            );
            return Ok(());
        }
        let hold_ms: Option<i32> = sqlx::query_scalar("SELECT hold_ms FROM canaries WHERE id = $1")
            .bind(payload.canary_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(hold_ms) = hold_ms else {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "canary {} does not exist",
                payload.canary_id
            )));
        };
        if hold_ms > 0 {
            tracing::info!(
                canary_id = payload.canary_id,
                hold_ms,
                "canary holding its worker"
            );
            tokio::time::sleep(Duration::from_millis(hold_ms as u64)).await;
        }
        sqlx::query(
            "UPDATE canaries SET applied_count = applied_count + 1, completed_at = clock_timestamp() \
             WHERE id = $1",
        )
        .bind(payload.canary_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(canary_id = payload.canary_id, "canary stamped");
        Ok(())
    }
}

impl Handler for CanaryHandler {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>> {
        self.stamp(envelope).boxed()
    }
}

/// The kind of a message that does nothing: what a worker can take per second when the work
/// itself costs nothing, i.e. the queue's own ceiling (`stampede-loadtest queue-throughput`).
pub const NOOP_KIND: &str = "noop";

/// Acknowledges `noop` messages without doing anything.
#[derive(Debug)]
pub struct NoopHandler;

impl Handler for NoopHandler {
    fn handle<'a>(&'a self, _envelope: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>> {
        async { Ok(()) }.boxed()
    }
}
