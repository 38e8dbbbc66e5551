//! Inputs an attacker controls (issue 22), route by route: every route the sources declare is
//! called with tokens that lack its scope, without a token, as a non-staff user on staff routes,
//! and with an oversize body; the outbound guard is tried through every fetch a user can cause;
//! markup is tried through every place a user can put text; the rate limits are tried across
//! two web replicas.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::social::{User, call, post_status, seed_user};

/// A route as `tools/api_coverage.py --routes` lists it: the method, the path as declared and
/// the scopes Mastodon's OpenAPI description names for it (any one suffices).
#[derive(Debug, Clone, Deserialize)]
struct Route {
    method: String,
    path: String,
    scopes: Option<Vec<String>>,
}

/// Every route the services declare, read from the sources by the same tool that reports the
/// API's coverage, so a route added later is covered without editing this test.
fn declared_routes() -> Vec<Route> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("python3")
        .arg(format!("{root}/tools/api_coverage.py"))
        .arg("--routes")
        .output()
        .expect("python3 runs tools/api_coverage.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let routes: Vec<Route> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(routes.len() > 250, "only {} routes found", routes.len());
    routes
}

fn is_staff_route(path: &str) -> bool {
    path.starts_with("/api/v1/admin/") || path.starts_with("/api/v2/admin/")
}

/// A token for `account` holding exactly `scopes`.
async fn token_with(app: &TestApp, account: &User, scopes: &str) -> String {
    let token = stampede_web::tokens::generate();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(stampede_core::id::IdGenerator::new().next_id().as_i64())
    .bind(stampede_web::tokens::digest(&token))
    .bind(account.id.parse::<i64>().unwrap())
    .bind(scopes)
    .execute(&app.ctx.db)
    .await
    .unwrap();
    token
}

/// The granular user scopes, `push` and `profile`: a token with all of them except those that
/// grant one of `needed` (Mastodon's `follow` is left out: it grants several).
fn all_but(needed: &[String]) -> String {
    stampede_core::scope::KNOWN_SCOPES
        .iter()
        .filter(|s| s.starts_with("read:") || s.starts_with("write:") || **s == "push")
        .chain(std::iter::once(&"profile"))
        .filter(|s| !needed.iter().any(|n| n == *s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What fills a route's parameters: Bob (who must be called `bob`) and one of his statuses.
fn path_ids(bob: &User, status: String) -> HashMap<&'static str, String> {
    HashMap::from([
        ("account", bob.id.clone()),
        ("status", status),
        ("username", bob.username.clone()),
    ])
}

/// The route's path with its parameters filled in with things that exist, so that only the
/// credentials are wrong.
fn concrete(path: &str, ids: &HashMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        let name = &rest[open + 1..close];
        let before = &out;
        let value = if name.starts_with('*') {
            "x".to_string()
        } else if name == "username" {
            ids["username"].clone()
        } else if name == "name" || name == "hashtag" {
            "rust".to_string()
        } else if name == "year" {
            "2026".to_string()
        } else if name == "date" {
            "2026-01-01".to_string()
        } else if before.ends_with("/statuses/") || name == "quoting_status_id" {
            ids["status"].clone()
        } else if before.ends_with("/accounts/")
            || before.ends_with("/follow_requests/")
            || before.ends_with("/suggestions/")
        {
            ids["account"].clone()
        } else {
            "1".to_string()
        };
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Where Mastodon's controllers ask for other scopes than its OpenAPI description says.
const SCOPE_ERRATA: &[(&str, &str, &[&str])] = &[
    // Api::V1::SuggestionsController and V2: read:accounts to list, write:accounts to dismiss.
    ("GET", "/api/v1/suggestions", &["read:accounts"]),
    ("GET", "/api/v2/suggestions", &["read:accounts"]),
    (
        "DELETE",
        "/api/v1/suggestions/{account_id}",
        &["write:accounts"],
    ),
    // Api::V2::NotificationsController reads with read:notifications.
    (
        "GET",
        "/api/v2/notifications/{group_key}/accounts",
        &["read:notifications"],
    ),
];

fn needed_scopes(route: &Route) -> Option<Vec<String>> {
    SCOPE_ERRATA
        .iter()
        .find(|(m, p, _)| *m == route.method && *p == route.path)
        .map(|(_, _, s)| s.iter().map(|s| s.to_string()).collect())
        .or_else(|| route.scopes.clone())
}

/// Query parameters a route needs before it gets as far as its answer.
fn with_query(path: String) -> String {
    match path.as_str() {
        "/api/v1/accounts/lookup" => format!("{path}?acct=bob"),
        "/api/v1/timelines/link" => format!("{path}?url=https%3A%2F%2Fexample.com%2F"),
        _ => path,
    }
}

fn method(route: &Route) -> Method {
    Method::from_bytes(route.method.as_bytes()).unwrap()
}

fn body_for(route: &Route) -> Option<Value> {
    (route.method != "GET").then(|| json!({}))
}

/// Reads that Mastodon also answers without a token (its controllers authorize "if got token"),
/// or hides from anonymous callers with a 404 (the instance's domain blocks, shown to users).
const EXPECTED_PUBLIC: &[&str] = &[
    "/api/v1/accounts/lookup",
    "/api/v1/accounts/{id}/identity_proofs",
    "/api/v1/accounts/{id}/statuses",
    "/api/v1/instance/domain_blocks",
    "/api/v1/polls/{id}",
    "/api/v1/statuses",
    "/api/v1/statuses/{id}",
    "/api/v1/statuses/{id}/context",
    "/api/v1/statuses/{id}/favourited_by",
    "/api/v1/statuses/{id}/history",
    "/api/v1/statuses/{id}/reblogged_by",
    "/api/v1/tags/{name}",
    "/api/v1/timelines/link",
    "/api/v1/timelines/public",
    "/api/v1/timelines/tag/{name}",
    "/api/v2/search",
];

/// Staff-only routes that a token without admin scopes, or a user who is not staff, must not
/// pass; user routes that a token without their scope must not pass; nothing that needs a user
/// answers one who sent no token.
#[tokio::test]
async fn every_route_needs_its_scope_and_staff_routes_need_staff() {
    let app = spawn_app(AppOptions {
        // Shown to signed-in users only: a token is needed.
        env: vec![("SHOW_DOMAIN_BLOCKS".to_string(), "users".to_string())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let admin = seed_user(&app, "root", false).await;
    crate::moderation::make_admin(&app, &admin).await;
    let status = post_status(&app, &bob, json!({ "status": "a public status #rust" })).await;
    let ids = path_ids(&bob, status);
    let routes = declared_routes();
    let mut failures = Vec::new();
    let mut checked = 0;

    // Without any admin scope, an admin is refused; with them, a user who is not staff is.
    let admin_without = token_with(&app, &admin, "read write follow push profile").await;
    let user_with = token_with(
        &app,
        &alice,
        "read write follow push profile admin:read admin:write",
    )
    .await;
    for route in routes.iter().filter(|r| is_staff_route(&r.path)) {
        let path = concrete(&route.path, &ids);
        for (who, token, want) in [
            ("no token", None, 401),
            ("an admin without admin scopes", Some(&admin_without), 403),
            ("a user who is not staff", Some(&user_with), 403),
        ] {
            let answer = call(
                &app,
                method(route),
                &path,
                token.map(|t| t.as_str()),
                body_for(route),
            )
            .await;
            checked += 1;
            if answer.status != want {
                failures.push(format!(
                    "{} {path} as {who}: {} {:?} (want {want})",
                    route.method, answer.status, answer.body
                ));
            }
        }
    }

    // User routes: each tried with a token holding every other user scope.
    let mut public_reads = BTreeSet::new();
    for route in routes.iter().filter(|r| !is_staff_route(&r.path)) {
        let Some(needed) = needed_scopes(route) else {
            continue;
        };
        let needed = &needed;
        let path = with_query(concrete(&route.path, &ids));
        if !needed.is_empty() {
            let token = token_with(&app, &alice, &all_but(needed)).await;
            let answer = call(&app, method(route), &path, Some(&token), body_for(route)).await;
            checked += 1;
            if answer.status != 403 {
                failures.push(format!(
                    "{} {path} without {needed:?}: {} {:?} (want 403)",
                    route.method, answer.status, answer.body
                ));
            }
        }
        let answer = call(&app, method(route), &path, None, body_for(route)).await;
        checked += 1;
        if route.method == "GET" && EXPECTED_PUBLIC.contains(&route.path.as_str()) {
            public_reads.insert(route.path.clone());
            if answer.status >= 500 {
                failures.push(format!("GET {path} without a token: {}", answer.status));
            }
        } else if answer.status != 401 {
            failures.push(format!(
                "{} {path} without a token: {} {:?} (want 401)",
                route.method, answer.status, answer.body
            ));
        }
    }
    assert_eq!(
        public_reads.len(),
        EXPECTED_PUBLIC.len(),
        "a public read is no longer declared: {public_reads:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

/// What the trap servers saw: the address that was called, the method and the path.
type Hits = std::sync::Arc<tokio::sync::Mutex<Vec<(String, String)>>>;

/// A fake server on `ip:port` that answers like a small fediverse server and records every
/// request. The one on 127.0.0.2 is the server the guard lets through; the ones on 127.0.0.1 and
/// ::1 stand for the private space nothing may reach.
async fn trap(ip: &str, port: u16, hits: Hits) -> Option<()> {
    use axum::extract::{Query, State};
    use axum::http::{StatusCode, Uri, header};
    use axum::response::IntoResponse;

    let listener = tokio::net::TcpListener::bind((ip, port)).await.ok()?;
    let tag = ip.to_string();
    let key = stampede_activitypub::keys::generate().unwrap().public;
    let handler = move |State(hits): State<Hits>,
                        method: Method,
                        uri: Uri,
                        Query(query): Query<HashMap<String, String>>| {
        let tag = tag.clone();
        let key = key.clone();
        async move {
            hits.lock()
                .await
                .push((tag, format!("{method} {}", uri.path())));
            let fair = format!("http://127.0.0.2:{port}");
            let path = uri.path();
            if path == "/.well-known/webfinger" {
                let resource = query.get("resource").cloned().unwrap_or_default();
                let name = resource
                    .trim_start_matches("acct:")
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let jrd = json!({
                    "subject": resource,
                    "links": [{ "rel": "self", "type": "application/activity+json",
                                "href": format!("{fair}/users/{name}") }],
                });
                return (
                    [(header::CONTENT_TYPE, "application/jrd+json")],
                    jrd.to_string(),
                )
                    .into_response();
            }
            if let Some(document) = hostile(path, &fair, &key) {
                return (
                    [(header::CONTENT_TYPE, "application/activity+json")],
                    document.to_string(),
                )
                    .into_response();
            }
            if let Some(name) = path.strip_prefix("/users/").filter(|n| !n.contains('/')) {
                // `leaky` names addresses in private space for everything the server would
                // fetch or deliver to afterwards; `fair` names itself.
                let (inbox, shared, icon) = if name == "leaky" {
                    (
                        format!("http://127.0.0.1:{port}/users/leaky/inbox"),
                        format!("http://localhost:{port}/inbox"),
                        format!("http://[::1]:{port}/avatar.png"),
                    )
                } else {
                    (
                        format!("{fair}/users/{name}/inbox"),
                        format!("{fair}/inbox"),
                        format!("{fair}/avatar.png"),
                    )
                };
                let id = format!("{fair}/users/{name}");
                let actor = json!({
                    "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                    "id": id, "type": "Person", "preferredUsername": name,
                    "inbox": inbox, "endpoints": { "sharedInbox": shared },
                    "icon": { "type": "Image", "mediaType": "image/png", "url": icon },
                    "publicKey": { "id": format!("{id}#main-key"), "owner": id, "publicKeyPem": key },
                });
                return (
                    [(header::CONTENT_TYPE, "application/activity+json")],
                    actor.to_string(),
                )
                    .into_response();
            }
            if path == "/redirect" {
                let to = query.get("to").cloned().unwrap_or_default();
                return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
            }
            if method == Method::POST {
                return StatusCode::ACCEPTED.into_response();
            }
            (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><meta property=\"og:title\" content=\"A page\"></head></html>",
            )
                .into_response()
        }
    };
    let router = axum::Router::new().fallback(handler).with_state(hits);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Some(())
}

/// Markup meant to run script in a reader's browser, every way it has been tried; each short
/// enough for a profile field.
const PAYLOADS: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "<a href=\"javascript:alert(3)\">a</a>",
    "<a href=\"data:text/html,<script>alert(4)</script>\">b</a>",
    "<iframe src=\"//evil.example\"></iframe>",
    "<svg onload=alert(5)></svg>",
    "<style>*{}</style>",
    "<form action=\"//evil.example\"><input></form>",
    "<p onclick=\"alert(6)\" style=\"x\">p</p>",
    "<object data=x></object><embed src=x>",
    "<base href=\"//evil.example\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(7)>",
    "<a href=\"JaVaScRiPt:alert(11)\">c</a>",
    "<a href=\" &#14;javascript:alert(12)\">d</a>",
    "\"><script>alert(13)</script>",
];

fn scripts() -> String {
    PAYLOADS.concat()
}

/// HTML that a client inserts as it is (`content`, `note`, a field's `value`): what users wrote
/// may stay as escaped text, but no tag in it may run anything (the check the HTML fuzz target
/// makes too).
fn assert_inert(what: &str, html: &str) {
    if let Err(panic) = std::panic::catch_unwind(|| stampede_social::fuzzing::assert_inert(html)) {
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        panic!("{what}: {message}");
    }
    assert_no_handlers(what, html);
}

/// No `alert(` inside a tag (an event handler or a URL), and no live `<script>` — for HTML
/// pages, which escape what users wrote rather than dropping it.
fn assert_no_handlers(what: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script>alert"), "{what} runs a script");
    for (at, _) in lower.match_indices("alert(") {
        let open = lower[..at].rfind('<');
        let close = lower[..at].rfind('>');
        assert!(
            open.is_none() || close > open,
            "{what} has a handler in a tag: …{}…",
            &html[open.unwrap().saturating_sub(20)..(at + 20).min(html.len())]
        );
    }
}

/// Only the well-formed emoji with an http(s) image (`:fine:`) is kept.
fn assert_emojis_safe(what: &str, emojis: &Value) {
    let codes: Vec<_> = emojis
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["shortcode"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(codes, ["fine"], "{what}'s emojis: {emojis}");
    for emoji in emojis.as_array().into_iter().flatten() {
        let code = emoji["shortcode"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{what}: emoji shortcode {code:?}"
        );
        for key in ["url", "static_url"] {
            let url = emoji[key].as_str().unwrap_or_default();
            assert!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{what}: emoji {key} {url:?}"
            );
        }
    }
}

/// The hostile server's documents: an actor and a note full of [`PAYLOADS`], with custom emojis
/// whose names and images try the same.
fn hostile(path: &str, base: &str, key: &str) -> Option<Value> {
    let actor = format!("{base}/users/evil");
    let emojis = json!([
        { "type": "Emoji", "name": ":evil:", "icon": { "type": "Image", "url": "javascript:alert(8)" } },
        { "type": "Emoji", "name": ":x\" onerror=\"alert(9):", "icon": { "type": "Image", "url": format!("{base}/e.png") } },
        { "type": "Emoji", "name": ":fine:", "icon": { "type": "Image", "url": format!("{base}/fine.png") } },
    ]);
    match path {
        "/users/evil" => Some(json!({
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": actor, "type": "Person", "preferredUsername": "evil",
            "name": format!(":fine: :evil: {}", scripts()),
            "summary": scripts(),
            "inbox": format!("{actor}/inbox"),
            "attachment": [{ "type": "PropertyValue", "name": scripts(), "value": scripts() }],
            "tag": emojis,
            "publicKey": { "id": format!("{actor}#main-key"), "owner": actor, "publicKeyPem": key },
        })),
        "/notes/evil" => Some(json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{base}/notes/evil"), "type": "Note", "attributedTo": actor,
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "content": format!("<p>:fine: :evil:</p>{}", scripts()),
            "summary": scripts(),
            "published": "2026-12-01T00:00:00Z",
            "tag": emojis,
            "attachment": [{ "type": "Document", "mediaType": "image/png",
                             "url": "javascript:alert(10)", "name": scripts() }],
        })),
        _ => None,
    }
}

/// Traps on 127.0.0.2, 127.0.0.1 and ::1, all on one port.
async fn traps() -> (u16, Hits) {
    let hits = Hits::default();
    for _ in 0..50 {
        let probe = tokio::net::TcpListener::bind(("127.0.0.2", 0))
            .await
            .unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if trap("127.0.0.1", port, hits.clone()).await.is_some()
            && trap("::1", port, hits.clone()).await.is_some()
            && trap("127.0.0.2", port, hits.clone()).await.is_some()
        {
            return (port, hits);
        }
    }
    panic!("no port free on 127.0.0.1, 127.0.0.2 and ::1 at once");
}

async fn hits_on(hits: &Hits, ip: &str) -> Vec<String> {
    hits.lock()
        .await
        .iter()
        .filter(|(tag, _)| tag == ip)
        .map(|(_, request)| request.clone())
        .collect()
}

/// Waits up to 20 s for the fair server to see `request`.
async fn seen(hits: &Hits, request: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !hits_on(hits, "127.0.0.2")
        .await
        .iter()
        .any(|r| r == request)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the allowed server never saw {request}: {:?}",
            hits.lock().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Workers on, and the outbound guard opened to 127.0.0.2 alone (the trap that plays an honest
/// server); 127.0.0.1 and ::1 stay private space.
fn opened_to_the_fair_server() -> AppOptions {
    AppOptions {
        workers: true,
        env: vec![(
            "ALLOWED_PRIVATE_ADDRESSES".to_string(),
            "127.0.0.2/32".to_string(),
        )],
        ..AppOptions::default()
    }
}

/// Every fetch a user can make the server do — resolving a URL or a handle, a link preview, a
/// push subscription, a delivery to an inbox, an avatar — names an address in private space,
/// written every way a URL can write one, directly or through a redirect or a document that
/// names it; none is reached, each refusal is quick and no answer is a 5xx. The same fetches
/// aimed at the one address the operator opened arrive, so the refusals are the guard's.
#[tokio::test]
async fn no_fetch_reaches_private_space_however_it_is_written() {
    let (port, hits) = traps().await;
    let app = spawn_app(opened_to_the_fair_server()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let fair = format!("http://127.0.0.2:{port}");
    let private = [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://127.1:{port}/x"),
        format!("http://2130706433:{port}/x"),
        format!("http://0x7f000001:{port}/x"),
        format!("http://0177.0.0.1:{port}/x"),
        format!("http://0.0.0.0:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://[::1]:{port}/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://[::ffff:7f00:1]:{port}/x"),
        format!("http://[0:0:0:0:0:0:0:1]:{port}/x"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "http://10.0.0.1/x".to_string(),
        "http://172.16.0.1/x".to_string(),
        "http://192.168.0.1/x".to_string(),
        "http://100.64.0.1/x".to_string(),
        "http://[fe80::1]/x".to_string(),
        "http://[fc00::1]/x".to_string(),
    ];
    let mut through_redirects: Vec<String> = private
        .iter()
        .take(11)
        .map(|to| {
            let to: String = url::form_urlencoded::byte_serialize(to.as_bytes()).collect();
            format!("{fair}/redirect?to={to}")
        })
        .collect();
    through_redirects.extend(private.iter().cloned());

    // Resolving a URL through search.
    for target in &through_redirects {
        let q: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let started = std::time::Instant::now();
        let answer = call(
            &app,
            Method::GET,
            &format!("/api/v2/search?q={q}&resolve=true"),
            Some(&alice.token),
            None,
        )
        .await;
        assert!(
            answer.status < 500,
            "{target}: {} {:?}",
            answer.status,
            answer.body
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{target} took {:?}: a refusal is immediate, not a timeout",
            started.elapsed()
        );
    }
    // Resolving a handle (WebFinger on the handle's host).
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "169.254.169.254".to_string(),
    ] {
        let answer = call(
            &app,
            Method::GET,
            &format!("/api/v2/search?q=@someone@{host}&resolve=true&type=accounts"),
            Some(&alice.token),
            None,
        )
        .await;
        assert!(answer.status < 500, "{host}: {:?}", answer.body);
        assert_eq!(answer.body["accounts"], json!([]), "{host}");
    }
    // Link previews and push subscriptions.
    for target in through_redirects.iter().take(14) {
        post_status(&app, &alice, json!({ "status": format!("look {target}") })).await;
    }
    let keys = stampede_webpush::UaKeys::generate().unwrap();
    for endpoint in [
        format!("http://127.0.0.1:{port}/push"),
        format!("http://localhost:{port}/push"),
        format!("{fair}/redirect?to=http%3A%2F%2F127.0.0.1%3A{port}%2Fpush"),
    ] {
        let answer = call(
            &app,
            Method::POST,
            "/api/v1/push/subscription",
            Some(&token_with(&app, &bob, "push").await),
            Some(json!({
                "subscription": { "endpoint": endpoint,
                    "keys": { "p256dh": keys.p256dh_base64(), "auth": keys.auth_base64() } },
                "data": { "alerts": { "favourite": true } },
            })),
        )
        .await;
        assert!(answer.status < 500, "{endpoint}: {:?}", answer.body);
    }
    // A server whose actor names private addresses for its inbox, shared inbox and avatar.
    let leaky = crate::federation::resolve(&app, &alice, &format!("leaky@127.0.0.2:{port}")).await;
    let answer = call(
        &app,
        Method::POST,
        &format!("/api/v1/accounts/{leaky}/follow"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    // A lookup fetches nothing, signed in or not: an unknown handle is 404.
    let fetches = |hits: Hits| async move { hits_on(&hits, "127.0.0.2").await.len() };
    let before = fetches(hits.clone()).await;
    let lookup = format!("/api/v1/accounts/lookup?acct=fair@127.0.0.2:{port}");
    for token in [None, Some(alice.token.as_str())] {
        assert_eq!(
            call(&app, Method::GET, &lookup, token, None).await.status,
            404
        );
    }
    assert_eq!(fetches(hits.clone()).await, before, "a lookup fetched");

    // The controls: the same kinds of fetch to the opened address arrive.
    let fair_account =
        crate::federation::resolve(&app, &alice, &format!("fair@127.0.0.2:{port}")).await;
    seen(&hits, "GET /.well-known/webfinger").await;
    // Known now: a lookup finds it.
    let found = call(&app, Method::GET, &lookup, None, None).await;
    assert_eq!(found.body["id"], fair_account.as_str(), "{:?}", found.body);
    let answer = call(
        &app,
        Method::POST,
        &format!("/api/v1/accounts/{fair_account}/follow"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    seen(&hits, "POST /users/fair/inbox").await;
    post_status(
        &app,
        &alice,
        json!({ "status": format!("look {fair}/page") }),
    )
    .await;
    seen(&hits, "GET /page").await;
    let bobs_status = post_status(&app, &bob, json!({ "status": "like me" })).await;
    call(
        &app,
        Method::POST,
        "/api/v1/push/subscription",
        Some(&token_with(&app, &bob, "push").await),
        Some(json!({
            "subscription": { "endpoint": format!("{fair}/push"),
                "keys": { "p256dh": keys.p256dh_base64(), "auth": keys.auth_base64() } },
            "data": { "alerts": { "favourite": true } },
        })),
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/api/v1/statuses/{bobs_status}/favourite"),
        Some(&alice.token),
        None,
    )
    .await;
    seen(&hits, "POST /push").await;
    // By now the workers have run everything queued before the controls.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let leaked: Vec<_> = [
        hits_on(&hits, "127.0.0.1").await,
        hits_on(&hits, "::1").await,
    ]
    .concat();
    assert!(leaked.is_empty(), "private space reached: {leaked:?}");
    app.stop().await;
}

/// What users write locally (a name, a bio, profile fields, a status, its warning and poll) and
/// what another server sends (an actor, a note, their custom emojis and attachments) is tried
/// with every payload in [`PAYLOADS`]: the HTML the API hands to clients keeps none of it live,
/// emojis keep only safe names and http(s) images, and the server's own pages escape it.
#[tokio::test]
async fn markup_from_users_and_other_servers_cannot_script_a_reader() {
    let (port, _hits) = traps().await;
    let app = spawn_app(opened_to_the_fair_server()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;

    // Local: the profile and a status.
    let fields: Vec<Value> = PAYLOADS
        .iter()
        .take(4)
        .zip(PAYLOADS.iter().skip(4))
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let note: String = PAYLOADS.iter().take(8).copied().collect();
    let answer = call(
        &app,
        Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(&alice.token),
        Some(json!({ "display_name": PAYLOADS[0], "note": note, "fields_attributes": fields })),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let status = post_status(
        &app,
        &alice,
        json!({
            "status": PAYLOADS[..10].concat(),
            "spoiler_text": PAYLOADS[1],
            "poll": { "options": [PAYLOADS[0], PAYLOADS[2]], "expires_in": 3600 },
        }),
    )
    .await;
    let me = call(
        &app,
        Method::GET,
        "/api/v1/accounts/verify_credentials",
        Some(&alice.token),
        None,
    )
    .await;
    assert_inert("a local note", me.body["note"].as_str().unwrap());
    for field in me.body["fields"].as_array().unwrap() {
        assert_inert("a local field", field["value"].as_str().unwrap());
    }
    let shown = call(
        &app,
        Method::GET,
        &format!("/api/v1/statuses/{status}"),
        None,
        None,
    )
    .await;
    assert_inert("a local status", shown.body["content"].as_str().unwrap());
    assert_eq!(
        shown.body["spoiler_text"], PAYLOADS[1],
        "plain text, as written"
    );
    let page = app
        .client
        .get(app.url("/@alice"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("&lt;script&gt;"),
        "the page shows what Alice wrote, escaped"
    );
    assert_no_handlers("the profile page", &page);

    // Remote: a note and its author, resolved through search.
    let q: String = url::form_urlencoded::byte_serialize(
        format!("http://127.0.0.2:{port}/notes/evil").as_bytes(),
    )
    .collect();
    let found = call(
        &app,
        Method::GET,
        &format!("/api/v2/search?q={q}&resolve=true&type=statuses"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    let id = found.body["statuses"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the note was not resolved: {:?}", found.body));
    // The emoji cache reloads at most once a second: new emojis show within that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let shown = call(
        &app,
        Method::GET,
        &format!("/api/v1/statuses/{id}"),
        None,
        None,
    )
    .await;
    let note = &shown.body;
    assert_inert("a remote status", note["content"].as_str().unwrap());
    assert_emojis_safe("a remote status", &note["emojis"]);
    for media in note["media_attachments"].as_array().unwrap() {
        for key in ["url", "preview_url", "remote_url"] {
            let url = media[key].as_str().unwrap_or("http://");
            assert!(
                url.starts_with("http"),
                "a remote attachment's {key}: {url}"
            );
        }
    }
    let author = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/accounts/{}",
            note["account"]["id"].as_str().unwrap()
        ),
        Some(&alice.token),
        None,
    )
    .await;
    assert_inert("a remote note", author.body["note"].as_str().unwrap());
    for field in author.body["fields"].as_array().unwrap() {
        assert_inert("a remote field", field["value"].as_str().unwrap());
    }
    assert_emojis_safe("a remote account", &author.body["emojis"]);
    app.stop().await;
}

/// What answered a request: a status, or the connection closed while the body was still being
/// sent (the server answered early and stopped reading).
async fn send_status(request: reqwest::RequestBuilder) -> Result<u16, String> {
    match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every route that takes a body gets one larger than any limit, as JSON and as multipart: none
/// answers 5xx, and every route that reads its parameters (it refuses an empty object with a
/// 400 or 422) refuses the oversize body with 413 before reading it all — uploads included.
#[tokio::test]
async fn oversize_bodies_are_refused_on_every_route() {
    let app = spawn_app(AppOptions {
        env: vec![
            ("MAX_IMAGE_SIZE".to_string(), "1048576".to_string()),
            ("MAX_VIDEO_SIZE".to_string(), "1048576".to_string()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let admin = seed_user(&app, "root", false).await;
    crate::moderation::make_admin(&app, &admin).await;
    let bob = seed_user(&app, "bob", false).await;
    let status = post_status(&app, &bob, json!({ "status": "hello" })).await;
    let ids = path_ids(&bob, status);
    // Following Bob, so that endorsing him is refused for nothing but the body.
    let path = format!("/api/v1/accounts/{}/follow", bob.id);
    let followed = call(&app, Method::POST, &path, Some(&admin.token), None).await;
    assert_eq!(followed.status, 200, "{:?}", followed.body);
    let huge = "a".repeat(3 << 20);
    let json_body = serde_json::to_vec(&json!({ "status": huge, "note": huge })).unwrap();
    let boundary = "stampedeboundary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n{huge}\r\n--{boundary}--\r\n"
    );
    let mut failures = Vec::new();
    let mut refused = 0;
    let mut checked = 0;
    let mut routes: Vec<Route> = declared_routes()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    // Blocking or leaving Bob last, so that the routes that need a follow keep it.
    routes.sort_by_key(|r| {
        ["/block", "/unfollow", "/remove_from_followers"]
            .iter()
            .any(|s| r.path.ends_with(s))
    });
    for route in &routes {
        let path = concrete(&route.path, &ids);
        let url = app.url(&path);
        let m = method(route);
        let request = || {
            app.client
                .request(m.clone(), &url)
                .bearer_auth(&admin.token)
        };
        let small = send_status(request().json(&json!({}))).await;
        let as_json = send_status(
            request()
                .header("content-type", "application/json")
                .body(json_body.clone()),
        )
        .await;
        let as_multipart = send_status(
            request()
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(multipart.clone()),
        )
        .await;
        checked += 1;
        let reads_body = matches!(small, Ok(400 | 413 | 415 | 422));
        for (kind, answer) in [("JSON", &as_json), ("multipart", &as_multipart)] {
            let ok = match answer {
                Ok(413) => {
                    refused += 1;
                    true
                }
                Ok(status) => *status < 500 && !reads_body,
                // Closed while sending: the server stopped reading, which is a refusal too.
                Err(_) => true,
            };
            if !ok {
                failures.push(format!(
                    "{} {path} with a 3 MiB {kind} body: {answer:?} (an empty one: {small:?})",
                    route.method
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} routes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(refused > 100, "only {refused} answers were 413");
    // Still serving.
    let alive = call(&app, Method::GET, "/api/v1/instance", None, None).await;
    assert_eq!(alive.status, 200);
    app.stop().await;
}

/// The sign-up and sign-in limits are the whole server's, not each replica's: attempts from one
/// address alternate between two web processes sharing Redis, and the limit holds at its
/// total.
#[tokio::test]
async fn rate_limits_hold_across_two_web_replicas() {
    let app = spawn_app(AppOptions {
        redis: true,
        env: vec![("RATE_LIMITS".into(), "true".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let (second, second_stop) = stampede_test_support::spawn_web(&app).await.unwrap();
    let replicas = [app.url(""), format!("http://{second}")];
    let creds = crate::mastodon::register_app(&app, "read write").await;
    let token = crate::mastodon::app_token(&app, &creds, "write").await;
    // Both replicas answer (the second is ready once it serves the instance).
    for base in &replicas {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while app
            .client
            .get(format!("{base}/api/v1/instance"))
            .send()
            .await
            .map_or(true, |r| r.status() != 200)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{base} never answered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    let sign_up = |n: usize| {
        let (app, token, base) = (&app, token.clone(), replicas[n % 2].clone());
        async move {
            let username = format!("surge{n}");
            app.client
                .post(format!("{base}/api/v1/accounts"))
                .bearer_auth(&token)
                .header("x-forwarded-for", "10.7.7.7")
                .json(
                    &json!({ "username": username, "email": format!("{username}@mail.example"),
                               "password": "correct horse battery", "agreement": true }),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let answers: Vec<u16> = futures_util::future::join_all((0..7).map(sign_up)).await;
    let mut sorted = answers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [200, 200, 200, 200, 200, 429, 429],
        "sign-ups: {answers:?}"
    );

    let sign_in = |n: usize| {
        let (app, creds, base) = (&app, &creds, replicas[n % 2].clone());
        async move {
            app.client
                .post(format!("{base}/oauth/token"))
                .header("x-forwarded-for", "10.7.7.8")
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", creds.client_id.as_str()),
                    ("client_secret", creds.client_secret.as_str()),
                    ("username", "surge0@mail.example"),
                    ("password", "not the password"),
                    ("scope", "read"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut answers = Vec::new();
    for n in 0..28 {
        answers.push(sign_in(n).await);
    }
    assert!(
        answers[..25].iter().all(|s| *s != 429) && answers[25..].iter().all(|s| *s == 429),
        "sign-ins, alternating between replicas: {answers:?}"
    );
    second_stop.cancel();
    app.stop().await;
}

/// A handler that panics (none should; the fuzzer found one in the inbox) answers 500 with
/// Mastodon's error body through the layer every web router has, and the server keeps serving on
/// the same connection.
#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    use axum::routing::get;
    async fn boom() -> &'static str {
        panic!("a bug")
    }
    let router = stampede_web::catch_panics(
        axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let boom = client
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(boom.status(), 500);
    let body: Value = boom.json().await.unwrap();
    assert_eq!(body, json!({ "error": "Internal server error" }));
    let fine = client
        .get(format!("http://{addr}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
}

/// What `base` answers `user`'s token on `verify_credentials`.
async fn credentials_status(app: &TestApp, base: &str, token: &str) -> u16 {
    app.client
        .get(format!("{base}/api/v1/accounts/verify_credentials"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until every replica answers `token` with something other than 200; answers how long
/// the slowest took.
async fn refused_everywhere(
    app: &TestApp,
    replicas: &[String],
    token: &str,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    for base in replicas {
        while credentials_status(app, base, token).await == 200 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "{base} still accepts the token after a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    start.elapsed()
}

#[tokio::test]
async fn token_changes_reach_every_replicas_cache_at_once() {
    // Token look-ups are cached in each web process (ADR 0030), for at most 2 s here.
    let app = spawn_app(AppOptions {
        env: vec![("TOKEN_CACHE_SECONDS".into(), "2".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let (second, _stop) = stampede_test_support::spawn_web(&app).await.unwrap();
    let replicas = [app.url(""), format!("http://{second}")];
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let dave = seed_user(&app, "dave", false).await;
    let warm = |user: &User| {
        let (app, replicas, token) = (&app, &replicas, user.token.clone());
        async move {
            for base in replicas {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while credentials_status(app, base, &token).await != 200 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{base} never answered"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    };
    let db = &app.ctx.db;
    let digest = "encode(sha256(convert_to($1, 'UTF8')), 'hex')";

    // A change made straight in SQL, as an operator would: every replica hears it from
    // PostgreSQL, however warm its cache.
    warm(&alice).await;
    sqlx::query(&format!(
        "UPDATE oauth_access_tokens SET revoked_at = now() WHERE token_hash = {digest}"
    ))
    .bind(&alice.token)
    .execute(db)
    .await
    .unwrap();
    let revoked = refused_everywhere(&app, &replicas, &alice.token).await;
    warm(&bob).await;
    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE id = $1")
        .bind(bob.id.parse::<i64>().unwrap())
        .execute(db)
        .await
        .unwrap();
    let suspended = refused_everywhere(&app, &replicas, &bob.token).await;
    eprintln!(
        "refused everywhere {revoked:?} after the revocation, {suspended:?} after the suspension"
    );

    // Revoked through the API on one replica: that replica refuses it on the very next
    // request, the other within the notification's delivery.
    let creds = crate::mastodon::register_app(&app, "read write").await;
    sqlx::query(&format!(
        "UPDATE oauth_access_tokens SET application_id = \
           (SELECT id FROM oauth_applications WHERE client_id = $2) WHERE token_hash = {digest}"
    ))
    .bind(&dave.token)
    .bind(&creds.client_id)
    .execute(db)
    .await
    .unwrap();
    warm(&dave).await;
    let answer = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
            ("token", dave.token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        credentials_status(&app, &replicas[0], &dave.token).await,
        401
    );
    refused_everywhere(&app, &replicas, &dave.token).await;

    // The cache is real: with the notification switched off, the replicas keep answering from
    // memory — until the entry's 2 s are over.
    warm(&carol).await;
    sqlx::query("ALTER TABLE users DISABLE TRIGGER users_auth_update")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET disabled = true WHERE account_id = $1")
        .bind(carol.id.parse::<i64>().unwrap())
        .execute(db)
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    for base in &replicas {
        assert_eq!(
            credentials_status(&app, base, &carol.token).await,
            200,
            "{base} answered from memory"
        );
    }
    loop {
        let statuses = [
            credentials_status(&app, &replicas[0], &carol.token).await,
            credentials_status(&app, &replicas[1], &carol.token).await,
        ];
        if statuses.iter().all(|s| *s == 403) {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(4),
            "the 2 s bound did not hold: {statuses:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
