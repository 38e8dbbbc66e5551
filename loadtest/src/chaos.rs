//! `chaos-ledger`: the end-to-end ledger of the chaos run (`loadtest/chaos.sh`, issue 22).
//!
//! While `chaos.sh` kills and restarts services around it, this process keeps a steady trickle
//! of writes whose every effect can be counted from outside, through the API and the wire:
//!
//! - an author posts `--rate` statuses a second for `--seconds`, each mentioning a watcher, and
//!   every `--media-every`th with an image uploaded first;
//! - the watcher follows the author (home-feed entries) and is mentioned (notifications);
//! - `--peers` fake remote servers on loopback follow the author (deliveries received).
//!
//! Then it waits up to `--drain-seconds` for every effect of every post the API answered 2xx
//! and reports, for each kind of effect, how many are missing (lost) and how many arrived twice
//! (duplicated in effect): the watcher's home feed and mention notifications through the API,
//! the deliveries each peer received (distinct `Create` activities per note), the image's
//! processed variant (its `url` served), and statuses stored twice. Every post's send time and
//! outcome goes to `posts.jsonl` in `--report-dir`, so the chaos script can say what broke
//! during each fault.
//!
//! The fake servers, this process, the cluster and its backing services share the machine.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use stampede_activitypub::keys::{self, PrivateKey};
use tokio::sync::Mutex;

use crate::federation::{activity_json, actor_document, await_followers, send_signed};
use crate::surge::{api, seed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stampede's base URL (loopback only).
    #[arg(long)]
    pub base_url: String,
    /// The target server's database (the author and watcher are seeded there).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Fake remote servers following the author.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub peers: u16,
    /// The first fake server's port; the others follow it.
    #[arg(long, default_value_t = 21500)]
    pub port_base: u16,
    /// Posts per second.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Every Nth post carries an image (0: none).
    #[arg(long, default_value_t = 5)]
    pub media_every: u64,
    /// The longest wait, after the last post, for every effect to arrive.
    #[arg(long, default_value_t = 300)]
    pub drain_seconds: u64,
    /// Where posts.jsonl and ledger.json go.
    #[arg(long)]
    pub report_dir: std::path::PathBuf,
}

/// What the fake servers received: peer → note URI → the `Create` activity ids that carried it.
type Received = Mutex<HashMap<usize, HashMap<String, Vec<String>>>>;

struct Federation {
    public_pem: String,
    received: Received,
}

struct Peer {
    index: usize,
    origin: String,
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
    let activity: Value = serde_json::from_slice(&body).unwrap_or_default();
    if activity["type"] == "Create"
        && let Some(note) = activity["object"]["id"].as_str()
    {
        let id = activity["id"].as_str().unwrap_or_default().to_string();
        peer.fed
            .received
            .lock()
            .await
            .entry(peer.index)
            .or_default()
            .entry(note.to_string())
            .or_default()
            .push(id);
    }
    StatusCode::ACCEPTED
}

/// One post as the API answered it.
#[derive(Debug, Clone)]
struct Posted {
    n: u64,
    sent_unix_ms: u128,
    latency_ms: u128,
    /// `2xx`, `429`, `4xx`, `5xx`, `timeout` or `connect`.
    outcome: &'static str,
    text: String,
    id: Option<String>,
    uri: Option<String>,
    media_id: Option<String>,
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The outcome class of an answer, as the surge scenarios name it (`2xx`, `5xx`, `timeout` …).
fn outcome_of(result: &Result<reqwest::Response, reqwest::Error>) -> &'static str {
    crate::surge::record::Outcome::from_reqwest(result).name()
}

/// A small PNG, the same for every upload.
fn png() -> anyhow::Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// Uploads the image and waits (up to 60 s) until it may be attached; its id, or why not.
async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    png: Vec<u8>,
) -> Result<String, &'static str> {
    let part = reqwest::multipart::Part::bytes(png)
        .file_name("chaos.png")
        .mime_str("image/png")
        .map_err(|_| "4xx")?;
    let result = client
        .post(format!("{base}/api/v2/media"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await;
    let outcome = outcome_of(&result);
    let Ok(response) = result else {
        return Err(outcome);
    };
    if outcome != "2xx" {
        return Err(outcome);
    }
    let body: Value = response.json().await.map_err(|_| "connect")?;
    let id = body["id"].as_str().ok_or("4xx")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/media/{id}"))
            .bearer_auth(token)
            .send()
            .await
            && r.status() == StatusCode::OK
        {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Still processing: attached anyway it would be refused; the post goes without it.
    Err("timeout")
}

async fn post_one(
    client: reqwest::Client,
    base: String,
    token: String,
    n: u64,
    text: String,
    image: Option<Vec<u8>>,
) -> Posted {
    let sent_unix_ms = unix_ms();
    let started = Instant::now();
    let mut form: Vec<(String, String)> = vec![("status".into(), text.clone())];
    let mut media_id = None;
    if let Some(png) = image {
        match upload(&client, &base, &token, png).await {
            Ok(id) => {
                form.push(("media_ids[]".into(), id.clone()));
                media_id = Some(id);
            }
            Err(outcome) => {
                return Posted {
                    n,
                    sent_unix_ms,
                    latency_ms: started.elapsed().as_millis(),
                    outcome,
                    text,
                    id: None,
                    uri: None,
                    media_id: None,
                };
            }
        }
    }
    let result = client
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(&token)
        // A retried request must not post twice (Mastodon's Idempotency-Key).
        .header("idempotency-key", format!("chaos-{n}-{sent_unix_ms}"))
        .form(&form)
        .send()
        .await;
    let mut outcome = outcome_of(&result);
    let mut id = None;
    let mut uri = None;
    if let Ok(response) = result
        && outcome == "2xx"
    {
        match response.json::<Value>().await {
            Ok(status) => {
                id = status["id"].as_str().map(str::to_string);
                uri = status["uri"].as_str().map(str::to_string);
            }
            Err(_) => outcome = "connect",
        }
    }
    Posted {
        n,
        sent_unix_ms,
        latency_ms: started.elapsed().as_millis(),
        outcome,
        text,
        id,
        uri,
        media_id,
    }
}

/// Pages through a list endpoint (`max_id` paging from the Link header's ids) and returns every
/// item's value at `key` (a status id), duplicates included.
async fn collect_ids(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    key: impl Fn(&Value) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut max_id: Option<String> = None;
    for _ in 0..500 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &max_id {
            Some(m) => format!("{base}{path}{sep}limit=40&max_id={m}"),
            None => format!("{base}{path}{sep}limit=40"),
        };
        let response = client.get(&url).bearer_auth(token).send().await?;
        ensure!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let page: Vec<Value> = response.json().await?;
        let Some(last) = page.last() else { break };
        max_id = last["id"].as_str().map(str::to_string);
        out.extend(page.iter().filter_map(&key));
    }
    Ok(out)
}

/// Missing and twice-present effects of the posts the API answered 2xx.
#[derive(Debug, Default, Clone)]
struct Ledger {
    home_missing: usize,
    home_twice: usize,
    mentions_missing: usize,
    mentions_twice: usize,
    deliveries_missing: usize,
    deliveries_twice: usize,
    media_missing: usize,
    statuses_twice: i64,
}

impl Ledger {
    fn lost(&self) -> usize {
        self.home_missing + self.mentions_missing + self.deliveries_missing + self.media_missing
    }

    fn twice(&self) -> usize {
        self.home_twice + self.mentions_twice + self.deliveries_twice + self.statuses_twice as usize
    }

    fn json(&self) -> Value {
        json!({
            "home_feed": { "missing": self.home_missing, "twice": self.home_twice },
            "mention_notifications": { "missing": self.mentions_missing, "twice": self.mentions_twice },
            "deliveries_to_peers": { "missing": self.deliveries_missing, "twice": self.deliveries_twice },
            "media_variants": { "missing": self.media_missing },
            "statuses": { "twice": self.statuses_twice },
            "lost": self.lost(),
            "duplicated": self.twice(),
        })
    }
}

fn twice(ids: &[String]) -> (HashSet<&str>, usize) {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    (set.clone(), ids.len() - set.len())
}

struct Checker<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    db: &'a sqlx::PgPool,
    author: &'a seed::Seeded,
    watcher: &'a seed::Seeded,
    fed: &'a Federation,
    peers: usize,
    /// Media already seen served.
    media_ok: Mutex<HashSet<String>>,
}

impl Checker<'_> {
    async fn check(&self, ok: &[&Posted]) -> anyhow::Result<Ledger> {
        let mut ledger = Ledger::default();
        let home = collect_ids(
            self.client,
            self.base,
            &self.watcher.token,
            "/api/v1/timelines/home",
            |s| s["id"].as_str().map(str::to_string),
        )
        .await?;
        let (home_set, home_twice) = twice(&home);
        ledger.home_twice = home_twice;
        let mentions = collect_ids(
            self.client,
            self.base,
            &self.watcher.token,
            "/api/v1/notifications?types[]=mention",
            |n| n["status"]["id"].as_str().map(str::to_string),
        )
        .await?;
        let (mention_set, mentions_twice) = twice(&mentions);
        ledger.mentions_twice = mentions_twice;
        let received = self.fed.received.lock().await.clone();
        for post in ok {
            let id = post.id.as_deref().unwrap_or_default();
            ledger.home_missing += usize::from(!home_set.contains(id));
            ledger.mentions_missing += usize::from(!mention_set.contains(id));
            let uri = post.uri.as_deref().unwrap_or_default();
            for peer in 0..self.peers {
                match received.get(&peer).and_then(|notes| notes.get(uri)) {
                    None => ledger.deliveries_missing += 1,
                    Some(activities) => {
                        let distinct: HashSet<&String> = activities.iter().collect();
                        ledger.deliveries_twice += distinct.len() - 1;
                    }
                }
            }
            if let Some(media) = &post.media_id
                && !self.media_served(media).await
            {
                ledger.media_missing += 1;
            }
        }
        ledger.statuses_twice = sqlx::query_scalar(
            "SELECT count(*) - count(DISTINCT text) FROM statuses WHERE account_id = $1",
        )
        .bind(self.author.account_id.parse::<i64>()?)
        .fetch_one(self.db)
        .await?;
        Ok(ledger)
    }

    /// Whether the media's processed variant is served (its `url` answers 200 with bytes).
    async fn media_served(&self, id: &str) -> bool {
        if self.media_ok.lock().await.contains(id) {
            return true;
        }
        let Ok(response) = self
            .client
            .get(format!("{}/api/v1/media/{id}", self.base))
            .bearer_auth(&self.author.token)
            .send()
            .await
        else {
            return false;
        };
        if response.status() != StatusCode::OK {
            return false;
        }
        let Some(url) = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|m| m["url"].as_str().map(str::to_string))
        else {
            return false;
        };
        let served = match self.client.get(&url).send().await {
            Ok(r) if r.status() == StatusCode::OK => r.bytes().await.is_ok_and(|b| !b.is_empty()),
            _ => false,
        };
        if served {
            self.media_ok.lock().await.insert(id.to_string());
        }
        served
    }
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    crate::loopback_only(&args.base_url, "--base-url")?;
    let base = args.base_url.trim_end_matches('/').to_string();
    std::fs::create_dir_all(&args.report_dir)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // The author and the watcher, seeded with working tokens.
    let app = api::register_app(&client, &base).await?;
    let db = seed::connect(&args.database_url).await?;
    let tag = unix_ms() % 1_000_000;
    let prefix = format!("chaos{tag}x");
    let users = seed::users(&db, &app.client_id, &prefix, 2).await?;
    let (author, watcher) = (&users[0], &users[1]);
    let watcher_name = format!("{prefix}1");
    api::form_ok(
        &client,
        &format!("{base}/api/v1/accounts/{}/follow", author.account_id),
        Some(&watcher.token),
        &[],
    )
    .await?;

    // The remote servers, each following the author.
    let pem = keys::generate()?;
    let key = PrivateKey::from_pem(&pem.private)?;
    let fed = Arc::new(Federation {
        public_pem: pem.public.clone(),
        received: Mutex::default(),
    });
    let peers = usize::from(args.peers);
    let author_doc = crate::federation::me(&client, &base, &author.token).await?;
    let author_uri = author_doc["uri"]
        .as_str()
        .context("no author uri")?
        .to_string();
    for index in 0..peers {
        let port = args
            .port_base
            .checked_add(index as u16)
            .context("--port-base + --peers passes 65535")?;
        let peer = Arc::new(Peer {
            index,
            origin: format!("http://127.0.0.1:{port}"),
            fed: fed.clone(),
        });
        let router = Router::new()
            .route("/users/{name}", get(actor))
            .route("/users/{name}/inbox", post(inbox))
            .with_state(peer.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .with_context(|| format!("binding fake server {index} on port {port}"))?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        let follow = json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}#follows/{tag}", peer.actor()), "type": "Follow",
            "actor": peer.actor(), "object": author_uri,
        });
        let status = send_signed(
            &client,
            &key,
            &peer.actor(),
            &format!("{base}/inbox"),
            &follow,
        )
        .await?;
        ensure!(status == 202, "a Follow answered {status}");
    }
    await_followers(
        &client,
        &base,
        &author.token,
        peers as u64 + 1,
        Duration::from_secs(120),
    )
    .await?;

    // Posting, at the rate whatever the answers.
    let image = png()?;
    let total = (args.rate * args.seconds as f64).round() as u64;
    eprintln!(
        "chaos-ledger: {total} posts at {}/s, {peers} peers, an image every {}",
        args.rate, args.media_every
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let with_image = args.media_every > 0 && n % args.media_every == 0;
        tasks.push(tokio::spawn(post_one(
            client.clone(),
            base.clone(),
            author.token.clone(),
            n,
            format!("chaos {tag} {n} @{watcher_name}"),
            with_image.then(|| image.clone()),
        )));
    }
    let mut posted = Vec::new();
    for task in tasks {
        posted.push(task.await?);
    }
    let posting_ended = Instant::now();
    let mut lines = String::new();
    for p in &posted {
        lines.push_str(
            &json!({ "n": p.n, "sent_unix_ms": p.sent_unix_ms as u64, "latency_ms": p.latency_ms as u64,
                     "outcome": p.outcome, "media": p.media_id.is_some() })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(args.report_dir.join("posts.jsonl"), lines)?;
    let ok: Vec<&Posted> = posted.iter().filter(|p| p.outcome == "2xx").collect();
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for p in &posted {
        *outcomes.entry(p.outcome).or_default() += 1;
    }

    // Draining: until every effect of every 2xx post is there, or the time is up.
    let checker = Checker {
        client: &client,
        base: &base,
        db: &db,
        author,
        watcher,
        fed: &fed,
        peers,
        media_ok: Mutex::default(),
    };
    let deadline = posting_ended + Duration::from_secs(args.drain_seconds);
    let mut ledger;
    loop {
        ledger = match checker.check(&ok).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("chaos-ledger: a check failed ({e:#}); again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if ledger.lost() == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let settled_after = posting_ended.elapsed().as_secs_f64();
    // Posts whose answer was lost (a time-out, a dropped connection) may still have been made.
    let unanswered: Vec<String> = posted
        .iter()
        .filter(|p| matches!(p.outcome, "timeout" | "connect" | "5xx"))
        .map(|p| p.text.clone())
        .collect();
    let stored_anyway: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statuses WHERE account_id = $1 AND text = ANY($2)",
    )
    .bind(author.account_id.parse::<i64>()?)
    .bind(&unanswered)
    .fetch_one(&db)
    .await?;
    let report = json!({
        "posts": { "attempted": total, "outcomes": outcomes,
                   "unanswered_but_stored": stored_anyway, "with_media": posted.iter().filter(|p| p.media_id.is_some()).count() },
        "peers": peers,
        "ledger": ledger.json(),
        "settled_seconds_after_last_post": (settled_after * 10.0).round() / 10.0,
        "pass": ledger.lost() == 0 && ledger.twice() == 0,
    });
    std::fs::write(
        args.report_dir.join("ledger.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!("chaos-ledger: {report}");
    ensure!(
        ledger.lost() == 0 && ledger.twice() == 0,
        "effects lost or doubled: {report}"
    );
    Ok(report)
}
