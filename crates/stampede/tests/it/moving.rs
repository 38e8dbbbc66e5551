//! Account migration between two servers, as people do it in the browser: the new account
//! names the old one as an alias, the old one moves, and the followers on both servers follow
//! the new account afterwards.

use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::federation::until;
use crate::mastodon::{Browser, hidden};
use crate::social::{User, get, post, seed_user};

fn federating() -> AppOptions {
    AppOptions {
        workers: true,
        federating: true,
        ..AppOptions::default()
    }
}

async fn actor(app: &TestApp, username: &str) -> Value {
    app.client
        .get(app.url(&format!("/users/{username}")))
        .header(ACCEPT, "application/activity+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Finds `acct` from `app` as `user`; its id there.
async fn resolve(app: &TestApp, user: &User, acct: &str) -> String {
    let found = get(
        app,
        &format!("/api/v2/search?q=@{acct}&resolve=true&type=accounts"),
        user,
    )
    .await;
    found.body["accounts"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{acct}: {:?}", found.body))
        .to_string()
}

#[tokio::test]
async fn an_account_moves_to_another_server_and_its_followers_follow() {
    let (a, b) = tokio::join!(spawn_app(federating()), spawn_app(federating()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let domain_b = format!("127.0.0.1:{}", b.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let dave = seed_user(&a, "dave", false).await;
    let newalice = seed_user(&b, "newalice", false).await;
    let carol = seed_user(&b, "carol", false).await;

    // Dave (same server) and Carol (the other one) follow Alice.
    post(
        &a,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &dave,
        json!({}),
    )
    .await;
    let remote_alice = resolve(&b, &carol, &format!("alice@{domain_a}")).await;
    post(
        &b,
        &format!("/api/v1/accounts/{remote_alice}/follow"),
        &carol,
        json!({}),
    )
    .await;
    until(
        &b,
        &carol,
        &format!("/api/v1/accounts/relationships?id[]={remote_alice}"),
        "Carol follows Alice",
        |r| r[0]["following"] == true,
    )
    .await;

    // Moving before the alias exists is refused.
    let mut old_home = Browser::signed_in(&a, &alice).await;
    let (_, page, _) = old_home.get("/settings/migration").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let target = format!("newalice@{domain_b}");
    let (status, page, _) = old_home
        .post_form(
            "/settings/migration",
            &[
                ("authenticity_token", &csrf),
                ("acct", &target),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("alias"), "{page}");

    // The new account names the old one; its actor document says so.
    let mut new_home = Browser::signed_in(&b, &newalice).await;
    let (_, page, _) = new_home.get("/settings/aliases").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let old = format!("@alice@{domain_a}");
    let (status, page, _) = new_home
        .post_form(
            "/settings/aliases",
            &[("authenticity_token", &csrf), ("acct", &old)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let old_uri = format!("http://{domain_a}/users/alice");
    assert!(page.contains("class=\"aliases\"><li>"), "{page}");
    assert_eq!(actor(&b, "newalice").await["alsoKnownAs"], json!([old_uri]));

    // Now Alice moves.
    let csrf = csrf_of(&mut old_home).await;
    let (status, page, _) = old_home
        .post_form(
            "/settings/migration",
            &[
                ("authenticity_token", &csrf),
                ("acct", &target),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let new_uri = format!("http://{domain_b}/users/newalice");
    assert_eq!(actor(&a, "alice").await["movedTo"], new_uri);
    let shown = get(&a, &format!("/api/v1/accounts/{}", alice.id), &dave).await;
    assert_eq!(shown.body["moved"]["acct"], target, "{:?}", shown.body);

    // Dave, on the old server, follows the new account (accepted by its server).
    let remote_new = resolve(&a, &dave, &target).await;
    until(
        &a,
        &dave,
        &format!(
            "/api/v1/accounts/relationships?id[]={remote_new}&id[]={}",
            alice.id
        ),
        "Dave follows the new account and not the old",
        |r| r[0]["following"] == true && r[1]["following"] == false,
    )
    .await;
    // Carol, on the new server, got the Move and follows the new account there.
    until(
        &b,
        &carol,
        &format!(
            "/api/v1/accounts/relationships?id[]={}&id[]={remote_alice}",
            newalice.id
        ),
        "Carol follows the new account and not the old",
        |r| r[0]["following"] == true && r[1]["following"] == false,
    )
    .await;
    let followers = get(
        &b,
        &format!("/api/v1/accounts/{}/followers", newalice.id),
        &newalice,
    )
    .await;
    let accts: Vec<&str> = followers
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["acct"].as_str().unwrap())
        .collect();
    assert_eq!(accts.len(), 2, "{accts:?}");
    assert!(accts.contains(&"carol"));
    assert!(accts.contains(&format!("dave@{domain_a}").as_str()));
    a.stop().await;
    b.stop().await;
}

async fn csrf_of(browser: &mut Browser) -> String {
    let (_, page, _) = browser.get("/settings/migration").await;
    hidden(&page, "authenticity_token").unwrap()
}
