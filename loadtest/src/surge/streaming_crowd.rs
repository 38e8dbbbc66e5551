//! `streaming-crowd`: N streaming connections held open while one account they all follow
//! posts; how long until each post reaches each connection?
//!
//! Seeding: N + 1 confirmed users through the fast path, each listener following the publisher
//! through the API. Then N `user` streams open (WebSocket or SSE, at `--connect-rate` a second),
//! the publisher posts `--posts` statuses `--post-interval-ms` apart, and every `update` that
//! arrives is matched to its post: `delivery` is the time from the start of
//! `POST /api/v1/statuses` to the event's arrival. `delivery-loss` is the share of
//! (post, connected listener) pairs never delivered by `--grace` seconds after the last post.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api;
use super::record::{Outcome, Recorder};
use super::seed;
use super::slo::Catalogue;
use super::streaming::{self, Transport, Update};
use super::summary::RunInfo;
use super::viral_post::{follow_all, preflight};
use super::{Common, not_started};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// The target server's database, for the seeding fast path.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The streaming server [default: what /api/v1/instance advertises].
    #[arg(long)]
    pub streaming_url: Option<String>,
    /// Connections held open at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pub connections: u64,
    /// How clients connect.
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    pub transport: Transport,
    /// Connections opened per second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub connect_rate: u64,
    /// Statuses the publisher posts.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub posts: u64,
    /// Milliseconds between posts.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub post_interval_ms: u64,
    /// Seconds to wait for deliveries after the last post.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub grace: u64,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let catalogue = Catalogue {
        ops: vec!["follow", "post"],
        measures: vec!["delivery"],
        shares: vec!["delivery-loss"],
    };
    let mut urls = vec![("DATABASE_URL", args.database_url.as_str())];
    if let Some(s) = &args.streaming_url {
        urls.push(("--streaming-url", s));
    }
    let prep = args
        .common
        .prepare("streaming-crowd", catalogue, &urls)
        .await?;
    let client = api::client(prep.timeout, 64)?;
    let stream_base = async {
        let s = streaming::discover(&client, &prep.base, args.streaming_url.as_deref()).await?;
        if !args.common.allow_remote {
            crate::loopback_only(&s, "the streaming URL")?;
        }
        streaming::require(&client, &s, args.transport).await?;
        anyhow::Ok(s)
    }
    .await
    .map_err(not_started)?;
    let seeding = Instant::now();
    let pool = seed::connect(&args.database_url)
        .await
        .map_err(not_started)?;
    let app = api::register_app(&client, &prep.base)
        .await
        .map_err(not_started)?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let pair = seed::users(&pool, &app.client_id, &format!("c{run_id}p"), 2)
        .await
        .map_err(not_started)?;
    preflight(&client, &prep.base, &pair[0], &pair[1])
        .await
        .map_err(not_started)?;
    let publisher = pair[0].clone();
    let mut listeners = vec![pair[1].clone()];
    listeners.extend(
        seed::users(
            &pool,
            &app.client_id,
            &format!("c{run_id}l"),
            args.connections as usize - 1,
        )
        .await?,
    );
    let recorder = Recorder::start("streaming-crowd", prep.progress);
    let failed_follows = follow_all(
        &client,
        &prep.base,
        &publisher.account_id,
        &listeners[1..],
        32,
        &recorder,
    )
    .await;

    // Open the crowd.
    let deadline = Instant::now()
        + Duration::from_secs(listeners.len() as u64 / args.connect_rate + 30)
        + Duration::from_millis(args.posts * args.post_interval_ms)
        + Duration::from_secs(args.grace + 30);
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Update>();
    let mut tasks = Vec::new();
    let mut failed_connects = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.connect_rate as f64));
    eprintln!(
        "streaming-crowd: opening {} {:?} connections",
        listeners.len(),
        args.transport
    );
    let mut opening = tokio::task::JoinSet::new();
    for l in &listeners {
        ticker.tick().await;
        let (base, token, tx, stop) = (
            stream_base.clone(),
            l.token.clone(),
            tx.clone(),
            stop.clone(),
        );
        let transport = args.transport;
        opening.spawn(async move {
            streaming::open(transport, &base, &token, tx, stop, deadline).await
        });
    }
    while let Some(r) = opening.join_next().await {
        match r {
            Ok(Ok(handle)) => tasks.push(handle),
            _ => failed_connects += 1,
        }
    }
    drop(tx);
    let connected = tasks.len() as u64;
    let seeding_s = seeding.elapsed().as_secs_f64();
    eprintln!(
        "streaming-crowd: {connected} connected, {failed_connects} failed, in {seeding_s:.1} s"
    );

    // Publish, and match arrivals to posts.
    let matcher = {
        let recorder = recorder.clone();
        let (post_tx, mut post_rx) = mpsc::unbounded_channel::<(String, Instant)>();
        let handle = tokio::spawn(async move {
            let mut posted: HashMap<String, Instant> = HashMap::new();
            let mut early: HashMap<String, Vec<Instant>> = HashMap::new();
            let mut delivered = 0u64;
            loop {
                tokio::select! {
                    Some((id, at)) = post_rx.recv() => {
                        for received in early.remove(&id).unwrap_or_default() {
                            recorder.measure("delivery", received.saturating_duration_since(at));
                            delivered += 1;
                        }
                        posted.insert(id, at);
                    }
                    update = rx.recv() => {
                        let Some(u) = update else { break };
                        match posted.get(&u.status_id) {
                            Some(at) => {
                                recorder.measure("delivery", u.received.saturating_duration_since(*at));
                                delivered += 1;
                            }
                            None => early.entry(u.status_id).or_default().push(u.received),
                        }
                    }
                }
            }
            delivered
        });
        (post_tx, handle)
    };
    let mut published = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(args.post_interval_ms));
    for k in 0..args.posts {
        ticker.tick().await;
        let started = Instant::now();
        let result = api::form(
            &client,
            &format!("{}/api/v1/statuses", prep.base),
            Some(&publisher.token),
            &[
                ("status", &format!("crowd post {k} of run {run_id}")),
                ("visibility", "public"),
            ],
        )
        .await;
        let outcome = match &result {
            Ok((status, _)) => Outcome::from_status(status.as_u16()),
            Err(_) => Outcome::Transport,
        };
        recorder.request("post", started, outcome);
        if let Ok((_, body)) = result
            && let Some(id) = body["id"].as_str()
        {
            published += 1;
            let _ = matcher.0.send((id.to_string(), started));
        }
    }
    tokio::time::sleep(Duration::from_secs(args.grace)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    drop(matcher.0);
    let delivered = matcher.1.await.unwrap_or(0);
    // Throughput counts the whole recorded run, follows included.
    let load_seconds = recorder.elapsed().as_secs_f64();
    let data = recorder.finish().await;
    let expected = published * connected;
    let loss = if expected == 0 {
        f64::NAN
    } else {
        1.0 - (delivered.min(expected) as f64 / expected as f64)
    };
    let info = RunInfo {
        scenario: "streaming-crowd",
        target: format!("{} (streaming {stream_base})", prep.base),
        parameters: json!({
            "connections": args.connections,
            "transport": format!("{:?}", args.transport),
            "posts": args.posts,
            "post_interval_ms": args.post_interval_ms,
        }),
        load_seconds,
        shares: [("delivery-loss", loss)].into_iter().collect(),
        facts: [
            ("connected".to_string(), json!(connected)),
            ("failed_connects".to_string(), json!(failed_connects)),
            ("follows_failed".to_string(), json!(failed_follows)),
            ("posts_published".to_string(), json!(published)),
            ("deliveries".to_string(), json!(delivered)),
            ("deliveries_expected".to_string(), json!(expected)),
            ("seeding_seconds".to_string(), json!((seeding_s * 10.0).round() / 10.0)),
        ]
        .into_iter()
        .collect(),
        notes: vec![
            "delivery runs from the start of POST /api/v1/statuses to the update event's arrival on the connection.".into(),
        ],
        ..Default::default()
    };
    prep.finish(info, data)
}
