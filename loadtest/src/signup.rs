//! The sign-up benchmark: registrations at a fixed rate through the real OAuth and sign-up flow,
//! while a reader measures `GET /api/v1/accounts/verify_credentials`.
//!
//! Open loop: requests start on schedule whether or not earlier ones finished (at most
//! `--max-in-flight` at once), as a migration wave does not wait for the server. Every request
//! has a 30 s time-out; a time-out counts as an error, as it would for a person.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{loopback_only, percentile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Stampede web server, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    base_url: String,
    /// The database of that server, to confirm the reader's e-mail (the documented fast path).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Sign-ups started per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Seconds to run (at most 3600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// verify_credentials calls per second during the run (0: none).
    #[arg(long, default_value_t = 20)]
    read_rate: u32,
    /// Closed loop instead of a fixed rate: this many clients, each sending its next sign-up
    /// as soon as the last one is answered. This measures the server's capacity without the
    /// cost of turning away the excess (which a fixed rate above capacity adds).
    #[arg(long, conflicts_with = "rate")]
    clients: Option<usize>,
    /// Requests in flight at most; beyond it the generator waits (and says so in the report).
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// Allow a server outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, u64>,
    ok_latencies_ms: Vec<f64>,
    /// Successful sign-ups per second of the run.
    ok_per_second: BTreeMap<u64, u64>,
}

/// What every sign-up request shares.
struct SignUps {
    client: reqwest::Client,
    url: String,
    token: String,
    run_id: String,
    started: Instant,
    tally: Arc<tokio::sync::Mutex<Tally>>,
    sent: AtomicU64,
}

impl SignUps {
    /// Signs one new user up and tallies the answer.
    async fn one(&self) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let username = format!("u{}{n}", self.run_id);
        let t = Instant::now();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("username", &username)
            .append_pair("email", &format!("{username}@loadtest.invalid"))
            .append_pair("password", "loadtest password")
            .append_pair("agreement", "true")
            .append_pair("date_of_birth", "1990-01-01")
            .finish();
        let result = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let elapsed = t.elapsed();
        let key = match &result {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_string(),
            Err(_) => "connect_error".to_string(),
        };
        let mut counts = self.tally.lock().await;
        if key == "200" {
            counts.ok_latencies_ms.push(elapsed.as_secs_f64() * 1000.0);
            *counts
                .ok_per_second
                .entry(self.started.elapsed().as_secs())
                .or_default() += 1;
        }
        *counts.by_status.entry(key).or_default() += 1;
    }
}

async fn form(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    pairs: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        body.append_pair(k, v);
    }
    let mut request = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.finish());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "POST {url}: {status} {body}");
    Ok(body)
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    if !args.allow_remote {
        loopback_only(&args.base_url, "--base-url")?;
        loopback_only(&args.database_url, "DATABASE_URL")?;
    }
    let base = args.base_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.max_in_flight)
        .build()?;
    let health = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .with_context(|| format!("{base} is not reachable"))?;
    ensure!(
        health.status().is_success(),
        "{base} is not ready: {}",
        health.status()
    );
    let pool = sqlx::PgPool::connect(&args.database_url)
        .await
        .context("cannot reach DATABASE_URL")?;

    // An app, its client token, and a confirmed reader.
    let app = form(
        &client,
        &format!("{base}/api/v1/apps"),
        None,
        &[
            ("client_name", "stampede-loadtest"),
            ("redirect_uris", "urn:ietf:wg:oauth:2.0:oob"),
            ("scopes", "read write"),
        ],
    )
    .await?;
    let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
    let client_secret = app["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let token = form(
        &client,
        &format!("{base}/oauth/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("scope", "read write"),
        ],
    )
    .await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let reader = format!("r{run_id}");
    let reader_token = form(
        &client,
        &format!("{base}/api/v1/accounts"),
        Some(&token),
        &[
            ("username", &reader),
            ("email", &format!("{reader}@loadtest.invalid")),
            ("password", "loadtest password"),
            ("agreement", "true"),
            ("date_of_birth", "1990-01-01"),
        ],
    )
    .await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    sqlx::query("UPDATE users SET confirmed_at = now(), approved = true WHERE account_id = (SELECT id FROM accounts WHERE username = $1 AND domain IS NULL)")
        .bind(&reader)
        .execute(&pool)
        .await?;

    let tally = Arc::new(tokio::sync::Mutex::new(Tally::default()));
    let reads = Arc::new(tokio::sync::Mutex::new((Vec::<f64>::new(), 0u64)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);

    let reader_task = {
        let client = client.clone();
        let reads = reads.clone();
        let url = format!("{base}/api/v1/accounts/verify_credentials");
        let rate = args.read_rate;
        tokio::spawn(async move {
            if rate == 0 {
                return;
            }
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                ticker.tick().await;
                let (client, url, token, reads) = (
                    client.clone(),
                    url.clone(),
                    reader_token.clone(),
                    reads.clone(),
                );
                tasks.spawn(async move {
                    let t = Instant::now();
                    let ok = client
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    let mut reads = reads.lock().await;
                    if ok {
                        reads.0.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        reads.1 += 1;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    let signups = Arc::new(SignUps {
        client: client.clone(),
        url: format!("{base}/api/v1/accounts"),
        token,
        run_id: run_id.to_string(),
        started,
        tally: tally.clone(),
        sent: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut throttled_by_client = 0u64;
    let progress = {
        let (signups, tally) = (signups.clone(), tally.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            every.tick().await;
            loop {
                every.tick().await;
                let t = tally.lock().await;
                eprintln!(
                    "signup: {:>4}s sent {}, {:?}",
                    signups.started.elapsed().as_secs(),
                    signups.sent.load(Ordering::Relaxed),
                    t.by_status
                );
            }
        })
    };
    if let Some(clients) = args.clients {
        for _ in 0..clients {
            let signups = signups.clone();
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    signups.one().await;
                }
            });
        }
    } else {
        let in_flight = Arc::new(Semaphore::new(args.max_in_flight));
        let mut ticker =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1))));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while Instant::now() < deadline {
            ticker.tick().await;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                throttled_by_client += 1;
                continue;
            };
            let signups = signups.clone();
            tasks.spawn(async move {
                signups.one().await;
                drop(permit);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    progress.abort();
    let _ = reader_task.await;
    let sent = signups.sent.load(Ordering::Relaxed);
    let wall = started.elapsed().as_secs_f64();

    let mut tally = std::mem::take(&mut *tally.lock().await);
    tally.ok_latencies_ms.sort_by(f64::total_cmp);
    let (mut read_latencies, read_errors) = std::mem::take(&mut *reads.lock().await);
    read_latencies.sort_by(f64::total_cmp);
    let ok = tally.by_status.get("200").copied().unwrap_or(0);
    let limited = tally.by_status.get("429").copied().unwrap_or(0);
    let server_errors: u64 = tally
        .by_status
        .iter()
        .filter(|(k, _)| k.starts_with('5'))
        .map(|(_, v)| v)
        .sum();
    // Steady state: the seconds after the first 10 % of the run, excluding the last second.
    let skip = args.seconds / 10;
    let steady: Vec<u64> = (skip..args.seconds.saturating_sub(1))
        .map(|s| tally.ok_per_second.get(&s).copied().unwrap_or(0))
        .collect();
    let steady_rate = if steady.is_empty() {
        ok as f64 / wall
    } else {
        steady.iter().sum::<u64>() as f64 / steady.len() as f64
    };
    let min_second = steady.iter().min().copied().unwrap_or(0);
    Ok(json!({
        "scenario": "signup",
        "target_rate_per_s": if args.clients.is_some() { None } else { Some(args.rate) },
        "clients": args.clients,
        "seconds": args.seconds,
        "sent": sent,
        "not_sent_client_limit": throttled_by_client,
        "responses": tally.by_status,
        "ok_per_s_steady": (steady_rate * 10.0).round() / 10.0,
        "ok_per_s_min_second": min_second,
        "share_429": if sent > 0 { ((limited as f64 / sent as f64) * 1000.0).round() / 1000.0 } else { 0.0 },
        "server_errors": server_errors,
        "signup_latency_ms": {
            "p50": percentile(&tally.ok_latencies_ms, 0.5),
            "p99": percentile(&tally.ok_latencies_ms, 0.99),
        },
        "verify_credentials": {
            "requests": read_latencies.len() as u64 + read_errors,
            "errors": read_errors,
            "p50_ms": percentile(&read_latencies, 0.5),
            "p99_ms": percentile(&read_latencies, 0.99),
            "max_ms": percentile(&read_latencies, 1.0),
        },
    }))
}
