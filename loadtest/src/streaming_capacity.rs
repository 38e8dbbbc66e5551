//! `streaming-capacity`: how many WebSocket clients one streaming process holds, at what memory,
//! and how fast one public event reaches all of them.
//!
//! N connections open to `/api/v1/streaming?stream=user` (tokens `<prefix><n>`, seeded by
//! loadtest/streaming.sh), each also subscribing to `public`, spread over several loopback source
//! addresses so that ephemeral ports do not run out. Once all are open, the server's resident
//! memory is read from /proc, then `--events` public events are published straight to the
//! streaming channel in Redis — exactly what a delivery worker publishes — and every client
//! notes when each arrives. Lag is publish → frame read by the client. One JSON line results.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The streaming server.
    #[arg(long, default_value = "127.0.0.1:4000")]
    server: SocketAddr,
    /// Connections to hold open.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=300_000))]
    connections: u64,
    /// Tokens are `<prefix>1` … `<prefix>N`.
    #[arg(long, default_value = "bench-")]
    token_prefix: String,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Public events to publish once everyone is connected.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    events: u64,
    /// Milliseconds between events.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    interval_ms: u64,
    /// Where the streaming server's Redis is, and its namespace.
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long, env = "REDIS_NAMESPACE", default_value = "stampede")]
    redis_namespace: String,
    /// The streaming server's process id, to read its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(10..=3600))]
    time_limit: u64,
    /// Client `i` uses token `<prefix><first-token + i>` (several load generators, each its
    /// own slice of the accounts).
    #[arg(long, default_value_t = 1)]
    first_token: u64,
    /// Run as one of several load generators: once connected, write `ready-<pid>` (the count)
    /// here, publish nothing, and wait for `published` (one line per event: the Unix µs at which
    /// its status was posted through the API, `capacity-<k>` in its text) before measuring.
    #[arg(long)]
    barrier_dir: Option<std::path::PathBuf>,
    /// With --barrier-dir: write every lag (µs, one per line) here, for a merged percentile.
    #[arg(long)]
    lags_file: Option<std::path::PathBuf>,
}

/// Connections per source address: well under the 28,000 ephemeral ports (32768–60999), since
/// a previous run's ports may still be in TIME_WAIT.
const PER_SOURCE: u64 = 10_000;

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system) `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) — utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The event number in a frame (`… "id":"capacity-<k>" …`).
fn event_number(text: &str) -> Option<usize> {
    let at = text.find("capacity-")? + "capacity-".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

struct Shared {
    /// Arrival time (Unix µs) of event k at client c: arrivals[k * n + c].
    arrivals: Vec<AtomicU64>,
    n: usize,
    frames: AtomicU64,
}

async fn client(
    index: usize,
    args: Arc<Args>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // 127.<run>.<block>.2: each run (by process id) uses its own addresses.
    let run = 1 + (std::process::id() % 250) as u8;
    let source = Ipv4Addr::new(127, run, (index as u64 / PER_SOURCE) as u8, 2);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(args.server).await?;
    let url = format!(
        "ws://{}/api/v1/streaming?stream=user&access_token={}{}",
        args.server,
        args.token_prefix,
        index as u64 + args.first_token
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        url.into_client_request()?,
        stream,
        Some(config),
    )
    .await?;
    ws.send(Message::Text(
        json!({"type": "subscribe", "stream": "public"})
            .to_string()
            .into(),
    ))
    .await?;
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => break,
                message = ws.next() => message,
            };
            let Some(Ok(message)) = message else { break };
            if let Message::Text(text) = message {
                let at = unix_micros();
                shared.frames.fetch_add(1, Ordering::Relaxed);
                if let Some(k) = event_number(&text)
                    && let Some(slot) = shared.arrivals.get(k * shared.n + index)
                {
                    let _ = slot.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
        }
    }))
}

/// A status about the size of a real one (~1.7 KB of JSON).
fn status_json(k: u64) -> String {
    json!({
        "id": format!("capacity-{k}"),
        "created_at": "2026-11-22T00:00:00.000Z",
        "in_reply_to_id": null, "in_reply_to_account_id": null,
        "sensitive": false, "spoiler_text": "", "visibility": "public", "language": "en",
        "uri": "https://stampede.test/users/bench/statuses/1",
        "url": "https://stampede.test/@bench/1",
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "edited_at": null,
        "content": format!("<p>Capacity event {k}: {}</p>", "lorem ipsum dolor sit amet ".repeat(8)),
        "reblog": null, "application": null,
        "account": {
            "id": "1", "username": "bench", "acct": "bench", "display_name": "Bench",
            "locked": false, "bot": false, "discoverable": true, "group": false,
            "created_at": "2026-11-22T00:00:00.000Z", "note": "<p>Publishing for the benchmark</p>",
            "url": "https://stampede.test/@bench", "uri": "https://stampede.test/users/bench",
            "avatar": "https://stampede.test/avatars/original/missing.png",
            "avatar_static": "https://stampede.test/avatars/original/missing.png",
            "header": "https://stampede.test/headers/original/missing.png",
            "header_static": "https://stampede.test/headers/original/missing.png",
            "followers_count": 100000, "following_count": 0, "statuses_count": 1,
            "last_status_at": "2026-11-22", "emojis": [], "fields": []
        },
        "media_attachments": [], "mentions": [], "tags": [], "emojis": [],
        "card": null, "poll": null
    })
    .to_string()
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[i] as f64 / 100.0).round() / 10.0
}

/// As one of several load generators: says it is ready, then waits until every event has been
/// posted (by the script, through the API) and returns when each was posted.
async fn wait_for_posts(
    dir: &std::path::Path,
    connected: usize,
    events: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<u64>> {
    std::fs::write(
        dir.join(format!("ready-{}", std::process::id())),
        connected.to_string(),
    )?;
    loop {
        let posted: Vec<u64> = std::fs::read_to_string(dir.join("published"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if posted.len() >= events {
            return Ok(posted[..events].to_vec());
        }
        ensure!(
            Instant::now() < deadline,
            "time limit reached waiting for the posts ({} of {events})",
            posted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    ensure!(
        args.server.ip().is_loopback(),
        "--server {} is not a loopback address",
        args.server
    );
    crate::loopback_only(&args.redis_url, "--redis-url")?;
    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let n = args.connections as usize;
    let events = args.events as usize;
    let shared = Arc::new(Shared {
        arrivals: (0..n * events).map(|_| AtomicU64::new(0)).collect(),
        n,
        frames: AtomicU64::new(0),
    });
    let args = Arc::new(args);
    let stop = CancellationToken::new();
    let cache = stampede_cache::Cache::Redis(
        stampede_cache::redis_backend::RedisCache::new(&args.redis_url, &args.redis_namespace)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    cache.check().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let health = reqwest::get(format!("http://{}/api/v1/streaming/health", args.server))
        .await
        .with_context(|| format!("the streaming server at {} is not reachable", args.server))?;
    ensure!(
        health.status().is_success(),
        "health check: {}",
        health.status()
    );

    // Open everyone.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut opening = tokio::task::JoinSet::new();
    for index in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (args, shared, stop) = (args.clone(), shared.clone(), stop.clone());
        opening.spawn(async move {
            let result =
                tokio::time::timeout(Duration::from_secs(30), client(index, args, shared, stop))
                    .await;
            drop(permit);
            result.map_err(anyhow::Error::from).and_then(|r| r)
        });
        if index % 10_000 == 9_999 {
            eprintln!(
                "streaming-capacity: {} connecting after {:.0} s",
                index + 1,
                started.elapsed().as_secs_f64()
            );
        }
        ensure!(
            Instant::now() < deadline,
            "time limit reached while connecting"
        );
    }
    let mut readers = Vec::with_capacity(n);
    let mut failed = 0u64;
    let mut first_error = None;
    while let Some(result) = opening.join_next().await {
        match result {
            Ok(Ok(reader)) => readers.push(reader),
            Ok(Err(error)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let connected = readers.len();
    eprintln!(
        "streaming-capacity: {connected} connected, {failed} failed in {connect_seconds:.0} s{}",
        first_error
            .map(|e| format!(" (first failure: {e})"))
            .unwrap_or_default()
    );
    // Let subscriptions settle, then read memory at the plateau.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let server_rss = args.server_pid.and_then(rss);
    let client_rss = rss(std::process::id());

    // Broadcast.
    let cpu_before = (
        args.server_pid.and_then(cpu_seconds),
        cpu_seconds(std::process::id()),
    );
    let published = match &args.barrier_dir {
        Some(dir) => wait_for_posts(dir, connected, events, deadline).await?,
        None => {
            let mut published = Vec::with_capacity(events);
            for k in 0..events {
                let at = unix_micros();
                let event = json!({
                    "event": "update",
                    "payload": status_json(k as u64),
                    "published_ms": at / 1000,
                    "author": 1,
                    "public": true,
                    "local": true,
                });
                cache
                    .publish("streaming:status", &event.to_string())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                published.push(at);
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
            published
        }
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_used = |before: Option<f64>, pid: Option<u32>| {
        Some(((pid.and_then(cpu_seconds)? - before?) * 100.0).round() / 100.0)
    };
    let server_cpu = cpu_used(cpu_before.0, args.server_pid);
    let client_cpu = cpu_used(cpu_before.1, Some(std::process::id()));
    stop.cancel();
    for reader in readers {
        let _ = reader.await;
    }

    let mut all = Vec::with_capacity(n * events);
    let mut per_event = Vec::new();
    for (k, sent) in published.iter().enumerate() {
        let mut lags: Vec<u64> = shared.arrivals[k * n..(k + 1) * n]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|&a| a > 0)
            .map(|a| a.saturating_sub(*sent))
            .collect();
        lags.sort_unstable();
        per_event.push(json!({
            "event": k,
            "delivered": lags.len(),
            "p50_ms": percentile_ms(&lags, 0.50),
            "p99_ms": percentile_ms(&lags, 0.99),
            "max_ms": percentile_ms(&lags, 1.0),
        }));
        all.extend(lags);
    }
    all.sort_unstable();
    if let Some(path) = &args.lags_file {
        let lines = all
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(path, lines + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let expected = connected * events;
    Ok(json!({
            "benchmark": "streaming-capacity",
            "connections": n,
            "connected": connected,
            "failed": failed,
            "connect_seconds": (connect_seconds * 10.0).round() / 10.0,
            "server_rss_mib": server_rss.map(|b| b / (1 << 20)),
            "server_kib_per_connection": server_rss.map(|b| (b as f64 / 1024.0 / connected.max(1) as f64 * 10.0).round() / 10.0),
            "client_rss_mib": client_rss.map(|b| b / (1 << 20)),
            "events": events,
            "deliveries": all.len(),
            "deliveries_expected": expected,
            "lag_p50_ms": percentile_ms(&all, 0.50),
            "lag_p99_ms": percentile_ms(&all, 0.99),
            "lag_max_ms": percentile_ms(&all, 1.0),
            "frames_received": shared.frames.load(Ordering::Relaxed),
            "broadcast_cpu_seconds": {"server": server_cpu, "client": client_cpu},
            "server_cpu_us_per_delivery": server_cpu.map(|c| (c * 1e6 / all.len().max(1) as f64 * 10.0).round() / 10.0),
            "per_event": per_event,
    }))
}
