//! The streaming API end to end: real WebSocket and SSE clients against the streaming service,
//! with statuses posted through the REST API, fanned out through RabbitMQ and published through
//! Redis — two streaming processes at once, slow clients, revoked tokens and bad input.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app, spawn_streaming};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::social::{User, call, post, post_status, seed_user};

async fn streaming_app(env: &[(&str, &str)]) -> TestApp {
    spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        streaming: true,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..AppOptions::default()
    })
    .await
    .unwrap()
}

/// A WebSocket client.
pub(crate) struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a client presents its token.
#[derive(Clone, Copy)]
pub(crate) enum Via {
    Header,
    Protocol,
    Query,
}

pub(crate) async fn try_ws(
    addr: SocketAddr,
    query: &str,
    token: Option<&str>,
    via: Via,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut url = format!("ws://{addr}/api/v1/streaming?{query}");
    if let (Some(token), Via::Query) = (token, via) {
        url.push_str(&format!("&access_token={token}"));
    }
    let mut request = url.into_client_request().unwrap();
    match (token, via) {
        (Some(token), Via::Header) => {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        (Some(token), Via::Protocol) => {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", token.parse().unwrap());
        }
        _ => {}
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Ws { socket })
}

async fn ws(addr: SocketAddr, query: &str, user: &User) -> Ws {
    try_ws(addr, query, Some(&user.token), Via::Header)
        .await
        .unwrap()
}

impl Ws {
    async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// The next text frame within `limit`, as JSON; `None` on time-out or close.
    async fn next(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next event frame, failing the test after 10 s.
    async fn event(&mut self) -> (Vec<String>, String, String) {
        let frame = self
            .next(Duration::from_secs(10))
            .await
            .expect("an event within 10 s");
        assert!(frame.get("error").is_none(), "unexpected error {frame}");
        let stream = frame["stream"]
            .as_array()
            .unwrap_or_else(|| panic!("no stream in {frame}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        (
            stream,
            frame["event"].as_str().unwrap().to_string(),
            frame["payload"].as_str().unwrap().to_string(),
        )
    }

    /// Collects events for `limit` (for asserting what did *not* arrive).
    pub(crate) async fn drain(&mut self, limit: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Some(frame) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(frame);
        }
        frames
    }

    /// Waits (up to 10 s) for the server to end the connection: the close frame's code, or
    /// `None` if it ended without one. Fails the test if it stays open.
    async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
                Err(_) => panic!("the connection stayed open"),
            }
        }
    }

    /// Waits until the server has handled every message sent so far: an invalid subscribe is
    /// answered with an error frame, in order.
    async fn barrier(&mut self) {
        self.send(json!({"type": "subscribe", "stream": "barrier"}))
            .await;
        let frame = self.next(Duration::from_secs(5)).await.unwrap();
        assert!(
            frame["error"].as_str().unwrap().contains("barrier"),
            "{frame}"
        );
    }
}

fn status_id(payload: &str) -> String {
    let status: Value = serde_json::from_str(payload).unwrap();
    status["id"].as_str().unwrap().to_string()
}

async fn follow(app: &TestApp, who: &User, whom: &User) {
    let answer = post(
        app,
        &format!("/api/v1/accounts/{}/follow", whom.id),
        who,
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

#[tokio::test]
async fn websocket_multiplexes_streams_and_filters_per_viewer() {
    let app = streaming_app(&[("STREAMING_MAX_SUBSCRIPTIONS", "4")]).await;
    let addr = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    follow(&app, &bob, &alice).await;

    let mut bob_ws = ws(addr, "stream=user", &bob).await;
    bob_ws
        .send(json!({"type": "subscribe", "stream": "public:local"}))
        .await;
    bob_ws
        .send(json!({"type": "subscribe", "stream": "hashtag", "tag": "Rust"}))
        .await;
    // Bad input: an error frame each, and the connection and its subscriptions stay.
    bob_ws
        .send(json!({"type": "subscribe", "stream": "nope"}))
        .await;
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["status"], 400, "{error}");
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");
    bob_ws
        .socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("Malformed message"),
        "{error}"
    );
    bob_ws
        .send(json!({"type": "dance", "stream": "user"}))
        .await;
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("dance"),
        "{error}"
    );
    bob_ws
        .send(json!({"type": "subscribe", "stream": "hashtag"}))
        .await;
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["error"], "No tag for stream provided");
    bob_ws
        .send(json!({"type": "subscribe", "stream": "list", "list": "12345"}))
        .await;
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["status"], 404, "{error}");
    bob_ws
        .send(json!({"type": "subscribe", "stream": "public"}))
        .await;
    bob_ws
        .send(json!({"type": "subscribe", "stream": "public:remote"}))
        .await;
    let error = bob_ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["status"], 429, "{error}");

    // One status: on bob's user stream (he follows alice), public, public:local and the tag.
    let id = post_status(&app, &alice, json!({"status": "Hello #rust"})).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (stream, event, payload) = bob_ws.event().await;
        assert_eq!(event, "update");
        assert_eq!(status_id(&payload), id);
        seen.push(stream);
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            vec!["hashtag".to_string(), "rust".to_string()],
            vec!["public".to_string()],
            vec!["public:local".to_string()],
            vec!["user".to_string()],
        ]
    );

    // Unsubscribing from three leaves only the user stream.
    for stream in ["public", "public:local"] {
        bob_ws
            .send(json!({"type": "unsubscribe", "stream": stream}))
            .await;
    }
    bob_ws
        .send(json!({"type": "unsubscribe", "stream": "hashtag", "tag": "rust"}))
        .await;
    bob_ws.barrier().await;

    // A mention is a notification on the user stream.
    let mention = post_status(&app, &carol, json!({"status": "@bob look"})).await;
    let (stream, event, payload) = bob_ws.event().await;
    assert_eq!(
        (stream, event.as_str()),
        (vec!["user".to_string()], "notification")
    );
    let notification: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(notification["type"], "mention");
    assert_eq!(notification["status"]["id"], mention);
    assert_eq!(notification["account"]["id"], carol.id);

    // An edit is status.update; a delete is delete with the id.
    let answer = call(
        &app,
        Method::PUT,
        &format!("/api/v1/statuses/{id}"),
        Some(&alice.token),
        Some(json!({"status": "Hello again #rust"})),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let (_, event, payload) = bob_ws.event().await;
    assert_eq!(event, "status.update");
    let edited: Value = serde_json::from_str(&payload).unwrap();
    assert!(edited["content"].as_str().unwrap().contains("again"));
    let answer = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/statuses/{id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    let (stream, event, payload) = bob_ws.event().await;
    assert_eq!(
        (stream, event.as_str(), payload),
        (vec!["user".to_string()], "delete", id)
    );

    // Filters: after bob mutes alice, her statuses stop reaching him; carol's public ones do.
    let mut public = ws(addr, "stream=public", &bob).await;
    let answer = post(
        &app,
        &format!("/api/v1/accounts/{}/mute", alice.id),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await; // the relations reload
    post_status(&app, &alice, json!({"status": "muted"})).await;
    let from_carol = post_status(&app, &carol, json!({"status": "still here"})).await;
    let (_, _, payload) = public.event().await;
    assert_eq!(
        status_id(&payload),
        from_carol,
        "the muted status came first"
    );

    // Private statuses go to followers' user streams, never to public ones.
    let dave = seed_user(&app, "dave", false).await;
    follow(&app, &dave, &carol).await;
    let mut dave_ws = ws(addr, "stream=user", &dave).await;
    dave_ws
        .send(json!({"type": "subscribe", "stream": "public"}))
        .await;
    dave_ws.barrier().await;
    let private = post_status(
        &app,
        &carol,
        json!({"status": "followers only", "visibility": "private"}),
    )
    .await;
    let (stream, _, payload) = dave_ws.event().await;
    assert_eq!(stream, vec!["user".to_string()]);
    assert_eq!(status_id(&payload), private);
    assert!(
        dave_ws.drain(Duration::from_millis(700)).await.is_empty(),
        "a private status reached a public stream"
    );
    assert!(public.drain(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn tokens_scopes_and_limits_are_enforced() {
    let app = streaming_app(&[
        ("STREAMING_MAX_CONNECTIONS_PER_ACCOUNT", "2"),
        ("STREAMING_SWEEP_SECONDS", "1"),
    ])
    .await;
    let addr = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/api/v1/streaming/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");

    // No token: public streams only.
    let refused = client
        .get(format!("http://{addr}/api/v1/streaming/user"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        try_ws(addr, "stream=user", None, Via::Header)
            .await
            .is_err()
    );
    let mut anonymous = try_ws(addr, "stream=public", None, Via::Header)
        .await
        .unwrap();
    // A bad token is refused outright.
    let refused = client
        .get(format!(
            "http://{addr}/api/v1/streaming/public?access_token=nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "Invalid access token");

    // A token without read scopes cannot read notifications.
    let writer = crate::social::seed_user(&app, "writer", false).await;
    sqlx::query("UPDATE oauth_access_tokens SET scopes = 'write' WHERE account_id = $1")
        .bind(writer.id.parse::<i64>().unwrap())
        .execute(&app.ctx.db)
        .await
        .unwrap();
    let refused = client
        .get(format!("http://{addr}/api/v1/streaming/user/notification"))
        .bearer_auth(&writer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The token may come as the subprotocol or the query; a third connection is too many.
    let mut by_protocol = try_ws(addr, "stream=user", Some(&alice.token), Via::Protocol)
        .await
        .unwrap();
    let mut by_query = try_ws(addr, "stream=user", Some(&alice.token), Via::Query)
        .await
        .unwrap();
    match try_ws(addr, "stream=user", Some(&alice.token), Via::Header).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a third connection was not refused: {:?}", other.is_ok()),
    }
    let id = post_status(&app, &alice, json!({"status": "to everyone"})).await;
    for socket in [&mut by_protocol, &mut by_query, &mut anonymous] {
        let (_, _, payload) = socket.event().await;
        assert_eq!(status_id(&payload), id);
    }

    // Revoking the token closes its connections at once; others stay open.
    let app_answer = call(
        &app,
        Method::POST,
        "/api/v1/apps",
        None,
        Some(json!({"client_name": "t", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read"})),
    )
    .await;
    assert_eq!(app_answer.status, 200, "{:?}", app_answer.body);
    let client_id = app_answer.body["client_id"].as_str().unwrap();
    let client_secret = app_answer.body["client_secret"].as_str().unwrap();
    sqlx::query(
        "UPDATE oauth_access_tokens SET application_id = \
           (SELECT id FROM oauth_applications WHERE client_id = $1) WHERE account_id = $2",
    )
    .bind(client_id)
    .bind(alice.id.parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let revoked = call(
        &app,
        Method::POST,
        "/oauth/revoke",
        None,
        Some(json!({"client_id": client_id, "client_secret": client_secret, "token": alice.token})),
    )
    .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(by_protocol.closed().await, Some(1008));
    assert_eq!(by_query.closed().await, Some(1008));
    post_status(&app, &writer, json!({"status": "anyone there?"})).await;
    assert!(anonymous.next(Duration::from_secs(10)).await.is_some());

    // A revocation the streaming process never heard of (written straight to the database, as
    // if Redis had been down) is caught by the periodic sweep.
    let carol = seed_user(&app, "carol", false).await;
    let mut missed = ws(addr, "stream=user", &carol).await;
    sqlx::query("UPDATE oauth_access_tokens SET revoked_at = now() WHERE account_id = $1")
        .bind(carol.id.parse::<i64>().unwrap())
        .execute(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(missed.closed().await, Some(1008));
}

/// The next server-sent event (name and data), failing the test after 10 s.
async fn sse_event(response: &mut reqwest::Response) -> (String, String) {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = text.find("\n\n") {
            let block = &text[..end];
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
            };
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                return (event, data);
            }
            text.drain(..end + 2); // a heartbeat comment
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("an SSE event within 10 s")
            .unwrap()
            .expect("the SSE stream ended");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn two_processes_both_deliver_over_sse_and_websocket() {
    let app = streaming_app(&[]).await;
    let (second, second_shutdown) = spawn_streaming(&app).await.unwrap();
    let first = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    follow(&app, &bob, &alice).await;

    // SSE on the first process, WebSocket on the second.
    let response = reqwest::Client::new()
        .get(format!("http://{first}/api/v1/streaming/user"))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut sse = response;
    let tagged = reqwest::Client::new()
        .get(format!("http://{first}/api/v1/streaming/hashtag?tag=Both"))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let mut tagged = tagged;
    let mut ws_second = ws(second, "stream=public:local", &bob).await;
    // Both processes are subscribed once their clients are registered; give the second
    // process's subscription a moment to be established.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = post_status(&app, &alice, json!({"status": "to both #both"})).await;
    let (_, event, payload) = ws_second.event().await;
    assert_eq!(
        (event.as_str(), status_id(&payload)),
        ("update", id.clone())
    );
    for response in [&mut sse, &mut tagged] {
        let (event, data) = sse_event(response).await;
        assert_eq!((event.as_str(), status_id(&data)), ("update", id.clone()));
    }

    // A graceful stop closes WebSockets with "going away" so clients reconnect elsewhere.
    second_shutdown.cancel();
    assert_eq!(ws_second.closed().await, Some(1001));
}

/// Every WebSocket is pinged once per STREAMING_PING_SECONDS by the process's heartbeat (a
/// slice of the clients at a time), and the pings do not disturb the events around them.
#[tokio::test]
async fn websockets_are_pinged_every_period_between_events() {
    let app = streaming_app(&[("STREAMING_PING_SECONDS", "1")]).await;
    let addr = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(ws(addr, "stream=public:local", &alice).await);
    }
    // Two pings each within 4 s (one a second is due; CI machines are slow).
    for socket in &mut sockets {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        let mut pings = 0;
        while pings < 2 {
            match tokio::time::timeout_at(deadline, socket.socket.next()).await {
                Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
                other => panic!("expected two pings within 4 s, got {pings} then {other:?}"),
            }
        }
    }
    let id = post_status(&app, &alice, json!({"status": "between pings"})).await;
    for socket in &mut sockets {
        let (stream, event, payload) = socket.event().await;
        assert_eq!(stream, ["public:local"]);
        assert_eq!(
            (event.as_str(), status_id(&payload)),
            ("update", id.clone())
        );
    }
}

#[tokio::test]
async fn a_slow_client_is_dropped_without_slowing_the_others() {
    let app = streaming_app(&[("STREAMING_CLIENT_BUFFER", "8")]).await;
    let addr = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let mut slow = ws(addr, "stream=public", &alice).await;
    let mut fast = ws(addr, "stream=public", &alice).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 400 events of 64 KiB (25 MiB) — far more than socket buffers hold — published straight to
    // the channel the delivery workers publish on. The slow client reads nothing meanwhile.
    let payload = "x".repeat(64 * 1024);
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < 400 {
            let (_, _, p) = fast.event().await;
            assert_eq!(p.len(), 64 * 1024);
            received += 1;
        }
        received
    });
    for i in 0..400 {
        let event = stampede_social::stream::StatusEvent {
            event: "update".to_string(),
            payload: payload.clone(),
            published_ms: stampede_social::stream::now_ms(),
            author: i,
            public: true,
            local: true,
            ..Default::default()
        };
        app.ctx
            .cache
            .publish(
                stampede_social::stream::STATUS_CHANNEL,
                &serde_json::to_string(&event).unwrap(),
            )
            .await
            .unwrap();
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(reader.await.unwrap(), 400, "the fast client lost events");
    // The slow one was cut off ("try again later", if the close frame still fits).
    assert!(matches!(slow.closed().await, None | Some(1013)));
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stampede_streaming_slow_clients_dropped_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("streaming"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Filters apply to streamed statuses as to timelines: a `warn` filter's match arrives with
/// `filtered`, a `hide` filter's match does not arrive, each only in the contexts it names; a
/// change to the filters is announced with `filters_changed` and applies at once.
#[tokio::test]
async fn filters_mark_or_hide_streamed_statuses_and_changes_are_announced() {
    let app = streaming_app(&[]).await;
    let addr = app.streaming.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    follow(&app, &alice, &bob).await;
    let mut home = ws(addr, "stream=user", &alice).await;
    let mut public = ws(addr, "stream=public", &alice).await;
    home.barrier().await;
    public.barrier().await;

    let warn = post(
        &app,
        "/api/v2/filters",
        &alice,
        json!({ "title": "Spoilers", "context": ["home"], "filter_action": "warn",
                "keywords_attributes": [{ "keyword": "finale" }] }),
    )
    .await;
    assert_eq!(warn.status, 200, "{:?}", warn.body);
    let frame = home
        .next(Duration::from_secs(10))
        .await
        .expect("filters_changed");
    assert_eq!(frame["event"], "filters_changed", "{frame}");
    assert!(frame.get("payload").is_none(), "{frame}");
    let hide = post(
        &app,
        "/api/v2/filters",
        &alice,
        json!({ "title": "No ads", "context": ["home", "public"], "filter_action": "hide",
                "keywords_attributes": [{ "keyword": "buy now" }] }),
    )
    .await;
    assert_eq!(hide.status, 200);
    assert_eq!(
        home.next(Duration::from_secs(10)).await.unwrap()["event"],
        "filters_changed"
    );

    // Warned on home (where the filter applies), plain on public (where it does not).
    let spoiler =
        crate::social::post_status(&app, &bob, json!({ "status": "the finale was wild" })).await;
    let (_, event, payload) = home.event().await;
    assert_eq!(event, "update");
    let status: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(status["id"], spoiler.as_str());
    assert_eq!(status["filtered"][0]["filter"]["title"], "Spoilers");
    assert_eq!(status["filtered"][0]["keyword_matches"][0], "finale");
    let (_, _, payload) = public.event().await;
    let status: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(status["id"], spoiler.as_str());
    assert!(
        status.get("filtered").is_none_or(|f| f == &json!([])),
        "{status}"
    );

    // Hidden everywhere it applies; the next status still comes.
    crate::social::post_status(&app, &bob, json!({ "status": "Buy now, cheap!" })).await;
    let plain = crate::social::post_status(&app, &bob, json!({ "status": "just news" })).await;
    let (_, _, payload) = home.event().await;
    assert_eq!(status_id(&payload), plain);
    let (_, _, payload) = public.event().await;
    assert_eq!(status_id(&payload), plain);

    // Deleting the hide filter lets such statuses through again.
    let hide_id = hide.body["id"].as_str().unwrap();
    let gone = crate::social::call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v2/filters/{hide_id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(gone.status, 200);
    assert_eq!(
        home.next(Duration::from_secs(10)).await.unwrap()["event"],
        "filters_changed"
    );
    let ad = crate::social::post_status(&app, &bob, json!({ "status": "buy now again" })).await;
    let (_, _, payload) = home.event().await;
    assert_eq!(status_id(&payload), ad);
    app.stop().await;
}
