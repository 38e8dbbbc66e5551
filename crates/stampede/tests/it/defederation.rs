//! The instance's block lists through the admin API: domain blocks between two real servers
//! (suspend, silence, lift), the public list, and the e-mail, canonical e-mail and IP blocks
//! at sign-up and on every request.

use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::federation::until;
use crate::mastodon::{app_token, register_app};
use crate::moderation::make_admin;
use crate::social::{User, call, get, post, post_status, seed_user};

fn federating(env: Vec<(String, String)>) -> AppOptions {
    AppOptions {
        workers: true,
        federating: true,
        env,
        ..AppOptions::default()
    }
}

async fn put(app: &TestApp, path: &str, user: &User, body: Value) -> crate::social::Answer {
    call(app, Method::PUT, path, Some(&user.token), Some(body)).await
}

async fn delete(app: &TestApp, path: &str, user: &User) -> crate::social::Answer {
    call(app, Method::DELETE, path, Some(&user.token), None).await
}

/// The value of the counter line of `/metrics` that contains every one of `labels`.
pub async fn counter(app: &TestApp, metric: &str, labels: &[&str]) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_domain_block_suspends_silences_and_lifts_between_two_servers() {
    let (a, b) = tokio::join!(
        spawn_app(federating(vec![])),
        spawn_app(federating(vec![
            ("SHOW_DOMAIN_BLOCKS".into(), "all".into()),
            ("SHOW_DOMAIN_BLOCKS_RATIONALE".into(), "users".into()),
        ]))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let domain_a = format!("127.0.0.1:{}", a.addr.port());
    let alice = seed_user(&a, "alice", false).await;
    let bob = seed_user(&b, "bob", false).await;
    let carol = seed_user(&b, "carol", false).await;
    let root = seed_user(&b, "root", false).await;
    make_admin(&b, &root).await;

    // Bob follows Alice across the servers; her post reaches him.
    let found = get(
        &b,
        &format!("/api/v2/search?q=@alice@{domain_a}&resolve=true&type=accounts"),
        &bob,
    )
    .await;
    let remote_alice = found.body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let followed = post(
        &b,
        &format!("/api/v1/accounts/{remote_alice}/follow"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(followed.status, 200, "{:?}", followed.body);
    until(
        &b,
        &bob,
        &format!("/api/v1/accounts/relationships?id[]={remote_alice}"),
        "the Accept arrives",
        |r| r[0]["following"] == true,
    )
    .await;
    post_status(&a, &alice, json!({ "status": "before the block" })).await;
    let home = until(
        &b,
        &bob,
        "/api/v1/timelines/home",
        "the post arrives",
        |h| h.as_array().is_some_and(|h| h.len() == 1),
    )
    .await;
    let remote_post = home[0]["id"].as_str().unwrap().to_string();
    // And Alice follows Bob back, so that his posts go to her server.
    let found = get(
        &a,
        &format!(
            "/api/v2/search?q=@bob@127.0.0.1:{}&resolve=true&type=accounts",
            b.addr.port()
        ),
        &alice,
    )
    .await;
    let remote_bob = found.body["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    post(
        &a,
        &format!("/api/v1/accounts/{remote_bob}/follow"),
        &alice,
        json!({}),
    )
    .await;
    until(
        &a,
        &alice,
        &format!("/api/v1/accounts/relationships?id[]={remote_bob}"),
        "Bob accepts",
        |r| r[0]["following"] == true,
    )
    .await;

    // Only an admin manages the federation.
    let refused = post(
        &b,
        "/api/v1/admin/domain_blocks",
        &bob,
        json!({ "domain": domain_a, "severity": "suspend" }),
    )
    .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // Suspend: Alice and her posts vanish for everyone on b.
    let block = post(
        &b,
        "/api/v1/admin/domain_blocks",
        &root,
        json!({ "domain": domain_a, "severity": "suspend", "public_comment": "spam",
                "private_comment": "reports 1-9" }),
    )
    .await;
    assert_eq!(block.status, 200, "{:?}", block.body);
    let block_id = block.body["id"].as_str().unwrap().to_string();
    // The process that made the change has it at once; the others within a second.
    let within_a_second = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    within_a_second().await;
    assert_eq!(block.body["domain"], domain_a);
    assert_eq!(block.body["severity"], "suspend");
    assert_eq!(block.body["private_comment"], "reports 1-9");
    assert_eq!(block.body["digest"].as_str().unwrap().len(), 64);
    let again = post(
        &b,
        "/api/v1/admin/domain_blocks",
        &root,
        json!({ "domain": domain_a, "severity": "silence" }),
    )
    .await;
    assert_eq!(again.status, 422, "{:?}", again.body);
    assert_eq!(again.body["existing_domain_block"]["id"], block_id.as_str());
    let home = get(&b, "/api/v1/timelines/home", &bob).await;
    assert_eq!(home.body, json!([]), "a suspended domain's posts are gone");
    let post_gone = get(&b, &format!("/api/v1/statuses/{remote_post}"), &bob).await;
    assert_eq!(post_gone.status, 404, "{:?}", post_gone.body);
    let admin_view = get(&b, &format!("/api/v1/admin/accounts/{remote_alice}"), &root).await;
    assert_eq!(admin_view.body["suspended"], true);
    let search = get(
        &b,
        &format!("/api/v2/search?q=@alice@{domain_a}&resolve=true&type=accounts"),
        &carol,
    )
    .await;
    assert_eq!(search.body["accounts"], json!([]), "{:?}", search.body);

    // Nothing crosses in either direction: b refuses a's deliveries (403 at its inbox) and
    // skips a's inboxes.
    let refused_before = counter(&b, "stampede_inbox_activities", &["blocked"]).await;
    post_status(&a, &alice, json!({ "status": "during the block" })).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while counter(&b, "stampede_inbox_activities", &["blocked"]).await <= refused_before {
        assert!(
            std::time::Instant::now() < deadline,
            "b never refused a's delivery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statuses s JOIN accounts a ON a.id = s.account_id \
         WHERE a.domain = $1",
    )
    .bind(&domain_a)
    .fetch_one(&b.ctx.db)
    .await
    .unwrap();
    assert_eq!(stored, 1, "only the post from before the block is stored");
    let skipped_before = counter(&b, "stampede_deliveries", &["skipped_blocked"]).await;
    post_status(&b, &bob, json!({ "status": "to my followers" })).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while counter(&b, "stampede_deliveries", &["skipped_blocked"]).await <= skipped_before {
        assert!(
            std::time::Instant::now() < deadline,
            "b never skipped a's inbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let home = get(&a, "/api/v1/timelines/home", &alice).await;
    assert!(
        !home.body.to_string().contains("to my followers"),
        "{:?}",
        home.body
    );

    // The public list: obfuscated when asked, the comment for signed-in people only.
    let obfuscate = put(
        &b,
        &format!("/api/v1/admin/domain_blocks/{block_id}"),
        &root,
        json!({ "obfuscate": true }),
    )
    .await;
    assert_eq!(obfuscate.status, 200, "{:?}", obfuscate.body);
    assert_eq!(obfuscate.body["severity"], "suspend", "unchanged");
    assert_eq!(obfuscate.body["obfuscate"], true);
    let listed = get(&b, "/api/v1/instance/domain_blocks", &carol).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["severity"], "suspend");
    assert_eq!(listed.body[0]["comment"], "spam");
    assert_eq!(listed.body[0]["digest"], block.body["digest"]);
    let shown = listed.body[0]["domain"].as_str().unwrap();
    assert!(
        shown.contains('*') && shown.len() == domain_a.len(),
        "{shown}"
    );
    let anonymous = b
        .client
        .get(b.url("/api/v1/instance/domain_blocks"))
        .send()
        .await
        .unwrap();
    let anonymous: Value = anonymous.json().await.unwrap();
    assert_eq!(anonymous[0]["comment"], Value::Null);

    // Silence instead: Alice is back for her follower, not in public places for others.
    let silence = put(
        &b,
        &format!("/api/v1/admin/domain_blocks/{block_id}"),
        &root,
        json!({ "severity": "silence" }),
    )
    .await;
    assert_eq!(silence.status, 200, "{:?}", silence.body);
    let home = get(&b, "/api/v1/timelines/home", &bob).await;
    assert_eq!(
        home.body.as_array().map(Vec::len),
        Some(2),
        "Bob's post and Alice's: {:?}",
        home.body
    );
    let public = get(&b, "/api/v1/timelines/public?remote=true", &carol).await;
    assert_eq!(public.body, json!([]), "{:?}", public.body);
    let public = get(&b, "/api/v1/timelines/public?remote=true", &bob).await;
    assert_eq!(public.body.as_array().map(Vec::len), Some(1));
    let admin_view = get(&b, &format!("/api/v1/admin/accounts/{remote_alice}"), &root).await;
    assert_eq!(admin_view.body["silenced"], true);
    assert_eq!(admin_view.body["suspended"], false);

    // Lifted: Alice is neither silenced nor suspended, and her new posts arrive again.
    let lifted = delete(
        &b,
        &format!("/api/v1/admin/domain_blocks/{block_id}"),
        &root,
    )
    .await;
    assert_eq!(lifted.status, 200);
    within_a_second().await;
    assert_eq!(lifted.body, json!({}));
    let admin_view = get(&b, &format!("/api/v1/admin/accounts/{remote_alice}"), &root).await;
    assert_eq!(admin_view.body["silenced"], false);
    let public = get(&b, "/api/v1/timelines/public?remote=true", &carol).await;
    assert_eq!(public.body.as_array().map(Vec::len), Some(1));
    post_status(&a, &alice, json!({ "status": "after the block" })).await;
    until(
        &b,
        &bob,
        "/api/v1/timelines/home",
        "the post arrives",
        |h| {
            h[0]["content"]
                .as_str()
                .is_some_and(|c| c.contains("after the block"))
        },
    )
    .await;
    let gone = get(
        &b,
        &format!("/api/v1/admin/domain_blocks/{block_id}"),
        &root,
    )
    .await;
    assert_eq!(gone.status, 404);

    // Every change is in the audit log.
    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, human_identifier FROM admin_action_logs \
         WHERE target_type = 'DomainBlock' ORDER BY id",
    )
    .fetch_all(&b.ctx.db)
    .await
    .unwrap();
    let actions: Vec<&str> = logged.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(actions, ["create", "update", "update", "destroy"]);
    assert!(logged.iter().all(|l| l.1 == domain_a));
    a.stop().await;
    b.stop().await;
}

async fn sign_up(
    app: &TestApp,
    token: &str,
    ip: &str,
    username: &str,
    email: &str,
) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .json(&json!({
            "username": username, "email": email, "password": "correct horse battery",
            "agreement": true, "date_of_birth": "1990-01-01",
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn approved(app: &TestApp, username: &str) -> bool {
    sqlx::query_scalar(
        "SELECT u.approved FROM users u JOIN accounts a ON a.id = u.account_id \
         WHERE a.username = $1",
    )
    .bind(username)
    .fetch_one(&app.ctx.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn email_canonical_and_ip_blocks_hold_at_sign_up_and_on_every_request() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let root = seed_user(&app, "root", false).await;
    make_admin(&app, &root).await;
    let moderator = seed_user(&app, "mod", false).await;
    make_admin(&app, &moderator).await;
    sqlx::query("UPDATE users SET role = 'moderator' WHERE account_id = $1")
        .bind(moderator.id.parse::<i64>().unwrap())
        .execute(&app.ctx.db)
        .await
        .unwrap();
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "write").await;

    // A moderator cannot act on an admin (whose suspension would also delete the account).
    let outranked = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", root.id),
        &moderator,
        json!({ "type": "suspend" }),
    )
    .await;
    assert_eq!(outranked.status, 403, "{:?}", outranked.body);

    // Blocks are an admin's: a moderator is refused.
    for path in [
        "/api/v1/admin/email_domain_blocks",
        "/api/v1/admin/canonical_email_blocks",
        "/api/v1/admin/ip_blocks",
        "/api/v1/admin/domain_allows",
    ] {
        assert_eq!(get(&app, path, &moderator).await.status, 403, "{path}");
    }

    // E-mail domain blocks: refused (subdomains too), or held for approval.
    let spam = post(
        &app,
        "/api/v1/admin/email_domain_blocks",
        &root,
        json!({ "domain": "Spam.Example" }),
    )
    .await;
    assert_eq!(spam.status, 200, "{:?}", spam.body);
    assert_eq!(spam.body["domain"], "spam.example");
    assert_eq!(spam.body["allow_with_approval"], false);
    let duplicate = post(
        &app,
        "/api/v1/admin/email_domain_blocks",
        &root,
        json!({ "domain": "spam.example" }),
    )
    .await;
    assert_eq!(duplicate.status, 422);
    let held = post(
        &app,
        "/api/v1/admin/email_domain_blocks",
        &root,
        json!({ "domain": "cheap.example", "allow_with_approval": true }),
    )
    .await;
    assert_eq!(held.status, 200, "{:?}", held.body);
    let (status, body) = sign_up(&app, &token, "10.1.0.1", "spammer", "a@mx.spam.example").await;
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body["details"]["email"][0]["error"], "ERR_BLOCKED");
    let (status, _) = sign_up(&app, &token, "10.1.0.2", "frugal", "a@cheap.example").await;
    assert_eq!(status, 200);
    assert!(!approved(&app, "frugal").await, "held for a moderator");
    let shown = get(
        &app,
        &format!(
            "/api/v1/admin/email_domain_blocks/{}",
            spam.body["id"].as_str().unwrap()
        ),
        &root,
    )
    .await;
    let history = shown.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 7);
    assert_eq!(history[0]["uses"], "1", "{history:?}");
    assert_eq!(history[0]["accounts"], "1");

    // Canonical e-mail blocks: dots and +tags do not get around them.
    let canonical = post(
        &app,
        "/api/v1/admin/canonical_email_blocks",
        &root,
        json!({ "email": "Trouble.Maker+1@mail.example" }),
    )
    .await;
    assert_eq!(canonical.status, 200, "{:?}", canonical.body);
    let hash = canonical.body["canonical_email_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    let tested = post(
        &app,
        "/api/v1/admin/canonical_email_blocks/test",
        &root,
        json!({ "email": "troublemaker@mail.example" }),
    )
    .await;
    assert_eq!(tested.body.as_array().map(Vec::len), Some(1));
    let missing = post(
        &app,
        "/api/v1/admin/canonical_email_blocks/test",
        &root,
        json!({}),
    )
    .await;
    assert_eq!(missing.status, 400);
    let (status, body) = sign_up(
        &app,
        &token,
        "10.1.0.3",
        "again",
        "t.r.o.u.b.l.e.maker+new@MAIL.example",
    )
    .await;
    assert_eq!(status, 422, "{body:?}");
    let (status, _) = sign_up(&app, &token, "10.1.0.3", "someone", "someone@mail.example").await;
    assert_eq!(status, 200);

    // IP blocks: a range refused at sign-up, one held for approval, one refused everything.
    let mut ids = Vec::new();
    for (ip, severity) in [
        ("192.0.2.0/24", "sign_up_block"),
        ("198.51.100.7", "sign_up_requires_approval"),
        ("203.0.113.9", "no_access"),
    ] {
        let made = post(
            &app,
            "/api/v1/admin/ip_blocks",
            &root,
            json!({ "ip": ip, "severity": severity, "comment": "surge", "expires_in": 3600 }),
        )
        .await;
        assert_eq!(made.status, 200, "{:?}", made.body);
        assert_eq!(made.body["severity"], severity);
        assert!(made.body["expires_at"].is_string());
        ids.push(made.body["id"].as_str().unwrap().to_string());
    }
    let listed = get(&app, "/api/v1/admin/ip_blocks?limit=2", &root).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(2));
    assert!(listed.link.as_deref().unwrap().contains("rel=\"next\""));
    assert_eq!(listed.body[1]["ip"], "198.51.100.7/32");
    let bad = post(
        &app,
        "/api/v1/admin/ip_blocks",
        &root,
        json!({ "ip": "not an address", "severity": "no_access" }),
    )
    .await;
    assert_eq!(bad.status, 422);
    let (status, body) = sign_up(&app, &token, "192.0.2.77", "blocked", "b@ok.example").await;
    assert_eq!(status, 403, "{body:?}");
    assert_eq!(body["error"], "This action is not allowed");
    let (status, _) = sign_up(&app, &token, "198.51.100.7", "careful", "c@ok.example").await;
    assert_eq!(status, 200);
    assert!(!approved(&app, "careful").await);
    let shut_out = app
        .client
        .get(app.url("/api/v1/instance"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(shut_out.status(), 403);
    let neighbour = app
        .client
        .get(app.url("/api/v1/instance"))
        .header("x-forwarded-for", "203.0.113.10")
        .send()
        .await
        .unwrap();
    assert_eq!(neighbour.status(), 200);
    // Changed to approval only, then lifted.
    let changed = put(
        &app,
        &format!("/api/v1/admin/ip_blocks/{}", ids[0]),
        &root,
        json!({ "severity": "sign_up_requires_approval" }),
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["ip"], "192.0.2.0/24");
    let (status, _) = sign_up(&app, &token, "192.0.2.78", "patient", "p@ok.example").await;
    assert_eq!(status, 200);
    assert!(!approved(&app, "patient").await);
    for id in &ids {
        let gone = delete(&app, &format!("/api/v1/admin/ip_blocks/{id}"), &root).await;
        assert_eq!(gone.status, 200);
    }
    let (status, _) = sign_up(&app, &token, "192.0.2.79", "welcome", "w@ok.example").await;
    assert_eq!(status, 200);
    assert!(approved(&app, "welcome").await);

    // Domain allows: idempotent, listed, removed.
    let allow = post(
        &app,
        "/api/v1/admin/domain_allows",
        &root,
        json!({ "domain": "friends.example" }),
    )
    .await;
    assert_eq!(allow.status, 200, "{:?}", allow.body);
    let again = post(
        &app,
        "/api/v1/admin/domain_allows",
        &root,
        json!({ "domain": "friends.example" }),
    )
    .await;
    assert_eq!(again.body["id"], allow.body["id"]);
    let listed = get(&app, "/api/v1/admin/domain_allows", &root).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let removed = delete(
        &app,
        &format!(
            "/api/v1/admin/domain_allows/{}",
            allow.body["id"].as_str().unwrap()
        ),
        &root,
    )
    .await;
    assert_eq!(removed.status, 200);

    // The public list is off by default, as Mastodon's.
    let hidden = get(&app, "/api/v1/instance/domain_blocks", &root).await;
    assert_eq!(hidden.status, 404);
}
