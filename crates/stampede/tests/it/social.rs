//! Statuses, the social graph, timelines and notifications through the HTTP API, against the
//! real PostgreSQL, Redis and RabbitMQ; fan-out through the queue.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

/// A signed-in local account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// Creates a confirmed, approved local user with a `read write follow` token straight in the
/// database — the fast path tests and load tests use instead of sign-up, whose own tests live
/// in accounts.rs.
pub async fn seed_user(app: &TestApp, username: &str, locked: bool) -> User {
    let db = &app.ctx.db;
    let ids = stampede_core::id::IdGenerator::new();
    let account_id = ids.next_id().as_i64();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO accounts (id, username, locked) VALUES ($1, $2, $3)")
        .bind(account_id)
        .bind(username)
        .bind(locked)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at) \
         VALUES ($1, $2, $3, 'unusable', true, now())",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(format!("{username}@mail.example"))
    .execute(&mut *tx)
    .await
    .unwrap();
    let token = stampede_web::tokens::generate();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes) \
         VALUES ($1, $2, $3, 'read write follow push')",
    )
    .bind(ids.next_id().as_i64())
    .bind(stampede_web::tokens::digest(&token))
    .bind(account_id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    User {
        id: account_id.to_string(),
        username: username.to_string(),
        token,
    }
}

/// An HTTP answer: status, Link header and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub link: Option<String>,
    pub body: Value,
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let link = response
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, link, body }
}

pub async fn get(app: &TestApp, path: &str, user: &User) -> Answer {
    call(app, Method::GET, path, Some(&user.token), None).await
}

pub async fn post(app: &TestApp, path: &str, user: &User, body: Value) -> Answer {
    call(app, Method::POST, path, Some(&user.token), Some(body)).await
}

/// Posts a status and returns its id.
pub async fn post_status(app: &TestApp, user: &User, body: Value) -> String {
    let answer = post(app, "/api/v1/statuses", user, body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

fn ids(answer: &Answer) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("expected a list, got {} {:?}", answer.status, answer.body))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The home feed of `user` as cached in Redis.
async fn cached_feed(app: &TestApp, user: &User) -> Vec<i64> {
    app.ctx
        .cache
        .feed_range(&format!("feed:home:{}", user.id), None, None, 100)
        .await
        .unwrap()
}

/// Polls the home feed cached in Redis for `user` until `check` holds (fan-out is asynchronous).
async fn cached_feed_until(app: &TestApp, user: &User, check: impl Fn(&[i64]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let cached = cached_feed(app, user).await;
        if check(&cached) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cached home of @{} stayed {cached:?}",
            user.username
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `user`'s home timeline until it answers 200: the first read rebuilds the feed in the
/// background (206), and from then on Redis keeps it, so fan-out writes into it.
pub async fn keep_feed(app: &TestApp, user: &User) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(app, "/api/v1/timelines/home", user).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "the feed of @{} was never rebuilt",
            user.username
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 15 s) until `user`'s home timeline satisfies `check`.
pub async fn home_until(
    app: &TestApp,
    user: &User,
    check: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = get(app, "/api/v1/timelines/home?limit=40", user).await;
        assert!(
            answer.status == 200 || answer.status == 206,
            "{:?}",
            answer.body
        );
        let found = ids(&answer);
        if check(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "home of @{} stayed {found:?} ({})",
            user.username,
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn full_app() -> TestApp {
    spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        ..AppOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn posting_renders_html_mentions_tags_and_notifies() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;

    let answer = post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({"status": "Hi @bob and @nobody! #Rust <script>x</script> https://example.com/a?b=c", "language": "en"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let status = &answer.body;
    let content = status["content"].as_str().unwrap();
    assert!(
        content.starts_with("<p>Hi <span class=\"h-card\""),
        "{content}"
    );
    assert!(
        content.contains("href=\"http://stampede.test/@bob\""),
        "{content}"
    );
    assert!(content.contains("@nobody"), "{content}");
    assert!(content.contains("&lt;script&gt;"), "{content}");
    assert!(!content.contains("<script"), "{content}");
    assert!(
        content.contains("href=\"https://example.com/a?b=c\""),
        "{content}"
    );
    assert_eq!(status["mentions"][0]["acct"], "bob");
    assert_eq!(status["tags"][0]["name"], "rust");
    assert_eq!(status["visibility"], "public");
    assert_eq!(status["language"], "en");
    assert_eq!(status["account"]["statuses_count"], 1);
    assert_eq!(status["favourited"], false);
    let id = status["id"].as_str().unwrap();

    // Bob is told, and can favourite, boost and bookmark it.
    let notes = get(&app, "/api/v1/notifications", &bob).await;
    assert_eq!(notes.body[0]["type"], "mention");
    assert_eq!(notes.body[0]["status"]["id"], id);
    let fav = post(
        &app,
        &format!("/api/v1/statuses/{id}/favourite"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(fav.body["favourited"], true);
    assert_eq!(fav.body["favourites_count"], 1);
    // Twice is once.
    let fav = post(
        &app,
        &format!("/api/v1/statuses/{id}/favourite"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(fav.body["favourites_count"], 1);
    let boost = post(
        &app,
        &format!("/api/v1/statuses/{id}/reblog"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(boost.status, 200, "{:?}", boost.body);
    assert_eq!(boost.body["reblog"]["id"], id);
    assert_eq!(boost.body["reblog"]["reblogs_count"], 1);
    assert_eq!(boost.body["reblogged"], true);
    let mark = post(
        &app,
        &format!("/api/v1/statuses/{id}/bookmark"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(mark.body["bookmarked"], true);
    let marks = get(&app, "/api/v1/bookmarks", &bob).await;
    assert_eq!(ids(&marks), vec![id.to_string()]);
    let favs = get(&app, "/api/v1/favourites", &bob).await;
    assert_eq!(ids(&favs), vec![id.to_string()]);
    let by = get(
        &app,
        &format!("/api/v1/statuses/{id}/favourited_by"),
        &alice,
    )
    .await;
    assert_eq!(by.body[0]["username"], "bob");
    let by = get(&app, &format!("/api/v1/statuses/{id}/reblogged_by"), &alice).await;
    assert_eq!(by.body[0]["username"], "bob");

    let notes = get(
        &app,
        "/api/v1/notifications?exclude_types[]=mention",
        &alice,
    )
    .await;
    let kinds: Vec<&str> = notes
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["reblog", "favourite"]);
    let only = get(&app, "/api/v1/notifications?types[]=favourite", &alice).await;
    assert_eq!(only.body.as_array().unwrap().len(), 1);

    // Unboost and unfavourite restore the counts.
    let un = post(
        &app,
        &format!("/api/v1/statuses/{id}/unreblog"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(un.body["reblogged"], false);
    assert_eq!(un.body["reblogs_count"], 0);
    let un = post(
        &app,
        &format!("/api/v1/statuses/{id}/unfavourite"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(un.body["favourites_count"], 0);

    // Anyone may read a public status; an unknown id is 404 with Mastodon's body.
    let anon = call(
        &app,
        Method::GET,
        &format!("/api/v1/statuses/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(anon.status, 200);
    assert!(anon.body.get("favourited").is_none());
    let missing = call(&app, Method::GET, "/api/v1/statuses/123", None, None).await;
    assert_eq!(
        (missing.status, missing.body["error"].as_str()),
        (404, Some("Record not found"))
    );
}

#[tokio::test]
async fn hashtag_timelines_combine_any_all_none_and_page_both_ways() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let a = post_status(&app, &alice, json!({"status": "one #Alpha"})).await;
    let b = post_status(&app, &alice, json!({"status": "two #beta"})).await;
    let ab = post_status(&app, &alice, json!({"status": "three #alpha #beta"})).await;
    let ac = post_status(&app, &alice, json!({"status": "four #alpha #gamma"})).await;
    let _private = post_status(
        &app,
        &alice,
        json!({"status": "five #alpha", "visibility": "private"}),
    )
    .await;
    // Newest first; case does not matter; private statuses never appear.
    assert_eq!(
        page_owned(&app, &bob, "/api/v1/timelines/tag/alpha").await,
        [&*ac, &*ab, &*a]
    );
    // A status carrying two of the wanted tags appears once.
    assert_eq!(
        page_owned(&app, &bob, "/api/v1/timelines/tag/alpha?any[]=beta").await,
        [&*ac, &*ab, &*b, &*a]
    );
    assert_eq!(
        page_owned(&app, &bob, "/api/v1/timelines/tag/alpha?all[]=beta").await,
        [&*ab]
    );
    assert_eq!(
        page_owned(&app, &bob, "/api/v1/timelines/tag/alpha?none[]=gamma").await,
        [&*ab, &*a]
    );

    // One at a time, older with max_id, newer with min_id (both merged across tags).
    let mut seen = vec![];
    let mut path = "/api/v1/timelines/tag/alpha?any[]=beta&limit=1".to_string();
    loop {
        let answer = get(&app, &path, &bob).await;
        let got = ids(&answer);
        if got.is_empty() {
            break;
        }
        seen.extend(got.clone());
        path = format!(
            "/api/v1/timelines/tag/alpha?any[]=beta&limit=1&max_id={}",
            got[0]
        );
    }
    assert_eq!(seen, [&*ac, &*ab, &*b, &*a]);
    assert_eq!(
        page_owned(
            &app,
            &bob,
            &format!("/api/v1/timelines/tag/alpha?any[]=beta&limit=2&min_id={a}")
        )
        .await,
        [&*ab, &*b]
    );
}

async fn page_owned(app: &TestApp, user: &User, path: &str) -> Vec<String> {
    ids(&get(app, path, user).await)
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let cases = [
        (
            json!({"status": ""}),
            "Validation failed: Text can't be blank",
        ),
        (
            json!({"status": "x".repeat(501)}),
            "Validation failed: Text character limit of 500 exceeded",
        ),
        (
            json!({"status": "x", "visibility": "everyone"}),
            "Validation failed: Visibility is not included in the list",
        ),
        (
            json!({"status": "x", "poll": {"options": ["only"], "expires_in": 600}}),
            "Validation failed: Poll must have at least 2 options",
        ),
        (
            json!({"status": "x", "poll": {"options": ["a", "b"], "expires_in": 10}}),
            "Validation failed: Poll duration is too short",
        ),
    ];
    for (body, error) in cases {
        let answer = post(&app, "/api/v1/statuses", &alice, body).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (422, Some(error))
        );
    }
    // A URL counts as 23 characters: 480 + 23 fits.
    let long_url = format!(
        "{} https://example.com/{}",
        "x".repeat(476),
        "y".repeat(300)
    );
    post_status(&app, &alice, json!({"status": long_url})).await;
    // A reply to something that does not exist is 404, and writes nothing.
    let answer = post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({"status": "re", "in_reply_to_id": "42"}),
    )
    .await;
    assert_eq!(answer.status, 404);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM statuses")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // No token: 401; a token without write: 403 with Mastodon's text.
    let anon = call(
        &app,
        Method::POST,
        "/api/v1/statuses",
        None,
        Some(json!({"status": "x"})),
    )
    .await;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn idempotency_key_edit_history_and_delete_and_redraft() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let post_once = || async {
        app.client
            .post(app.url("/api/v1/statuses"))
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", "abc-123")
            .json(&json!({"status": "only once"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let (a, b) = tokio::join!(post_once(), post_once());
    assert_eq!(a["id"], b["id"]);
    let id = a["id"].as_str().unwrap().to_string();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM statuses")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let edited = call(
        &app,
        Method::PUT,
        &format!("/api/v1/statuses/{id}"),
        Some(&alice.token),
        Some(json!({"status": "edited #now", "spoiler_text": "cw"})),
    )
    .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert!(edited.body["edited_at"].is_string());
    assert_eq!(edited.body["spoiler_text"], "cw");
    assert_eq!(edited.body["sensitive"], true);
    assert_eq!(edited.body["tags"][0]["name"], "now");
    let history = get(&app, &format!("/api/v1/statuses/{id}/history"), &alice).await;
    let versions: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0], "<p>only once</p>");
    let source = get(&app, &format!("/api/v1/statuses/{id}/source"), &alice).await;
    assert_eq!(source.body["text"], "edited #now");

    // Someone else cannot edit or delete it.
    let bob = seed_user(&app, "bob", false).await;
    let denied = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/statuses/{id}"),
        Some(&bob.token),
        None,
    )
    .await;
    assert_eq!(denied.status, 404);

    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/statuses/{id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["text"], "edited #now");
    let gone = get(&app, &format!("/api/v1/statuses/{id}"), &alice).await;
    assert_eq!(gone.status, 404);
    let me = get(&app, "/api/v1/accounts/verify_credentials", &alice).await;
    assert_eq!(me.body["statuses_count"], 0);
}

#[tokio::test]
async fn home_timeline_fans_out_paginates_and_forgets() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    // Bob reads his (empty) home first, so his feed exists and fan-out keeps it.
    home_until(&app, &bob, |ids| ids.is_empty()).await;
    let rel = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(rel.body["following"], true);
    let rel = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &carol,
        json!({}),
    )
    .await;
    assert_eq!(rel.body["following"], true);
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push(post_status(&app, &alice, json!({"status": format!("post {i}")})).await);
    }
    let expected: Vec<String> = posted.iter().rev().cloned().collect();
    home_until(&app, &bob, |ids| ids == expected.as_slice()).await;

    // Pagination: limit, Link header, max_id, min_id, since_id.
    let page = get(&app, "/api/v1/timelines/home?limit=2", &bob).await;
    assert_eq!(ids(&page), expected[..2].to_vec());
    let link = page.link.unwrap();
    assert!(
        link.contains(&format!("max_id={}>; rel=\"next\"", expected[1])),
        "{link}"
    );
    assert!(
        link.contains(&format!("min_id={}>; rel=\"prev\"", expected[0])),
        "{link}"
    );
    let next = get(
        &app,
        &format!("/api/v1/timelines/home?limit=2&max_id={}", expected[1]),
        &bob,
    )
    .await;
    assert_eq!(ids(&next), expected[2..4].to_vec());
    let newer = get(
        &app,
        &format!("/api/v1/timelines/home?limit=2&min_id={}", expected[4]),
        &bob,
    )
    .await;
    assert_eq!(ids(&newer), expected[2..4].to_vec());
    let since = get(
        &app,
        &format!("/api/v1/timelines/home?limit=2&since_id={}", expected[4]),
        &bob,
    )
    .await;
    assert_eq!(ids(&since), expected[..2].to_vec());

    // A boost reaches the booster's followers.
    let boost = post(
        &app,
        &format!("/api/v1/statuses/{}/reblog", posted[0]),
        &bob,
        json!({}),
    )
    .await;
    let boost_id = boost.body["id"].as_str().unwrap().to_string();
    home_until(&app, &carol, |ids| ids.first() == Some(&boost_id)).await;

    // Deleting a status takes it out of every feed.
    call(
        &app,
        Method::DELETE,
        &format!("/api/v1/statuses/{}", posted[4]),
        Some(&alice.token),
        None,
    )
    .await;
    home_until(&app, &bob, |ids| !ids.contains(&posted[4])).await;
    // Reads hide a deleted status at once; the delivery worker takes it out of the cached
    // feeds a moment later.
    let deleted: i64 = posted[4].parse().unwrap();
    cached_feed_until(&app, &bob, |ids| !ids.contains(&deleted)).await;

    // Unfollowing takes the author's statuses out of the follower's feed.
    let rel = post(
        &app,
        &format!("/api/v1/accounts/{}/unfollow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(rel.body["following"], false, "{:?}", rel.body);
    home_until(&app, &bob, |ids| ids.iter().all(|id| !posted.contains(id))).await;

    // Following again merges them back (beside Bob's own boost).
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    home_until(&app, &bob, |ids| ids.len() == 5).await;
    let me = get(&app, "/api/v1/accounts/verify_credentials", &bob).await;
    assert_eq!(me.body["following_count"], 1);
    assert_eq!(me.body["followers_count"], 1);
}

/// Following someone merges their recent statuses into a kept feed under fan-out's rules, as
/// Mastodon's merge does: not their boosts when the follower hides them, not their replies to
/// accounts the follower does not follow.
#[tokio::test]
async fn following_merges_only_what_fan_out_would_have_written() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let dana = seed_user(&app, "dana", false).await;
    let eve = seed_user(&app, "eve", false).await;
    let theirs = post_status(&app, &dana, json!({"status": "dana's"})).await;
    let own: i64 = post_status(&app, &alice, json!({"status": "alice's own"}))
        .await
        .parse()
        .unwrap();
    post_status(
        &app,
        &alice,
        json!({"status": "a reply to dana", "in_reply_to_id": theirs}),
    )
    .await;
    let boost = post(
        &app,
        &format!("/api/v1/statuses/{theirs}/reblog"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(boost.status, 200, "{:?}", boost.body);
    keep_feed(&app, &eve).await;
    let follow = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &eve,
        json!({"reblogs": false}),
    )
    .await;
    assert_eq!(follow.body["following"], true, "{:?}", follow.body);
    cached_feed_until(&app, &eve, |feed| feed.contains(&own)).await;
    // The merge is one write: anything else would have come with it.
    assert_eq!(cached_feed(&app, &eve).await, vec![own]);
}

#[tokio::test]
async fn losing_redis_loses_nothing() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    let first = post_status(&app, &alice, json!({"status": "one"})).await;
    let second = post_status(&app, &alice, json!({"status": "two"})).await;
    let want = vec![second.clone(), first.clone()];
    home_until(&app, &bob, |ids| ids == want.as_slice()).await;
    // Bob's feed is built (a rebuild still in flight would mark it ready again after the
    // deletion below).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&app, "/api/v1/timelines/home", &bob).await.status != 200 {
        assert!(Instant::now() < deadline, "feed never built");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redis forgets everything about Bob's feed: the next read answers 206 from PostgreSQL,
    // complete, and rebuilds the feed.
    app.ctx
        .cache
        .del(&format!("feed:home:{}", bob.id))
        .await
        .unwrap();
    app.ctx
        .cache
        .del(&format!("feed:home:{}:ready", bob.id))
        .await
        .unwrap();
    let answer = get(&app, "/api/v1/timelines/home", &bob).await;
    assert_eq!(answer.status, 206);
    assert_eq!(ids(&answer), want);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(&app, "/api/v1/timelines/home", &bob).await;
        if answer.status == 200 {
            assert_eq!(ids(&answer), want);
            break;
        }
        assert!(Instant::now() < deadline, "feed never rebuilt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hybrid_fanout_merges_big_accounts_at_read_time() {
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        env: vec![("FANOUT_READ_TIME_THRESHOLD".into(), "1".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let star = seed_user(&app, "star", false).await;
    let fan1 = seed_user(&app, "fan1", false).await;
    let fan2 = seed_user(&app, "fan2", false).await;
    // The star's feed is kept in Redis once read, so fan-out writes its own status there.
    keep_feed(&app, &star).await;
    for fan in [&fan1, &fan2] {
        home_until(&app, fan, |ids| ids.is_empty()).await;
        post(
            &app,
            &format!("/api/v1/accounts/{}/follow", star.id),
            fan,
            json!({}),
        )
        .await;
    }
    let id = post_status(&app, &star, json!({"status": "to the many"})).await;
    for fan in [&fan1, &fan2] {
        home_until(&app, fan, |ids| ids == [id.clone()]).await;
    }
    // The star's own feed got it (once the fan-out job has run); the fans' feeds did not — it
    // was merged as they read.
    let posted: i64 = id.parse().unwrap();
    cached_feed_until(&app, &star, |ids| ids == [posted]).await;
    let fan_feed = cached_feed(&app, &fan1).await;
    assert!(fan_feed.is_empty(), "{fan_feed:?}");
}

#[tokio::test]
async fn locked_accounts_blocks_mutes_and_private_statuses() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", true).await; // locked
    let bob = seed_user(&app, "bob", false).await;
    let eve = seed_user(&app, "eve", false).await;

    let private = post_status(
        &app,
        &alice,
        json!({"status": "friends only", "visibility": "private"}),
    )
    .await;
    let direct = post_status(
        &app,
        &alice,
        json!({"status": "@bob psst", "visibility": "direct"}),
    )
    .await;

    // Bob asks to follow; until Alice accepts he sees neither the private status nor its
    // place in her profile; the direct message (he is mentioned) he sees.
    let rel = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(
        (
            rel.body["following"].as_bool(),
            rel.body["requested"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{private}"), &bob)
            .await
            .status,
        404
    );
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{direct}"), &bob)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{direct}"), &eve)
            .await
            .status,
        404
    );
    let requests = get(&app, "/api/v1/follow_requests", &alice).await;
    assert_eq!(requests.body[0]["username"], "bob");
    let notes = get(&app, "/api/v1/notifications?types[]=follow_request", &alice).await;
    assert_eq!(notes.body[0]["account"]["username"], "bob");
    let rel = post(
        &app,
        &format!("/api/v1/follow_requests/{}/authorize", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(rel.body["followed_by"], true);
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{private}"), &bob)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{private}"), &eve)
            .await
            .status,
        404
    );
    let profile = get(
        &app,
        &format!("/api/v1/accounts/{}/statuses", alice.id),
        &bob,
    )
    .await;
    assert_eq!(ids(&profile), vec![private.clone()]);
    let profile = get(
        &app,
        &format!("/api/v1/accounts/{}/statuses", alice.id),
        &eve,
    )
    .await;
    assert!(ids(&profile).is_empty());
    // Nobody may boost someone else's private status.
    let boost = post(
        &app,
        &format!("/api/v1/statuses/{private}/reblog"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(boost.status, 403);

    // Eve posts publicly; Bob mutes her: gone from his public timeline, still there by id.
    let loud = post_status(&app, &eve, json!({"status": "loud #news"})).await;
    let public = get(&app, "/api/v1/timelines/public", &bob).await;
    assert!(ids(&public).contains(&loud));
    post(
        &app,
        &format!("/api/v1/accounts/{}/mute", eve.id),
        &bob,
        json!({}),
    )
    .await;
    let public = get(&app, "/api/v1/timelines/public", &bob).await;
    assert!(!ids(&public).contains(&loud));
    let tag = get(&app, "/api/v1/timelines/tag/news", &bob).await;
    assert!(ids(&tag).is_empty());
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{loud}"), &bob)
            .await
            .status,
        200
    );
    let mutes = get(&app, "/api/v1/mutes", &bob).await;
    assert_eq!(mutes.body[0]["username"], "eve");

    // Alice blocks Eve: each is invisible to the other.
    let rel = post(
        &app,
        &format!("/api/v1/accounts/{}/block", eve.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(rel.body["blocking"], true);
    let public = get(&app, "/api/v1/timelines/public", &alice).await;
    assert!(!ids(&public).contains(&loud));
    let alice_public = post_status(&app, &alice, json!({"status": "hello world"})).await;
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{alice_public}"), &eve)
            .await
            .status,
        404
    );
    let follow = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &eve,
        json!({}),
    )
    .await;
    assert_eq!(follow.status, 403);
    let rels = get(
        &app,
        &format!(
            "/api/v1/accounts/relationships?id[]={}&id[]={}",
            alice.id, bob.id
        ),
        &eve,
    )
    .await;
    assert_eq!(rels.body[0]["blocked_by"], true);
    assert_eq!(rels.body[1]["blocked_by"], false);
}

#[tokio::test]
async fn threads_polls_lists_markers_search_and_conversations() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;

    let root = post_status(&app, &alice, json!({"status": "root"})).await;
    let reply = post_status(
        &app,
        &bob,
        json!({"status": "@alice reply", "in_reply_to_id": root}),
    )
    .await;
    let deeper = post_status(
        &app,
        &alice,
        json!({"status": "@bob deeper", "in_reply_to_id": reply}),
    )
    .await;
    let context = get(&app, &format!("/api/v1/statuses/{reply}/context"), &bob).await;
    assert_eq!(
        ids(&Answer {
            status: 200,
            link: None,
            body: context.body["ancestors"].clone()
        }),
        vec![root.clone()]
    );
    assert_eq!(
        ids(&Answer {
            status: 200,
            link: None,
            body: context.body["descendants"].clone()
        }),
        vec![deeper.clone()]
    );
    let root_status = get(&app, &format!("/api/v1/statuses/{root}"), &bob).await;
    assert_eq!(root_status.body["replies_count"], 1);

    // Polls: vote once, not in one's own, results counted.
    let answer = post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({"status": "which?", "poll": {"options": ["tea", "coffee"], "expires_in": 600}}),
    )
    .await;
    let poll_id = answer.body["poll"]["id"].as_str().unwrap().to_string();
    let vote = post(
        &app,
        &format!("/api/v1/polls/{poll_id}/votes"),
        &bob,
        json!({"choices": ["1"]}),
    )
    .await;
    assert_eq!(vote.status, 200, "{:?}", vote.body);
    assert_eq!(vote.body["options"][1]["votes_count"], 1);
    assert_eq!(vote.body["own_votes"], json!([1]));
    let again = post(
        &app,
        &format!("/api/v1/polls/{poll_id}/votes"),
        &bob,
        json!({"choices": ["0"]}),
    )
    .await;
    assert_eq!(again.status, 422);
    let own = post(
        &app,
        &format!("/api/v1/polls/{poll_id}/votes"),
        &alice,
        json!({"choices": ["0"]}),
    )
    .await;
    assert_eq!(own.status, 422);

    // Lists hold followed accounts only.
    let list = post(&app, "/api/v1/lists", &bob, json!({"title": "friends"})).await;
    let list_id = list.body["id"].as_str().unwrap().to_string();
    let refused = post(
        &app,
        &format!("/api/v1/lists/{list_id}/accounts"),
        &bob,
        json!({"account_ids": [alice.id]}),
    )
    .await;
    assert_eq!(refused.status, 422);
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    let added = post(
        &app,
        &format!("/api/v1/lists/{list_id}/accounts"),
        &bob,
        json!({"account_ids": [alice.id]}),
    )
    .await;
    assert_eq!(added.status, 200);
    let timeline = get(&app, &format!("/api/v1/timelines/list/{list_id}"), &bob).await;
    assert!(ids(&timeline).contains(&root));
    let members = get(&app, &format!("/api/v1/lists/{list_id}/accounts"), &bob).await;
    assert_eq!(members.body[0]["username"], "alice");

    // Markers keep their version.
    let saved = post(
        &app,
        "/api/v1/markers",
        &bob,
        json!({"home": {"last_read_id": root}}),
    )
    .await;
    assert_eq!(saved.body["home"]["last_read_id"], root.as_str());
    let saved = post(
        &app,
        "/api/v1/markers",
        &bob,
        json!({"home": {"last_read_id": reply}}),
    )
    .await;
    assert_eq!(saved.body["home"]["version"], 2);

    // Search finds what the viewer may see.
    let found = get(&app, "/api/v2/search?q=deeper", &bob).await;
    assert_eq!(found.body["statuses"][0]["id"], deeper.as_str());
    let found = get(&app, "/api/v2/search?q=ali&type=accounts", &bob).await;
    assert_eq!(found.body["accounts"][0]["username"], "alice");
    post_status(
        &app,
        &alice,
        json!({"status": "secret words", "visibility": "direct"}),
    )
    .await;
    let hidden = get(&app, "/api/v2/search?q=secret", &bob).await;
    assert!(hidden.body["statuses"].as_array().unwrap().is_empty());

    // Direct messages make conversations for both sides.
    let dm = post_status(
        &app,
        &alice,
        json!({"status": "@bob just us", "visibility": "direct"}),
    )
    .await;
    let conversations = get(&app, "/api/v1/conversations", &bob).await;
    assert_eq!(conversations.body[0]["last_status"]["id"], dm.as_str());
    assert_eq!(conversations.body[0]["unread"], true);
    assert_eq!(conversations.body[0]["accounts"][0]["username"], "alice");
}

#[tokio::test]
async fn what_an_account_owns_only_it_deletes() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let id = |answer: Answer| answer.body["id"].as_str().unwrap().to_string();

    let list = id(post(&app, "/api/v1/lists", &alice, json!({ "title": "friends" })).await);
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = id(post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({ "status": "later", "scheduled_at": at }),
    )
    .await);
    // Bob follows Alice (a notification of hers) and writes to her directly (a conversation).
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &bob,
        json!({}),
    )
    .await;
    post_status(
        &app,
        &bob,
        json!({ "status": "@alice psst", "visibility": "direct" }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (notification, conversation) = loop {
        let n = get(&app, "/api/v1/notifications?types[]=follow", &alice).await;
        let c = get(&app, "/api/v1/conversations", &alice).await;
        if let (Some(n), Some(c)) = (n.body[0]["id"].as_str(), c.body[0]["id"].as_str()) {
            break (n.to_string(), c.to_string());
        }
        assert!(Instant::now() < deadline, "{:?} {:?}", n.body, c.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    for (method, path) in [
        (Method::DELETE, format!("/api/v1/lists/{list}")),
        (
            Method::DELETE,
            format!("/api/v1/scheduled_statuses/{scheduled}"),
        ),
        (
            Method::POST,
            format!("/api/v1/notifications/{notification}/dismiss"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/conversations/{conversation}"),
        ),
    ] {
        let by = |token: String| {
            let (app, method, path) = (&app, method.clone(), path.clone());
            async move { call(app, method, &path, Some(&token), None).await }
        };
        assert_eq!(
            by(bob.token.clone()).await.status,
            404,
            "another account's: {path}"
        );
        let done = by(alice.token.clone()).await;
        assert_eq!((done.status, done.body), (200, json!({})), "{path}");
        assert_eq!(by(alice.token.clone()).await.status, 404, "gone: {path}");
    }
    let bogus = call(
        &app,
        Method::DELETE,
        "/api/v1/lists/x",
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(bogus.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn batch_reads_unread_counts_preferences_and_the_instance_extras() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    for (who, whom) in [(&bob, &alice), (&bob, &carol), (&carol, &alice)] {
        let followed = post(
            &app,
            &format!("/api/v1/accounts/{}/follow", whom.id),
            who,
            json!({}),
        )
        .await;
        assert_eq!(followed.status, 200, "{:?}", followed.body);
    }
    let first = post_status(&app, &alice, json!({ "status": "one" })).await;
    let second = post_status(
        &app,
        &alice,
        json!({ "status": "two", "visibility": "private" }),
    )
    .await;

    // Several accounts and statuses at once, in the order asked; unknown and hidden ones left out.
    let accounts = get(
        &app,
        &format!(
            "/api/v1/accounts?id[]={}&id[]=1&id[]={}",
            carol.id, alice.id
        ),
        &bob,
    )
    .await;
    assert_eq!(accounts.status, 200, "{:?}", accounts.body);
    let names: Vec<&str> = accounts
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "alice"]);
    let statuses = call(
        &app,
        Method::GET,
        &format!("/api/v1/statuses?id[]={second}&id[]={first}"),
        None,
        None,
    )
    .await;
    assert_eq!(statuses.status, 200, "{:?}", statuses.body);
    let ids: Vec<&str> = statuses
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [first.as_str()],
        "the private one is not for strangers"
    );
    let too_many: String = (0..41).map(|i| format!("id[]={i}&")).collect();
    assert_eq!(
        get(&app, &format!("/api/v1/statuses?{too_many}"), &bob)
            .await
            .status,
        422
    );

    // Familiar followers: whom Bob follows that follow Alice.
    let familiar = get(
        &app,
        &format!("/api/v1/accounts/familiar_followers?id[]={}", alice.id),
        &bob,
    )
    .await;
    assert_eq!(familiar.body[0]["id"], alice.id.as_str());
    assert_eq!(familiar.body[0]["accounts"][0]["username"], "carol");

    // Unread notifications: two follows, none once the marker passes them.
    let unread = get(&app, "/api/v1/notifications/unread_count", &alice).await;
    assert_eq!(unread.body, json!({ "count": 2 }), "{:?}", unread.body);
    let newest = get(&app, "/api/v1/notifications", &alice).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let marked = post(
        &app,
        "/api/v1/markers",
        &alice,
        json!({ "notifications": { "last_read_id": newest } }),
    )
    .await;
    assert_eq!(marked.status, 200, "{:?}", marked.body);
    let unread = get(&app, "/api/v1/notifications/unread_count", &alice).await;
    assert_eq!(unread.body, json!({ "count": 0 }));

    // Alice removes Bob from her followers.
    let removed = post(
        &app,
        &format!("/api/v1/accounts/{}/remove_from_followers", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(removed.body["followed_by"], false);
    let seen_by_bob = get(
        &app,
        &format!("/api/v1/accounts/relationships?id[]={}", alice.id),
        &bob,
    )
    .await;
    assert_eq!(seen_by_bob.body[0]["following"], false);

    let preferences = get(&app, "/api/v1/preferences", &alice).await;
    assert_eq!(preferences.body["posting:default:visibility"], "public");
    assert_eq!(preferences.body["reading:expand:spoilers"], false);

    let activity = call(&app, Method::GET, "/api/v1/instance/activity", None, None).await;
    let weeks = activity.body.as_array().unwrap();
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks[0]["statuses"], "2", "{:?}", weeks[0]);
    assert_eq!(weeks[0]["registrations"], "3");
    let peers = call(&app, Method::GET, "/api/v1/instance/peers", None, None).await;
    assert_eq!(peers.body, json!([]));
    let extended = call(
        &app,
        Method::GET,
        "/api/v1/instance/extended_description",
        None,
        None,
    )
    .await;
    assert_eq!(extended.body["content"], "");
    let languages = call(
        &app,
        Method::GET,
        "/api/v1/instance/translation_languages",
        None,
        None,
    )
    .await;
    assert_eq!(languages.body, json!({}));
    app.stop().await;
}

#[tokio::test]
async fn profiles_feature_accounts_and_hashtags_and_notes_stay_private() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;

    // Endorsing needs a follow.
    let refused = post(
        &app,
        &format!("/api/v1/accounts/{}/endorse", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &alice,
        json!({}),
    )
    .await;
    let endorsed = post(
        &app,
        &format!("/api/v1/accounts/{}/pin", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(endorsed.body["endorsed"], true, "{:?}", endorsed.body);
    let own = get(&app, "/api/v1/endorsements", &alice).await;
    assert_eq!(own.body[0]["username"], "bob");
    let public = call(
        &app,
        Method::GET,
        &format!("/api/v1/accounts/{}/endorsements", alice.id),
        None,
        None,
    )
    .await;
    assert_eq!(public.body[0]["username"], "bob", "{:?}", public.body);
    let unendorsed = post(
        &app,
        &format!("/api/v1/accounts/{}/unendorse", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(unendorsed.body["endorsed"], false);

    // A private note shows in the writer's relationship only.
    let noted = post(
        &app,
        &format!("/api/v1/accounts/{}/note", carol.id),
        &alice,
        json!({ "comment": "met at the conference" }),
    )
    .await;
    assert_eq!(
        noted.body["note"], "met at the conference",
        "{:?}",
        noted.body
    );
    let seen_by_bob = get(
        &app,
        &format!("/api/v1/accounts/relationships?id[]={}", carol.id),
        &bob,
    )
    .await;
    assert_eq!(seen_by_bob.body[0]["note"], "");
    let cleared = post(
        &app,
        &format!("/api/v1/accounts/{}/note", carol.id),
        &alice,
        json!({ "comment": "" }),
    )
    .await;
    assert_eq!(cleared.body["note"], "");

    // Featured hashtags, with the account's use of them; suggestions from its own statuses.
    post_status(&app, &alice, json!({ "status": "#Rust and #cats" })).await;
    post_status(&app, &alice, json!({ "status": "more #rust" })).await;
    let suggested = get(&app, "/api/v1/featured_tags/suggestions", &alice).await;
    assert_eq!(suggested.body[0]["name"], "rust", "{:?}", suggested.body);
    let featured = post(
        &app,
        "/api/v1/featured_tags",
        &alice,
        json!({ "name": "#Rust" }),
    )
    .await;
    assert_eq!(featured.status, 200, "{:?}", featured.body);
    assert_eq!(featured.body["name"], "rust");
    assert_eq!(featured.body["statuses_count"], "2");
    assert!(
        featured.body["url"]
            .as_str()
            .unwrap()
            .ends_with("/@alice/tagged/rust")
    );
    let again = post(
        &app,
        "/api/v1/featured_tags",
        &alice,
        json!({ "name": "rust" }),
    )
    .await;
    assert_eq!(again.status, 422);
    let bad = post(
        &app,
        "/api/v1/featured_tags",
        &alice,
        json!({ "name": "no spaces" }),
    )
    .await;
    assert_eq!(bad.status, 422);
    let listed = call(
        &app,
        Method::GET,
        &format!("/api/v1/accounts/{}/featured_tags", alice.id),
        None,
        None,
    )
    .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let suggested = get(&app, "/api/v1/featured_tags/suggestions", &alice).await;
    assert_eq!(suggested.body[0]["name"], "cats");
    let id = featured.body["id"].as_str().unwrap();
    let gone = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/featured_tags/{id}"),
        Some(&bob.token),
        None,
    )
    .await;
    assert_eq!(gone.status, 404, "only its owner removes it");
    let gone = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/featured_tags/{id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!((gone.status, gone.body.clone()), (200, json!({})));

    // The tag API features and unfeatures too, and says so on the tag.
    let tag = post(&app, "/api/v1/tags/cats/feature", &alice, json!({})).await;
    assert_eq!(tag.status, 200, "{:?}", tag.body);
    assert_eq!(
        (tag.body["name"].clone(), tag.body["featuring"].clone()),
        (json!("cats"), json!(true))
    );
    let again = post(&app, "/api/v1/tags/cats/feature", &alice, json!({})).await;
    assert_eq!(again.status, 200, "featuring twice changes nothing");
    let tag = post(&app, "/api/v1/tags/cats/unfeature", &alice, json!({})).await;
    assert_eq!(tag.body["featuring"], false);
    app.stop().await;
}

#[tokio::test]
async fn suggestions_come_from_the_graph_and_the_directory_from_opt_ins() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let dave = seed_user(&app, "dave", false).await;
    for (who, whom) in [(&alice, &bob), (&bob, &carol), (&carol, &dave)] {
        post(
            &app,
            &format!("/api/v1/accounts/{}/follow", whom.id),
            who,
            json!({}),
        )
        .await;
    }
    let suggested = get(&app, "/api/v2/suggestions", &alice).await;
    assert_eq!(suggested.status, 200, "{:?}", suggested.body);
    let picks: Vec<(&str, &str)> = suggested
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["account"]["username"].as_str().unwrap(),
                s["sources"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        picks,
        [("carol", "friends_of_friends"), ("dave", "most_followed")]
    );
    let dismissed = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/suggestions/{}", carol.id),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(dismissed.status, 200);
    let v1 = get(&app, "/api/v1/suggestions", &alice).await;
    let names: Vec<&str> = v1
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dave"]);

    // The directory lists only those who opted in.
    let empty = call(
        &app,
        Method::GET,
        "/api/v1/directory?local=true",
        None,
        None,
    )
    .await;
    assert_eq!(empty.body, json!([]));
    let opted = call(
        &app,
        Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(&dave.token),
        Some(json!({ "discoverable": true })),
    )
    .await;
    assert_eq!(opted.status, 200, "{:?}", opted.body);
    let listed = call(
        &app,
        Method::GET,
        "/api/v1/directory?order=new&local=true",
        None,
        None,
    )
    .await;
    assert_eq!(listed.body[0]["username"], "dave", "{:?}", listed.body);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let bad = call(
        &app,
        Method::GET,
        "/api/v1/directory?order=random",
        None,
        None,
    )
    .await;
    assert_eq!(bad.status, 422);
    app.stop().await;
}

#[tokio::test]
async fn trends_rank_recent_hashtags_and_statuses() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let liked = post_status(&app, &alice, json!({ "status": "loving #Rust" })).await;
    post_status(&app, &bob, json!({ "status": "#rust again" })).await;
    post_status(&app, &carol, json!({ "status": "only me on #cats" })).await;
    post_status(&app, &carol, json!({ "status": "quiet one" })).await;
    let favourited = post(
        &app,
        &format!("/api/v1/statuses/{liked}/favourite"),
        &carol,
        json!({}),
    )
    .await;
    assert_eq!(favourited.status, 200);

    let tags = call(&app, Method::GET, "/api/v1/trends/tags", None, None).await;
    assert_eq!(tags.status, 200, "{:?}", tags.body);
    let names: Vec<&str> = tags
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rust"], "a tag needs two accounts");
    assert_eq!(tags.body[0]["history"][0]["accounts"], "2");
    let statuses = call(&app, Method::GET, "/api/v1/trends/statuses", None, None).await;
    assert_eq!(statuses.status, 200, "{:?}", statuses.body);
    let ids: Vec<&str> = statuses
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [liked.as_str()]);
    app.stop().await;
}

#[tokio::test]
async fn filters_mark_what_they_match_for_their_owner() {
    let app = full_app().await;
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &alice,
        json!({}),
    )
    .await;

    let bad = post(
        &app,
        "/api/v2/filters",
        &alice,
        json!({ "title": "x", "context": ["nowhere"] }),
    )
    .await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    let created = post(
        &app,
        "/api/v2/filters",
        &alice,
        json!({
            "title": "Spoilers",
            "context": ["home", "public"],
            "filter_action": "warn",
            "keywords_attributes": [
                { "keyword": "finale", "whole_word": true },
                { "keyword": "dragon", "whole_word": false }
            ]
        }),
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let filter_id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["keywords"].as_array().unwrap().len(), 2);
    assert_eq!(created.body["filter_action"], "warn");

    let matched = post_status(&app, &bob, json!({ "status": "the Finale was great" })).await;
    let partial = post_status(&app, &bob, json!({ "status": "snapdragons bloom" })).await;
    let plain = post_status(&app, &bob, json!({ "status": "nothing to see" })).await;
    let status = get(&app, &format!("/api/v1/statuses/{matched}"), &alice).await;
    let filtered = &status.body["filtered"][0];
    assert_eq!(filtered["filter"]["title"], "Spoilers", "{:?}", status.body);
    assert_eq!(filtered["keyword_matches"], json!(["finale"]));
    let status = get(&app, &format!("/api/v1/statuses/{partial}"), &alice).await;
    assert_eq!(
        status.body["filtered"][0]["keyword_matches"],
        json!(["dragon"])
    );
    let status = get(&app, &format!("/api/v1/statuses/{plain}"), &alice).await;
    assert_eq!(status.body["filtered"], json!([]));
    let for_bob = get(&app, &format!("/api/v1/statuses/{matched}"), &bob).await;
    assert_eq!(
        for_bob.body["filtered"],
        json!([]),
        "filters are their owner's only"
    );

    // A status filter, then keyword changes through update and the keyword routes.
    let by_status = post(
        &app,
        &format!("/api/v2/filters/{filter_id}/statuses"),
        &alice,
        json!({ "status_id": plain }),
    )
    .await;
    assert_eq!(by_status.status, 200, "{:?}", by_status.body);
    let status = get(&app, &format!("/api/v1/statuses/{plain}"), &alice).await;
    assert_eq!(status.body["filtered"][0]["status_matches"], json!([plain]));
    let dragon = created.body["keywords"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let updated = call(
        &app,
        Method::PUT,
        &format!("/api/v2/filters/{filter_id}"),
        Some(&alice.token),
        Some(json!({ "title": "Show spoilers", "keywords_attributes": [{ "id": dragon, "_destroy": true }] })),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["title"], "Show spoilers");
    assert_eq!(updated.body["keywords"].as_array().unwrap().len(), 1);
    let added = post(
        &app,
        &format!("/api/v2/filters/{filter_id}/keywords"),
        &alice,
        json!({ "keyword": "bloom", "whole_word": true }),
    )
    .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    let keyword_id = added.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(
            &app,
            &format!("/api/v2/filters/keywords/{keyword_id}"),
            &bob
        )
        .await
        .status,
        404
    );
    let listed = get(
        &app,
        &format!("/api/v2/filters/{filter_id}/keywords"),
        &alice,
    )
    .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    let all = get(&app, "/api/v2/filters", &alice).await;
    assert_eq!(all.body.as_array().unwrap().len(), 1);
    assert_eq!(get(&app, "/api/v2/filters", &bob).await.body, json!([]));

    // An expired filter stays listed but no longer applies.
    let expired = call(
        &app,
        Method::PUT,
        &format!("/api/v2/filters/{filter_id}"),
        Some(&alice.token),
        Some(json!({ "expires_in": 1 })),
    )
    .await;
    assert_eq!(expired.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let status = get(&app, &format!("/api/v1/statuses/{matched}"), &alice).await;
    assert_eq!(status.body["filtered"], json!([]));
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/api/v2/filters/{filter_id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!((deleted.status, deleted.body.clone()), (200, json!({})));

    // v1 filters are single keywords of v2 filters.
    let v1 = post(
        &app,
        "/api/v1/filters",
        &alice,
        json!({ "phrase": "finale", "context": ["home"], "irreversible": true }),
    )
    .await;
    assert_eq!(v1.status, 200, "{:?}", v1.body);
    assert_eq!(v1.body["phrase"], "finale");
    assert_eq!(v1.body["irreversible"], true);
    let v1_id = v1.body["id"].as_str().unwrap().to_string();
    let status = get(&app, &format!("/api/v1/statuses/{matched}"), &alice).await;
    assert_eq!(
        status.body["filtered"][0]["filter"]["filter_action"],
        "hide"
    );
    let changed = call(
        &app,
        Method::PUT,
        &format!("/api/v1/filters/{v1_id}"),
        Some(&alice.token),
        Some(json!({ "phrase": "Finale!", "whole_word": false })),
    )
    .await;
    assert_eq!(changed.body["phrase"], "Finale!", "{:?}", changed.body);
    assert_eq!(
        get(&app, "/api/v1/filters", &alice)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gone = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/filters/{v1_id}"),
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(gone.status, 200);
    assert_eq!(get(&app, "/api/v2/filters", &alice).await.body, json!([]));
    app.stop().await;
}

#[tokio::test]
async fn cached_statuses_show_every_change_on_every_replica_at_once() {
    // Each web process keeps statuses and accounts under their rows' versions (ADR 0032): two
    // replicas, warmed, then changes made in SQL (as an operator, a worker or the inbox would)
    // and through the other replica must show on the very next read.
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let (second, _stop) = stampede_test_support::spawn_web(&app).await.unwrap();
    let replicas = [app.url(""), format!("http://{second}")];
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let id = post_status(&app, &alice, json!({"status": "first words"})).await;
    let sid: i64 = id.parse().unwrap();
    let db = &app.ctx.db;
    let read = |base: &str| {
        let (app, base, token, path) = (&app, base.to_string(), bob.token.clone(), id.clone());
        async move {
            let answer = app
                .client
                .get(format!("{base}/api/v1/statuses/{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let everywhere = |check: &'static str, ok: fn(&Value) -> bool| {
        let (replicas, read) = (&replicas, &read);
        async move {
            for base in replicas {
                let (status, body) = read(base).await;
                assert_eq!(status, 200, "{check} on {base}: {body}");
                assert!(ok(&body), "{check} on {base}: {body}");
            }
        }
    };
    let sql = |statement: &'static str| async move {
        sqlx::query(statement).bind(sid).execute(db).await.unwrap();
    };
    everywhere("warm", |b| b["content"] == "<p>first words</p>").await;
    everywhere("warm again", |b| b["account"]["statuses_count"] == 1).await;

    sql("UPDATE statuses SET content = '<p>changed in SQL</p>' WHERE id = $1").await;
    everywhere("content", |b| b["content"] == "<p>changed in SQL</p>").await;
    sql("UPDATE accounts SET display_name = 'Alice Renamed' \
         WHERE id = (SELECT account_id FROM statuses WHERE id = $1)")
    .await;
    everywhere("author", |b| {
        b["account"]["display_name"] == "Alice Renamed"
    })
    .await;
    sql("UPDATE account_stats SET statuses_count = 42 \
         WHERE account_id = (SELECT account_id FROM statuses WHERE id = $1)")
    .await;
    everywhere("counts", |b| b["account"]["statuses_count"] == 42).await;

    // Stored beside the status: a card, a poll.
    sql("WITH c AS (INSERT INTO preview_cards (id, url, title) \
                    VALUES ($1, 'https://cards.example/', 'A card') RETURNING id) \
         INSERT INTO preview_cards_statuses SELECT $1, id FROM c")
    .await;
    everywhere("card", |b| b["card"]["title"] == "A card").await;
    sql("UPDATE preview_cards SET title = 'A card, fetched again' WHERE id = $1").await;
    everywhere("card again", |b| {
        b["card"]["title"] == "A card, fetched again"
    })
    .await;
    sql("INSERT INTO polls (id, status_id, options, expires_at) \
         VALUES ($1, $1, ARRAY['yes', 'no'], now() + interval '1 day')")
    .await;
    everywhere("poll", |b| b["poll"]["options"][1]["title"] == "no").await;

    // Through the API on one replica: the other shows it.
    let favourited = app
        .client
        .post(format!("{}/api/v1/statuses/{id}/favourite", replicas[1]))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(favourited.status(), 200);
    everywhere("favourite", |b| {
        b["favourites_count"] == 1 && b["favourited"] == true
    })
    .await;

    // The cache is real: with the card link's trigger off, a card unlinked in SQL is still
    // shown by replicas holding the status, until the status itself changes.
    let ddl = |statement: &'static str| async move {
        sqlx::query(statement).execute(db).await.unwrap();
    };
    ddl("ALTER TABLE preview_cards_statuses DISABLE TRIGGER preview_cards_statuses_touch_delete")
        .await;
    sql("DELETE FROM preview_cards_statuses WHERE status_id = $1").await;
    ddl("ALTER TABLE preview_cards_statuses ENABLE TRIGGER preview_cards_statuses_touch_delete")
        .await;
    everywhere("cached", |b| b["card"].is_object()).await;
    sql("UPDATE statuses SET sensitive = true WHERE id = $1").await;
    everywhere("reread", |b| b["card"].is_null() && b["sensitive"] == true).await;
    // The cache's hits and misses are counted.
    for (kind, outcome) in [("status", "hit"), ("status", "miss"), ("account", "hit")] {
        let (kind_label, outcome_label) =
            (format!("kind=\"{kind}\""), format!("outcome=\"{outcome}\""));
        let labels = [kind_label.as_str(), outcome_label.as_str()];
        let counted =
            crate::defederation::counter(&app, "stampede_entity_cache_lookups_total", &labels)
                .await;
        assert!(counted >= 1.0, "{kind} {outcome}: {counted}");
    }

    sql("DELETE FROM statuses WHERE id = $1").await;
    for base in &replicas {
        assert_eq!(read(base).await.0, 404, "deleted on {base}");
    }
}

/// Each web process keeps a viewer's flags under the viewer's version (ADR 0043): two replicas,
/// warmed, then each kind of change the flags are read from, made in SQL as an operator, a
/// worker or the inbox would, must move the viewer's version and show on the very next read of
/// both; a mute that expires shows without any write.
#[tokio::test]
async fn a_viewers_kept_flags_show_every_change_on_every_replica_at_once() {
    let app = full_app().await;
    let (second, _stop) = stampede_test_support::spawn_web(&app).await.unwrap();
    let replicas = [app.url(""), format!("http://{second}")];
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let public = post_status(&app, &alice, json!({"status": "for all"})).await;
    let private = post_status(
        &app,
        &alice,
        json!({"status": "for followers", "visibility": "private"}),
    )
    .await;
    let db = &app.ctx.db;
    // `$alice`, `$bob`, `$public` and `$private` stand for the ids; `$n` for a fresh one.
    let ids = stampede_core::id::IdGenerator::new();
    let sql = |statement: &str| {
        let statement = statement
            .replace("$alice", &alice.id)
            .replace("$bob", &bob.id)
            .replace("$public", &public)
            .replace("$private", &private)
            .replace("$n", &ids.next_id().as_i64().to_string());
        async move {
            sqlx::query(&statement).execute(db).await.unwrap();
        }
    };
    let version = |user: &User| {
        let id: i64 = user.id.parse().unwrap();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT stampede_viewer_version($1)")
                .bind(id)
                .fetch_one(db)
                .await
                .unwrap()
        }
    };
    let read = |base: &str, user: &User, path: String| {
        let request = app
            .client
            .get(format!("{base}{path}"))
            .bearer_auth(&user.token);
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // On both replicas, `user`'s read of `path` answers `status` with a body `ok` accepts.
    let everywhere =
        |check: &'static str, user: &User, path: String, status: u16, ok: fn(&Value) -> bool| {
            let (replicas, read, user) = (&replicas, &read, user.clone());
            async move {
                for base in replicas {
                    let (got, body) = read(base, &user, path.clone()).await;
                    assert_eq!(got, status, "{check} on {base}: {body}");
                    assert!(ok(&body), "{check} on {base}: {body}");
                }
            }
        };
    let status_of = |id: &str| format!("/api/v1/statuses/{id}");
    // Warm: each replica now holds bob's flags for both statuses, and alice's for her own.
    for _ in 0..2 {
        everywhere("warm", &bob, status_of(&public), 200, |b| {
            b["favourited"] == false
        })
        .await;
        everywhere("warm", &bob, status_of(&private), 404, |_| true).await;
        everywhere("warm", &alice, status_of(&public), 200, |b| {
            b["pinned"] == false
        })
        .await;
    }

    // Each change moves the viewer's version and shows at once.
    let before = version(&bob).await;
    sql("INSERT INTO favourites (id, account_id, status_id) VALUES ($n, $bob, $public)").await;
    everywhere("favourite", &bob, status_of(&public), 200, |b| {
        b["favourited"] == true
    })
    .await;
    sql("INSERT INTO bookmarks (id, account_id, status_id) VALUES ($n, $bob, $public)").await;
    everywhere("bookmark", &bob, status_of(&public), 200, |b| {
        b["bookmarked"] == true
    })
    .await;
    sql("INSERT INTO conversation_mutes \
         SELECT $bob, conversation_id FROM statuses WHERE id = $public")
    .await;
    everywhere("conversation", &bob, status_of(&public), 200, |b| {
        b["muted"] == true
    })
    .await;
    let boost = app
        .client
        .post(format!("{}/api/v1/statuses/{public}/reblog", replicas[1]))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(boost.status(), 200);
    everywhere("boost", &bob, status_of(&public), 200, |b| {
        b["reblogged"] == true
    })
    .await;
    sql("INSERT INTO follows (id, account_id, target_account_id) VALUES ($n, $bob, $alice)").await;
    everywhere("follow", &bob, status_of(&private), 200, |b| {
        b["content"] == "<p>for followers</p>"
    })
    .await;
    sql("INSERT INTO blocks (id, account_id, target_account_id) VALUES ($n, $alice, $bob)").await;
    everywhere("blocked", &bob, status_of(&public), 404, |_| true).await;
    sql("DELETE FROM blocks WHERE account_id = $alice").await;
    everywhere("unblocked", &bob, status_of(&public), 200, |_| true).await;
    sql("INSERT INTO status_pins (id, account_id, status_id) VALUES ($n, $alice, $public)").await;
    everywhere("pin", &alice, status_of(&public), 200, |b| {
        b["pinned"] == true
    })
    .await;
    // What only decides timelines and filtering still moves the version.
    for change in [
        "INSERT INTO account_domain_blocks (id, account_id, domain) \
         VALUES ($n, $bob, 'elsewhere.example')",
        "INSERT INTO filters (id, account_id, title, context, action) \
         VALUES ($n, $bob, 'f', '{home}', 'warn')",
        "UPDATE follows SET notify = true WHERE account_id = $bob",
        "DELETE FROM filters WHERE account_id = $bob",
    ] {
        let was = version(&bob).await;
        sql(change).await;
        assert!(version(&bob).await > was, "{change}");
    }
    assert!(version(&bob).await >= before + 10);

    // A mute hides alice from bob's home at once, and shows her again when it expires.
    keep_feed(&app, &bob).await;
    home_until(&app, &bob, |ids| ids.contains(&public)).await;
    for base in &replicas {
        let (_, home) = read(base, &bob, "/api/v1/timelines/home".into()).await;
        assert!(home.to_string().contains(&public), "home on {base}: {home}");
    }
    sql(
        "INSERT INTO mutes (id, account_id, target_account_id, expires_at) \
         VALUES ($n, $bob, $alice, now() + interval '2 seconds')",
    )
    .await;
    for base in &replicas {
        let (_, home) = read(base, &bob, "/api/v1/timelines/home".into()).await;
        assert!(
            !home.to_string().contains(&public),
            "muted on {base}: {home}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for base in &replicas {
        loop {
            let (_, home) = read(base, &bob, "/api/v1/timelines/home".into()).await;
            if home.to_string().contains(&public) {
                break;
            }
            assert!(Instant::now() < deadline, "the mute never ended on {base}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Many changes are folded into one row, and the version stays.
    for _ in 0..40 {
        sql("INSERT INTO conversation_mutes VALUES ($bob, $n)").await;
    }
    let many = version(&bob).await;
    everywhere("fold", &bob, status_of(&public), 200, |_| true).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM viewer_changes WHERE account_id = $1")
                .bind(bob.id.parse::<i64>().unwrap())
                .fetch_one(db)
                .await
                .unwrap();
        if rows <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's {rows} changes were never folded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version(&bob).await, many);

    // The cache is real: with the bookmarks' trigger off, a bookmark removed in SQL still
    // shows on replicas holding bob's flags, until his version moves.
    let ddl = |statement: &'static str| async move {
        sqlx::query(statement).execute(db).await.unwrap();
    };
    everywhere("held", &bob, status_of(&public), 200, |b| {
        b["bookmarked"] == true
    })
    .await;
    ddl("ALTER TABLE bookmarks DISABLE TRIGGER bookmarks_viewer_delete").await;
    sql("DELETE FROM bookmarks WHERE account_id = $bob").await;
    ddl("ALTER TABLE bookmarks ENABLE TRIGGER bookmarks_viewer_delete").await;
    everywhere("kept", &bob, status_of(&public), 200, |b| {
        b["bookmarked"] == true
    })
    .await;
    sql("DELETE FROM favourites WHERE account_id = $bob").await;
    everywhere("reread", &bob, status_of(&public), 200, |b| {
        b["bookmarked"] == false && b["favourited"] == false
    })
    .await;
    for outcome in ["hit", "miss"] {
        let outcome_label = format!("outcome=\"{outcome}\"");
        let labels = ["kind=\"viewer_flags\"", outcome_label.as_str()];
        let counted =
            crate::defederation::counter(&app, "stampede_entity_cache_lookups_total", &labels)
                .await;
        assert!(counted >= 1.0, "viewer_flags {outcome}: {counted}");
    }
}

/// A burst of posts from many authors at once is fanned out in shared batches (ADR 0033):
/// every follower's feed gets exactly its authors' statuses, with each status's own rules
/// (boosts hidden where the follower hid them, replies only to those who follow both sides,
/// direct statuses only to the mentioned) however the statuses were grouped.
#[tokio::test]
async fn a_burst_of_posts_fans_out_in_batches_to_exactly_the_right_feeds() {
    let app = full_app().await;
    let mut authors = Vec::new();
    for i in 0..6 {
        authors.push(seed_user(&app, &format!("author{i}"), false).await);
    }
    let fay = seed_user(&app, "fay", false).await;
    let gus = seed_user(&app, "gus", false).await;
    // Hal follows the same authors as Fay but has never read his home timeline: his feed is
    // not kept in Redis, so fan-out writes none of it (his first read rebuilds it).
    let hal = seed_user(&app, "hal", false).await;
    for reader in [&fay, &gus] {
        keep_feed(&app, reader).await;
    }
    for (reader, first) in [(&fay, 0), (&gus, 3), (&hal, 0)] {
        for author in &authors[first..first + 3] {
            // Gus hides author3's boosts.
            let body = if author.username == "author3" {
                json!({"reblogs": false})
            } else {
                json!({})
            };
            let follow = post(
                &app,
                &format!("/api/v1/accounts/{}/follow", author.id),
                reader,
                body,
            )
            .await;
            assert_eq!(follow.body["following"], true, "{:?}", follow.body);
        }
    }
    let parent = post_status(&app, &authors[1], json!({"status": "the parent"})).await;
    let posts = (0..24).map(|n| {
        let (app, author) = (&app, &authors[n % 6]);
        async move {
            let id = post_status(app, author, json!({"status": format!("burst {n}")})).await;
            (n % 6, id)
        }
    });
    let mut burst = futures_util::future::join_all(posts).await;
    let extras = [
        // To Gus alone among the two (mentioned), not to Fay who follows its author.
        (0, json!({"status": "psst @gus", "visibility": "direct"})),
        // A reply to author1 by author4: Gus follows author4 but not author1, Fay the reverse.
        (4, json!({"status": "a reply", "in_reply_to_id": parent})),
    ];
    let mut direct_and_reply = Vec::new();
    for (author, body) in extras {
        direct_and_reply.push(post_status(&app, &authors[author], body).await);
    }
    let boost = post(
        &app,
        &format!("/api/v1/statuses/{parent}/reblog"),
        &authors[3],
        json!({}),
    )
    .await;
    assert_eq!(boost.status, 200, "{:?}", boost.body);
    burst.push((1, parent));

    let as_ids = |list: Vec<String>| -> Vec<i64> {
        let mut ids: Vec<i64> = list.iter().map(|id| id.parse().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    let of = |range: std::ops::Range<usize>| -> Vec<String> {
        burst
            .iter()
            .filter(|(author, _)| range.contains(author))
            .map(|(_, id)| id.clone())
            .collect()
    };
    let fay_expected = as_ids(of(0..3));
    let mut gus_expected = of(3..6);
    // The direct status; not the reply, nor author3's boost.
    gus_expected.push(direct_and_reply[0].clone());
    let gus_expected = as_ids(gus_expected);
    for (reader, expected) in [(&fay, &fay_expected), (&gus, &gus_expected)] {
        cached_feed_until(&app, reader, |feed| {
            expected.iter().all(|id| feed.contains(id))
        })
        .await;
    }
    // Whatever else was going to arrive has had time to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (reader, expected) in [(&fay, &fay_expected), (&gus, &gus_expected)] {
        let mut feed = cached_feed(&app, reader).await;
        feed.sort_unstable();
        assert_eq!(&feed, expected, "the feed of @{}", reader.username);
    }
    assert_eq!(cached_feed(&app, &hal).await, Vec::<i64>::new());
    let mut hal_home: Vec<i64> = ids(&get(&app, "/api/v1/timelines/home?limit=40", &hal).await)
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
    hal_home.sort_unstable();
    assert_eq!(hal_home, fay_expected, "Hal's first page, from PostgreSQL");
}
