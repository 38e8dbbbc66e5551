//! `stampede-loadtest`: benchmarks of a running Stampede on this machine.
//!
//! Every run is bounded in count and time, talks only to the addresses it is given (loopback by
//! default, and it refuses others), and prints a JSON report on standard output.
//!
//! - `outbox-latency`: commits outbox rows at a steady rate while a Stampede relay (`stampede web`
//!   or `delivery`) runs, consumes them straight from RabbitMQ, and reports commit → received
//!   latency percentiles — an upper bound on commit → publish.
//! - `queue-throughput`: fills the `distribute` queue with no-op messages, then measures how fast
//!   the running `stampede delivery` drains it: the queue's own ceiling.
//! - `argon2`: raw argon2id hashes per second with the production parameters on N threads —
//!   the physical limit of sign-ups on this machine.
//! - `signup`: sign-ups through `POST /api/v1/accounts` at a fixed rate, with a reader calling
//!   `verify_credentials` meanwhile (see [`signup`]).
//!
//! And the surge simulator ([`surge`]), whose scenarios write an HTML report and a JSON summary
//! and exit 0 (every `--slo` rule met), 1 (a rule failed, or the run broke), or 2 (not started:
//! bad input or a target that is unreachable or lacks an endpoint; no load was sent):
//! `signup-wave`, `migration-day`, `viral-post`, `streaming-crowd`.
//!
//! Media: `media` (variants per second through the media service, see [`media`]).
//!
//! Federation: `federation` (inbound and outbound rates, see [`federation`]) and `dead-peers`
//! (delivery while a share of the followers' servers are dead, see [`dead_peers`]).
//!
//! Reliability: `chaos-ledger` (every effect of a steady trickle of writes counted while
//! `loadtest/chaos.sh` kills services, see [`chaos`]).

mod chaos;
mod dead_peers;
mod federation;
mod media;
mod signup;
mod streaming_capacity;
mod surge;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use sqlx::PgPool;
use stampede_queue::amqp::AmqpQueue;
use stampede_queue::{Envelope, Queue, WorkQueue, outbox};
use stampede_runtime::canary::NOOP_KIND;

#[derive(Debug, Parser)]
#[command(name = "stampede-loadtest", about = "Benchmarks for Stampede")]
enum Command {
    /// Raw argon2id hashes per second with the production parameters (no server needed).
    Argon2 {
        /// Threads hashing at once (the machine's cores by default).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds to run (at most 600).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Sign-ups through the API at a fixed rate while a reader measures verify_credentials.
    Signup(signup::Args),
    /// Surge: sign-ups arriving on a rate profile (the November 2022 shape) × a multiplier.
    SignupWave(surge::signup_wave::Args),
    /// Surge: newcomers sign up, follow 50-200 accounts, read, post, favourite, boost, stream.
    MigrationDay(surge::migration_day::Args),
    /// Surge: one account with N followers posts; time until the post is in their home feeds.
    ViralPost(surge::viral_post::Args),
    /// Surge: N streaming connections; time from a post to its arrival on each.
    StreamingCrowd(surge::streaming_crowd::Args),
    /// Streaming: N WebSocket clients on one process — its memory, and one public event's
    /// delivery to all of them.
    StreamingCapacity(streaming_capacity::Args),
    /// Federation: signed inbound Creates accepted and applied per second (and their lag to a
    /// follower's home), signed outbound deliveries per second beside the raw signing rate.
    Federation(federation::Args),
    /// Federation with dead servers: a share of the followers' servers hang or answer 500
    /// while the author posts; delivery rate and latency to the live ones.
    DeadPeers(dead_peers::Args),
    /// Chaos: the ledger of writes whose every effect is counted (home feed, notifications,
    /// deliveries to fake peers, media variants) while loadtest/chaos.sh breaks things.
    ChaosLedger(chaos::Args),
    /// Media: 12-megapixel photos through the media service beside the raw rate of the same
    /// crates, memory per job, and home-timeline reads during an upload storm.
    Media(media::Args),
    /// The framework's ceiling: an axum server answering every GET with the same cached JSON
    /// body (a captured timeline page) until stopped, for wrk to drive beside the real route.
    JsonCeiling {
        /// Loopback port to listen on.
        #[arg(long)]
        port: u16,
        /// The body to answer with.
        #[arg(long)]
        body: std::path::PathBuf,
    },
    /// Outbox commit → message received, with a relay running (needs DATABASE_URL, AMQP_URL).
    OutboxLatency {
        #[command(flatten)]
        conn: QueueConn,
        /// Messages per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Seconds to run (at most 600).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// No-op messages a running `stampede delivery` consumes per second.
    ///
    /// To measure the consumer alone, fill the queue while no worker runs (`--phase fill`), start
    /// the worker, and time the drain (`--phase drain`).
    QueueThroughput {
        #[command(flatten)]
        conn: QueueConn,
        /// Messages to send (at most 1,000,000).
        #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        messages: u32,
        /// `fill`, `drain`, or `both` (publish while the worker consumes).
        #[arg(long, default_value = "both", value_parser = ["fill", "drain", "both"])]
        phase: String,
    },
}

/// Where the queue benchmarks find Stampede's database and broker.
#[derive(Debug, clap::Args)]
struct QueueConn {
    /// The Stampede database (migrated).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The broker Stampede uses.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The queue prefix Stampede uses.
    #[arg(long, env = "AMQP_QUEUE_PREFIX", default_value = "stampede")]
    queue_prefix: String,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    allow_remote: bool,
}

pub(crate) fn loopback_only(url: &str, var: &str) -> anyhow::Result<()> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .map(|hostport| {
            if let Some(v6) = hostport.strip_prefix('[') {
                v6.split(']').next().unwrap_or("").to_string()
            } else {
                hostport.split(':').next().unwrap_or("").to_string()
            }
        })
        .unwrap_or_default();
    let ok = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(
        ok,
        "{var} points at {host:?}, which is not a loopback address; pass --allow-remote to load a remote server"
    );
    Ok(())
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[index] * 10.0).round() / 10.0
}

fn main() -> ExitCode {
    let command = Command::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stampede-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("stampede-loadtest: FAILED: at least one --slo rule was not met");
            ExitCode::from(1)
        }
        Err(e) if e.downcast_ref::<surge::NotStarted>().is_some() => {
            eprintln!("stampede-loadtest: not started, no load was sent: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("stampede-loadtest: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command; `Ok(false)` when a surge scenario's rules failed.
async fn run(command: Command) -> anyhow::Result<bool> {
    let report = match command {
        Command::Argon2 { threads, seconds } => argon2_rate(threads, seconds).await?,
        Command::JsonCeiling { port, body } => {
            json_ceiling(port, &body).await?;
            return Ok(true);
        }
        Command::Signup(args) => signup::run(args).await?,
        Command::SignupWave(args) => return surge::signup_wave::run(args).await,
        Command::MigrationDay(args) => return surge::migration_day::run(args).await,
        Command::ViralPost(args) => return surge::viral_post::run(args).await,
        Command::StreamingCrowd(args) => return surge::streaming_crowd::run(args).await,
        Command::DeadPeers(args) => dead_peers::run(args).await?,
        Command::ChaosLedger(args) => chaos::run(args).await?,
        Command::Media(args) => media::run(args).await?,
        Command::Federation(args) => federation::run(args).await?,
        Command::StreamingCapacity(args) => streaming_capacity::run(args).await?,
        Command::OutboxLatency {
            conn,
            rate,
            seconds,
        } => {
            let (pool, queue) = connect(&conn).await?;
            outbox_latency(&pool, &queue, rate, seconds).await?
        }
        Command::QueueThroughput {
            conn,
            messages,
            phase,
        } => {
            let (_, queue) = connect(&conn).await?;
            queue_throughput(&queue, messages, &phase).await?
        }
    };
    println!("{report}");
    Ok(true)
}

async fn argon2_rate(threads: Option<usize>, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // The same code the server hashes with, memory reused between hashes.
                let mut scratch = stampede_social::passwords::Scratch::new();
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let _ = scratch.hash("correct horse battery staple");
                    count += 1;
                }
                count
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    Ok(serde_json::json!({
        "scenario": "argon2",
        "params": "argon2id m=19456 KiB t=2 p=1",
        "threads": threads,
        "seconds": seconds,
        "hashes": total,
        "hashes_per_s": ((total as f64 / seconds as f64) * 10.0).round() / 10.0,
    }))
}

async fn connect(conn: &QueueConn) -> anyhow::Result<(PgPool, Queue)> {
    if !conn.allow_remote {
        loopback_only(&conn.database_url, "DATABASE_URL")?;
        loopback_only(&conn.amqp_url, "AMQP_URL")?;
    }
    let pool = PgPool::connect(&conn.database_url)
        .await
        .context("cannot reach DATABASE_URL")?;
    let queue = Queue::Amqp(AmqpQueue::new(
        &conn.amqp_url,
        &conn.queue_prefix,
        "stampede-loadtest",
    ));
    queue
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach AMQP_URL: {e}"))?;
    Ok((pool, queue))
}

async fn outbox_latency(
    pool: &PgPool,
    queue: &Queue,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    // The `fetch` queue has no consumer in a cluster without federation yet; read it ourselves.
    let lane = WorkQueue::Fetch;
    let mut consumer = queue.consume(lane, 1000).await?;
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(uuid::Uuid, Instant)>();
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for _ in 0..total {
                ticker.tick().await;
                let envelope = Envelope::new("latency-probe", serde_json::json!({}));
                let mut t = pool.begin().await?;
                outbox::enqueue(&mut t, lane, &envelope).await?;
                t.commit().await?;
                let _ = tx.send((envelope.id, Instant::now()));
            }
            anyhow::Ok(())
        })
    };
    let mut committed: HashMap<uuid::Uuid, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    while (latencies.len() as u64) < total && Instant::now() < deadline {
        tokio::select! {
            Some((id, at)) = rx.recv() => { committed.insert(id, at); }
            next = tokio::time::timeout(Duration::from_secs(1), consumer.next()) => {
                let Ok(Some(Ok(delivery))) = next else { continue };
                let received = Instant::now();
                // The commit timestamp may not have arrived over the channel yet.
                while !committed.contains_key(&delivery.envelope.id) {
                    match rx.recv().await { Some((id, at)) => { committed.insert(id, at); } None => break }
                }
                if let Some(at) = committed.remove(&delivery.envelope.id) {
                    latencies.push(received.saturating_duration_since(at).as_secs_f64() * 1000.0);
                }
                delivery.ack().await?;
            }
        }
    }
    writer.await??;
    if (latencies.len() as u64) < total {
        bail!(
            "only {} of {total} messages arrived within the time limit (is a relay running?)",
            latencies.len()
        );
    }
    latencies.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "scenario": "outbox-latency",
        "messages": total,
        "rate_per_s": rate,
        "commit_to_received_ms": {
            "p50": percentile(&latencies, 0.50),
            "p90": percentile(&latencies, 0.90),
            "p99": percentile(&latencies, 0.99),
            "max": percentile(&latencies, 1.0),
        }
    }))
}

async fn queue_throughput(
    queue: &Queue,
    messages: u32,
    phase: &str,
) -> anyhow::Result<serde_json::Value> {
    let lane = WorkQueue::Distribute;
    if phase == "drain" {
        let started = Instant::now();
        wait_empty(queue, lane).await?;
        let seconds = started.elapsed().as_secs_f64();
        return Ok(serde_json::json!({
            "scenario": "queue-throughput",
            "phase": "drain",
            "messages": messages,
            "consumed_per_s": (f64::from(messages) / seconds).round(),
            "seconds": (seconds * 100.0).round() / 100.0,
        }));
    }
    let started_publish = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for _ in 0..messages {
        let queue = queue.clone();
        in_flight.spawn(async move {
            queue
                .publish(lane, &Envelope::new(NOOP_KIND, serde_json::json!({})))
                .await
        });
        if in_flight.len() >= 256 {
            in_flight.join_next().await.transpose()?.transpose()?;
        }
    }
    while let Some(result) = in_flight.join_next().await {
        result??;
    }
    let publish_s = started_publish.elapsed().as_secs_f64();
    if phase == "fill" {
        return Ok(serde_json::json!({
            "scenario": "queue-throughput",
            "phase": "fill",
            "messages": messages,
            "publish_per_s": (f64::from(messages) / publish_s).round(),
        }));
    }
    // The consumer drains while we publish; time from the first publish to an empty queue.
    wait_empty(queue, lane).await?;
    let total_s = started_publish.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "scenario": "queue-throughput",
        "messages": messages,
        "publish_per_s": (f64::from(messages) / publish_s).round(),
        "consumed_per_s": (f64::from(messages) / total_s).round(),
        "seconds": (total_s * 100.0).round() / 100.0,
    }))
}

async fn wait_empty(queue: &Queue, lane: WorkQueue) -> anyhow::Result<()> {
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        if queue.depth(lane).await == Some(0) {
            return Ok(());
        }
        ensure!(
            Instant::now() < limit,
            "the queue did not drain in 10 minutes (is `stampede delivery` running?)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `body` as `application/json` to every request on 127.0.0.1:`port`: what axum and
/// this machine can answer at most for a page of that size, with no work behind it.
async fn json_ceiling(port: u16, body: &std::path::Path) -> anyhow::Result<()> {
    let body = bytes::Bytes::from(std::fs::read(body)?);
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
