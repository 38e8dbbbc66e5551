//! One life cycle for every background loop of a process: it starts, runs rounds (or runs on its
//! input), and ends on shutdown — or earlier, which is a failure an operator must see.
//!
//! Each loop is recorded in the process's [`Workers`](stampede_telemetry::Workers) registry
//! (`/health/workers`) and in Prometheus (`stampede_worker_rounds`,
//! `stampede_worker_last_ok_timestamp_seconds`, `stampede_worker_running`). A heartbeat writes
//! the registry to PostgreSQL every [`HEARTBEAT`], so `stampede admin workers` lists the loops of
//! every process of the cluster, and a process that vanished shows as gone.

use std::future::Future;
use std::time::{Duration, UNIX_EPOCH};

use stampede_telemetry::metrics::{WorkerLabels, WorkerNameLabels};
use stampede_telemetry::workers::{State, WorkerHandle, WorkerStatus};

use crate::Context;

/// How often a process writes its loops' records to PostgreSQL.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A loop that does a round of work every period: the clock, the pruner, the depth sampler.
pub trait Periodic: Send + 'static {
    /// How operators see it: `delivery/clock`, `media/sweep`.
    fn name(&self) -> &'static str;
    /// The wait between the end of one round and the start of the next.
    fn period(&self) -> Duration;
    /// Whether the first round runs as soon as the loop starts (else after one period).
    fn first_round_at_once(&self) -> bool {
        false
    }
    /// One round. An error is logged, counted and shown; the next round comes as usual.
    fn round(&mut self, ctx: &Context) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Runs `worker` until shutdown, recording every round.
pub async fn run<P: Periodic>(ctx: Context, mut worker: P) {
    let period = worker.period();
    let report = Report::start(&ctx, worker.name(), Some(period)).await;
    if !worker.first_round_at_once() && !pause(&ctx, period).await {
        report.finish(State::Stopped, None).await;
        return;
    }
    loop {
        let outcome = worker.round(&ctx).await;
        report.round(outcome).await;
        if !pause(&ctx, period).await {
            break;
        }
    }
    report.finish(State::Stopped, None).await;
}

/// Waits `period`; `false` when shutdown came first.
async fn pause(ctx: &Context, period: Duration) -> bool {
    tokio::select! {
        () = ctx.shutdown.cancelled() => false,
        () = tokio::time::sleep(period) => true,
    }
}

/// Runs `work`, a loop driven by its input (a queue consumer, a subscription, the outbox relay),
/// recorded under `name`: running until it returns, then stopped if the process is shutting
/// down, else failed.
pub async fn track(ctx: Context, name: impl Into<String>, work: impl Future<Output = ()>) {
    let name = name.into();
    let report = Report::start(&ctx, &name, None).await;
    work.await;
    if ctx.shutdown.is_cancelled() {
        report.finish(State::Stopped, None).await;
    } else {
        tracing::error!(worker = %name, "background loop ended before shutdown");
        report
            .finish(State::Failed, Some("ended before shutdown".to_string()))
            .await;
    }
}

/// A loop's reporting: the registry and the metrics.
struct Report {
    ctx: Context,
    handle: WorkerHandle,
    labels: WorkerNameLabels,
}

impl Report {
    async fn start(ctx: &Context, name: &str, period: Option<Duration>) -> Report {
        let handle = ctx.health.workers().start(name, period).await;
        let labels = WorkerNameLabels {
            worker: name.to_string(),
        };
        ctx.metrics.worker_running.get_or_create(&labels).set(1);
        start_heartbeat(ctx);
        Report {
            ctx: ctx.clone(),
            handle,
            labels,
        }
    }

    async fn round(&self, outcome: anyhow::Result<()>) {
        let outcome = outcome.map_err(|error| format!("{error:#}"));
        if let Err(reason) = &outcome {
            tracing::warn!(worker = %self.labels.worker, %reason, "background round failed; next round as usual");
        }
        let ok = outcome.is_ok();
        let status = self.handle.round(outcome).await;
        self.ctx
            .metrics
            .worker_rounds
            .get_or_create(&WorkerLabels {
                worker: self.labels.worker.clone(),
                outcome: if ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
        if let Some(at) = status.last_ok_at {
            self.ctx
                .metrics
                .worker_last_ok
                .get_or_create(&self.labels)
                .set(
                    at.duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                );
        }
    }

    async fn finish(&self, state: State, reason: Option<String>) {
        self.handle.finish(state, reason).await;
        self.ctx
            .metrics
            .worker_running
            .get_or_create(&self.labels)
            .set(0);
    }
}

/// Starts the process's heartbeat once per context: every [`HEARTBEAT`] the loops' records go
/// to `worker_heartbeats`; [`flush`] writes the last ones at shutdown.
fn start_heartbeat(ctx: &Context) {
    if !ctx.health.workers().claim_heartbeat() {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // The first write comes soon, once the process's loops have started.
        let mut wait = Duration::from_secs(1);
        while pause(&ctx, wait).await {
            wait = HEARTBEAT;
            let workers = ctx.health.workers().list().await;
            if let Err(error) = write(&ctx, &workers).await {
                tracing::debug!(%error, "cannot write the workers' heartbeat");
            }
        }
    });
}

/// At shutdown, once the services have returned: gives loops still ending a moment to record
/// it, then writes every loop's last record, so `stampede admin workers` shows them stopped
/// rather than gone.
pub async fn flush(ctx: &Context) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let workers = loop {
        let workers = ctx.health.workers().list().await;
        if workers.is_empty() {
            return;
        }
        if workers.iter().all(|w| w.state != State::Running)
            || tokio::time::Instant::now() >= deadline
        {
            break workers;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    match tokio::time::timeout(Duration::from_secs(2), write(ctx, &workers)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot write the workers' last heartbeat"),
        Err(_) => tracing::warn!("the workers' last heartbeat timed out"),
    }
}

/// This process's name in `worker_heartbeats`: its role, host and pid.
pub fn process_id(ctx: &Context) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    format!("{}@{host}:{}", ctx.process, std::process::id())
}

async fn write(ctx: &Context, workers: &[WorkerStatus]) -> Result<(), sqlx::Error> {
    let process = process_id(ctx);
    // One row a name: a name started twice (a loop restarted) shows its latest run.
    let mut latest: std::collections::BTreeMap<&str, &WorkerStatus> = Default::default();
    for worker in workers {
        latest.insert(&worker.name, worker);
    }
    let workers: Vec<&WorkerStatus> = latest.into_values().collect();
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    let states: Vec<&str> = workers.iter().map(|w| w.state.name()).collect();
    let periods: Vec<Option<f64>> = workers
        .iter()
        .map(|w| w.period.map(|p| p.as_secs_f64()))
        .collect();
    let rounds: Vec<i64> = workers.iter().map(|w| w.rounds as i64).collect();
    let failures: Vec<i64> = workers.iter().map(|w| w.failures as i64).collect();
    let errors: Vec<Option<&str>> = workers.iter().map(|w| w.last_error.as_deref()).collect();
    let seconds = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let started: Vec<Option<f64>> = workers
        .iter()
        .map(|w| seconds(Some(w.started_at)))
        .collect();
    let last_ok: Vec<Option<f64>> = workers.iter().map(|w| seconds(w.last_ok_at)).collect();
    sqlx::query(
        "INSERT INTO worker_heartbeats \
           (process, worker, state, period_seconds, rounds, failures, last_error, started_at, \
            last_ok_at, seen_at) \
         SELECT $1, w.name, w.state, w.period, w.rounds, w.failures, w.error, \
                to_timestamp(w.started), to_timestamp(w.ok), now() \
         FROM unnest($2::text[], $3::text[], $4::float8[], $5::bigint[], $6::bigint[], \
                     $7::text[], $8::float8[], $9::float8[]) \
              AS w(name, state, period, rounds, failures, error, started, ok) \
         ON CONFLICT (process, worker) DO UPDATE SET \
           state = EXCLUDED.state, period_seconds = EXCLUDED.period_seconds, \
           rounds = EXCLUDED.rounds, failures = EXCLUDED.failures, \
           last_error = EXCLUDED.last_error, started_at = EXCLUDED.started_at, \
           last_ok_at = EXCLUDED.last_ok_at, seen_at = EXCLUDED.seen_at",
    )
    .bind(&process)
    .bind(&names)
    .bind(&states)
    .bind(&periods)
    .bind(&rounds)
    .bind(&failures)
    .bind(&errors)
    .bind(&started)
    .bind(&last_ok)
    .execute(&ctx.jobs)
    .await?;
    Ok(())
}
