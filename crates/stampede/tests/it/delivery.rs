//! Delivery to remote servers that fail: a dead domain's breaker opens and holds its deliveries
//! while a live one is served on time; a 429's Retry-After is honoured; a 410 is parked at once;
//! a domain failing on 7 distinct days is skipped until a signed request from it arrives. The
//! remote servers are axum apps in this test, on loopback; everything else is the real path
//! (the client API, the outbox, RabbitMQ, the `deliver` workers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use stampede_activitypub::keys::{self, PrivateKey};
use stampede_queue::WorkQueue;
use stampede_test_support::{AppOptions, TestApp, spawn_app};
use tokio::sync::Mutex;

use crate::social::{User, post_status, seed_user};

const OK: u8 = 0;
const FAIL: u8 = 1;
const TOO_MANY_ONCE: u8 = 2;
const GONE: u8 = 3;

/// A remote server with one actor, whose inbox answers as `mode` says.
struct Remote {
    origin: String,
    key: PrivateKey,
    public_pem: String,
    mode: AtomicU8,
    /// Activity ids received (answered 2xx), in order.
    received: Mutex<Vec<String>>,
    /// Every POST to the inbox, whatever the answer.
    attempts: std::sync::atomic::AtomicU64,
    /// Every activity received (answered 2xx), whole.
    activities: Mutex<Vec<Value>>,
    /// GETs of actor documents.
    actor_gets: std::sync::atomic::AtomicU64,
}

impl Remote {
    fn actor(&self) -> String {
        format!("{}/users/remote", self.origin)
    }

    fn domain(&self) -> String {
        self.origin.trim_start_matches("http://").to_string()
    }

    async fn received(&self) -> Vec<String> {
        self.received.lock().await.clone()
    }
}

/// `/users/remote`, and `/users/new`, which names `remote` as an alias (where it moved to).
async fn actor(State(remote): State<Arc<Remote>>, Path(name): Path<String>) -> Response {
    remote.actor_gets.fetch_add(1, Ordering::Relaxed);
    // Slow enough that concurrent fetches overlap.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = format!("{}/users/{name}", remote.origin);
    let mut doc = json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": id, "type": "Person", "preferredUsername": name,
        "inbox": format!("{id}/inbox"),
        "publicKey": { "id": format!("{id}#main-key"), "owner": id, "publicKeyPem": remote.public_pem },
    });
    if name == "new" {
        doc["alsoKnownAs"] = json!([remote.actor()]);
    }
    (
        [("content-type", "application/activity+json")],
        doc.to_string(),
    )
        .into_response()
}

async fn inbox(State(remote): State<Arc<Remote>>, body: Bytes) -> Response {
    remote.attempts.fetch_add(1, Ordering::Relaxed);
    match remote.mode.load(Ordering::Relaxed) {
        FAIL => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        GONE => return StatusCode::GONE.into_response(),
        TOO_MANY_ONCE => {
            remote.mode.store(OK, Ordering::Relaxed);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
        }
        _ => {}
    }
    let activity: Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = activity["object"]["id"]
        .as_str()
        .or(activity["id"].as_str())
        .unwrap_or_default()
        .to_string();
    remote.received.lock().await.push(id);
    remote.activities.lock().await.push(activity);
    StatusCode::ACCEPTED.into_response()
}

async fn remote_server() -> Arc<Remote> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pem = keys::generate().unwrap();
    let remote = Arc::new(Remote {
        origin: format!("http://{}", listener.local_addr().unwrap()),
        key: PrivateKey::from_pem(&pem.private).unwrap(),
        public_pem: pem.public,
        mode: AtomicU8::new(OK),
        received: Mutex::default(),
        attempts: Default::default(),
        activities: Mutex::default(),
        actor_gets: Default::default(),
    });
    let app = Router::new()
        .route("/users/{name}", get(actor))
        .route("/users/{name}/inbox", post(inbox))
        .with_state(remote.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    remote
}

/// POSTs `activity` from `remote`'s actor to `app`'s shared inbox, signed.
async fn send(app: &TestApp, remote: &Remote, activity: Value) {
    let body = serde_json::to_vec(&activity).unwrap();
    let url = url::Url::parse(&app.url("/inbox")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        "application/activity+json".parse().unwrap(),
    );
    stampede_activitypub::signature::sign(
        &remote.key,
        &format!("{}#main-key", remote.actor()),
        &reqwest::Method::POST,
        &url,
        &mut headers,
        Some(&body),
        chrono::Utc::now(),
    )
    .unwrap();
    let status = app
        .client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202, "{activity}");
}

async fn eventually<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No domain has failures on record.
async fn nothing_on_record(app: &TestApp) -> bool {
    stampede_social::domains::list(&app.ctx.db, false)
        .await
        .unwrap()
        .is_empty()
}

/// The value of a `stampede_deliveries_total` series with `outcome` (all classes).
fn deliveries(app: &TestApp, outcome: &str) -> u64 {
    app.ctx
        .metrics
        .encode()
        .lines()
        .filter(|l| {
            l.starts_with("stampede_deliveries_total{")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn status_uri(app: &TestApp, user: &User, id: &str) -> String {
    let status = crate::social::get(app, &format!("/api/v1/statuses/{id}"), user).await;
    status.body["uri"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_dead_server_is_held_off_while_the_living_are_served_and_comes_back() {
    let app = spawn_app(AppOptions {
        workers: true,
        federating: true,
        amqp: true,
        env: vec![("DELIVERY_BREAKER_COOLDOWN".into(), "1".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let alice_uri = format!("http://127.0.0.1:{}/users/alice", app.addr.port());
    let (dying, living) = tokio::join!(remote_server(), remote_server());
    for remote in [&dying, &living] {
        let follow = json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}#follows/1", remote.actor()),
            "type": "Follow", "actor": remote.actor(), "object": alice_uri,
        });
        send(&app, remote, follow).await;
    }
    eventually(
        "both follows are accepted",
        Duration::from_secs(20),
        || async { dying.received().await.len() == 1 && living.received().await.len() == 1 },
    )
    .await;

    // The dying server answers 500: after 5 outages its breaker opens and its deliveries are
    // held, while the living server gets every status at once.
    dying.mode.store(FAIL, Ordering::Relaxed);
    let mut uris = Vec::new();
    for n in 0..8 {
        let id = post_status(&app, &alice, json!({ "status": format!("post {n}") })).await;
        uris.push(status_uri(&app, &alice, &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually(
        "the living server has every post",
        Duration::from_secs(10),
        || async {
            let got = living.received().await;
            uris.iter().all(|u| got.contains(u))
        },
    )
    .await;
    eventually(
        "the dying server's breaker opens",
        Duration::from_secs(10),
        || async { deliveries(&app, "circuit_open") > 0 },
    )
    .await;
    let retried = deliveries(&app, "retry");
    assert!(
        (5..8).contains(&retried),
        "5 outages (a few more in flight), then held: {retried}"
    );
    let (days, open_until): (
        Vec<chrono::NaiveDate>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("SELECT failure_days, open_until FROM delivery_domains WHERE domain = $1")
        .bind(dying.domain())
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(days, [chrono::Utc::now().date_naive()]);
    assert!(open_until.is_some());
    let probes_before = dying.attempts.load(Ordering::Relaxed);

    // It answers again: a probe goes through, the breaker closes, the held deliveries arrive
    // (the 5 that failed wait out their own backoff, 15 s and more) and its record is cleared.
    dying.mode.store(OK, Ordering::Relaxed);
    eventually("the held posts arrive", Duration::from_secs(20), || async {
        dying.received().await.iter().any(|r| uris.contains(r))
    })
    .await;
    assert!(dying.attempts.load(Ordering::Relaxed) > probes_before);
    eventually(
        "its failures are forgotten",
        Duration::from_secs(10),
        || nothing_on_record(&app),
    )
    .await;

    // 429 with Retry-After: 1 — tried again after a second, not after the 15 s backoff.
    dying.mode.store(TOO_MANY_ONCE, Ordering::Relaxed);
    let id = post_status(&app, &alice, json!({ "status": "slow down" })).await;
    let uri = status_uri(&app, &alice, &id).await;
    let posted = Instant::now();
    eventually(
        "the 429'd post arrives",
        Duration::from_secs(14),
        || async { dying.received().await.contains(&uri) },
    )
    .await;
    assert!(posted.elapsed() >= Duration::from_secs(1));

    // 410 Gone: parked at once, never retried.
    dying.mode.store(GONE, Ordering::Relaxed);
    let parked_before = app.ctx.queue.parked(WorkQueue::Deliver).await.unwrap();
    post_status(&app, &alice, json!({ "status": "to a gone inbox" })).await;
    eventually("the 410 is parked", Duration::from_secs(10), || async {
        app.ctx.queue.parked(WorkQueue::Deliver).await.unwrap() == parked_before + 1
    })
    .await;

    // Failing on a seventh distinct day makes the domain unavailable: deliveries are skipped
    // (counted), until a signed request from it arrives.
    dying.mode.store(FAIL, Ordering::Relaxed);
    sqlx::query(
        "INSERT INTO delivery_domains (domain, failure_days) \
         SELECT $1, array_agg((now() AT TIME ZONE 'UTC')::date - d) FROM generate_series(1, 6) d",
    )
    .bind(dying.domain())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    post_status(&app, &alice, json!({ "status": "seventh day" })).await;
    eventually(
        "the domain is unavailable",
        Duration::from_secs(10),
        || async {
            stampede_social::domains::list(&app.ctx.db, true)
                .await
                .unwrap()
                .iter()
                .any(|d| d.domain == dying.domain())
        },
    )
    .await;
    let attempts = dying.attempts.load(Ordering::Relaxed);
    post_status(&app, &alice, json!({ "status": "skipped" })).await;
    eventually(
        "the next delivery is skipped",
        Duration::from_secs(10),
        || async { deliveries(&app, "skipped_unavailable") >= 1 },
    )
    .await;
    assert_eq!(dying.attempts.load(Ordering::Relaxed), attempts);

    let like = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}#likes/1", dying.actor()),
        "type": "Like", "actor": dying.actor(), "object": uris[0],
    });
    send(&app, &dying, like).await;
    eventually(
        "a signed request revives it",
        Duration::from_secs(10),
        || nothing_on_record(&app),
    )
    .await;

    // The operator's view: `stampede admin domains list` and `clear`.
    sqlx::query(
        "INSERT INTO delivery_domains (domain, failure_days, unavailable_since) \
         VALUES ('gone.example', ARRAY[current_date], now())",
    )
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let admin = |args: &[&str]| {
        crate::process::command(&app.env, args)
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let listed = admin(&["admin", "domains", "list", "--unavailable"]);
    assert!(listed.status.success());
    let line: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(line["domain"], "gone.example");
    assert!(line["unavailable_since"].is_string());
    assert!(
        admin(&["admin", "domains", "clear", "gone.example"])
            .status
            .success()
    );
    assert!(
        !admin(&["admin", "domains", "clear", "gone.example"])
            .status
            .success()
    );
    assert!(nothing_on_record(&app).await);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_fetches_of_one_document_are_one_request() {
    let app = spawn_app(AppOptions {
        federating: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let remote = remote_server().await;
    let resolver =
        stampede_social::remote::Resolver::from_config(app.ctx.db.clone(), &app.ctx.config)
            .unwrap();
    let uri = remote.actor();
    let fetches: Vec<_> = (0..20)
        .map(|_| {
            let (resolver, uri) = (resolver.clone(), uri.clone());
            tokio::spawn(async move { resolver.fetch(&uri).await.map(|(_, doc)| doc) })
        })
        .collect();
    for fetch in fetches {
        assert_eq!(fetch.await.unwrap().unwrap()["id"], uri);
    }
    let gets = remote.actor_gets.load(Ordering::Relaxed);
    assert!(gets <= 2, "20 concurrent fetches made {gets} requests");
    app.stop().await;
}

#[tokio::test]
async fn a_move_takes_local_followers_to_the_new_account() {
    let app = spawn_app(AppOptions {
        workers: true,
        federating: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let remote = remote_server().await;
    let new = format!("{}/users/new", remote.origin);

    // Alice follows the remote account (found by its URL), and its server accepts.
    let found = crate::social::get(
        &app,
        &format!(
            "/api/v2/search?q={}&resolve=true&type=accounts",
            remote.actor()
        ),
        &alice,
    )
    .await;
    let old_id = found.body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let follow = crate::social::post(
        &app,
        &format!("/api/v1/accounts/{old_id}/follow"),
        &alice,
        json!({ "reblogs": false }),
    )
    .await;
    assert_eq!(follow.status, 200, "{:?}", follow.body);
    let mut follow_id = String::new();
    eventually("the Follow arrives", Duration::from_secs(10), || async {
        remote
            .activities
            .lock()
            .await
            .iter()
            .any(|a| a["type"] == "Follow")
    })
    .await;
    for a in remote.activities.lock().await.iter() {
        if a["type"] == "Follow" {
            follow_id = a["id"].as_str().unwrap().to_string();
        }
    }
    let accept = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}#accepts/1", remote.actor()), "type": "Accept",
        "actor": remote.actor(),
        "object": { "id": follow_id, "type": "Follow", "object": remote.actor() },
    });
    send(&app, &remote, accept).await;
    let relationship = |id: String| {
        let (app, alice) = (&app, &alice);
        async move {
            crate::social::get(
                app,
                &format!("/api/v1/accounts/relationships?id[]={id}"),
                alice,
            )
            .await
            .body[0]
                .clone()
        }
    };
    eventually(
        "alice follows the old account",
        Duration::from_secs(10),
        || async { relationship(old_id.clone()).await["following"] == true },
    )
    .await;

    // A Move to an account that does not name the mover is dropped.
    let bogus = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}#moves/0", remote.actor()), "type": "Move",
        "actor": remote.actor(), "object": remote.actor(),
        "target": format!("{}/users/stranger", remote.origin),
    });
    send(&app, &remote, bogus).await;

    // The real Move: alice asks the new account to be followed and leaves the old one.
    let moving = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}#moves/1", remote.actor()), "type": "Move",
        "actor": remote.actor(), "object": remote.actor(), "target": new,
    });
    send(&app, &remote, moving).await;
    eventually(
        "a Follow of the new account and an Undo of the old follow",
        Duration::from_secs(10),
        || async {
            let got = remote.activities.lock().await;
            got.iter()
                .any(|a| a["type"] == "Follow" && a["object"] == new)
                && got
                    .iter()
                    .any(|a| a["type"] == "Undo" && a["object"]["id"] == follow_id)
        },
    )
    .await;
    let new_id = crate::social::get(
        &app,
        &format!("/api/v2/search?q={new}&resolve=true&type=accounts"),
        &alice,
    )
    .await
    .body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to_new = relationship(new_id).await;
    assert_eq!(to_new["requested"], true, "{to_new}");
    assert_eq!(to_new["showing_reblogs"], false, "settings kept: {to_new}");
    let to_old = relationship(old_id).await;
    assert_eq!(to_old["following"], false, "{to_old}");
    let moved: Option<i64> =
        sqlx::query_scalar("SELECT moved_to_account_id FROM accounts WHERE uri = $1")
            .bind(remote.actor())
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(
        moved.map(|m| m.to_string()),
        Some(to_new["id"].as_str().unwrap().to_string())
    );
    app.stop().await;
}
