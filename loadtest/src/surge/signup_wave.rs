//! `signup-wave`: sign-ups arriving on a rate profile — by default the November 2022 shape as
//! one instance saw it — scaled by a multiplier, each through the flow a new person's app goes
//! through: `POST /api/v1/apps`, a client-credentials `POST /oauth/token`, then
//! `POST /api/v1/accounts`.
//!
//! Arrivals follow the profile's schedule (open loop: they start when due, not when earlier ones
//! finish). Goose runs the clients: each goose user takes the next due arrival, waits for its
//! time, and performs it, so `--max-in-flight` goose users bound the requests in flight. An
//! arrival that had to wait for a free user more than a second is counted as late: then the
//! generator, not the server, set the pace, and the report says so.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use goose::goose::GooseResponse;
use goose::prelude::*;
use serde_json::json;

use super::api::signup_form;
use super::profile::Profile;
use super::record::{Outcome, Recorder};
use super::slo::Catalogue;
use super::summary::RunInfo;
use super::{Common, not_started};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A built-in profile (`nov2022`: network-wide, 130/h → 2,000/h → 5,000/h → 10,000/h;
    /// `nov2022-instance`: one instance, peaking at 3,000/h) or segments
    /// 'RATE[..RATE] DURATION, …' such as '2/s 30s, 2/s..20/s 60s' (rates in /s, /min, /h;
    /// durations in s, m, or % of --seconds).
    #[arg(long, default_value = "nov2022-instance")]
    pub profile: String,
    /// Multiplies every rate of the profile.
    #[arg(long, default_value_t = 1.0)]
    pub multiplier: f64,
    /// Run length for a profile given in % [default: 120; at most 3600].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: Option<u64>,
    /// Arrivals in flight at most (goose users).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub max_in_flight: u64,
    /// The most sign-ups the run may send; a profile offering more is refused.
    #[arg(long, default_value_t = 200_000)]
    pub max_requests: usize,
    /// One app and client token for every sign-up (as a web sign-up page would), instead of
    /// one app per person (as each person's phone app does).
    #[arg(long)]
    pub shared_app: bool,
}

struct Wave {
    schedule: Vec<Duration>,
    next: AtomicUsize,
    done: AtomicUsize,
    late: AtomicU64,
    origin: OnceLock<Instant>,
    recorder: Recorder,
    run_id: String,
    shared_token: Option<String>,
}

const OPS_PER_PERSON: [&str; 3] = ["app", "token", "signup"];

/// Sends one request through goose and records it; returns the body when it was 2xx.
async fn send(
    user: &mut GooseUser,
    recorder: &Recorder,
    op: &'static str,
    path: &str,
    token: Option<&str>,
    body: String,
) -> Option<serde_json::Value> {
    let started = Instant::now();
    let Ok(mut builder) = user.get_request_builder(&GooseMethod::Post, path) else {
        recorder.request(op, started, Outcome::Transport);
        return None;
    };
    builder = builder
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    let request = GooseRequest::builder()
        .name(op)
        .set_request_builder(builder)
        .build();
    let (outcome, body) = match user.request(request).await {
        Ok(GooseResponse {
            response: Ok(response),
            ..
        }) => {
            let outcome = Outcome::from_status(response.status().as_u16());
            (outcome, response.json::<serde_json::Value>().await.ok())
        }
        Ok(GooseResponse {
            response: Err(e), ..
        }) => (Outcome::from_reqwest(&Err(e)), None),
        Err(_) => (Outcome::Transport, None),
    };
    recorder.request(op, started, outcome);
    (outcome == Outcome::Ok).then_some(body).flatten()
}

async fn arrival(user: &mut GooseUser, wave: &Wave) -> TransactionResult {
    let i = wave.next.fetch_add(1, Ordering::Relaxed);
    let Some(offset) = wave.schedule.get(i) else {
        // Nothing left to send: idle until the last arrival finishes and stops the run.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    };
    let origin = *wave.origin.get_or_init(Instant::now);
    let due = origin + *offset;
    tokio::time::sleep_until(due.into()).await;
    if due.elapsed() > Duration::from_secs(1) {
        wave.late.fetch_add(1, Ordering::Relaxed);
    }
    let rec = &wave.recorder;
    let token = match &wave.shared_token {
        Some(t) => Some(t.clone()),
        None => {
            let apps = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_name", "surge phone app")
                .append_pair("redirect_uris", "urn:ietf:wg:oauth:2.0:oob")
                .append_pair("scopes", "read write follow push")
                .finish();
            match send(user, rec, "app", "/api/v1/apps", None, apps).await {
                Some(app) => {
                    let form = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("grant_type", "client_credentials")
                        .append_pair("client_id", app["client_id"].as_str().unwrap_or(""))
                        .append_pair("client_secret", app["client_secret"].as_str().unwrap_or(""))
                        .append_pair("scope", "read write follow push")
                        .finish();
                    send(user, rec, "token", "/oauth/token", None, form)
                        .await
                        .and_then(|t| t["access_token"].as_str().map(str::to_string))
                }
                None => None,
            }
        }
    };
    if let Some(token) = token {
        let username = format!("w{}{i}", wave.run_id);
        send(
            user,
            rec,
            "signup",
            "/api/v1/accounts",
            Some(&token),
            signup_form(&username),
        )
        .await;
    }
    if wave.done.fetch_add(1, Ordering::Relaxed) + 1 == wave.schedule.len() {
        goose::trigger_killswitch("every arrival of the profile was sent");
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let profile =
        Profile::parse(&args.profile, args.seconds, args.multiplier).map_err(not_started)?;
    let schedule = profile.schedule(args.max_requests).map_err(not_started)?;
    if schedule.is_empty() {
        return Err(not_started(anyhow::anyhow!(
            "the profile offers no sign-up at all in {:.0} s; raise --multiplier or the rates",
            profile.seconds()
        )));
    }
    let ops: Vec<&'static str> = if args.shared_app {
        vec!["signup"]
    } else {
        OPS_PER_PERSON.to_vec()
    };
    let catalogue = Catalogue {
        ops,
        ..Default::default()
    };
    let prep = args.common.prepare("signup-wave", catalogue, &[]).await?;
    let setup = super::api::client(prep.timeout, 4)?;
    let shared_token = if args.shared_app {
        Some(
            super::api::register_app(&setup, &prep.base)
                .await
                .map_err(not_started)?
                .token,
        )
    } else {
        None
    };
    let seconds = profile.seconds();
    eprintln!(
        "signup-wave: {} sign-ups over {seconds:.0} s (peak {:.1}/s = {:.0}/h, profile {:?} × {}), at most {} in flight, against {}",
        schedule.len(),
        profile.peak(),
        profile.peak() * 3600.0,
        args.profile,
        args.multiplier,
        args.max_in_flight,
        prep.base
    );
    let recorder = Recorder::start("signup-wave", prep.progress);
    let wave = Arc::new(Wave {
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        late: AtomicU64::new(0),
        origin: OnceLock::new(),
        recorder: recorder.clone(),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        shared_token,
        schedule,
    });
    let transaction: TransactionFunction = {
        let wave = wave.clone();
        Arc::new(move |user| {
            let wave = wave.clone();
            Box::pin(async move { arrival(user, &wave).await })
        })
    };
    let users = args.max_in_flight as usize;
    // The schedule, plus the last requests' time-out, plus a margin: a hard end.
    let run_time = seconds.ceil() as u64 + prep.timeout.as_secs() * 3 + 10;
    let config = super::goose_config(&prep, users, users as f64, run_time);
    let attack = GooseAttack::initialize_with_config(config)?.register_scenario(
        scenario!("signup-wave")
            .register_transaction(Transaction::new(transaction).set_name("arrival")),
    );
    let goose_metrics = attack.execute().await;
    let origin_offset = wave.origin.get().map_or(0.0, |o| {
        o.saturating_duration_since(recorder.origin()).as_secs_f64()
    });
    let data = recorder.finish().await;
    let offered: Vec<(f64, f64)> = (0..=seconds.ceil() as u64)
        .map(|t| (t as f64 + origin_offset, profile.rate_at(t as f64)))
        .collect();
    let late = wave.late.load(Ordering::Relaxed);
    let sent = wave.done.load(Ordering::Relaxed);
    let mut notes = vec![format!(
        "Offered: the profile's rate ({:?} × {}), one arrival = {} request(s).",
        args.profile,
        args.multiplier,
        if args.shared_app { 1 } else { 3 }
    )];
    if late > 0 {
        notes.push(format!(
            "{late} arrivals started more than 1 s late because all {users} clients were busy: \
             the generator, not only the server, limited the rate. Raise --max-in-flight."
        ));
    }
    match &goose_metrics {
        Ok(m) => notes.push(format!(
            "goose ran {} users for {} s; it counted {} requests.",
            m.maximum_users,
            m.duration,
            m.requests
                .values()
                .map(|r| r.success_count + r.fail_count)
                .sum::<usize>()
        )),
        Err(e) => notes.push(format!("goose ended with an error: {e}")),
    }
    let info = RunInfo {
        scenario: "signup-wave",
        target: prep.base.clone(),
        parameters: json!({
            "profile": args.profile,
            "multiplier": args.multiplier,
            "seconds": seconds,
            "peak_per_h": (profile.peak() * 3600.0).round(),
            "arrivals_scheduled": wave.schedule.len(),
            "max_in_flight": users,
            "app_per_person": !args.shared_app,
        }),
        load_seconds: seconds,
        offered,
        headline_op: Some("signup"),
        facts: [
            ("arrivals_sent".to_string(), json!(sent)),
            ("arrivals_late".to_string(), json!(late)),
        ]
        .into_iter()
        .collect(),
        notes,
        ..Default::default()
    };
    prep.finish(info, data)
}
