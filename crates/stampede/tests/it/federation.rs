//! Federation, as another server sees this one: discovery (WebFinger, host-meta, NodeInfo), the
//! actor documents with their keys, collections, and statuses as Notes — fetched over HTTP the
//! way Mastodon fetches them.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::social::{post_status, seed_user};

const AP: &str = "application/activity+json";

async fn fetch(app: &TestApp, path: &str, accept: &str) -> (u16, String, Value) {
    let response = app
        .client
        .get(app.url(path))
        .header(ACCEPT, accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

#[tokio::test]
async fn another_server_finds_the_account_its_key_and_its_statuses() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let base = "http://stampede.test";
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let public = post_status(
        &app,
        &alice,
        json!({ "status": "Hello @bob, this is #Stampede", "language": "en" }),
    )
    .await;
    let private = post_status(
        &app,
        &alice,
        json!({ "status": "followers only", "visibility": "private" }),
    )
    .await;
    let follow = crate::social::post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(follow.status, 200, "{:?}", follow.body);

    // WebFinger: by handle (with or without acct:), by actor URL; 404 and 400 otherwise.
    let (status, content_type, jrd) = fetch(
        &app,
        "/.well-known/webfinger?resource=acct:alice@stampede.test",
        "application/jrd+json",
    )
    .await;
    assert_eq!(status, 200, "{jrd:?}");
    assert!(
        content_type.starts_with("application/jrd+json"),
        "{content_type}"
    );
    assert_eq!(jrd["subject"], "acct:alice@stampede.test");
    let links = jrd["links"].as_array().unwrap();
    let me = links.iter().find(|l| l["rel"] == "self").unwrap();
    assert_eq!(me["type"], AP);
    assert_eq!(me["href"], format!("{base}/users/alice"));
    let (status, _, by_url) = fetch(
        &app,
        &format!("/.well-known/webfinger?resource={base}/users/alice"),
        "*/*",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_url["subject"], "acct:alice@stampede.test");
    for (query, expected) in [
        ("?resource=acct:nobody@stampede.test", 404),
        ("?resource=acct:alice@elsewhere.example", 404),
        ("", 400),
    ] {
        let (status, _, body) = fetch(&app, &format!("/.well-known/webfinger{query}"), "*/*").await;
        assert_eq!(status, expected, "{query}: {body:?}");
    }

    // The actor: a Person with a key that stays the same.
    let (status, content_type, actor) = fetch(&app, "/users/alice", AP).await;
    assert_eq!(status, 200, "{actor:?}");
    assert!(content_type.starts_with(AP), "{content_type}");
    assert_eq!(actor["type"], "Person");
    assert_eq!(actor["id"], format!("{base}/users/alice"));
    assert_eq!(actor["inbox"], format!("{base}/users/alice/inbox"));
    assert_eq!(actor["endpoints"]["sharedInbox"], format!("{base}/inbox"));
    assert_eq!(actor["preferredUsername"], "alice");
    assert_eq!(actor["manuallyApprovesFollowers"], false);
    assert_eq!(
        actor["publicKey"]["id"],
        format!("{base}/users/alice#main-key")
    );
    assert_eq!(actor["publicKey"]["owner"], format!("{base}/users/alice"));
    let pem = actor["publicKey"]["publicKeyPem"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert!(
        !stampede_activitypub::keys::verify(pem, b"x", &[0; 256]).unwrap(),
        "the published key parses as an RSA key"
    );
    let (_, _, again) = fetch(
        &app,
        "/users/alice",
        "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
    )
    .await;
    assert_eq!(
        again["publicKey"]["publicKeyPem"], pem,
        "one key per account"
    );
    let (status, _, _) = fetch(&app, "/users/nobody", AP).await;
    assert_eq!(status, 404);

    // A browser is sent to the profile page, which shows the public post only.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(app.url("/users/alice"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/@alice");
    let (status, content_type, page) = fetch(&app, "/@alice", "text/html").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = page.as_str().unwrap();
    assert!(
        page.contains("@alice@stampede.test") && page.contains("this is"),
        "{page}"
    );
    assert!(!page.contains("followers only"));
    let (_, _, actor_at) = fetch(&app, "/@alice", AP).await;
    assert_eq!(actor_at["id"], format!("{base}/users/alice"));

    // The public status as a Note, addressed as Mastodon addresses it; the private one is not
    // served without a signature.
    let (status, _, note) = fetch(&app, &format!("/users/alice/statuses/{public}"), AP).await;
    assert_eq!(status, 200, "{note:?}");
    assert_eq!(note["type"], "Note");
    assert_eq!(note["id"], format!("{base}/users/alice/statuses/{public}"));
    assert_eq!(note["attributedTo"], format!("{base}/users/alice"));
    assert_eq!(
        note["to"],
        json!(["https://www.w3.org/ns/activitystreams#Public"])
    );
    assert_eq!(
        note["cc"],
        json!([
            format!("{base}/users/alice/followers"),
            format!("{base}/users/bob")
        ])
    );
    assert_eq!(note["contentMap"]["en"], note["content"]);
    let tags = note["tag"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["type"] == "Mention" && t["name"] == "@bob@stampede.test")
    );
    assert!(tags.iter().any(|t| {
        t["type"] == "Hashtag"
            && t["name"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("#stampede")
    }));
    let (status, _, create) = fetch(
        &app,
        &format!("/users/alice/statuses/{public}/activity"),
        AP,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(create["type"], "Create");
    assert_eq!(create["object"]["id"], note["id"]);
    let (status, _, _) = fetch(&app, &format!("/users/alice/statuses/{private}"), AP).await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(&app, &format!("/users/bob/statuses/{public}"), AP).await;
    assert_eq!(status, 404, "a status is served under its author only");

    // Collections.
    let (_, _, outbox) = fetch(&app, "/users/alice/outbox", AP).await;
    assert_eq!(outbox["type"], "OrderedCollection");
    assert_eq!(outbox["totalItems"], 2);
    let (_, _, page) = fetch(&app, "/users/alice/outbox?page=true", AP).await;
    assert_eq!(page["type"], "OrderedCollectionPage");
    let items = page["orderedItems"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the public status: {items:?}");
    assert_eq!(items[0]["object"]["id"], note["id"]);
    let (_, _, followers) = fetch(&app, "/users/alice/followers", AP).await;
    assert_eq!(followers["totalItems"], 1);
    let (_, _, page) = fetch(&app, "/users/alice/followers?page=true", AP).await;
    assert_eq!(page["orderedItems"], json!([format!("{base}/users/bob")]));
    let (_, _, following) = fetch(&app, "/users/bob/following?page=true", AP).await;
    assert_eq!(
        following["orderedItems"],
        json!([format!("{base}/users/alice")])
    );

    // The instance actor, host-meta and NodeInfo with real counts.
    let (status, _, instance) = fetch(&app, "/actor", AP).await;
    assert_eq!(status, 200);
    assert_eq!(instance["type"], "Application");
    assert_ne!(instance["publicKey"]["publicKeyPem"], pem);
    let (status, _, jrd) = fetch(
        &app,
        "/.well-known/webfinger?resource=acct:stampede.test@stampede.test",
        "*/*",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(jrd["aliases"], json!([format!("{base}/actor")]));
    let (status, content_type, xrd) = fetch(&app, "/.well-known/host-meta", "*/*").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/xrd+xml"));
    assert!(
        xrd.as_str()
            .unwrap()
            .contains(&format!("{base}/.well-known/webfinger?resource={{uri}}"))
    );
    let (_, _, links) = fetch(&app, "/.well-known/nodeinfo", "*/*").await;
    let href = links["links"][1]["href"].as_str().unwrap();
    assert_eq!(href, format!("{base}/nodeinfo/2.1"));
    let (status, content_type, info) = fetch(&app, "/nodeinfo/2.1", "*/*").await;
    assert_eq!(status, 200);
    assert!(content_type.contains("nodeinfo.diaspora.software/ns/schema/2.1"));
    assert_eq!(info["software"]["name"], "stampede");
    assert_eq!(info["protocols"], json!(["activitypub"]));
    assert_eq!(info["usage"]["users"]["total"], 2);
    assert_eq!(info["usage"]["localPosts"], 2);
    app.stop().await;
}

#[tokio::test]
async fn the_key_pool_fills_in_the_background_and_accounts_take_from_it() {
    let app = spawn_app(AppOptions {
        env: vec![("KEY_POOL_SIZE".into(), "2".into())],
        workers: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pooled: i64 = sqlx::query_scalar("SELECT count(*) FROM key_pool")
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
        if pooled == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pool holds {pooled} keys"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let carol = seed_user(&app, "carol", false).await;
    let (status, _, actor) = fetch(&app, "/users/carol", AP).await;
    assert_eq!(status, 200);
    let pem = actor["publicKey"]["publicKeyPem"]
        .as_str()
        .unwrap()
        .to_string();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT public_key FROM accounts WHERE id = $1")
            .bind(carol.id.parse::<i64>().unwrap())
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), Some(pem.as_str()));
    let in_pool: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM key_pool WHERE public_key = $1)")
            .bind(&pem)
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert!(!in_pool, "the key left the pool when the account took it");
    app.stop().await;
}
