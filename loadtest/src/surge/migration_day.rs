//! `migration-day`: what people do on the day they join. Each goose user is one newcomer who
//! arrives (at `--arrival-rate` a second, `--people` in all), signs up through the real flow
//! (app, client token, `POST /api/v1/accounts`, then the e-mail confirmation by the fast path),
//! follows 50–200 of a seeded pool of established accounts, opens a streaming connection, and
//! then, a few seconds apart, reads the home feed (6 in 10), favourites (2), posts (1) and boosts
//! (1) statuses from it — until `--seconds` have passed.
//!
//! Beside the newcomers, a probe measures fan-out through the API as a follower sees it: a
//! watcher account follows the first established accounts, which post in turn twice a second;
//! the watcher polls its home timeline, and the time from each post's answer to the status in
//! the watcher's home is the `fanout` measurement (resolution: the 100 ms poll).
//!
//! Every seeding request is bounded: a step that does not answer fails the run with a message
//! naming it, instead of waiting silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use goose::goose::GooseResponse;
use goose::prelude::*;
use rand::Rng as _;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api::{self, signup_form};
use super::record::{Outcome, Recorder};
use super::seed::{self, Seeded};
use super::slo::Catalogue;
use super::streaming::{self, Transport, Update};
use super::summary::RunInfo;
use super::{Common, not_started};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// The target server's database: seeding fast path and e-mail confirmation.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Newcomers in all.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pub people: u64,
    /// Newcomers arriving per second.
    #[arg(long, default_value_t = 2.0)]
    pub arrival_rate: f64,
    /// Run length in seconds, arrivals included.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub seconds: u64,
    /// Established accounts seeded for newcomers to follow (each posts once).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(200..=50_000))]
    pub pool: u64,
    /// The streaming server [default: what /api/v1/instance advertises].
    #[arg(long)]
    pub streaming_url: Option<String>,
    /// How streaming clients connect.
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    pub transport: Transport,
    /// Run without streaming connections (for a server without the streaming API yet).
    #[arg(long)]
    pub skip_streaming: bool,
    /// Fan-out probe posts per second (0: no probe).
    #[arg(long, default_value_t = 2.0)]
    pub probe_rate: f64,
}

/// Established accounts the probe's watcher follows, and which post the probe statuses.
const PROBE_AUTHORS: usize = 40;

/// The longest a seeding request may take before the run stops, naming it.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Runs one seeding step, failing with `what` when it does not answer within [`STEP_LIMIT`].
async fn step<T>(
    what: impl FnOnce() -> String,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_LIMIT, work).await {
        Ok(result) => result.with_context(what),
        Err(_) => Err(anyhow::anyhow!(
            "{} did not answer within {} s: the server is stalled (check its logs and /health/ready)",
            what(),
            STEP_LIMIT.as_secs()
        )),
    }
}

/// Posts as the probe authors in turn until `until`, and watches `watcher`'s home timeline for
/// each post, recording the lag as `fanout`. Returns (posted, seen).
async fn probe_fanout(
    client: reqwest::Client,
    base: String,
    authors: Vec<Seeded>,
    watcher: Seeded,
    rate: f64,
    until: Instant,
    recorder: Recorder,
) -> (u64, u64) {
    let posted = Arc::new(tokio::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let poster = {
        let (client, base, posted, recorder, count) = (
            client.clone(),
            base.clone(),
            posted.clone(),
            recorder.clone(),
            count.clone(),
        );
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0usize;
            while Instant::now() < until {
                tick.tick().await;
                let author = &authors[n % authors.len()];
                n += 1;
                let started = Instant::now();
                let text = format!("fan-out probe {n}");
                let result = api::form(
                    &client,
                    &format!("{base}/api/v1/statuses"),
                    Some(&author.token),
                    &[("status", &text)],
                )
                .await;
                let outcome = match &result {
                    Ok((status, _)) => Outcome::from_status(status.as_u16()),
                    Err(_) => Outcome::Transport,
                };
                recorder.request("post", started, outcome);
                if let Ok((status, body)) = result
                    && status.is_success()
                    && let Some(id) = body["id"].as_str()
                {
                    posted.lock().await.insert(id.to_string(), Instant::now());
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    };
    let watch = async {
        let mut seen = 0u64;
        let mut since: Option<String> = None;
        // Keep looking a little after the last post, for the last statuses' fan-out.
        let stop = until + Duration::from_secs(5);
        while Instant::now() < stop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut url = format!("{base}/api/v1/timelines/home?limit=40");
            if let Some(since) = &since {
                url.push_str(&format!("&since_id={since}"));
            }
            let started = Instant::now();
            let result = api::get(&client, &url, Some(&watcher.token)).await;
            let now = Instant::now();
            let outcome = match &result {
                Ok((status, _)) => Outcome::from_status(status.as_u16()),
                Err(_) => Outcome::Transport,
            };
            recorder.request("home", started, outcome);
            let Ok((status, Value::Array(list))) = result else {
                continue;
            };
            if !status.is_success() {
                continue;
            }
            if let Some(newest) = list.first().and_then(|s| s["id"].as_str()) {
                since = Some(newest.to_string());
            }
            let mut posted = posted.lock().await;
            for id in list.iter().filter_map(|s| s["id"].as_str()) {
                if let Some(at) = posted.remove(id) {
                    recorder.measure("fanout", now.saturating_duration_since(at));
                    seen += 1;
                }
            }
            if Instant::now() >= until
                && posted.is_empty()
                && count.load(std::sync::atomic::Ordering::Relaxed) > 0
            {
                break;
            }
        }
        seen
    };
    let ((), seen) = tokio::join!(poster, watch);
    (count.load(std::sync::atomic::Ordering::Relaxed), seen)
}

struct Day {
    pool_accounts: Vec<Seeded>,
    db: PgPool,
    recorder: Recorder,
    run_id: String,
    streaming: Option<(String, Transport)>,
    deadline: Instant,
    updates: mpsc::UnboundedSender<Update>,
}

/// A newcomer's state between transactions.
#[derive(Clone)]
struct Person {
    token: String,
    seen: Vec<String>,
    stop: CancellationToken,
}

async fn call(
    user: &mut GooseUser,
    rec: &Recorder,
    op: &'static str,
    method: GooseMethod,
    path: &str,
    token: Option<&str>,
    form: Option<String>,
) -> Option<Value> {
    let started = Instant::now();
    let Ok(mut b) = user.get_request_builder(&method, path) else {
        rec.request(op, started, Outcome::Transport);
        return None;
    };
    if let Some(form) = form {
        b = b
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
    }
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    let request = GooseRequest::builder()
        .name(op)
        .set_request_builder(b)
        .build();
    let (outcome, body) = match user.request(request).await {
        Ok(GooseResponse {
            response: Ok(r), ..
        }) => {
            let o = Outcome::from_status(r.status().as_u16());
            (o, r.json::<Value>().await.ok())
        }
        Ok(GooseResponse {
            response: Err(e), ..
        }) => (Outcome::from_reqwest(&Err(e)), None),
        Err(_) => (Outcome::Transport, None),
    };
    rec.request(op, started, outcome);
    (outcome == Outcome::Ok).then_some(body).flatten()
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn join(user: &mut GooseUser, day: &Day) -> TransactionResult {
    let rec = &day.recorder;
    let scopes = "read write follow push";
    let app_form = form(&[
        ("client_name", "surge phone app"),
        ("redirect_uris", "urn:ietf:wg:oauth:2.0:oob"),
        ("scopes", scopes),
    ]);
    let Some(app) = call(
        user,
        rec,
        "app",
        GooseMethod::Post,
        "/api/v1/apps",
        None,
        Some(app_form),
    )
    .await
    else {
        return Ok(());
    };
    let token_form = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", app["client_id"].as_str().unwrap_or("")),
        ("client_secret", app["client_secret"].as_str().unwrap_or("")),
        ("scope", scopes),
    ]);
    let Some(client_token) = call(
        user,
        rec,
        "token",
        GooseMethod::Post,
        "/oauth/token",
        None,
        Some(token_form),
    )
    .await
    .and_then(|t| t["access_token"].as_str().map(str::to_string)) else {
        return Ok(());
    };
    let username = format!("m{}{}", day.run_id, user.weighted_users_index);
    let Some(token) = call(
        user,
        rec,
        "signup",
        GooseMethod::Post,
        "/api/v1/accounts",
        Some(&client_token),
        Some(signup_form(&username)),
    )
    .await
    .and_then(|t| t["access_token"].as_str().map(str::to_string)) else {
        return Ok(());
    };
    // The confirmation link in the e-mail, by the fast path.
    if seed::confirm(&day.db, &username).await.is_err() {
        return Ok(());
    }
    let follows = rand::rng()
        .random_range(50..=200)
        .min(day.pool_accounts.len());
    let picks = rand::seq::index::sample(&mut rand::rng(), day.pool_accounts.len(), follows);
    for i in picks {
        let path = format!(
            "/api/v1/accounts/{}/follow",
            day.pool_accounts[i].account_id
        );
        call(
            user,
            rec,
            "follow",
            GooseMethod::Post,
            &path,
            Some(&token),
            None,
        )
        .await;
    }
    let stop = CancellationToken::new();
    if let Some((base, transport)) = &day.streaming {
        let started = Instant::now();
        let opened = streaming::open(
            *transport,
            base,
            &token,
            day.updates.clone(),
            stop.clone(),
            day.deadline,
        )
        .await;
        rec.request(
            "stream",
            started,
            if opened.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Transport
            },
        );
    }
    user.set_session_data(Person {
        token,
        seen: Vec::new(),
        stop,
    });
    Ok(())
}

async fn act(user: &mut GooseUser, day: &Day) -> TransactionResult {
    let Some(person) = user.get_session_data::<Person>() else {
        // The sign-up failed: this newcomer gave up.
        tokio::time::sleep(Duration::from_secs(1)).await;
        return Ok(());
    };
    let token = person.token.clone();
    let target = if person.seen.is_empty() {
        None
    } else {
        Some(person.seen[rand::rng().random_range(0..person.seen.len())].clone())
    };
    let rec = &day.recorder;
    // 6 in 10 read the home feed, 2 favourite, 1 posts, 1 boosts.
    let roll = rand::rng().random_range(0..10);
    match (roll, target) {
        (6 | 7, Some(id)) => {
            let path = format!("/api/v1/statuses/{id}/favourite");
            call(
                user,
                rec,
                "favourite",
                GooseMethod::Post,
                &path,
                Some(&token),
                None,
            )
            .await;
        }
        (9, Some(id)) => {
            let path = format!("/api/v1/statuses/{id}/reblog");
            call(
                user,
                rec,
                "reblog",
                GooseMethod::Post,
                &path,
                Some(&token),
                None,
            )
            .await;
        }
        (8, _) => {
            let text = format!("hello from my first day ({})", day.run_id);
            let body = form(&[("status", &text)]);
            call(
                user,
                rec,
                "post",
                GooseMethod::Post,
                "/api/v1/statuses",
                Some(&token),
                Some(body),
            )
            .await;
        }
        _ => {
            let path = "/api/v1/timelines/home?limit=20";
            let list = call(
                user,
                rec,
                "home",
                GooseMethod::Get,
                path,
                Some(&token),
                None,
            )
            .await;
            let ids: Vec<String> = list
                .as_ref()
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(p) = user.get_session_data_mut::<Person>()
                && !ids.is_empty()
            {
                p.seen = ids;
            }
        }
    }
    Ok(())
}

async fn leave(user: &mut GooseUser) -> TransactionResult {
    if let Some(p) = user.get_session_data::<Person>() {
        p.stop.cancel();
    }
    Ok(())
}

fn transaction(day: &Arc<Day>, which: u8) -> TransactionFunction {
    let day = day.clone();
    Arc::new(move |user| {
        let day = day.clone();
        Box::pin(async move {
            match which {
                0 => join(user, &day).await,
                1 => act(user, &day).await,
                _ => leave(user).await,
            }
        })
    })
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    if !(args.arrival_rate.is_finite() && args.arrival_rate > 0.0 && args.arrival_rate <= 1000.0) {
        return Err(not_started(anyhow::anyhow!(
            "--arrival-rate must be a number of people per second in (0, 1000]"
        )));
    }
    if !(args.probe_rate.is_finite() && (0.0..=100.0).contains(&args.probe_rate)) {
        return Err(not_started(anyhow::anyhow!(
            "--probe-rate must be a number of posts per second in [0, 100]"
        )));
    }
    let ramp = args.people as f64 / args.arrival_rate;
    if ramp >= args.seconds as f64 {
        return Err(not_started(anyhow::anyhow!(
            "{} people arriving at {}/s need {ramp:.0} s, longer than --seconds {}: lower --people or raise --arrival-rate or --seconds",
            args.people,
            args.arrival_rate,
            args.seconds
        )));
    }
    let mut ops = vec![
        "app",
        "token",
        "signup",
        "follow",
        "home",
        "favourite",
        "reblog",
        "post",
    ];
    if !args.skip_streaming {
        ops.push("stream");
    }
    let catalogue = Catalogue {
        ops,
        measures: if args.probe_rate > 0.0 {
            vec!["fanout"]
        } else {
            vec![]
        },
        ..Default::default()
    };
    let mut urls = vec![("DATABASE_URL", args.database_url.as_str())];
    if let Some(s) = &args.streaming_url {
        urls.push(("--streaming-url", s));
    }
    let prep = args
        .common
        .prepare("migration-day", catalogue, &urls)
        .await?;
    let client = api::client(prep.timeout, 32)?;
    let streaming = if args.skip_streaming {
        None
    } else {
        let s = async {
            let s = streaming::discover(&client, &prep.base, args.streaming_url.as_deref()).await?;
            if !args.common.allow_remote {
                crate::loopback_only(&s, "the streaming URL")?;
            }
            streaming::require(&client, &s, args.transport).await?;
            anyhow::Ok(s)
        }
        .await
        .map_err(|e| {
            not_started(e.context(
                "pass --skip-streaming to run migration-day without streaming connections",
            ))
        })?;
        Some((s, args.transport))
    };
    let seeding = Instant::now();
    let db = seed::connect(&args.database_url)
        .await
        .map_err(not_started)?;
    let app = api::register_app(&client, &prep.base)
        .await
        .map_err(not_started)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let mut pool_accounts = seed::users(
        &db,
        &app.client_id,
        &format!("m{run_id}p"),
        args.pool as usize + 1,
    )
    .await
    .map_err(not_started)?;
    let watcher = pool_accounts.pop().context("seeding made no accounts")?;
    // Preflight every endpoint the day uses, with two established accounts.
    let (a, b) = (&pool_accounts[0], &pool_accounts[1]);
    let status = super::viral_post::preflight(&client, &prep.base, a, b)
        .await
        .map_err(not_started)?;
    for path in [
        format!("/api/v1/statuses/{status}/favourite"),
        format!("/api/v1/statuses/{status}/reblog"),
    ] {
        api::require_endpoint(
            &client,
            &prep.base,
            Method::POST,
            &path,
            &b.token,
            "issue 4: favourites and boosts",
        )
        .await
        .map_err(not_started)?;
    }
    eprintln!(
        "migration-day: {} established accounts post once each",
        pool_accounts.len()
    );
    for (i, acct) in pool_accounts[1..].iter().enumerate() {
        step(
            || {
                format!(
                    "seeding: POST /api/v1/statuses (established account {})",
                    i + 1
                )
            },
            api::form_ok(
                &client,
                &format!("{}/api/v1/statuses", prep.base),
                Some(&acct.token),
                &[("status", "an established account's post")],
            ),
        )
        .await?;
    }
    let probe_authors: Vec<Seeded> = pool_accounts[1..]
        .iter()
        .take(PROBE_AUTHORS)
        .cloned()
        .collect();
    if args.probe_rate > 0.0 {
        eprintln!(
            "migration-day: the fan-out probe's watcher follows {} established accounts",
            probe_authors.len()
        );
        for author in &probe_authors {
            step(
                || {
                    format!(
                        "seeding: the probe watcher's POST /api/v1/accounts/{}/follow",
                        author.account_id
                    )
                },
                api::form_ok(
                    &client,
                    &format!("{}/api/v1/accounts/{}/follow", prep.base, author.account_id),
                    Some(&watcher.token),
                    &[],
                ),
            )
            .await?;
        }
    }
    let seeding_s = seeding.elapsed().as_secs_f64();
    let recorder = Recorder::start("migration-day", prep.progress);
    let (updates_tx, mut updates_rx) = mpsc::unbounded_channel();
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        while updates_rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let probe = (args.probe_rate > 0.0).then(|| {
        tokio::spawn(probe_fanout(
            client.clone(),
            prep.base.clone(),
            probe_authors,
            watcher,
            args.probe_rate,
            deadline,
            recorder.clone(),
        ))
    });
    let day = Arc::new(Day {
        pool_accounts,
        db,
        recorder: recorder.clone(),
        run_id,
        streaming,
        deadline,
        updates: updates_tx,
    });
    // Goose counts its run time from the last user's start: what is left after the arrivals.
    let run_time = (args.seconds as f64 - ramp).ceil().max(1.0) as u64;
    let config = super::goose_config(&prep, args.people as usize, args.arrival_rate, run_time);
    let scenario = scenario!("newcomer")
        .set_wait_time(Duration::from_secs(1), Duration::from_secs(4))?
        .register_transaction(
            Transaction::new(transaction(&day, 0))
                .set_name("join")
                .set_on_start(),
        )
        .register_transaction(Transaction::new(transaction(&day, 1)).set_name("act"))
        .register_transaction(
            Transaction::new(transaction(&day, 2))
                .set_name("leave")
                .set_on_stop(),
        );
    let goose = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario)
        .execute()
        .await;
    let load_seconds = recorder.elapsed().as_secs_f64();
    let (probe_posted, probe_seen) = match probe {
        Some(probe) => probe.await.unwrap_or_default(),
        None => (0, 0),
    };
    drop(day);
    let updates = tokio::time::timeout(Duration::from_secs(10), counter)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let data = recorder.finish().await;
    let mut notes = vec![
        "Established accounts were seeded straight into the database (the documented fast path); every newcomer signed up through the API, and its e-mail confirmation was written to the database as the confirmation link would.".to_string(),
    ];
    if args.skip_streaming {
        notes.push("Run with --skip-streaming: no streaming connections were held.".into());
    }
    if let Err(e) = &goose {
        notes.push(format!("goose ended with an error: {e}"));
    }
    let info = RunInfo {
        scenario: "migration-day",
        target: prep.base.clone(),
        parameters: json!({
            "people": args.people,
            "arrival_rate_per_s": args.arrival_rate,
            "seconds": args.seconds,
            "pool": args.pool,
            "streaming": !args.skip_streaming,
            "probe_rate_per_s": args.probe_rate,
        }),
        load_seconds,
        facts: [
            (
                "seeding_seconds".to_string(),
                json!((seeding_s * 10.0).round() / 10.0),
            ),
            ("stream_updates_received".to_string(), json!(updates)),
            ("fanout_probe_posted".to_string(), json!(probe_posted)),
            ("fanout_probe_seen".to_string(), json!(probe_seen)),
        ]
        .into_iter()
        .collect(),
        notes,
        ..Default::default()
    };
    prep.finish(info, data)
}
