//! `viral-post`: one account with N followers posts; how long until the post is in its
//! followers' home feeds?
//!
//! Seeding: N + 1 confirmed users through the fast path ([`super::seed`]), then each follower
//! follows the poster through `POST /api/v1/accounts/:id/follow` (recorded as `follow`). Then
//! the poster publishes `--posts` statuses one after another; after each, a random sample of
//! `--probes` followers polls `GET /api/v1/timelines/home` until the status is there.
//! `fanout` is, per probe, the time from the start of `POST /api/v1/statuses` to the first poll
//! that showed it (so it is at most one poll interval late); `fanout-complete` is, per post,
//! when the last probe saw it. A probe that never saw it within `--fanout-timeout` counts in
//! `fanout-missing`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use rand::seq::SliceRandom as _;
use reqwest::Method;
use serde_json::json;

use super::api::{self, require_endpoint};
use super::record::{Outcome, Recorder};
use super::seed::{self, Seeded};
use super::slo::Catalogue;
use super::summary::RunInfo;
use super::{Common, not_started};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// The target server's database, for the seeding fast path.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Followers of the posting account.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub followers: u64,
    /// Statuses posted, one after another.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub posts: u64,
    /// Followers whose home feed is polled after each post.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub probes: u64,
    /// Milliseconds between a probe's polls.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    pub poll_ms: u64,
    /// Seconds a post may take to reach every probe.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub fanout_timeout: u64,
    /// Follow requests in flight at once while seeding.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=512))]
    pub concurrency: u64,
}

/// Follows `target` as each of `followers`, at most `concurrency` at once; recorded as `follow`.
pub async fn follow_all(
    client: &reqwest::Client,
    base: &str,
    target: &str,
    followers: &[Seeded],
    concurrency: usize,
    recorder: &Recorder,
) -> u64 {
    let failed = futures_util::stream::iter(followers)
        .map(|f| async move {
            let started = Instant::now();
            let result = client
                .post(format!("{base}/api/v1/accounts/{target}/follow"))
                .bearer_auth(&f.token)
                .send()
                .await;
            let outcome = Outcome::from_reqwest(&result);
            recorder.request("follow", started, outcome);
            outcome != Outcome::Ok
        })
        .buffer_unordered(concurrency)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    failed as u64
}

/// Checks the statuses, follows and home-feed endpoints with two seeded users; the first
/// follows the second. Returns the status it posted.
pub async fn preflight(
    client: &reqwest::Client,
    base: &str,
    poster: &Seeded,
    reader: &Seeded,
) -> anyhow::Result<String> {
    let why = "issue 4: statuses, follows and timelines";
    require_endpoint(
        client,
        base,
        Method::POST,
        &format!("/api/v1/accounts/{}/follow", poster.account_id),
        &reader.token,
        why,
    )
    .await?;
    require_endpoint(
        client,
        base,
        Method::GET,
        "/api/v1/timelines/home",
        &reader.token,
        why,
    )
    .await?;
    let (status, body) = api::form(
        client,
        &format!("{base}/api/v1/statuses"),
        Some(&poster.token),
        &[
            ("status", "preflight: is anyone there?"),
            ("visibility", "public"),
        ],
    )
    .await?;
    anyhow::ensure!(
        status != reqwest::StatusCode::NOT_FOUND,
        "POST /api/v1/statuses answered 404: this server does not serve it yet ({why})"
    );
    anyhow::ensure!(
        status.is_success(),
        "POST /api/v1/statuses answered {status} {body}"
    );
    body["id"]
        .as_str()
        .map(str::to_string)
        .context("POST /api/v1/statuses returned no id")
}

/// One follower polling its home feed for one post.
struct Probe {
    client: reqwest::Client,
    url: String,
    token: String,
    status_id: String,
    posted: Instant,
    poll: Duration,
    limit: Instant,
    recorder: Recorder,
}

async fn probe(p: Probe) -> Option<Duration> {
    let Probe {
        client,
        url,
        token,
        status_id,
        posted,
        poll,
        limit,
        recorder,
    } = p;
    while Instant::now() < limit {
        let started = Instant::now();
        let result = client.get(&url).bearer_auth(&token).send().await;
        let outcome = Outcome::from_reqwest(&result);
        let found = match result {
            Ok(r) if r.status().is_success() => r
                .json::<Vec<serde_json::Value>>()
                .await
                .is_ok_and(|list| list.iter().any(|s| s["id"] == status_id.as_str())),
            _ => false,
        };
        recorder.request("home", started, outcome);
        if found {
            let took = posted.elapsed();
            recorder.measure("fanout", took);
            return Some(took);
        }
        tokio::time::sleep(poll).await;
    }
    None
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let catalogue = Catalogue {
        ops: vec!["follow", "post", "home"],
        measures: vec!["fanout", "fanout-complete"],
        shares: vec!["fanout-missing"],
    };
    let prep = args
        .common
        .prepare(
            "viral-post",
            catalogue,
            &[("DATABASE_URL", &args.database_url)],
        )
        .await?;
    let client = api::client(
        prep.timeout,
        args.concurrency as usize + args.probes as usize,
    )?;
    let seeding = Instant::now();
    let pool = seed::connect(&args.database_url)
        .await
        .map_err(not_started)?;
    let app = api::register_app(&client, &prep.base)
        .await
        .map_err(not_started)?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let pair = seed::users(&pool, &app.client_id, &format!("v{run_id}s"), 2)
        .await
        .map_err(not_started)?;
    preflight(&client, &prep.base, &pair[0], &pair[1])
        .await
        .map_err(not_started)?;
    let star = pair[0].clone();
    eprintln!("viral-post: seeding {} followers", args.followers);
    let mut followers = vec![pair[1].clone()];
    followers.extend(
        seed::users(
            &pool,
            &app.client_id,
            &format!("v{run_id}f"),
            args.followers as usize - 1,
        )
        .await?,
    );
    let recorder = Recorder::start("viral-post", prep.progress);
    let failed_follows = follow_all(
        &client,
        &prep.base,
        &star.account_id,
        &followers[1..],
        args.concurrency as usize,
        &recorder,
    )
    .await;
    let seeding_s = seeding.elapsed().as_secs_f64();
    eprintln!("viral-post: seeded in {seeding_s:.1} s ({failed_follows} follows failed)");
    let poll = Duration::from_millis(args.poll_ms);
    let mut missing = 0u64;
    let mut probed = 0u64;
    for k in 0..args.posts {
        let mut sample: Vec<&Seeded> = followers.iter().collect();
        sample.shuffle(&mut rand::rng());
        sample.truncate(args.probes as usize);
        let posted = Instant::now();
        let (status, body) = api::form(
            &client,
            &format!("{}/api/v1/statuses", prep.base),
            Some(&star.token),
            &[
                ("status", &format!("viral post {k} of run {run_id}")),
                ("visibility", "public"),
            ],
        )
        .await?;
        recorder.request("post", posted, Outcome::from_status(status.as_u16()));
        let Some(id) = body["id"].as_str().map(str::to_string) else {
            eprintln!("viral-post: post {k} failed: {status} {body}");
            continue;
        };
        let limit = posted + Duration::from_secs(args.fanout_timeout);
        let probes: Vec<_> = sample
            .iter()
            .map(|f| {
                tokio::spawn(probe(Probe {
                    client: client.clone(),
                    url: format!("{}/api/v1/timelines/home?limit=10", prep.base),
                    token: f.token.clone(),
                    status_id: id.clone(),
                    posted,
                    poll,
                    limit,
                    recorder: recorder.clone(),
                }))
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for p in futures_util::future::join_all(probes).await {
            probed += 1;
            match p.ok().flatten() {
                Some(took) => slowest = slowest.max(took),
                None => missing += 1,
            }
        }
        recorder.measure("fanout-complete", slowest);
        eprintln!(
            "viral-post: post {} of {}: last of {} probes saw it after {} ms",
            k + 1,
            args.posts,
            sample.len(),
            slowest.as_millis()
        );
    }
    // Throughput counts the whole recorded run, follows included.
    let load_seconds = recorder.elapsed().as_secs_f64();
    let data = recorder.finish().await;
    let share_missing = if probed == 0 {
        f64::NAN
    } else {
        missing as f64 / probed as f64
    };
    let info = RunInfo {
        scenario: "viral-post",
        target: prep.base.clone(),
        parameters: json!({
            "followers": args.followers,
            "posts": args.posts,
            "probes": args.probes,
            "poll_ms": args.poll_ms,
            "fanout_timeout_s": args.fanout_timeout,
        }),
        load_seconds,
        shares: [("fanout-missing", share_missing)].into_iter().collect(),
        facts: [
            ("seeding_seconds".to_string(), json!((seeding_s * 10.0).round() / 10.0)),
            ("follows_failed".to_string(), json!(failed_follows)),
            ("probes_that_never_saw_the_post".to_string(), json!(missing)),
        ]
        .into_iter()
        .collect(),
        notes: vec![
            "Users and tokens were seeded straight into the database (the documented fast path); follows went through the API.".into(),
            format!("fanout is measured by polling: up to {} ms late, and the polls are load too.", args.poll_ms),
        ],
        ..Default::default()
    };
    prep.finish(info, data)
}
