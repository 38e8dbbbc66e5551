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

/// Polls `path` on `app` as `user` until `check` holds on the JSON answer.
pub(crate) async fn until(
    app: &TestApp,
    user: &crate::social::User,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = crate::social::get(app, path, user).await;
        if answer.status == 200 && check(&answer.body) {
            return answer.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {path} stayed {} {:?}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn federating() -> AppOptions {
    AppOptions {
        workers: true,
        federating: true,
        ..AppOptions::default()
    }
}

#[tokio::test]
async fn two_servers_follow_post_unfollow_and_delete_through_their_client_apis() {
    let (a, b) = tokio::join!(spawn_app(federating()), spawn_app(federating()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&b, "bob", false).await;

    // Bob finds Alice on the other server and follows her.
    let found = crate::social::get(
        &b,
        &format!("/api/v2/search?q=@alice@{domain_a}&resolve=true&type=accounts"),
        &bob,
    )
    .await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    let remote_alice = &found.body["accounts"][0];
    assert_eq!(remote_alice["acct"], format!("alice@{domain_a}"));
    assert_eq!(remote_alice["url"], format!("http://{domain_a}/@alice"));
    let remote_alice_id = remote_alice["id"].as_str().unwrap().to_string();
    let asked = crate::social::post(
        &b,
        &format!("/api/v1/accounts/{remote_alice_id}/follow"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(asked.status, 200, "{:?}", asked.body);
    until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={remote_alice_id}"),
        "the Accept arrives",
        |r| r[0]["following"] == true && r[0]["requested"] == false,
    )
    .await;
    let followers = until(
        &a,
        &alice,
        &format!("/api/v1/accounts/{}/followers", alice.id),
        "Alice sees her new follower",
        |f| f.as_array().is_some_and(|f| f.len() == 1),
    )
    .await;
    assert_eq!(
        followers[0]["acct"],
        format!("bob@127.0.0.1:{}", b.addr.port())
    );

    // Alice posts; it reaches Bob's home timeline on the other server.
    let public = post_status(&a, &alice, json!({ "status": "Hello, #fediverse" })).await;
    let home = until(
        &b,
        &bob,
        "/api/v1/timelines/home",
        "the post arrives",
        |h| h.as_array().is_some_and(|h| !h.is_empty()),
    )
    .await;
    let status = &home[0];
    assert!(
        status["content"]
            .as_str()
            .unwrap()
            .starts_with("<p>Hello, <a href="),
        "{status:?}"
    );
    assert_eq!(status["account"]["acct"], format!("alice@{domain_a}"));
    assert_eq!(
        status["uri"],
        format!("http://{domain_a}/users/alice/statuses/{public}")
    );
    assert_eq!(status["visibility"], "public");
    let remote_status = status["id"].as_str().unwrap().to_string();
    // On the federated timeline and its hashtag's, not on the local one.
    for (path, expected) in [
        ("/api/v1/timelines/public?remote=true", 1),
        ("/api/v1/timelines/public", 1),
        ("/api/v1/timelines/public?local=true", 0),
        ("/api/v1/timelines/tag/fediverse", 1),
        ("/api/v1/timelines/tag/fediverse?remote=true", 1),
    ] {
        let answer = crate::social::get(&b, path, &bob).await;
        assert_eq!(
            answer.body.as_array().map(Vec::len),
            Some(expected),
            "{path}: {:?}",
            answer.body
        );
    }

    // She deletes it; it leaves Bob's server too.
    let deleted = crate::social::call(
        &a,
        reqwest::Method::DELETE,
        &format!("/api/v1/statuses/{public}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer =
            crate::social::get(&b, &format!("/api/v1/statuses/{remote_status}"), &bob).await;
        if answer.status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Delete never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Bob unfollows; Alice loses her follower.
    let undone = crate::social::post(
        &b,
        &format!("/api/v1/accounts/{remote_alice_id}/unfollow"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(undone.status, 200, "{:?}", undone.body);
    assert_eq!(undone.body["following"], false);
    until(
        &a,
        &alice,
        &format!("/api/v1/accounts/{}/followers", alice.id),
        "the Undo arrives",
        |f| f.as_array().is_some_and(|f| f.is_empty()),
    )
    .await;
    a.stop().await;
    b.stop().await;
}

/// POSTs `body` to `app`'s shared inbox with `headers`.
async fn deliver(app: &TestApp, headers: reqwest::header::HeaderMap, body: Vec<u8>) -> u16 {
    app.client
        .post(app.url("/inbox"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Headers signing `body` for A's shared inbox with `key` as `key_id`, dated `at`.
fn signed(
    app: &TestApp,
    key: &stampede_activitypub::keys::PrivateKey,
    key_id: &str,
    body: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> reqwest::header::HeaderMap {
    let url = url::Url::parse(&app.url("/inbox")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(CONTENT_TYPE, AP.parse().unwrap());
    stampede_activitypub::signature::sign(
        key,
        key_id,
        &reqwest::Method::POST,
        &url,
        &mut headers,
        Some(body),
        at,
    )
    .unwrap();
    headers
}

#[tokio::test]
async fn the_inbox_refuses_what_its_actor_did_not_sign() {
    let (a, b) = tokio::join!(spawn_app(federating()), spawn_app(federating()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&b, "bob", false).await;
    let base_a = format!("http://127.0.0.1:{}", a.addr.port());
    let bob_uri = format!("http://127.0.0.1:{}/users/bob", b.addr.port());
    let key_id = format!("{bob_uri}#main-key");
    let bob_key = stampede_social::keys::account_key(&b.ctx.db, bob.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let bob_key = stampede_activitypub::keys::PrivateKey::from_pem(&bob_key.private_key).unwrap();
    let follow = serde_json::to_vec(&json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{bob_uri}#follows/1"),
        "type": "Follow",
        "actor": bob_uri,
        "object": format!("{base_a}/users/alice"),
    }))
    .unwrap();
    let now = chrono::Utc::now();

    let mut unsigned = reqwest::header::HeaderMap::new();
    unsigned.insert(CONTENT_TYPE, AP.parse().unwrap());
    assert_eq!(deliver(&a, unsigned, follow.clone()).await, 401, "unsigned");
    let forger = stampede_activitypub::keys::PrivateKey::from_pem(
        &stampede_activitypub::keys::generate().unwrap().private,
    )
    .unwrap();
    let forged = signed(&a, &forger, &key_id, &follow, now);
    assert_eq!(deliver(&a, forged, follow.clone()).await, 401, "forged");
    let stale = signed(
        &a,
        &bob_key,
        &key_id,
        &follow,
        now - chrono::Duration::hours(13),
    );
    assert_eq!(deliver(&a, stale, follow.clone()).await, 401, "replayed");
    let tampered = signed(&a, &bob_key, &key_id, &follow, now);
    let mut other = follow.clone();
    other.extend_from_slice(b" ");
    assert_eq!(
        deliver(&a, tampered, other).await,
        401,
        "body changed after signing"
    );
    let garbage = b"{not json".to_vec();
    let headers = signed(&a, &bob_key, &key_id, &garbage, now);
    assert_eq!(deliver(&a, headers, garbage).await, 400, "malformed");
    let huge = vec![b' '; 2 << 20];
    let headers = signed(&a, &bob_key, &key_id, &huge, now);
    assert_eq!(deliver(&a, headers, huge).await, 413, "oversize");
    let followers: i64 = sqlx::query_scalar("SELECT count(*) FROM follows")
        .fetch_one(&a.ctx.db)
        .await
        .unwrap();
    assert_eq!(followers, 0, "nothing refused was applied");

    // Signed by Bob's key: accepted, applied once however often it is delivered.
    for _ in 0..2 {
        let headers = signed(&a, &bob_key, &key_id, &follow, now);
        assert_eq!(deliver(&a, headers, follow.clone()).await, 202);
    }
    until(
        &a,
        &alice,
        &format!("/api/v1/accounts/{}/followers", alice.id),
        "the signed Follow is applied",
        |f| f.as_array().is_some_and(|f| f.len() == 1),
    )
    .await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox_activities")
        .fetch_one(&a.ctx.db)
        .await
        .unwrap();
    assert_eq!(applied, 1);

    // Nobody on A follows Bob: a note of his is taken only if it mentions someone there.
    let note = |n: u32, mention: bool| {
        let mut object = json!({
            "id": format!("{bob_uri}/statuses/{n}"), "type": "Note", "attributedTo": bob_uri,
            "content": format!("<p>note {n}</p>"),
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        });
        if mention {
            object["tag"] = json!({ "type": "Mention", "href": format!("{base_a}/users/alice") });
        }
        serde_json::to_vec(&json!({
            "id": format!("{bob_uri}/statuses/{n}/activity"), "type": "Create",
            "actor": bob_uri, "object": object,
        }))
        .unwrap()
    };
    for (n, mention) in [(1, false), (2, true)] {
        let body = note(n, mention);
        let headers = signed(&a, &bob_key, &key_id, &body, now);
        assert_eq!(deliver(&a, headers, body).await, 202);
    }
    let notes = until(
        &a,
        &alice,
        "/api/v1/notifications?types[]=mention",
        "the mention",
        |n| n.as_array().is_some_and(|n| !n.is_empty()),
    )
    .await;
    assert_eq!(notes[0]["status"]["content"], "<p>note 2</p>");
    let stored: Vec<String> = sqlx::query_scalar("SELECT uri FROM statuses ORDER BY id")
        .fetch_all(&a.ctx.db)
        .await
        .unwrap();
    assert_eq!(
        stored,
        [format!("{bob_uri}/statuses/2")],
        "the unsolicited note is dropped"
    );

    // A server whose outbound guard is closed will not fetch a key from a loopback address.
    let closed = spawn_app(AppOptions::default()).await.unwrap();
    let headers = signed(&closed, &bob_key, &key_id, &follow, now);
    assert_eq!(deliver(&closed, headers, follow.clone()).await, 401);
    let accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE domain IS NOT NULL")
            .fetch_one(&closed.ctx.db)
            .await
            .unwrap();
    assert_eq!(accounts, 0, "the private address was not fetched");
    closed.stop().await;
    a.stop().await;
    b.stop().await;
}

/// Resolves `handle` on `app` as `user` (search with resolve=true) and returns its local id.
pub(crate) async fn resolve(app: &TestApp, user: &crate::social::User, handle: &str) -> String {
    let found = crate::social::get(
        app,
        &format!("/api/v2/search?q=@{handle}&resolve=true&type=accounts"),
        user,
    )
    .await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    assert_eq!(
        found.body["accounts"][0]["acct"], handle,
        "{:?}",
        found.body
    );
    found.body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn two_servers_reply_favourite_boost_edit_mention_and_block() {
    let (a, b) = tokio::join!(spawn_app(federating()), spawn_app(federating()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let domain_b = format!("127.0.0.1:{}", b.addr.port());
    let alice = seed_user(&a, "alice", true).await; // approves her followers
    let bob = seed_user(&b, "bob", false).await;
    let alice_on_b = resolve(&b, &bob, &format!("alice@{domain_a}")).await;
    let bob_on_a = resolve(&a, &alice, &format!("bob@{domain_b}")).await;

    // A locked account: Bob asks, Alice authorizes, Bob follows.
    let asked = crate::social::post(
        &b,
        &format!("/api/v1/accounts/{alice_on_b}/follow"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(asked.body["requested"], true, "{:?}", asked.body);
    until(
        &a,
        &alice,
        "/api/v1/follow_requests",
        "the request arrives",
        |r| r.as_array().is_some_and(|r| r.len() == 1),
    )
    .await;
    let authorized = crate::social::post(
        &a,
        &format!("/api/v1/follow_requests/{bob_on_a}/authorize"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(authorized.status, 200, "{:?}", authorized.body);
    until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={alice_on_b}"),
        "the Accept arrives",
        |r| r[0]["following"] == true,
    )
    .await;
    // Alice follows Bob back (open account: accepted at once).
    crate::social::post(
        &a,
        &format!("/api/v1/accounts/{bob_on_a}/follow"),
        &alice,
        json!({}),
    )
    .await;
    until(
        &a,
        &alice,
        &format!("/api/v1/accounts/relationships?id[]={bob_on_a}"),
        "Bob's server accepts",
        |r| r[0]["following"] == true,
    )
    .await;

    // Alice's followers-only post reaches Bob, as private.
    post_status(
        &a,
        &alice,
        json!({ "status": "for followers", "visibility": "private" }),
    )
    .await;
    let home = until(
        &b,
        &bob,
        "/api/v1/timelines/home",
        "the private post",
        |h| {
            h.as_array()
                .unwrap()
                .iter()
                .any(|s| s["content"] == "<p>for followers</p>")
        },
    )
    .await;
    let private = home
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["content"] == "<p>for followers</p>")
        .unwrap();
    assert_eq!(private["visibility"], "private");
    let private_on_b = private["id"].as_str().unwrap().to_string();

    // Alice's poll reaches Bob as a poll; his vote counts on her server.
    let poll = post_status(
        &a,
        &alice,
        json!({ "status": "Tea or coffee?", "poll": { "options": ["tea", "coffee"], "expires_in": 3600 } }),
    )
    .await;
    let home = until(&b, &bob, "/api/v1/timelines/home", "the poll", |h| {
        h.as_array().unwrap().iter().any(|s| !s["poll"].is_null())
    })
    .await;
    let remote_poll = home
        .as_array()
        .unwrap()
        .iter()
        .find(|s| !s["poll"].is_null())
        .unwrap();
    assert_eq!(remote_poll["poll"]["options"][1]["title"], "coffee");
    let voted = crate::social::post(
        &b,
        &format!(
            "/api/v1/polls/{}/votes",
            remote_poll["poll"]["id"].as_str().unwrap()
        ),
        &bob,
        json!({ "choices": ["1"] }),
    )
    .await;
    assert_eq!(voted.status, 200, "{:?}", voted.body);
    until(
        &a,
        &alice,
        &format!("/api/v1/statuses/{poll}"),
        "Bob's vote",
        |s| s["poll"]["votes_count"] == 1 && s["poll"]["options"][1]["votes_count"] == 1,
    )
    .await;

    // Alice pins the poll, then unpins it; her featured collection follows on Bob's server.
    let pinned = crate::social::post(
        &a,
        &format!("/api/v1/statuses/{poll}/pin"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(pinned.status, 200, "{:?}", pinned.body);
    let pins = format!("/api/v1/accounts/{alice_on_b}/statuses?pinned=true");
    until(&b, &bob, &pins, "the Add", |p| {
        p.as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    crate::social::post(
        &a,
        &format!("/api/v1/statuses/{poll}/unpin"),
        &alice,
        json!({}),
    )
    .await;
    until(&b, &bob, &pins, "the Remove", |p| {
        p.as_array().is_some_and(Vec::is_empty)
    })
    .await;

    // Bob mentions Alice; she is notified, and the post is in her home.
    let hello = post_status(
        &b,
        &bob,
        json!({ "status": format!("Hi @alice@{domain_a}!") }),
    )
    .await;
    let notes = until(
        &a,
        &alice,
        "/api/v1/notifications",
        "the mention arrives",
        |n| {
            n.as_array()
                .is_some_and(|n| n.iter().any(|x| x["type"] == "mention"))
        },
    )
    .await;
    let mention = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "mention")
        .unwrap();
    assert_eq!(mention["account"]["acct"], format!("bob@{domain_b}"));
    let hello_on_a = mention["status"]["id"].as_str().unwrap().to_string();

    // Alice replies, favourites and boosts; Bob's server sees all three.
    let reply = post_status(
        &a,
        &alice,
        json!({ "status": format!("@bob@{domain_b} hello back"), "in_reply_to_id": hello_on_a }),
    )
    .await;
    let favourited = crate::social::post(
        &a,
        &format!("/api/v1/statuses/{hello_on_a}/favourite"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(favourited.status, 200, "{:?}", favourited.body);
    let boosted = crate::social::post(
        &a,
        &format!("/api/v1/statuses/{hello_on_a}/reblog"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(boosted.status, 200, "{:?}", boosted.body);
    until(
        &b,
        &bob,
        &format!("/api/v1/statuses/{hello}"),
        "the Like and Announce arrive",
        |s| s["favourites_count"] == 1 && s["reblogs_count"] == 1 && s["replies_count"] == 1,
    )
    .await;
    let context = crate::social::get(&b, &format!("/api/v1/statuses/{hello}/context"), &bob).await;
    let descendants = context.body["descendants"].as_array().unwrap();
    assert_eq!(descendants.len(), 1, "{:?}", context.body);
    assert_eq!(
        descendants[0]["uri"],
        format!("http://{domain_a}/users/alice/statuses/{reply}")
    );
    until(&b, &bob, "/api/v1/notifications", "Bob is told", |n| {
        let kinds: Vec<&str> = n
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["type"].as_str())
            .collect();
        kinds.contains(&"favourite") && kinds.contains(&"reblog") && kinds.contains(&"mention")
    })
    .await;

    // Alice takes back the favourite; Bob edits his post and his profile.
    crate::social::post(
        &a,
        &format!("/api/v1/statuses/{hello_on_a}/unfavourite"),
        &alice,
        json!({}),
    )
    .await;
    until(
        &b,
        &bob,
        &format!("/api/v1/statuses/{hello}"),
        "the Undo of the Like",
        |s| s["favourites_count"] == 0,
    )
    .await;
    let edited = crate::social::call(
        &b,
        reqwest::Method::PUT,
        &format!("/api/v1/statuses/{hello}"),
        Some(&bob.token),
        Some(json!({ "status": format!("Hi again @alice@{domain_a}!") })),
    )
    .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    until(
        &a,
        &alice,
        &format!("/api/v1/statuses/{hello_on_a}"),
        "the Update arrives",
        |s| {
            s["content"]
                .as_str()
                .unwrap_or_default()
                .contains("Hi again")
                && !s["edited_at"].is_null()
        },
    )
    .await;
    let renamed = crate::social::call(
        &b,
        reqwest::Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(&bob.token),
        Some(json!({ "display_name": "Bob B." })),
    )
    .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    until(
        &a,
        &alice,
        &format!("/api/v1/accounts/{bob_on_a}"),
        "the profile Update arrives",
        |acct| acct["display_name"] == "Bob B.",
    )
    .await;

    // A direct message reaches only its recipient.
    let secret = post_status(
        &b,
        &bob,
        json!({ "status": format!("@alice@{domain_a} just for you"), "visibility": "direct" }),
    )
    .await;
    let notes = until(
        &a,
        &alice,
        "/api/v1/notifications",
        "the direct message arrives",
        |n| {
            n.as_array()
                .unwrap()
                .iter()
                .any(|x| x["status"]["visibility"] == "direct")
        },
    )
    .await;
    let dm = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["status"]["visibility"] == "direct")
        .unwrap();
    assert_eq!(
        dm["status"]["uri"],
        format!("http://{domain_b}/users/bob/statuses/{secret}")
    );

    // Carl, on Bob's server, posts; Bob boosts it. Alice's server has never seen Carl's post:
    // it fetches it from its own server, and the boost shows in her home.
    let carl = seed_user(&b, "carl", false).await;
    let carls = post_status(&b, &carl, json!({ "status": "Carl was here" })).await;
    let boost = crate::social::post(
        &b,
        &format!("/api/v1/statuses/{carls}/reblog"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(boost.status, 200, "{:?}", boost.body);
    let home = until(
        &a,
        &alice,
        "/api/v1/timelines/home",
        "the boost of an unknown post",
        |h| {
            h.as_array()
                .unwrap()
                .iter()
                .any(|s| s["reblog"]["content"] == "<p>Carl was here</p>")
        },
    )
    .await;
    let shown = home
        .as_array()
        .unwrap()
        .iter()
        .find(|s| !s["reblog"].is_null())
        .unwrap();
    assert_eq!(shown["account"]["acct"], format!("bob@{domain_b}"));
    assert_eq!(
        shown["reblog"]["account"]["acct"],
        format!("carl@{domain_b}")
    );
    // Bob answers a post of Carl's that Alice's server has never seen: it fetches the parent,
    // and the thread shows on her side.
    let carls_third = post_status(&b, &carl, json!({ "status": "The start of a thread" })).await;
    post_status(
        &b,
        &bob,
        json!({ "status": "and its answer", "in_reply_to_id": carls_third }),
    )
    .await;
    // (Not in her home: she does not follow Carl, and a reply shows there only to those who
    // follow both, as in Mastodon. Bob's profile shows it.)
    let statuses = until(
        &a,
        &alice,
        &format!("/api/v1/accounts/{bob_on_a}/statuses"),
        "Bob's answer",
        |h| {
            h.as_array()
                .unwrap()
                .iter()
                .any(|s| s["content"] == "<p>and its answer</p>")
        },
    )
    .await;
    let answer = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["content"] == "<p>and its answer</p>")
        .unwrap();
    let context = crate::social::get(
        &a,
        &format!(
            "/api/v1/statuses/{}/context",
            answer["id"].as_str().unwrap()
        ),
        &alice,
    )
    .await;
    assert_eq!(
        context.body["ancestors"][0]["content"], "<p>The start of a thread</p>",
        "{:?}",
        context.body
    );

    // Carl asks to follow Alice, who rejects him; her private post stays hidden from him.
    let alice_for_carl = resolve(&b, &carl, &format!("alice@{domain_a}")).await;
    let asked = crate::social::post(
        &b,
        &format!("/api/v1/accounts/{alice_for_carl}/follow"),
        &carl,
        json!({}),
    )
    .await;
    assert_eq!(asked.body["requested"], true, "{:?}", asked.body);
    let requests = until(
        &a,
        &alice,
        "/api/v1/follow_requests",
        "Carl's request",
        |r| {
            r.as_array()
                .is_some_and(|r| r.iter().any(|x| x["username"] == "carl"))
        },
    )
    .await;
    let carl_on_a = requests
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["username"] == "carl")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = crate::social::post(
        &a,
        &format!("/api/v1/follow_requests/{carl_on_a}/reject"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(rejected.status, 200, "{:?}", rejected.body);
    until(
        &b,
        &carl,
        &format!("/api/v1/accounts/relationships?id[]={alice_for_carl}"),
        "the Reject arrives",
        |r| r[0]["requested"] == false && r[0]["following"] == false,
    )
    .await;
    let hidden = crate::social::get(&b, &format!("/api/v1/statuses/{private_on_b}"), &carl).await;
    assert_eq!(hidden.status, 404, "{:?}", hidden.body);

    // And a status found by its URL through search.
    let carls_second = post_status(&b, &carl, json!({ "status": "Found by URL" })).await;
    let found = crate::social::get(
        &a,
        &format!(
            "/api/v2/search?q=http://{domain_b}/users/carl/statuses/{carls_second}&resolve=true&type=statuses"
        ),
        &alice,
    )
    .await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    assert_eq!(
        found.body["statuses"][0]["content"], "<p>Found by URL</p>",
        "{:?}",
        found.body
    );

    // Alice blocks Bob: on his server he no longer follows her.
    let blocked = crate::social::post(
        &a,
        &format!("/api/v1/accounts/{bob_on_a}/block"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(blocked.status, 200, "{:?}", blocked.body);
    until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={alice_on_b}"),
        "the Block arrives",
        |r| r[0]["following"] == false && r[0]["followed_by"] == false,
    )
    .await;
    a.stop().await;
    b.stop().await;
}

/// The Fedify peer (interop/fedify/peer.mjs), running until dropped.
struct Fedify {
    child: tokio::process::Child,
    origin: String,
    client: reqwest::Client,
}

impl Fedify {
    async fn start() -> Fedify {
        Fedify::start_with("draft-cavage-http-signatures-12").await
    }

    /// A peer that signs first with `first_knock` (`rfc9421` or draft-cavage).
    async fn start_with(first_knock: &str) -> Fedify {
        use tokio::io::AsyncBufReadExt;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/fedify");
        assert!(
            dir.join("node_modules/@fedify/fedify").exists(),
            "the Fedify peer is not installed: run `npm ci` in interop/fedify (deploy/local/test.sh does)"
        );
        let port = crate::process::free_port();
        let mut child = tokio::process::Command::new("node")
            .arg("peer.mjs")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warning")
            .env("FIRST_KNOCK", first_knock)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the peer starts within 30 s")
            .unwrap()
            .unwrap_or_default();
        assert!(ready.starts_with("READY "), "{ready}");
        Fedify {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/control/{path}", self.origin))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "peer {path}: {status} {body}");
        body
    }

    /// Waits until the peer has received an activity for which `check` holds.
    async fn received(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let all: Value = self
                .client
                .get(format!("{}/control/received", self.origin))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(found) = all.as_array().unwrap().iter().find(|a| check(a)) {
                return found.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the peer never received {what}: {all:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Fedify {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn a_fedify_server_follows_verifies_and_talks_back() {
    let (app, peer) = tokio::join!(spawn_app(federating()), Fedify::start());
    let app = app.unwrap();
    let domain = format!("127.0.0.1:{}", app.addr.port());
    let alice = seed_user(&app, "alice", false).await;
    let alice_uri = format!("http://{domain}/users/alice");
    let zed = format!("{}/users/zed", peer.origin);

    // Fedify finds Alice through WebFinger and follows her; Stampede's signed Accept verifies.
    peer.control("follow", json!({ "handle": format!("alice@{domain}") }))
        .await;
    peer.received("the Accept", |a| a["type"] == "Accept").await;
    until(
        &app,
        &alice,
        &format!("/api/v1/accounts/{}/followers", alice.id),
        "Fedify's zed follows",
        |f| f.as_array().is_some_and(|f| f.len() == 1),
    )
    .await;

    // Alice posts; Fedify receives the signed Create.
    let status = post_status(&app, &alice, json!({ "status": "Hello, Fedify" })).await;
    let status_uri = format!("{alice_uri}/statuses/{status}");
    peer.received("the Create", |a| {
        a["type"] == "Create"
            && a["objectContent"]
                .as_str()
                .is_some_and(|c| c.contains("Hello, Fedify"))
    })
    .await;

    // Zed mentions her (one mention: Fedify sends `tag` as a bare object), replies, likes and
    // boosts her post; all of it shows in her client API.
    let note = peer
        .control(
            "note",
            json!({ "content": format!("<p>Hi @alice</p>"), "mention": alice_uri, "to": "public" }),
        )
        .await;
    let mention = until(&app, &alice, "/api/v1/notifications", "the mention", |n| {
        n.as_array().unwrap().iter().any(|x| x["type"] == "mention")
    })
    .await;
    let mention = mention
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "mention")
        .unwrap();
    assert_eq!(
        mention["account"]["acct"],
        format!("zed@127.0.0.1:{}", peer.origin.rsplit(':').next().unwrap())
    );
    let zed_note_on_app = mention["status"]["id"].as_str().unwrap().to_string();
    peer.control(
        "note",
        json!({ "content": "<p>A reply</p>", "mention": alice_uri, "inReplyTo": status_uri, "to": "public" }),
    )
    .await;
    peer.control("like", json!({ "object": status_uri, "to": alice_uri }))
        .await;
    peer.control("announce", json!({ "object": status_uri, "to": alice_uri }))
        .await;
    until(
        &app,
        &alice,
        &format!("/api/v1/statuses/{status}"),
        "reply, like and boost",
        |s| s["replies_count"] == 1 && s["favourites_count"] == 1 && s["reblogs_count"] == 1,
    )
    .await;

    // Zed edits, then deletes his first note.
    peer.control(
        "update",
        json!({ "id": note["id"], "content": "<p>Hi @alice, edited</p>", "to": alice_uri }),
    )
    .await;
    until(
        &app,
        &alice,
        &format!("/api/v1/statuses/{zed_note_on_app}"),
        "the Update",
        |s| s["content"].as_str().unwrap_or_default().contains("edited"),
    )
    .await;
    peer.control("delete", json!({ "id": note["id"], "to": alice_uri }))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crate::social::get(&app, &format!("/api/v1/statuses/{zed_note_on_app}"), &alice)
        .await
        .status
        != 404
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the Delete never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Alice follows zed back and likes his reply; Fedify verifies and records both.
    let zed_id = resolve(
        &app,
        &alice,
        &format!("zed@127.0.0.1:{}", peer.origin.rsplit(':').next().unwrap()),
    )
    .await;
    crate::social::post(
        &app,
        &format!("/api/v1/accounts/{zed_id}/follow"),
        &alice,
        json!({}),
    )
    .await;
    peer.received("Alice's Follow", |a| {
        a["type"] == "Follow" && a["actor"] == alice_uri
    })
    .await;
    until(
        &app,
        &alice,
        &format!("/api/v1/accounts/relationships?id[]={zed_id}"),
        "Fedify's Accept",
        |r| r[0]["following"] == true,
    )
    .await;
    let context =
        crate::social::get(&app, &format!("/api/v1/statuses/{status}/context"), &alice).await;
    let reply_id = context.body["descendants"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    crate::social::post(
        &app,
        &format!("/api/v1/statuses/{reply_id}/favourite"),
        &alice,
        json!({}),
    )
    .await;
    peer.received("Alice's Like", |a| {
        a["type"] == "Like" && a["actor"] == alice_uri
    })
    .await;
    let _ = zed;
    app.stop().await;
}

#[tokio::test]
async fn a_poll_is_published_as_a_question() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let id = post_status(
        &app,
        &alice,
        json!({ "status": "Tea or coffee?", "poll": { "options": ["tea", "coffee"], "expires_in": 3600 } }),
    )
    .await;
    let (status, _, question) = fetch(&app, &format!("/users/alice/statuses/{id}"), AP).await;
    assert_eq!(status, 200, "{question:?}");
    assert_eq!(question["type"], "Question");
    let names: Vec<&str> = question["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tea", "coffee"]);
    assert_eq!(question["oneOf"][0]["replies"]["totalItems"], 0);
    assert!(question["endTime"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn in_authorized_fetch_mode_only_signed_fetches_get_documents() {
    let strict = || AppOptions {
        env: vec![("AUTHORIZED_FETCH".into(), "true".into())],
        ..federating()
    };
    let (a, b) = tokio::join!(spawn_app(strict()), spawn_app(strict()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&b, "bob", false).await;
    let public = post_status(&a, &alice, json!({ "status": "signed eyes only" })).await;

    // Unsigned: documents refused, the instance actor and pages still served.
    let (status, _, _) = fetch(&a, "/users/alice", AP).await;
    assert_eq!(status, 401);
    let (status, _, _) = fetch(&a, &format!("/users/alice/statuses/{public}"), AP).await;
    assert_eq!(status, 401);
    let (status, _, _) = fetch(&a, "/@alice", AP).await;
    assert_eq!(status, 401);
    let (status, _, actor) = fetch(&a, "/actor", AP).await;
    assert_eq!(status, 200, "{actor:?}");
    let (status, _, _) = fetch(&a, "/@alice", "text/html").await;
    assert_eq!(status, 200);

    // Another server's fetches are signed by its instance actor: federation works.
    let alice_on_b = resolve(&b, &bob, &format!("alice@{domain_a}")).await;
    crate::social::post(
        &b,
        &format!("/api/v1/accounts/{alice_on_b}/follow"),
        &bob,
        json!({}),
    )
    .await;
    until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={alice_on_b}"),
        "the Accept",
        |r| r[0]["following"] == true,
    )
    .await;
    let found = crate::social::get(
        &b,
        &format!("/api/v2/search?q=http://{domain_a}/users/alice/statuses/{public}&resolve=true&type=statuses"),
        &bob,
    )
    .await;
    assert_eq!(
        found.body["statuses"][0]["content"], "<p>signed eyes only</p>",
        "{:?}",
        found.body
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn rfc9421_signatures_from_fedify_verify_at_the_first_knock() {
    let (app, peer) = tokio::join!(spawn_app(federating()), Fedify::start_with("rfc9421"));
    let app = app.unwrap();
    let domain = format!("127.0.0.1:{}", app.addr.port());
    let alice = seed_user(&app, "alice", false).await;
    peer.control("follow", json!({ "handle": format!("alice@{domain}") }))
        .await;
    peer.received("the Accept", |a| a["type"] == "Accept").await;
    peer.control(
        "note",
        json!({ "content": "<p>Hi @alice</p>", "mention": format!("http://{domain}/users/alice"), "to": "public" }),
    )
    .await;
    until(&app, &alice, "/api/v1/notifications", "the mention", |n| {
        n.as_array().unwrap().iter().any(|x| x["type"] == "mention")
    })
    .await;
    let deliveries: Value = peer
        .client
        .get(format!("{}/control/deliveries", peer.origin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let to_us: Vec<&Value> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["inbox"].as_str().unwrap_or_default().contains(&domain))
        .collect();
    assert!(!to_us.is_empty());
    for d in &to_us {
        assert!(
            d["headers"]["signature-input"].is_string(),
            "signed with RFC 9421: {d:#}"
        );
        assert_eq!(d["status"], 202, "accepted at the first knock: {d:#}");
    }
    // Having seen the peer sign with RFC 9421, Stampede signs to it that way, and Fedify
    // verifies it.
    post_status(&app, &alice, json!({ "status": "signed the modern way" })).await;
    let create = peer
        .received("alice's post", |a| {
            a["type"] == "Create"
                && a["raw"]["object"]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("signed the modern way"))
        })
        .await;
    let inbound: Value = peer
        .client
        .get(format!("{}/control/inbound", peer.origin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post = inbound
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == create["id"])
        .unwrap();
    assert_eq!(post["scheme"], "rfc9421", "{inbound:#}");
    assert_eq!(post["status"], 202, "{inbound:#}");
    let rejected: Value = peer
        .client
        .get(format!("{}/control/rejected", peer.origin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rejected, json!([]), "nothing failed verification");
    app.stop().await;
}
