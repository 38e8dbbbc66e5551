//! Running a consumer: the life of a worker.
//!
//! ```text
//!  consume ──► receive ──► spawn handler (≤ concurrency at once) ──► ack | retry | park
//!     ▲           │ connection lost                                   
//!     └─ backoff ◄┘                 SIGTERM: stop receiving, let running handlers finish
//!                                   until the deadline, then drop the rest unacknowledged
//!                                   (the broker redelivers them to another worker)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use stampede_telemetry::Metrics;
use stampede_telemetry::metrics::JobLabels;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Delivery, Envelope, Queue, WorkQueue, retry};

/// How a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (a peer or dependency is down, a conflict).
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (malformed payload, a bug): park it at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
    /// A backing service answered nothing for a moment (Redis failing over): tried again in
    /// the worker a few times within seconds ([`QUICK_RETRIES`]) before it counts as
    /// [`JobError::Retry`], so a failover delays the work by seconds, not by the first retry
    /// tier's quarter of a minute.
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

/// The pauses before each in-worker retry of a job that failed with [`JobError::Unavailable`].
pub const QUICK_RETRIES: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Retry(error.into())
    }
}

impl From<crate::QueueError> for JobError {
    fn from(error: crate::QueueError) -> Self {
        match error {
            crate::QueueError::Malformed(_) => JobError::Permanent(error.into()),
            _ => JobError::Retry(error.into()),
        }
    }
}

/// Does the work of one message kind. Handlers must be idempotent: a message may arrive more
/// than once (see [`crate::dedupe`]).
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Consumes one work queue and dispatches each message to the handler of its kind.
pub struct Worker {
    queue: Queue,
    work_queue: WorkQueue,
    handlers: HashMap<String, Arc<dyn Handler>>,
    concurrency: u16,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.work_queue)
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The wait before reconnecting after `failures` consecutive failures: 0.5 s doubling to 30 s.
pub fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)).min(30_000))
}

impl Worker {
    /// A worker for `work_queue` running at most `concurrency` jobs at once (also the prefetch).
    pub fn new(
        queue: Queue,
        work_queue: WorkQueue,
        concurrency: u16,
        metrics: Arc<Metrics>,
    ) -> Self {
        Worker {
            queue,
            work_queue,
            handlers: HashMap::new(),
            concurrency: concurrency.max(1),
            metrics,
        }
    }

    /// The queue this worker consumes.
    pub fn work_queue(&self) -> WorkQueue {
        self.work_queue
    }

    /// Routes messages of `kind` to `handler`.
    pub fn handle(mut self, kind: &str, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind.to_string(), handler);
        self
    }

    /// Consumes until `shutdown` is cancelled, then gives running jobs up to `deadline`.
    pub async fn run(self, shutdown: CancellationToken, deadline: Duration) {
        let this = Arc::new(self);
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(usize::from(this.concurrency)));
        let mut failures = 0u32;
        // The consumer outlives the loop: on shutdown, jobs still running must be able to
        // acknowledge on its channel, so it is closed (and what it holds handed back) only after
        // they finish or the deadline passes.
        let mut current: Option<crate::Consumer> = None;
        'connect: while !shutdown.is_cancelled() {
            let consumer = match this.queue.consume(this.work_queue, this.concurrency).await {
                Ok(c) => {
                    if failures > 0 {
                        tracing::info!(queue = %this.work_queue, "consuming again");
                    }
                    failures = 0;
                    current.insert(c)
                }
                Err(error) => {
                    failures += 1;
                    let delay = reconnect_delay(failures);
                    tracing::warn!(queue = %this.work_queue, %error, retry_in_ms = delay.as_millis() as u64,
                        "cannot consume; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'connect,
                        _ = tokio::time::sleep(delay) => continue 'connect,
                    }
                }
            };
            loop {
                // Take a permit first, so no message is received that cannot be started.
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'connect,
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'connect },
                };
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'connect,
                    next = consumer.next() => next,
                };
                match next {
                    Some(Ok(delivery)) => {
                        let this = this.clone();
                        tracker.spawn(async move {
                            this.process(delivery).await;
                            drop(permit);
                        });
                    }
                    Some(Err(error)) => {
                        tracing::warn!(queue = %this.work_queue, %error, "consumer failed; reconnecting");
                        continue 'connect;
                    }
                    None => {
                        tracing::warn!(queue = %this.work_queue, "consumer closed; reconnecting");
                        failures += 1;
                        tokio::select! {
                            _ = shutdown.cancelled() => break 'connect,
                            _ = tokio::time::sleep(reconnect_delay(failures)) => continue 'connect,
                        }
                    }
                }
            }
        }
        tracker.close();
        if tokio::time::timeout(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(queue = %this.work_queue, "jobs still running at the shutdown deadline; they will be redelivered");
        }
        drop(current);
    }

    async fn process(&self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        let queue = self.work_queue.name();
        let span = tracing::info_span!("job", queue, kind = %envelope.kind, message_id = %envelope.id,
            attempt = envelope.attempt, redelivered = delivery.redelivered);
        stampede_telemetry::propagation::set_parent(&span, &envelope.trace);
        let labels = stampede_telemetry::Metrics::queue(queue);
        self.metrics.messages_consumed.get_or_create(&labels).inc();
        let age = (Utc::now() - envelope.created_at)
            .to_std()
            .unwrap_or_default();
        self.metrics
            .message_age
            .get_or_create(&labels)
            .observe(age.as_secs_f64());
        self.metrics
            .queue_oldest_age
            .get_or_create(&labels)
            .set(age.as_secs_f64());

        let started = Instant::now();
        let kind = envelope.kind.clone();
        let attempt = envelope.attempt;
        let mut quick = QUICK_RETRIES.iter();
        let result = loop {
            let result = match self.handlers.get(&kind) {
                // A panicking handler is a bug; it must not take the message down with it (the
                // delivery would stay unacknowledged, and its prefetch slot lost, until the
                // channel closed). It is parked like any job that cannot succeed.
                Some(handler) => AssertUnwindSafe(handler.handle(envelope))
                    .catch_unwind()
                    .instrument(span.clone())
                    .await
                    .unwrap_or_else(|_| {
                        Err(JobError::Permanent(anyhow::anyhow!(
                            "the {kind} handler panicked"
                        )))
                    }),
                None => Err(JobError::Permanent(anyhow::anyhow!(
                    "no handler for {kind:?} on the {queue} queue"
                ))),
            };
            match result {
                Err(JobError::Unavailable(error)) => match quick.next() {
                    Some(pause) => {
                        span.in_scope(|| {
                            tracing::debug!(error = %format!("{error:#}"), "dependency unavailable; trying again shortly");
                        });
                        tokio::time::sleep(*pause).await;
                    }
                    None => break Err(JobError::Retry(error)),
                },
                other => break other,
            }
        };
        // Settling awaits the broker: instrument it rather than hold an entered span across
        // awaits, which corrupts the span stack when the task moves between threads.
        let (outcome, settled) = async {
            match result {
                Ok(()) => ("ack", delivery.ack().await),
                Err(JobError::Retry(error) | JobError::Unavailable(error))
                    if attempt + 1 < self.work_queue.max_attempts() =>
                {
                    let delay = retry::backoff(attempt);
                    tracing::warn!(error = %format!("{error:#}"), retry_in_s = delay.as_secs(), "job failed; will retry");
                    self.metrics.messages_retried.get_or_create(&labels).inc();
                    ("retry", delivery.retry(delay).await)
                }
                Err(
                    JobError::Retry(error)
                    | JobError::Permanent(error)
                    | JobError::Unavailable(error),
                ) => {
                    let reason = format!("{error:#}");
                    tracing::error!(error = %reason, "job failed for good; parked");
                    self.metrics.messages_parked.get_or_create(&labels).inc();
                    ("park", delivery.park(&reason).await)
                }
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(error) = settled {
            // The message stays unacknowledged and comes back; handlers are idempotent.
            span.in_scope(|| {
                tracing::warn!(%error, outcome, "could not settle the message; it will be redelivered");
            });
        }
        self.metrics
            .job_duration
            .get_or_create(&JobLabels {
                queue: queue.to_string(),
                kind,
                outcome: outcome.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}
