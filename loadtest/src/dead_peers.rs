//! `dead-peers`: delivery to a federation where a share of the servers are dead, through the
//! real paths, against a running Stampede on loopback.
//!
//! This process is the federation: `--peers` fake remote servers, each its own domain (one
//! loopback port each) with one actor that follows the local author (a signed Follow, answered
//! by Stampede's signed Accept). Then `--hang-share` of them accept connections and never answer,
//! `--error-share` answer 500, the rest answer 202; the author posts `--rate` statuses a second
//! for `--seconds` through the API. Reported: deliveries per second to the live servers and the
//! latency from the API's answer to each live server's receipt (p50/p99/max), the attempts the
//! dead ones received, and a burst (`--burst` posts at once) measuring signed deliveries per
//! second beside the raw RSA-2048 signing rate measured in the same run. Run it once with dead
//! servers and once without (`loadtest/dead-peers.sh` does both) and compare the live latency.
//!
//! The fake servers, the load generator and Stampede (with PostgreSQL, Redis, RabbitMQ) share
//! the machine's cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use stampede_activitypub::keys::{self, PrivateKey};
use tokio::sync::Mutex;

use crate::federation::{
    activity_json, actor_document, api, await_followers, me, percentile, raw_sign_rate, send_signed,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stampede's base URL (loopback only).
    #[arg(long)]
    pub base_url: String,
    /// A local account's token: the author every peer follows.
    #[arg(long)]
    pub author_token: String,
    /// Fake remote servers (one domain and one follower each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub peers: u16,
    /// Share of the peers that accept connections and never answer.
    #[arg(long, default_value_t = 0.3)]
    pub hang_share: f64,
    /// Share of the peers that answer 500.
    #[arg(long, default_value_t = 0.1)]
    pub error_share: f64,
    /// Posts per second in the steady phase.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Seconds of the steady phase.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Posts sent at once after the steady phase (signed deliveries per second).
    #[arg(long, default_value_t = 10)]
    pub burst: usize,
    /// The first fake server's port; the others follow it.
    #[arg(long, default_value_t = 21000)]
    pub port_base: u16,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Live,
    Hang,
    Error,
}

/// What every fake server shares.
struct Federation {
    key: PrivateKey,
    public_pem: String,
    /// Set once every follow is in: from then on the dead servers are dead.
    dead: AtomicBool,
    /// Note URI → when the API answered the post.
    posted: Mutex<HashMap<String, Instant>>,
    /// Latencies (ms) of deliveries of posted notes to live servers.
    latencies: Mutex<Vec<f64>>,
    live_received: AtomicU64,
    last_live: Mutex<Option<Instant>>,
    hang_attempts: AtomicU64,
    error_attempts: AtomicU64,
}

struct Peer {
    origin: String,
    kind: Kind,
    fed: Arc<Federation>,
}

impl Peer {
    fn actor(&self) -> String {
        format!("{}/users/f", self.origin)
    }
}

async fn actor(State(peer): State<Arc<Peer>>, Path(_name): Path<String>) -> Response {
    activity_json(&actor_document(&peer.actor(), "f", &peer.fed.public_pem))
}

async fn inbox(State(peer): State<Arc<Peer>>, body: Bytes) -> StatusCode {
    let fed = &peer.fed;
    if fed.dead.load(Ordering::Relaxed) {
        match peer.kind {
            Kind::Hang => {
                fed.hang_attempts.fetch_add(1, Ordering::Relaxed);
                // Accepted and never answered (the sender's timeout ends it).
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return StatusCode::ACCEPTED;
            }
            Kind::Error => {
                fed.error_attempts.fetch_add(1, Ordering::Relaxed);
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            Kind::Live => {}
        }
    }
    let now = Instant::now();
    let activity: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(note) = activity["object"]["id"].as_str()
        && let Some(at) = fed.posted.lock().await.get(note).copied()
    {
        fed.live_received.fetch_add(1, Ordering::Relaxed);
        fed.latencies
            .lock()
            .await
            .push(now.duration_since(at).as_secs_f64() * 1000.0);
        *fed.last_live.lock().await = Some(now);
    }
    StatusCode::ACCEPTED
}

/// Posts `text` as the author; records when the API answered.
async fn post_note(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    fed: &Federation,
    text: &str,
) -> anyhow::Result<()> {
    let status = api(
        client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/statuses"),
        token,
        Some(&[("status", text)]),
    )
    .await?;
    let uri = status["uri"].as_str().context("a status without uri")?;
    fed.posted
        .lock()
        .await
        .insert(uri.to_string(), Instant::now());
    Ok(())
}

/// Waits until the live servers have `expected` deliveries of posted notes (or 120 s pass).
async fn wait_for(fed: &Federation, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while fed.live_received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn summary(latencies: &mut [f64]) -> Value {
    latencies.sort_by(f64::total_cmp);
    json!({
        "samples": latencies.len(),
        "p50": percentile(latencies, 0.5).round(),
        "p99": percentile(latencies, 0.99).round(),
        "max": latencies.last().copied().unwrap_or(0.0).round(),
    })
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    crate::loopback_only(&args.base_url, "--base-url")?;
    ensure!(
        (0.0..=1.0).contains(&(args.hang_share + args.error_share))
            && args.hang_share >= 0.0
            && args.error_share >= 0.0,
        "--hang-share and --error-share must be shares that add up to at most 1"
    );
    let base = args.base_url.trim_end_matches('/').to_string();
    let pem = keys::generate()?;
    eprintln!("dead-peers: measuring the raw RSA-2048 signing rate (3 s, all cores)");
    let raw = raw_sign_rate(&pem.private)?;
    let fed = Arc::new(Federation {
        key: PrivateKey::from_pem(&pem.private)?,
        public_pem: pem.public.clone(),
        dead: AtomicBool::new(false),
        posted: Mutex::default(),
        latencies: Mutex::default(),
        live_received: AtomicU64::new(0),
        last_live: Mutex::new(None),
        hang_attempts: AtomicU64::new(0),
        error_attempts: AtomicU64::new(0),
    });
    let peers = usize::from(args.peers);
    let hang = (peers as f64 * args.hang_share).round() as usize;
    let error = (peers as f64 * args.error_share).round() as usize;
    let live = peers - hang - error;
    let mut all = Vec::with_capacity(peers);
    for i in 0..peers {
        let port = args
            .port_base
            .checked_add(i as u16)
            .context("--port-base + --peers passes 65535")?;
        // Dead and live servers interleave (i ↦ 7919·i mod peers is a permutation, 7919
        // being a prime above the most peers), so every deliver message names some of each.
        let rank = i * 7919 % peers;
        let kind = if rank < hang {
            Kind::Hang
        } else if rank < hang + error {
            Kind::Error
        } else {
            Kind::Live
        };
        let peer = Arc::new(Peer {
            origin: format!("http://127.0.0.1:{port}"),
            kind,
            fed: fed.clone(),
        });
        let app = Router::new()
            .route("/users/{name}", get(actor))
            .route("/users/{name}/inbox", post(inbox))
            .with_state(peer.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .with_context(|| format!("binding fake server {i} on port {port}"))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        all.push(peer);
    }
    let counted = |k: Kind| all.iter().filter(|p| p.kind == k).count();
    ensure!(
        counted(Kind::Live) == live,
        "{} live, {live} meant",
        counted(Kind::Live)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    // Every peer's actor follows the author.
    let author = me(&client, &base, &args.author_token).await?;
    let author_uri = author["uri"].as_str().context("no author uri")?.to_string();
    eprintln!("dead-peers: {peers} peers follow the author");
    let results: Vec<anyhow::Result<u16>> =
        futures_util::stream::iter(all.iter().map(|peer| {
            let follow = json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{}#follows/1", peer.actor()), "type": "Follow",
                "actor": peer.actor(), "object": author_uri,
            });
            let (client, fed, base, actor) =
                (client.clone(), fed.clone(), base.clone(), peer.actor());
            async move {
                send_signed(&client, &fed.key, &actor, &format!("{base}/inbox"), &follow).await
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;
    for result in results {
        let status = result?;
        ensure!(status == 202, "a Follow answered {status}");
    }
    await_followers(
        &client,
        &base,
        &args.author_token,
        peers as u64,
        Duration::from_secs(300),
    )
    .await?;
    // Let the Accepts go out while everyone still answers, then kill the dead.
    tokio::time::sleep(Duration::from_secs(5)).await;
    fed.dead.store(true, Ordering::Relaxed);

    // Steady phase.
    eprintln!(
        "dead-peers: {hang} hang, {error} answer 500, {live} live; {} posts/s for {} s",
        args.rate, args.seconds
    );
    let started = Instant::now();
    let total = (args.rate * args.seconds as f64).round() as usize;
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        post_note(
            &client,
            &base,
            &args.author_token,
            &fed,
            &format!("steady {n}"),
        )
        .await?;
    }
    let steady_expected = (total * live) as u64;
    wait_for(&fed, steady_expected).await;
    let steady_received = fed.live_received.load(Ordering::Relaxed);
    let steady_span = fed
        .last_live
        .lock()
        .await
        .map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64());
    let mut steady_lat = std::mem::take(&mut *fed.latencies.lock().await);

    // Burst: as fast as the API takes them.
    eprintln!("dead-peers: a burst of {} posts", args.burst);
    let before = fed.live_received.load(Ordering::Relaxed);
    let burst_started = Instant::now();
    for n in 0..args.burst {
        post_note(
            &client,
            &base,
            &args.author_token,
            &fed,
            &format!("burst {n}"),
        )
        .await?;
    }
    let burst_expected = (args.burst * live) as u64;
    wait_for(&fed, before + burst_expected).await;
    let burst_received = fed.live_received.load(Ordering::Relaxed) - before;
    let burst_span = fed
        .last_live
        .lock()
        .await
        .map_or(f64::NAN, |t| t.duration_since(burst_started).as_secs_f64());
    let mut burst_lat = std::mem::take(&mut *fed.latencies.lock().await);
    let burst_rate = burst_received as f64 / burst_span;

    let report = json!({
        "peers": { "live": live, "hang": hang, "error_500": error },
        "raw_rsa2048_signs_per_s": raw.round(),
        "steady": {
            "posts": total, "posts_per_s": args.rate,
            "live_expected": steady_expected, "live_received": steady_received,
            "live_deliveries_per_s": (steady_received as f64 / steady_span).round(),
            "live_latency_ms": summary(&mut steady_lat),
        },
        "burst": {
            "posts": args.burst, "live_expected": burst_expected, "live_received": burst_received,
            "seconds": (burst_span * 100.0).round() / 100.0,
            "live_deliveries_per_s": burst_rate.round(),
            "ratio_to_raw_signing": ((burst_rate / raw) * 1000.0).round() / 1000.0,
            "live_latency_ms": summary(&mut burst_lat),
        },
        "dead_attempts": {
            "hang": fed.hang_attempts.load(Ordering::Relaxed),
            "error_500": fed.error_attempts.load(Ordering::Relaxed),
        },
    });
    // For a person (the JSON line on standard output is for machines).
    let steady = &report["steady"];
    let burst = &report["burst"];
    eprintln!(
        "dead-peers report\n  servers: {live} live, {hang} hang, {error} answer 500\n  \
         steady ({} posts/s × {} s): {}/{} live deliveries, {} a second; latency p50 {} ms, \
         p99 {} ms, max {} ms\n  burst ({} posts): {} live deliveries a second = {} of the raw \
         RSA-2048 signing rate ({} a second); latency p99 {} ms\n  attempts at dead servers: \
         {} hang, {} × 500",
        args.rate,
        args.seconds,
        steady["live_received"],
        steady["live_expected"],
        steady["live_deliveries_per_s"],
        steady["live_latency_ms"]["p50"],
        steady["live_latency_ms"]["p99"],
        steady["live_latency_ms"]["max"],
        args.burst,
        burst["live_deliveries_per_s"],
        burst["ratio_to_raw_signing"],
        report["raw_rsa2048_signs_per_s"],
        burst["live_latency_ms"]["p99"],
        report["dead_attempts"]["hang"],
        report["dead_attempts"]["error_500"],
    );
    ensure!(
        steady_received == steady_expected && burst_received == burst_expected,
        "live servers missed deliveries: {report}"
    );
    Ok(report)
}
