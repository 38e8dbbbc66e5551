//! Web Push end to end: a push service on loopback receives what the deliver workers send,
//! checks the VAPID signature against the server's advertised key and decrypts the payload
//! with the subscription's keys, both RFC 8291 and the older aesgcm coding.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post as post_route;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};
use stampede_webpush::UaKeys;
use tokio::sync::mpsc;

use crate::social::{User, call, get, post, post_status, seed_user};

#[derive(Debug)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A push service: `/push/:name` accepts (201), `/gone/:name` says the subscription is gone.
async fn push_service() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/{kind}/{name}",
            post_route(
                |State(tx): State<mpsc::UnboundedSender<Received>>,
                 Path((kind, name)): Path<(String, String)>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    tx.send(Received {
                        path: format!("/{kind}/{name}"),
                        headers,
                        body: body.to_vec(),
                    })
                    .ok();
                    if kind == "gone" {
                        StatusCode::GONE
                    } else {
                        StatusCode::CREATED
                    }
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

async fn subscribe(
    app: &TestApp,
    user: &User,
    endpoint: &str,
    keys: &UaKeys,
    standard: bool,
    alerts: Value,
    policy: &str,
) -> Value {
    let answer = post(
        app,
        "/api/v1/push/subscription",
        user,
        json!({
            "subscription": {
                "endpoint": endpoint,
                "keys": { "p256dh": keys.p256dh_base64(), "auth": keys.auth_base64() },
                "standard": standard,
            },
            "data": { "alerts": alerts, "policy": policy },
        }),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, within: Duration) -> Option<Received> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn notifications_reach_a_push_service_encrypted_and_signed() {
    let (port, mut rx) = push_service().await;
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        env: vec![(
            "ALLOWED_PRIVATE_ADDRESSES".to_string(),
            "127.0.0.0/8".to_string(),
        )],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let endpoint = format!("http://127.0.0.1:{port}/push/bob");

    // The key every client is told is the one pushes are signed with.
    let instance = call(&app, reqwest::Method::GET, "/api/v2/instance", None, None).await;
    let server_key = instance.body["configuration"]["vapid"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server_key.len(),
        87,
        "a base64url P-256 point: {server_key}"
    );

    // RFC 8291: a mention arrives, signed and readable.
    let keys = UaKeys::generate().unwrap();
    let subscription = subscribe(
        &app,
        &bob,
        &endpoint,
        &keys,
        true,
        json!({ "mention": true }),
        "all",
    )
    .await;
    assert_eq!(subscription["server_key"], server_key.as_str());
    assert_eq!(subscription["standard"], true);
    assert_eq!(subscription["alerts"]["mention"], true);
    assert_eq!(subscription["alerts"]["favourite"], false);
    assert_eq!(subscription["policy"], "all");
    let shown = get(&app, "/api/v1/push/subscription", &bob).await;
    assert_eq!(shown.body["id"], subscription["id"]);

    post_status(&app, &alice, json!({ "status": "@bob ping" })).await;
    let got = next(&mut rx, Duration::from_secs(20))
        .await
        .expect("a push");
    assert_eq!(got.path, "/push/bob");
    assert_eq!(got.headers["content-encoding"], "aes128gcm");
    assert!(got.headers.contains_key("ttl"));
    let vapid =
        stampede_webpush::verify_authorization(&got.headers["authorization"], &endpoint).unwrap();
    assert_eq!(vapid.public_key, server_key);
    let plain = stampede_webpush::decrypt(keys.private, &keys.public, &keys.auth, &got.body)
        .expect("decrypts with the subscription's keys");
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    let notifications = get(&app, "/api/v1/notifications", &bob).await;
    assert_eq!(
        payload["notification_id"].to_string(),
        notifications.body[0]["id"].as_str().unwrap()
    );
    assert_eq!(payload["notification_type"], "mention");
    assert_eq!(payload["title"], "alice mentioned you");
    assert_eq!(payload["body"], "@bob ping");

    // Only the kinds asked for: a mention is not pushed, a favourite is.
    let keys = UaKeys::generate().unwrap();
    subscribe(
        &app,
        &bob,
        &endpoint,
        &keys,
        true,
        json!({ "favourite": "true" }),
        "all",
    )
    .await;
    let own = post_status(&app, &bob, json!({ "status": "mine" })).await;
    post_status(&app, &alice, json!({ "status": "@bob again" })).await;
    post(
        &app,
        &format!("/api/v1/statuses/{own}/favourite"),
        &alice,
        json!({}),
    )
    .await;
    let got = next(&mut rx, Duration::from_secs(20))
        .await
        .expect("a push");
    let plain =
        stampede_webpush::decrypt(keys.private, &keys.public, &keys.auth, &got.body).unwrap();
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(payload["notification_type"], "favourite");
    assert!(next(&mut rx, Duration::from_secs(2)).await.is_none());

    // The older aesgcm coding for a client that did not ask for the standard one.
    let keys = UaKeys::generate().unwrap();
    subscribe(
        &app,
        &bob,
        &endpoint,
        &keys,
        false,
        json!({ "follow": true }),
        "all",
    )
    .await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &carol,
        json!({}),
    )
    .await;
    let got = next(&mut rx, Duration::from_secs(20))
        .await
        .expect("a push");
    assert_eq!(got.headers["content-encoding"], "aesgcm");
    let salt = got.headers["encryption"].trim_start_matches("salt=");
    let crypto_key = &got.headers["crypto-key"];
    let dh = crypto_key
        .split(';')
        .find_map(|p| p.strip_prefix("dh="))
        .unwrap();
    stampede_webpush::verify_legacy_authorization(
        &got.headers["authorization"],
        crypto_key,
        &endpoint,
    )
    .unwrap();
    let plain = stampede_webpush::decrypt_legacy(
        keys.private,
        &keys.public,
        &keys.auth,
        salt,
        dh,
        &got.body,
    )
    .unwrap();
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(payload["notification_type"], "follow");

    // Policy: `none` hears from nobody; `followed` only from those the user follows.
    let keys = UaKeys::generate().unwrap();
    subscribe(
        &app,
        &bob,
        &endpoint,
        &keys,
        true,
        json!({ "mention": true }),
        "none",
    )
    .await;
    post_status(&app, &carol, json!({ "status": "@bob hush" })).await;
    assert!(next(&mut rx, Duration::from_secs(3)).await.is_none());
    let updated = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/push/subscription",
        Some(&bob.token),
        Some(json!({ "data": { "alerts": { "mention": true }, "policy": "followed" } })),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["policy"], "followed");
    let bad = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/push/subscription",
        Some(&bob.token),
        Some(json!({ "data": { "policy": "everyone" } })),
    )
    .await;
    assert_eq!(bad.status, 422);
    post_status(&app, &carol, json!({ "status": "@bob still there?" })).await;
    assert!(next(&mut rx, Duration::from_secs(3)).await.is_none());
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", carol.id),
        &bob,
        json!({}),
    )
    .await;
    post_status(&app, &carol, json!({ "status": "@bob now?" })).await;
    let got = next(&mut rx, Duration::from_secs(20))
        .await
        .expect("a push");
    assert_eq!(got.path, "/push/bob");

    // A push service that says the subscription is gone: it is forgotten.
    let keys = UaKeys::generate().unwrap();
    let gone = format!("http://127.0.0.1:{port}/gone/bob");
    subscribe(
        &app,
        &bob,
        &gone,
        &keys,
        true,
        json!({ "mention": true }),
        "all",
    )
    .await;
    post_status(&app, &alice, json!({ "status": "@bob bye" })).await;
    next(&mut rx, Duration::from_secs(20))
        .await
        .expect("a push");
    let mut status = 200;
    for _ in 0..100 {
        status = get(&app, "/api/v1/push/subscription", &bob).await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404);

    // Bad keys are refused; deleting answers {} whether or not there is one.
    let refused = post(
        &app,
        "/api/v1/push/subscription",
        &bob,
        json!({ "subscription": { "endpoint": "not a url", "keys": { "p256dh": "abc", "auth": "x" } } }),
    )
    .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let deleted = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/push/subscription",
        Some(&bob.token),
        None,
    )
    .await;
    assert_eq!((deleted.status, deleted.body), (200, json!({})));
    app.stop().await;
}
