//! Federation throughput through the real paths, against a running Stampede on loopback:
//!
//! - **inbound**: a fake remote server (this process, on loopback) is followed by a local reader
//!   (through search `resolve=true` and the follow API: WebFinger, the actor document, a signed
//!   Follow, our signed Accept). It then POSTs signed `Create(Note)` activities to Stampede's
//!   shared inbox as fast as `--concurrency` senders allow for `--seconds`. Reported: accepted
//!   (202) per second, applied per second (until the last note is in the reader's home timeline,
//!   read through the API), and the lag from POST to visible for sampled notes (p50/p99).
//! - **outbound**: `--followers` remote actors, each with its own inbox, follow a local author
//!   (signed Follows); the author posts `--posts` statuses through the API, and the fake server
//!   counts the signed deliveries it receives per second (it checks every 50th signature).
//! - **yardstick**: RSA-2048 signatures per second on this machine's cores with the same
//!   library, measured in this process before the load.
//!
//! The fake server, the load generator and Stampede (with PostgreSQL, Redis, RabbitMQ) share the
//! machine's cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use stampede_activitypub::keys::{self, PrivateKey};
use stampede_activitypub::signature::{self, Signature};
use tokio::sync::Mutex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stampede's base URL (loopback only).
    #[arg(long)]
    pub base_url: String,
    /// A local account's token (it follows the remote poster and reads its home).
    #[arg(long)]
    pub reader_token: String,
    /// Another local account's token (it posts; the remote followers follow it).
    #[arg(long)]
    pub author_token: String,
    /// Seconds of inbound load.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Concurrent inbound senders.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Inbound activities per second in all (0: as fast as the senders go). Below the apply
    /// rate the lag is the pipeline's, not a backlog's.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Remote followers of the author (one inbox each).
    #[arg(long, default_value_t = 200)]
    pub followers: usize,
    /// Statuses the author posts (deliveries = posts × followers).
    #[arg(long, default_value_t = 25)]
    pub posts: usize,
    /// Port of the fake remote server.
    #[arg(long, default_value_t = 3995)]
    pub port: u16,
}

/// The fake remote server's state.
struct Remote {
    origin: String,
    key: PrivateKey,
    public_pem: String,
    delivered: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    checked: AtomicU64,
    bad: AtomicU64,
    accepts_to_send: Mutex<Vec<Value>>,
}

impl Remote {
    fn actor(&self, name: &str) -> String {
        format!("{}/users/{name}", self.origin)
    }
}

/// The actor document of a fake remote account `id` named `name`, with its inbox at
/// `{id}/inbox` and its key.
pub(crate) fn actor_document(id: &str, name: &str, public_pem: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": id, "type": "Person", "preferredUsername": name,
        "inbox": format!("{id}/inbox"),
        "publicKey": { "id": format!("{id}#main-key"), "owner": id, "publicKeyPem": public_pem },
    })
}

/// `doc` as an ActivityPub answer.
pub(crate) fn activity_json(doc: &Value) -> Response {
    (
        [("content-type", "application/activity+json")],
        doc.to_string(),
    )
        .into_response()
}

async fn actor(State(remote): State<Arc<Remote>>, Path(name): Path<String>) -> Response {
    let id = remote.actor(&name);
    let mut doc = actor_document(&id, &name, &remote.public_pem);
    doc["followers"] = json!(format!("{id}/followers"));
    if name == "poster" {
        doc["endpoints"] = json!({ "sharedInbox": format!("{}/inbox", remote.origin) });
    }
    activity_json(&doc)
}

async fn webfinger(
    State(remote): State<Arc<Remote>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let resource = q.get("resource").cloned().unwrap_or_default();
    let name = resource
        .trim_start_matches("acct:")
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    let jrd = json!({
        "subject": resource,
        "links": [{ "rel": "self", "type": "application/activity+json", "href": remote.actor(&name) }],
    });
    ([("content-type", "application/jrd+json")], jrd.to_string()).into_response()
}

/// Every delivery lands here: counted; every 50th signature checked; a Follow's Accept is
/// recorded to answer.
async fn inbox(State(remote): State<Arc<Remote>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = remote.delivered.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    remote.first.lock().await.get_or_insert(now);
    *remote.last.lock().await = Some(now);
    if n % 50 == 0 {
        remote.checked.fetch_add(1, Ordering::Relaxed);
        if signature::check_digest(&headers, &body).is_err()
            || Signature::from_headers(&headers).is_err()
        {
            remote.bad.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Ok(activity) = serde_json::from_slice::<Value>(&body)
        && activity["type"] == "Follow"
    {
        remote.accepts_to_send.lock().await.push(activity);
    }
    StatusCode::ACCEPTED
}

/// POSTs `activity` signed as `actor` to `inbox`.
async fn send(
    client: &reqwest::Client,
    remote: &Remote,
    actor: &str,
    inbox: &str,
    activity: &Value,
) -> anyhow::Result<u16> {
    send_signed(client, &remote.key, actor, inbox, activity).await
}

/// POSTs `activity` to `inbox`, signed with `key` as `actor`'s main key.
pub(crate) async fn send_signed(
    client: &reqwest::Client,
    key: &PrivateKey,
    actor: &str,
    inbox: &str,
    activity: &Value,
) -> anyhow::Result<u16> {
    let url = url::Url::parse(inbox)?;
    let body = serde_json::to_vec(activity)?;
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/activity+json".parse()?);
    signature::sign(
        key,
        &format!("{actor}#main-key"),
        &http::Method::POST,
        &url,
        &mut headers,
        Some(&body),
        chrono::Utc::now(),
    )?;
    let response = client.post(url).headers(headers).body(body).send().await?;
    Ok(response.status().as_u16())
}

/// RSA-2048 signatures per second on all cores (the yardstick).
pub(crate) fn raw_sign_rate(key_pem: &str) -> anyhow::Result<f64> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(3);
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let key = PrivateKey::from_pem(key_pem).expect("key");
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let _ = key.sign(b"(request-target): post /inbox\nhost: x\ndate: y");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    Ok(counts.iter().sum::<u64>() as f64 / 3.0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    form: Option<&[(&str, &str)]>,
) -> anyhow::Result<Value> {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(form) = form {
        request = request.form(form);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{url}: {status} {body}");
    Ok(body)
}

/// The account of `token` (`verify_credentials`).
pub(crate) async fn me(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Value> {
    api(
        client,
        reqwest::Method::GET,
        &format!("{base}/api/v1/accounts/verify_credentials"),
        token,
        None,
    )
    .await
}

/// Waits (up to `within`) until the account of `token` has `count` followers.
pub(crate) async fn await_followers(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    count: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let me = me(client, base, token).await?;
        if me["followers_count"].as_u64() == Some(count) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the followers never all arrived: {}",
            me["followers_count"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends the Accepts the fake server owes for Follows it received, until `stop`.
async fn answer_follows(client: reqwest::Client, remote: Arc<Remote>, base: String) {
    loop {
        let pending: Vec<Value> = std::mem::take(&mut *remote.accepts_to_send.lock().await);
        for follow in pending {
            let target = follow["object"].as_str().unwrap_or_default().to_string();
            let accept = json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{target}#accept/{}", uuid::Uuid::new_v4()),
                "type": "Accept", "actor": target, "object": follow,
            });
            if let Err(error) =
                send(&client, &remote, &target, &format!("{base}/inbox"), &accept).await
            {
                eprintln!("federation: could not send an Accept: {error:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    crate::loopback_only(&args.base_url, "--base-url")?;
    let base = args.base_url.trim_end_matches('/').to_string();
    let pem = keys::generate()?;
    eprintln!("federation: measuring the raw RSA-2048 signing rate (3 s, all cores)");
    let raw = raw_sign_rate(&pem.private)?;
    let origin = format!("http://127.0.0.1:{}", args.port);
    let remote = Arc::new(Remote {
        origin: origin.clone(),
        key: PrivateKey::from_pem(&pem.private)?,
        public_pem: pem.public.clone(),
        delivered: AtomicU64::new(0),
        first: Mutex::new(None),
        last: Mutex::new(None),
        checked: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        accepts_to_send: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/users/{name}", get(actor))
        .route("/users/{name}/inbox", post(inbox))
        .route("/inbox", post(inbox))
        .route("/.well-known/webfinger", get(webfinger))
        .with_state(remote.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .context("binding the fake remote server")?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    tokio::spawn(answer_follows(client.clone(), remote.clone(), base.clone()));
    let domain = format!("127.0.0.1:{}", args.port);

    // The reader follows the remote poster.
    let found = api(
        &client,
        reqwest::Method::GET,
        &format!("{base}/api/v2/search?q=@poster@{domain}&resolve=true&type=accounts"),
        &args.reader_token,
        None,
    )
    .await?;
    let poster_id = found["accounts"][0]["id"]
        .as_str()
        .context("the remote poster was not resolved")?
        .to_string();
    api(
        &client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/accounts/{poster_id}/follow"),
        &args.reader_token,
        Some(&[]),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rel = api(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/accounts/relationships?id[]={poster_id}"),
            &args.reader_token,
            None,
        )
        .await?;
        if rel[0]["following"] == true {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the reader's follow was never accepted: {rel}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The reader follows the local author too: the author's posts during the inbound flood
    // measure how fresh a local home timeline stays while `ingress` is busy.
    let author = me(&client, &base, &args.author_token).await?;
    let author_id = author["id"].as_str().context("no author id")?.to_string();
    api(
        &client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/accounts/{author_id}/follow"),
        &args.reader_token,
        Some(&[]),
    )
    .await?;

    // Inbound: signed Create(Note)s as fast as the senders go.
    eprintln!(
        "federation: inbound for {} s with {} senders",
        args.seconds, args.concurrency
    );
    let poster = remote.actor("poster");
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + Duration::from_secs(args.seconds);
    let mut senders = Vec::new();
    let rate = args.rate;
    for _ in 0..args.concurrency {
        let (client, remote, poster, base) =
            (client.clone(), remote.clone(), poster.clone(), base.clone());
        let (sent_at, accepted, refused, next) = (
            sent_at.clone(),
            accepted.clone(),
            refused.clone(),
            next.clone(),
        );
        senders.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if rate > 0 {
                    // Paced: activity n leaves at n / rate seconds after the start.
                    let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
                    if due >= stop {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let note_id = format!("{poster}/notes/{n}");
                let create = json!({
                    "@context": "https://www.w3.org/ns/activitystreams",
                    "id": format!("{note_id}/activity"), "type": "Create", "actor": poster,
                    "to": ["https://www.w3.org/ns/activitystreams#Public"],
                    "cc": [format!("{poster}/followers")],
                    "object": {
                        "id": note_id, "type": "Note", "attributedTo": poster,
                        "content": format!("<p>note {n}</p>"),
                        "to": ["https://www.w3.org/ns/activitystreams#Public"],
                        "cc": [format!("{poster}/followers")],
                        "published": chrono::Utc::now().to_rfc3339(),
                    },
                });
                let at = Instant::now();
                match send(&client, &remote, &poster, &format!("{base}/inbox"), &create).await {
                    Ok(202) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if n % 20 == 0 {
                            sent_at.lock().await.insert(note_id, at);
                        }
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Meanwhile the local author posts twice a second; the time is from the request to the
    // post's appearance in the reader's home.
    let local_sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let local_poster = {
        let (client, base, token, local_sent) = (
            client.clone(),
            base.clone(),
            args.author_token.clone(),
            local_sent.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u32;
            while Instant::now() < stop {
                // Keyed by content, stamped before the request: the reader may see the post
                // before this task sees the API's answer.
                local_sent
                    .lock()
                    .await
                    .insert(format!("<p>local {n}</p>"), Instant::now());
                let _ = api(
                    &client,
                    reqwest::Method::POST,
                    &format!("{base}/api/v1/statuses"),
                    &token,
                    Some(&[("status", &format!("local {n}"))]),
                )
                .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let mut local_lags: Vec<f64> = Vec::new();
    // Read the reader's home forward (min_id paging, so nothing scrolls past unseen), timing the
    // sampled notes; the run is applied when the poster's statuses_count (through the API)
    // reaches the number of notes accepted.
    let mut lags: Vec<f64> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen_all_at = None;
    let mut stored = false;
    let mut last_new = Instant::now();
    loop {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&min_id={c}"));
        let home = api(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/timelines/home?limit=40{query}"),
            &args.reader_token,
            None,
        )
        .await?;
        let now = Instant::now();
        let page = home.as_array().cloned().unwrap_or_default();
        {
            let mut pending = sent_at.lock().await;
            let mut local = local_sent.lock().await;
            for status in &page {
                let Some(uri) = status["uri"].as_str() else {
                    continue;
                };
                if let Some(at) = pending.remove(uri) {
                    lags.push(now.duration_since(at).as_secs_f64() * 1000.0);
                }
                if let Some(at) = status["content"].as_str().and_then(|c| local.remove(c)) {
                    local_lags.push(now.duration_since(at).as_secs_f64() * 1000.0);
                }
            }
        }
        if let Some(newest) = page
            .iter()
            .filter_map(|s| s["id"].as_str())
            .max_by_key(|id| id.parse::<u64>().unwrap_or(0))
        {
            cursor = Some(newest.to_string());
        }
        if !page.is_empty() {
            last_new = now;
        }
        if Instant::now() >= stop && !stored {
            let poster_now = api(
                &client,
                reqwest::Method::GET,
                &format!("{base}/api/v1/accounts/{poster_id}"),
                &args.reader_token,
                None,
            )
            .await?;
            stored = poster_now["statuses_count"].as_u64().unwrap_or(0)
                >= accepted.load(Ordering::Relaxed);
        }
        // Applied end to end: every note stored, and the reader's home has stopped growing
        // (fan-out drained) for two seconds; the time is that of the last new entry.
        if stored && now.duration_since(last_new) > Duration::from_secs(2) {
            seen_all_at = Some(last_new);
            break;
        }
        if now > stop + Duration::from_secs(300) {
            break;
        }
        if page.len() < 40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for s in senders {
        let _ = s.await;
    }
    let _ = local_poster.await;
    let local_unseen = local_sent.lock().await.len();
    local_lags.sort_by(f64::total_cmp);
    let total_sent = next.load(Ordering::Relaxed);
    let accepted = accepted.load(Ordering::Relaxed);
    let load_s = args.seconds as f64;
    let applied_s = seen_all_at.map(|t| t.duration_since(started).as_secs_f64());
    lags.sort_by(f64::total_cmp);

    // Outbound: remote followers, then the author posts.
    eprintln!(
        "federation: {} remote followers follow the author",
        args.followers
    );
    let author_uri = author["uri"]
        .as_str()
        .context("the author has no uri")?
        .to_string();
    for i in 0..args.followers {
        let follower = remote.actor(&format!("f{i}"));
        let follow = json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{follower}#follows/1"), "type": "Follow",
            "actor": follower, "object": author_uri,
        });
        let status = send(
            &client,
            &remote,
            &follower,
            &format!("{base}/inbox"),
            &follow,
        )
        .await?;
        ensure!(status == 202, "a Follow answered {status}");
    }
    // The remote followers and the local reader.
    await_followers(
        &client,
        &base,
        &args.author_token,
        args.followers as u64 + 1,
        Duration::from_secs(120),
    )
    .await?;
    // The Accepts of those follows are deliveries too: start counting after they are in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = remote.delivered.load(Ordering::Relaxed);
    *remote.first.lock().await = None;
    eprintln!("federation: the author posts {} statuses", args.posts);
    let posting = Instant::now();
    for i in 0..args.posts {
        api(
            &client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/statuses"),
            &args.author_token,
            Some(&[("status", &format!("outbound {i}"))]),
        )
        .await?;
    }
    let expected = (args.posts * args.followers) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while remote.delivered.load(Ordering::Relaxed) - before < expected && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = remote.delivered.load(Ordering::Relaxed) - before;
    let span = remote
        .last
        .lock()
        .await
        .map(|last| last.duration_since(posting).as_secs_f64())
        .unwrap_or(f64::NAN);
    let out_rate = delivered as f64 / span;

    let report = json!({
        "raw_rsa2048_signs_per_s": raw.round(),
        "inbound": {
            "seconds": args.seconds, "senders": args.concurrency, "rate": args.rate,
            "sent": total_sent, "accepted_202": accepted, "refused": refused.load(Ordering::Relaxed),
            "accepted_per_s": (accepted as f64 / load_s).round(),
            "applied_per_s": applied_s.map(|s| (accepted as f64 / s).round()),
            "visible_lag_ms": { "samples": lags.len(), "p50": percentile(&lags, 0.5).round(), "p99": percentile(&lags, 0.99).round(), "max": lags.last().copied().unwrap_or(0.0).round() },
            "local_post_to_home_ms": { "samples": local_lags.len(), "unseen": local_unseen, "p50": percentile(&local_lags, 0.5).round(), "p99": percentile(&local_lags, 0.99).round(), "max": local_lags.last().copied().unwrap_or(0.0).round() },
        },
        "outbound": {
            "followers": args.followers, "posts": args.posts,
            "expected": expected, "delivered": delivered, "seconds": (span * 100.0).round() / 100.0,
            "deliveries_per_s": out_rate.round(),
            "ratio_to_raw_signing": ((out_rate / raw) * 1000.0).round() / 1000.0,
            "signatures_checked": remote.checked.load(Ordering::Relaxed),
            "signatures_malformed": remote.bad.load(Ordering::Relaxed),
        },
    });
    ensure!(
        delivered == expected,
        "{delivered} of {expected} deliveries arrived: {report}"
    );
    ensure!(
        seen_all_at.is_some(),
        "the inbound notes never all reached the reader's home: {report}"
    );
    Ok(report)
}
