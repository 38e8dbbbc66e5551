//! Smaller parts of the client API: custom emojis (with the operator's command), the profile,
//! identity proofs and the direct timeline.

use reqwest::Method;
use serde_json::json;
use stampede_test_support::{AppOptions, spawn_app};

use crate::media::{get_bytes, path_of, png};
use crate::social::{call, get, post, post_status, seed_user};

#[tokio::test]
async fn custom_emojis_from_the_operator_show_in_statuses_names_and_notes() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let dir = tempfile_dir();
    let file = dir.join("blobcat.png");
    std::fs::write(&file, png(64, 64)).unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();

    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "emoji"];
        all.extend_from_slice(args);
        crate::process::command(&app.env, &all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let added = admin(&[
        "add",
        "blobcat",
        file.to_str().unwrap(),
        "--category",
        "Blobs",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let hidden = admin(&["add", "secret_cat", file.to_str().unwrap(), "--hidden"]);
    assert!(hidden.status.success());
    let bad = admin(&["add", "x", file.to_str().unwrap()]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("not a valid shortcode"), "{said}");
    let not_image = admin(&["add", "notes", text.to_str().unwrap()]);
    assert!(!not_image.status.success());
    let listed = admin(&["list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);

    // The list, publicly; the files are served.
    let emojis = call(&app, Method::GET, "/api/v1/custom_emojis", None, None).await;
    assert_eq!(emojis.status, 200);
    let list = emojis.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["shortcode"], "blobcat");
    assert_eq!(list[0]["category"], "Blobs");
    assert_eq!(list[0]["visible_in_picker"], true);
    assert_eq!(list[1]["visible_in_picker"], false);
    let (status, kind, bytes) = get_bytes(&app, &path_of(&list[0]["url"])).await;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert!(bytes.starts_with(b"\x89PNG"));
    let (status, _, _) = get_bytes(&app, &path_of(&list[0]["static_url"])).await;
    assert_eq!(status, 200);

    // Statuses and names that use them list them; a colon that touches a word does not.
    let id = post_status(
        &app,
        &alice,
        json!({ "status": "hello :blobcat: and :nope: and a:blobcat:", "spoiler_text": ":secret_cat:" }),
    )
    .await;
    let status = get(&app, &format!("/api/v1/statuses/{id}"), &alice).await;
    let codes: Vec<&str> = status.body["emojis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["shortcode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["blobcat", "secret_cat"]);
    let updated = call(
        &app,
        Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(&alice.token),
        Some(json!({ "display_name": "Alice :blobcat:" })),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["emojis"][0]["shortcode"], "blobcat");

    // The Note that other servers fetch carries them as Emoji tags.
    let note = app
        .client
        .get(app.url(&format!("/users/alice/statuses/{id}")))
        .header("accept", "application/activity+json")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let emoji_tags: Vec<&serde_json::Value> = note["tag"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "Emoji")
        .collect();
    assert_eq!(emoji_tags.len(), 2, "{note}");
    assert_eq!(emoji_tags[0]["name"], ":blobcat:");
    assert!(
        emoji_tags[0]["icon"]["url"]
            .as_str()
            .unwrap()
            .ends_with(".png")
    );

    // Removing one takes it off the list and out of the status.
    let removed = admin(&["remove", "secret_cat"]);
    assert!(removed.status.success());
    let mut codes = Vec::new();
    for _ in 0..50 {
        let status = get(&app, &format!("/api/v1/statuses/{id}"), &alice).await;
        codes = status.body["emojis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["shortcode"].as_str().unwrap().to_string())
            .collect();
        if codes.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(codes, vec!["blobcat".to_string()]);
    std::fs::remove_dir_all(dir).ok();
    app.stop().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(stampede_test_support::unique("emoji"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_profile_edits_and_hides_collections_and_old_endpoints_answer() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", true).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;

    let profile = get(&app, "/api/v1/profile", &alice).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    assert_eq!(profile.body["id"], alice.id.as_str());
    assert_eq!(profile.body["avatar"], serde_json::Value::Null);
    assert_eq!(profile.body["show_media"], true);
    assert_eq!(profile.body["hide_collections"], false);

    let patched = call(
        &app,
        Method::PATCH,
        "/api/v1/profile",
        Some(&alice.token),
        Some(json!({
            "note": "I *write*",
            "show_media": false,
            "hide_collections": true,
            "avatar_description": "A cat",
            "attribution_domains": ["Blog.Example.com", "news.example"],
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["note"], "I *write*");
    assert_eq!(patched.body["show_media"], false);
    assert_eq!(patched.body["avatar_description"], "A cat");
    assert_eq!(
        patched.body["attribution_domains"],
        json!(["blog.example.com", "news.example"])
    );
    let too_many = call(
        &app,
        Method::PATCH,
        "/api/v1/profile",
        Some(&alice.token),
        Some(json!({ "attribution_domains": ["a b c"], "show_featured": false })),
    )
    .await;
    assert_eq!(too_many.status, 422, "{:?}", too_many.body);
    let unchanged = get(&app, "/api/v1/profile", &alice).await;
    assert_eq!(unchanged.body["show_featured"], true);

    // Hidden collections: empty to others, whole to the owner.
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &alice,
        json!({}),
    )
    .await;
    let theirs = get(
        &app,
        &format!("/api/v1/accounts/{}/following", alice.id),
        &carol,
    )
    .await;
    assert_eq!(theirs.body, json!([]));
    let own = get(
        &app,
        &format!("/api/v1/accounts/{}/following", alice.id),
        &alice,
    )
    .await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    let shown = get(&app, &format!("/api/v1/accounts/{}", alice.id), &carol).await;
    assert_eq!(shown.body["hide_collections"], true);

    // A follow request waiting shows in the credentials' source.
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &carol,
        json!({}),
    )
    .await;
    let me = get(&app, "/api/v1/accounts/verify_credentials", &alice).await;
    assert_eq!(me.body["source"]["follow_requests_count"], 1);

    // Identity proofs are gone from Mastodon: an empty list for an account that exists.
    let proofs = get(
        &app,
        &format!("/api/v1/accounts/{}/identity_proofs", bob.id),
        &alice,
    )
    .await;
    assert_eq!((proofs.status, proofs.body.clone()), (200, json!([])));
    let missing = get(&app, "/api/v1/accounts/1/identity_proofs", &alice).await;
    assert_eq!(missing.status, 404);

    // The old direct timeline: the DMs one wrote or is named in.
    let dm = post_status(
        &app,
        &bob,
        json!({ "status": "@alice just us", "visibility": "direct" }),
    )
    .await;
    post_status(&app, &bob, json!({ "status": "for everyone" })).await;
    let direct = get(&app, "/api/v1/timelines/direct", &alice).await;
    assert_eq!(direct.status, 200);
    let ids: Vec<&str> = direct
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![dm.as_str()]);
    let direct = get(&app, "/api/v1/timelines/direct", &bob).await;
    assert_eq!(direct.body.as_array().unwrap().len(), 1);
    let direct = get(&app, "/api/v1/timelines/direct", &carol).await;
    assert_eq!(direct.body, json!([]));
    app.stop().await;
}

fn admin_output(app: &stampede_test_support::TestApp, args: &[&str]) -> std::process::Output {
    crate::process::command(&app.env, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test]
async fn announcements_and_the_legal_texts_come_from_the_operator() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;

    let made = admin_output(
        &app,
        &[
            "admin",
            "announcements",
            "create",
            "Maintenance tonight.\n\nSee https://status.example for news.",
            "--starts-at",
            "2026-12-24T20:00:00Z",
            "--ends-at",
            "2026-12-24T22:00:00Z",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let id: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let backwards = admin_output(
        &app,
        &[
            "admin",
            "announcements",
            "create",
            "x",
            "--starts-at",
            "2026-12-24T20:00:00Z",
            "--ends-at",
            "2026-12-23T20:00:00Z",
        ],
    );
    assert!(!backwards.status.success());

    let list = get(&app, "/api/v1/announcements", &alice).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let one = &list.body[0];
    assert_eq!(one["id"], id.as_str());
    assert!(
        one["content"]
            .as_str()
            .unwrap()
            .starts_with("<p>Maintenance tonight.</p>")
    );
    assert!(
        one["content"]
            .as_str()
            .unwrap()
            .contains("href=\"https://status.example\"")
    );
    assert_eq!(one["starts_at"], "2026-12-24T20:00:00.000Z");
    assert_eq!(one["read"], false);
    let anonymous = call(&app, Method::GET, "/api/v1/announcements", None, None).await;
    assert_eq!(anonymous.status, 401);

    // Reactions: emojis, counted per name; a word is refused.
    let app_ref = &app;
    let react = |user: &crate::social::User, name: &str, method: Method| {
        let path = format!("/api/v1/announcements/{id}/reactions/{}", urlencode(name));
        let token = user.token.clone();
        async move { call(app_ref, method, &path, Some(&token), None).await }
    };
    assert_eq!(react(&alice, "👍", Method::PUT).await.status, 200);
    assert_eq!(react(&bob, "👍", Method::PUT).await.status, 200);
    assert_eq!(react(&bob, "🎉", Method::PUT).await.status, 200);
    assert_eq!(react(&bob, "hello", Method::PUT).await.status, 422);
    let list = get(&app, "/api/v1/announcements", &alice).await;
    let reactions = &list.body[0]["reactions"];
    assert_eq!(reactions[0]["name"], "👍");
    assert_eq!(reactions[0]["count"], 2);
    assert_eq!(reactions[0]["me"], true);
    assert_eq!(reactions[1]["name"], "🎉");
    assert_eq!(reactions[1]["me"], false);
    assert_eq!(react(&alice, "👍", Method::DELETE).await.status, 200);
    assert_eq!(react(&alice, "👍", Method::DELETE).await.status, 404);

    // Dismissed: gone from the list unless asked for.
    let dismissed = post(
        &app,
        &format!("/api/v1/announcements/{id}/dismiss"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(dismissed.status, 200);
    let list = get(&app, "/api/v1/announcements", &alice).await;
    assert_eq!(list.body, json!([]));
    let list = get(&app, "/api/v1/announcements?with_dismissed=true", &alice).await;
    assert_eq!(list.body[0]["read"], true);
    let list = get(&app, "/api/v1/announcements", &bob).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let deleted = admin_output(&app, &["admin", "announcements", "delete", &id]);
    assert!(deleted.status.success());
    let missing = post(
        &app,
        &format!("/api/v1/announcements/{id}/dismiss"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(missing.status, 404);

    // The privacy policy: built in until the operator writes one (Markdown).
    let policy = call(
        &app,
        Method::GET,
        "/api/v1/instance/privacy_policy",
        None,
        None,
    )
    .await;
    assert_eq!(policy.status, 200);
    assert!(
        policy.body["content"]
            .as_str()
            .unwrap()
            .contains("<h1>Privacy policy of stampede.test</h1>")
    );
    let dir = tempfile_dir();
    let file = dir.join("policy.md");
    std::fs::write(&file, "# Our policy\n\nWe keep *little*.").unwrap();
    let set = admin_output(
        &app,
        &["admin", "legal", "privacy-policy", file.to_str().unwrap()],
    );
    assert!(set.status.success());
    let policy = call(
        &app,
        Method::GET,
        "/api/v1/instance/privacy_policy",
        None,
        None,
    )
    .await;
    assert_eq!(
        policy.body["content"],
        "<h1>Our policy</h1>\n<p>We keep <em>little</em>.</p>\n"
    );

    // Terms of service: none (404), then versions by effective date.
    let none = call(
        &app,
        Method::GET,
        "/api/v1/instance/terms_of_service",
        None,
        None,
    )
    .await;
    assert_eq!(none.status, 404);
    let terms = dir.join("terms.md");
    std::fs::write(&terms, "Be **kind**.").unwrap();
    for date in ["2025-01-01", "2099-01-01"] {
        let out = admin_output(
            &app,
            &[
                "admin",
                "legal",
                "terms",
                terms.to_str().unwrap(),
                "--effective-date",
                date,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let current = call(
        &app,
        Method::GET,
        "/api/v1/instance/terms_of_service",
        None,
        None,
    )
    .await;
    assert_eq!(current.status, 200);
    assert_eq!(current.body["effective_date"], "2025-01-01");
    assert_eq!(current.body["effective"], true);
    assert_eq!(current.body["succeeded_by"], "2099-01-01");
    assert_eq!(
        current.body["content"],
        "<p>Be <strong>kind</strong>.</p>\n"
    );
    let future = call(
        &app,
        Method::GET,
        "/api/v1/instance/terms_of_service/2099-01-01",
        None,
        None,
    )
    .await;
    assert_eq!(future.body["effective"], false);
    let missing = call(
        &app,
        Method::GET,
        "/api/v1/instance/terms_of_service/2030-05-05",
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    std::fs::remove_dir_all(dir).ok();
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A remote account whose inbox is `inbox` (a loopback server of the test's), for what
/// Stampede delivers to it.
async fn remote_account(app: &stampede_test_support::TestApp, username: &str, host: &str) -> i64 {
    let id = stampede_core::id::IdGenerator::new().next_id().as_i64();
    sqlx::query(
        "INSERT INTO accounts (id, username, domain, uri, url, inbox_url) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id)
    .bind(username)
    .bind(host)
    .bind(format!("http://{host}/users/{username}"))
    .bind(format!("http://{host}/users/{username}/inbox"))
    .execute(&app.ctx.db)
    .await
    .unwrap();
    id
}

/// A loopback web server: `/story` is a page with OpenGraph tags; every POST is recorded.
async fn web_server() -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    use axum::routing::{get as get_route, post as post_route};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let page = r#"<!doctype html><html lang="en"><head><title>Fallback</title>
        <meta property="og:title" content="A big story">
        <meta property="og:description" content="What happened, in short.">
        <meta property="og:image" content="/cover.png">
        <meta property="og:site_name" content="Loopback News"></head><body>…</body></html>"#;
    let app = axum::Router::new()
        .route(
            "/story",
            get_route(move || async move { ([("content-type", "text/html")], page) }),
        )
        .route(
            "/{*path}",
            post_route(
                |axum::extract::State(tx): axum::extract::State<
                    tokio::sync::mpsc::UnboundedSender<(String, serde_json::Value)>,
                >,
                 uri: axum::http::Uri,
                 body: axum::body::Bytes| async move {
                    let value = serde_json::from_slice(&body).unwrap_or_default();
                    tx.send((uri.path().to_string(), value)).ok();
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

#[tokio::test]
async fn domain_blocks_reports_and_link_previews() {
    let (port, mut posts) = web_server().await;
    let host = format!("127.0.0.1:{port}");
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
    let remote = remote_account(&app, "mallory", &host).await;

    // A report about a remote account, forwarded: its server gets a Flag from the instance.
    let reported = post(
        &app,
        "/api/v1/reports",
        &alice,
        json!({ "account_id": remote.to_string(), "comment": "spam wave", "category": "spam", "forward": true }),
    )
    .await;
    assert_eq!(reported.status, 200, "{:?}", reported.body);
    assert_eq!(reported.body["forwarded"], true);
    assert_eq!(reported.body["category"], "spam");
    assert_eq!(
        reported.body["target_account"]["acct"],
        format!("mallory@{host}")
    );
    let (path, flag) = tokio::time::timeout(std::time::Duration::from_secs(20), posts.recv())
        .await
        .expect("a Flag")
        .unwrap();
    assert_eq!(path, "/users/mallory/inbox");
    assert_eq!(flag["type"], "Flag");
    assert_eq!(flag["actor"], "http://stampede.test/actor");
    assert_eq!(flag["content"], "spam wave");
    assert_eq!(flag["object"][0], format!("http://{host}/users/mallory"));
    // A local report stays here; bad input is refused.
    let local = post(
        &app,
        "/api/v1/reports",
        &alice,
        json!({ "account_id": bob.id, "forward": true }),
    )
    .await;
    assert_eq!(
        (local.status, local.body["forwarded"].clone()),
        (200, json!(false))
    );
    assert_eq!(local.body["category"], "other");
    let theirs = post_status(&app, &alice, json!({ "status": "mine" })).await;
    let wrong_status = post(
        &app,
        "/api/v1/reports",
        &alice,
        json!({ "account_id": bob.id, "status_ids": [theirs] }),
    )
    .await;
    assert_eq!(wrong_status.status, 404);
    let no_rule = post(
        &app,
        "/api/v1/reports",
        &alice,
        json!({ "account_id": bob.id, "rule_ids": ["999"] }),
    )
    .await;
    assert_eq!(no_rule.status, 422);
    let unknown = post(
        &app,
        "/api/v1/reports",
        &alice,
        json!({ "account_id": "1" }),
    )
    .await;
    assert_eq!(unknown.status, 404);

    // Link previews: the page is fetched once and every status sharing it shows the card.
    let link = format!("http://{host}/story");
    let first = post_status(&app, &alice, json!({ "status": format!("Read {link}") })).await;
    let second = post_status(&app, &bob, json!({ "status": format!("Wow {link}") })).await;
    let mut card = serde_json::Value::Null;
    for _ in 0..100 {
        let status = get(&app, &format!("/api/v1/statuses/{second}"), &bob).await;
        card = status.body["card"].clone();
        if !card.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(card["title"], "A big story", "{card}");
    assert_eq!(card["description"], "What happened, in short.");
    assert_eq!(card["image"], format!("http://{host}/cover.png"));
    assert_eq!(card["provider_name"], "Loopback News");
    assert_eq!(card["url"], link.as_str());
    let status = get(&app, &format!("/api/v1/statuses/{first}"), &alice).await;
    assert_eq!(status.body["card"]["title"], "A big story");

    let trends = call(&app, Method::GET, "/api/v1/trends/links", None, None).await;
    assert_eq!(trends.status, 200);
    assert_eq!(trends.body[0]["url"], link.as_str());
    assert_eq!(trends.body[0]["history"][0]["accounts"], "2");
    assert_eq!(trends.body[0]["history"][0]["uses"], "2");
    let timeline = get(
        &app,
        &format!("/api/v1/timelines/link?url={}", urlencode(&link)),
        &alice,
    )
    .await;
    let ids: Vec<&str> = timeline
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    let unknown = get(
        &app,
        "/api/v1/timelines/link?url=http://nowhere.example/",
        &alice,
    )
    .await;
    assert_eq!(unknown.status, 404);

    // oEmbed for a public status of this server's.
    let embed = call(
        &app,
        Method::GET,
        &format!(
            "/api/oembed?url={}",
            urlencode(&format!("http://stampede.test/@alice/{first}"))
        ),
        None,
        None,
    )
    .await;
    assert_eq!(embed.status, 200, "{:?}", embed.body);
    assert_eq!(embed.body["type"], "rich");
    assert_eq!(embed.body["author_name"], "");
    assert!(embed.body["html"].as_str().unwrap().contains("Read "));
    let dm = post_status(
        &app,
        &alice,
        json!({ "status": "@bob secret", "visibility": "direct" }),
    )
    .await;
    let hidden = call(
        &app,
        Method::GET,
        &format!(
            "/api/oembed?url={}",
            urlencode(&format!("http://stampede.test/@alice/{dm}"))
        ),
        None,
        None,
    )
    .await;
    assert_eq!(hidden.status, 404);

    // A domain block: the domain's statuses leave the viewer's timelines, follows both ways end.
    sqlx::query(
        "INSERT INTO statuses (id, account_id, content, visibility, conversation_id, uri) \
         VALUES ($1, $2, '<p>from afar</p>', 'public', $1, $3)",
    )
    .bind(stampede_core::id::IdGenerator::new().next_id().as_i64())
    .bind(remote)
    .bind(format!("http://{host}/users/mallory/statuses/1"))
    .execute(&app.ctx.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO follows (id, account_id, target_account_id) VALUES ($1, $2, $3), ($4, $3, $2)",
    )
    .bind(stampede_core::id::IdGenerator::new().next_id().as_i64())
    .bind(alice.id.parse::<i64>().unwrap())
    .bind(remote)
    .bind(stampede_core::id::IdGenerator::new().next_id().as_i64())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let public = get(&app, "/api/v1/timelines/public?remote=true", &alice).await;
    assert_eq!(public.body.as_array().unwrap().len(), 1);
    let blocked = post(
        &app,
        "/api/v1/domain_blocks",
        &alice,
        json!({ "domain": format!("HTTP://{host}/") }),
    )
    .await;
    assert_eq!(blocked.status, 200, "{:?}", blocked.body);
    let list = get(&app, "/api/v1/domain_blocks", &alice).await;
    assert_eq!(list.body, json!([host]));
    let public = get(&app, "/api/v1/timelines/public?remote=true", &alice).await;
    assert_eq!(public.body, json!([]));
    let public = get(&app, "/api/v1/timelines/public?remote=true", &bob).await;
    assert_eq!(public.body.as_array().unwrap().len(), 1);
    let follows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM follows WHERE account_id = $1 OR target_account_id = $1",
    )
    .bind(remote)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(follows, 0);
    // The remote server is told: an Undo of the follow and a Reject of its follower's.
    let mut kinds = Vec::new();
    while let Ok(Some((_, activity))) =
        tokio::time::timeout(std::time::Duration::from_secs(10), posts.recv()).await
    {
        kinds.push(activity["type"].as_str().unwrap_or_default().to_string());
        if kinds.len() == 2 {
            break;
        }
    }
    kinds.sort();
    assert_eq!(kinds, vec!["Reject".to_string(), "Undo".to_string()]);
    let blank = post(
        &app,
        "/api/v1/domain_blocks",
        &alice,
        json!({ "domain": "" }),
    )
    .await;
    assert_eq!(blank.status, 422);
    let unblocked = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/domain_blocks?domain={host}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(unblocked.status, 200);
    let public = get(&app, "/api/v1/timelines/public?remote=true", &alice).await;
    assert_eq!(public.body.as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn quotes_follow_the_quoted_authors_policy_and_can_be_revoked() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let quote = |user: &crate::social::User, quoted: &str, text: &str| {
        let body = json!({ "status": text, "quoted_status_id": quoted });
        let token = user.token.clone();
        let app = &app;
        async move {
            call(
                app,
                Method::POST,
                "/api/v1/statuses",
                Some(&token),
                Some(body),
            )
            .await
        }
    };

    // Anyone may quote a public status by default; its author is told.
    let original = post_status(&app, &alice, json!({ "status": "quote me" })).await;
    let quoting = quote(&bob, &original, "so true").await;
    assert_eq!(quoting.status, 200, "{:?}", quoting.body);
    assert_eq!(quoting.body["quote"]["state"], "accepted");
    assert_eq!(
        quoting.body["quote"]["quoted_status"]["id"],
        original.as_str()
    );
    let quoting_id = quoting.body["id"].as_str().unwrap().to_string();
    let shown = get(&app, &format!("/api/v1/statuses/{original}"), &carol).await;
    assert_eq!(shown.body["quotes_count"], 1);
    assert_eq!(shown.body["quote_approval"]["automatic"], json!(["public"]));
    assert_eq!(shown.body["quote_approval"]["current_user"], "automatic");
    let told = get(&app, "/api/v1/notifications?types[]=quote", &alice).await;
    assert_eq!(told.body[0]["type"], "quote");
    assert_eq!(told.body[0]["status"]["id"], quoting_id.as_str());

    // A quote of a quote shows the inner quote by id only.
    let nested = quote(&carol, &quoting_id, "quoting the quote").await;
    assert_eq!(nested.status, 200);
    let inner = &nested.body["quote"]["quoted_status"]["quote"];
    assert_eq!(inner["state"], "accepted");
    assert_eq!(inner["quoted_status_id"], original.as_str());
    assert!(inner.get("quoted_status").is_none());

    // `nobody` and `followers` policies.
    let closed = post_status(
        &app,
        &alice,
        json!({ "status": "mine only", "quote_approval_policy": "nobody" }),
    )
    .await;
    let refused = quote(&carol, &closed, "no").await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let seen = get(&app, &format!("/api/v1/statuses/{closed}"), &carol).await;
    assert_eq!(seen.body["quote_approval"]["current_user"], "denied");
    assert_eq!(
        quote(&alice, &closed, "self quotes are fine").await.status,
        200
    );
    let followers_only = post_status(
        &app,
        &alice,
        json!({ "status": "followers may quote", "quote_approval_policy": "followers" }),
    )
    .await;
    assert_eq!(quote(&carol, &followers_only, "not yet").await.status, 422);
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &carol,
        json!({}),
    )
    .await;
    assert_eq!(
        quote(&carol, &followers_only, "now I may").await.status,
        200
    );
    let bad_policy = post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({ "status": "x", "quote_approval_policy": "everyone" }),
    )
    .await;
    assert_eq!(bad_policy.status, 422);

    // The quoted author lists and revokes quotes, and changes the policy.
    let listed = get(&app, &format!("/api/v1/statuses/{original}/quotes"), &alice).await;
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![quoting_id.as_str()]);
    let not_theirs = get(&app, &format!("/api/v1/statuses/{original}/quotes"), &bob).await;
    assert_eq!(not_theirs.status, 404);
    let revoked = post(
        &app,
        &format!("/api/v1/statuses/{original}/quotes/{quoting_id}/revoke"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["quote"]["state"], "revoked");
    assert_eq!(
        revoked.body["quote"]["quoted_status"],
        serde_json::Value::Null
    );
    let shown = get(&app, &format!("/api/v1/statuses/{original}"), &alice).await;
    assert_eq!(shown.body["quotes_count"], 0);
    let policy = call(
        &app,
        Method::PUT,
        &format!("/api/v1/statuses/{original}/interaction_policy"),
        Some(&alice.token),
        Some(json!({ "quote_approval_policy": "followers" })),
    )
    .await;
    assert_eq!(policy.status, 200, "{:?}", policy.body);
    assert_eq!(
        policy.body["quote_approval"]["automatic"],
        json!(["followers"])
    );
    let others = call(
        &app,
        Method::PUT,
        &format!("/api/v1/statuses/{original}/interaction_policy"),
        Some(&bob.token),
        Some(json!({ "quote_approval_policy": "public" })),
    )
    .await;
    assert_eq!(others.status, 404);

    // A deleted quoted status leaves the quote `deleted`.
    let doomed = post_status(&app, &alice, json!({ "status": "soon gone" })).await;
    let quoting = quote(&bob, &doomed, "quoting something doomed").await;
    let quoting_id = quoting.body["id"].as_str().unwrap().to_string();
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/statuses/{doomed}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    let after = get(&app, &format!("/api/v1/statuses/{quoting_id}"), &bob).await;
    assert_eq!(after.body["quote"]["state"], "deleted");
    app.stop().await;
}
