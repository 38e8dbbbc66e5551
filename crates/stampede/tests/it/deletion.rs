//! Account deletion: by its owner in the browser (suspended at once, purged after the grace
//! period), by a moderator (a suspension, then "delete now"), and from the command line —
//! leaving no row that names the account and no file in storage, and telling the other server,
//! which purges its copy.

use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::federation::until;
use crate::mastodon::{Browser, hidden};
use crate::moderation::make_admin;
use crate::social::{User, call, get, post, post_status, seed_user};

/// Rows outside the moderation history that still name `account`, as "table.column".
async fn leftovers(app: &TestApp, account: &str) -> Vec<(String, i64)> {
    let mut conn = app.ctx.db.acquire().await.unwrap();
    stampede_social::deletion::leftovers(&mut conn, account.parse().unwrap())
        .await
        .unwrap()
}

/// Gives `user` a real password (seeded users have none).
pub(crate) async fn set_password(app: &TestApp, user: &User, password: &str) {
    let hash = stampede_social::passwords::Scratch::new()
        .hash(password)
        .unwrap();
    sqlx::query("UPDATE users SET password_hash = $2 WHERE account_id = $1")
        .bind(user.id.parse::<i64>().unwrap())
        .bind(hash)
        .execute(&app.ctx.db)
        .await
        .unwrap();
}

/// An account with a bit of everything: a post with an uploaded image, an avatar, a follow each
/// way with `friend`, a favourite, a bookmark, a list, a mute and a notification.
pub(crate) async fn busy_life(app: &TestApp, user: &User, friend: &User) -> String {
    let image = crate::media::png(64, 48);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(image.clone())
            .file_name("a.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let uploaded: Value = app
        .client
        .post(app.url("/api/v2/media"))
        .bearer_auth(&user.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media_id = uploaded["id"].as_str().unwrap().to_string();
    let avatar = reqwest::multipart::Form::new().part(
        "avatar",
        reqwest::multipart::Part::bytes(image)
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let updated = app
        .client
        .patch(app.url("/api/v1/accounts/update_credentials"))
        .bearer_auth(&user.token)
        .multipart(avatar)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    // Processing finishes in the media worker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = get(app, &format!("/api/v1/media/{media_id}"), user).await;
        if m.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "media never ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = post_status(
        app,
        user,
        json!({ "status": "my life in pictures", "media_ids": [media_id] }),
    )
    .await;
    for (path, who) in [
        (format!("/api/v1/accounts/{}/follow", friend.id), user),
        (format!("/api/v1/accounts/{}/follow", user.id), friend),
        (format!("/api/v1/statuses/{status}/favourite"), friend),
        (format!("/api/v1/statuses/{status}/bookmark"), user),
    ] {
        let answer = post(app, &path, who, json!({})).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    }
    let friends_post = post_status(app, friend, json!({ "status": "hello" })).await;
    post(
        app,
        &format!("/api/v1/statuses/{friends_post}/favourite"),
        user,
        json!({}),
    )
    .await;
    let list = post(app, "/api/v1/lists", user, json!({ "title": "friends" })).await;
    post(
        app,
        &format!(
            "/api/v1/lists/{}/accounts",
            list.body["id"].as_str().unwrap()
        ),
        user,
        json!({ "account_ids": [friend.id] }),
    )
    .await;
    status
}

/// The storage keys the account's files have now.
async fn files_of(app: &TestApp, account: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT k FROM (SELECT unnest(ARRAY[file_key, small_key]) k FROM media_attachments \
                        WHERE account_id = $1 \
                        UNION ALL SELECT avatar_key FROM accounts WHERE id = $1) f WHERE k IS NOT NULL",
    )
    .bind(account.parse::<i64>().unwrap())
    .fetch_all(&app.ctx.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_owner_deletes_their_account_and_nothing_of_it_is_left_here_or_there() {
    let (a, b) = tokio::join!(
        spawn_app(AppOptions {
            workers: true,
            federating: true,
            env: vec![("ACCOUNT_DELETION_GRACE_DAYS".into(), "0".into())],
            ..AppOptions::default()
        }),
        spawn_app(AppOptions {
            workers: true,
            federating: true,
            ..AppOptions::default()
        })
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&a, "bob", false).await;
    let carol = seed_user(&b, "carol", false).await;
    busy_life(&a, &alice, &bob).await;
    let files = files_of(&a, &alice.id).await;
    assert!(files.len() >= 3, "{files:?}");

    // Carol, on the other server, follows Alice and has her post.
    let found = get(
        &b,
        &format!("/api/v2/search?q=@alice@{domain_a}&resolve=true&type=accounts"),
        &carol,
    )
    .await;
    let remote_alice = found.body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
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
        "the follow is accepted",
        |r| r[0]["following"] == true,
    )
    .await;
    post_status(&a, &alice, json!({ "status": "last words" })).await;
    until(
        &b,
        &carol,
        "/api/v1/timelines/home",
        "the post arrives",
        |h| h.as_array().is_some_and(|h| !h.is_empty()),
    )
    .await;

    // Alice signs in and deletes her account; a wrong password changes nothing.
    let mut browser = Browser::signed_in(&a, &alice).await;
    let (status, page, _) = browser.get("/settings/delete").await;
    assert_eq!(status, 200);
    assert!(page.contains("@alice"), "{page}");
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, _, _) = browser
        .post_form(
            "/settings/delete",
            &[("authenticity_token", &csrf), ("password", "wrong")],
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        get(&a, "/api/v1/accounts/verify_credentials", &alice)
            .await
            .status,
        200
    );
    let (status, page, _) = browser
        .post_form(
            "/settings/delete",
            &[
                ("authenticity_token", &csrf),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    // At once: signed out everywhere, gone from the other people's view.
    assert_eq!(
        get(&a, "/api/v1/accounts/verify_credentials", &alice)
            .await
            .status,
        401
    );
    let (status, _, location) = browser.get("/settings/delete").await;
    assert_eq!(status, 303, "the session ended");
    assert!(location.unwrap().starts_with("/auth/sign_in"));

    // The sweeper purges her (no grace period here): no row names her, no file is left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let deleted: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT deleted_at FROM accounts WHERE id = $1")
                .bind(alice.id.parse::<i64>().unwrap())
                .fetch_one(&a.ctx.db)
                .await
                .unwrap();
        if deleted.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(leftovers(&a, &alice.id).await, vec![]);
    let bob_now = get(&a, &format!("/api/v1/accounts/{}", bob.id), &bob).await;
    assert_eq!(bob_now.body["followers_count"], 0);
    assert_eq!(bob_now.body["following_count"], 0);
    let home = get(&a, "/api/v1/timelines/home", &bob).await;
    assert!(
        home.body
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["account"]["id"] != alice.id.as_str()),
        "{:?}",
        home.body
    );
    // The files went to the storage garbage, which the media service's sweep empties each
    // minute; a sweep now removes them.
    stampede_social::media::collect_garbage(&a.ctx.db, &a.ctx.storage, 1000)
        .await
        .unwrap();
    for key in &files {
        assert!(
            a.ctx.storage.get(key).await.unwrap().is_none(),
            "{key} is still in storage"
        );
    }
    // The name stays taken: other servers remember it.
    let reused: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE username = 'alice' AND domain IS NULL)",
    )
    .fetch_one(&a.ctx.db)
    .await
    .unwrap();
    assert!(reused);

    // The other server got the Delete and purged its copy: Carol's home is empty.
    until(
        &b,
        &carol,
        "/api/v1/timelines/home",
        "the Delete arrives",
        |h| h.as_array().is_some_and(|h| h.is_empty()),
    )
    .await;
    assert_eq!(leftovers(&b, &remote_alice).await, vec![]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_moderator_deletes_a_suspended_account_and_lifting_a_suspension_cancels_it() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let root = seed_user(&app, "root", false).await;
    make_admin(&app, &root).await;
    let spammer = seed_user(&app, "spammer", false).await;
    let victim = seed_user(&app, "victim", false).await;
    post_status(&app, &spammer, json!({ "status": "buy now" })).await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", victim.id),
        &spammer,
        json!({}),
    )
    .await;

    // Not suspended yet: deleting is refused.
    let early = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/accounts/{}", spammer.id),
        Some(&root.token),
        None,
    )
    .await;
    assert_eq!(early.status, 403, "{:?}", early.body);
    // Suspended, unsuspended: the deletion request goes with the suspension.
    for (path, body) in [
        (
            format!("/api/v1/admin/accounts/{}/action", spammer.id),
            json!({ "type": "suspend" }),
        ),
        (
            format!("/api/v1/admin/accounts/{}/unsuspend", spammer.id),
            json!({}),
        ),
    ] {
        assert_eq!(post(&app, &path, &root, body).await.status, 200);
    }
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM account_deletion_requests")
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    let suspended = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", spammer.id),
        &root,
        json!({ "type": "suspend" }),
    )
    .await;
    assert_eq!(suspended.status, 200);
    let due: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT due_at FROM account_deletion_requests WHERE account_id = $1")
            .bind(spammer.id.parse::<i64>().unwrap())
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert!(due > chrono::Utc::now() + chrono::Duration::days(29));
    let deleted = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/accounts/{}", spammer.id),
        Some(&root.token),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    assert_eq!(deleted.body["username"], "spammer");
    assert_eq!(leftovers(&app, &spammer.id).await, vec![]);
    let victim_now = get(&app, &format!("/api/v1/accounts/{}", victim.id), &victim).await;
    assert_eq!(victim_now.body["followers_count"], 0);
    let again = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/accounts/{}", spammer.id),
        Some(&root.token),
        None,
    )
    .await;
    assert_eq!(again.status, 403, "purged already");

    // The command line deletes at once.
    let output = crate::process::command(&app.env, &["admin", "accounts", "delete", "victim"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(leftovers(&app, &victim.id).await, vec![]);

    // And rebuilds the feeds the people left (tootctl feeds build).
    let output = crate::process::command(&app.env, &["admin", "feeds", "build"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let built: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(built["accounts"], 1, "only root is left: {built}");
}
