//! Accounts, OAuth and sign-up, as a Mastodon client and a person in a browser use them.

use std::time::Duration;

use serde_json::{Value, json};
use stampede_test_support::{AppOptions, SmtpServer, TestApp, spawn_app};

use crate::mastodon::{
    Browser, app_token, get, hidden, password_token, post_form, post_json, register_app, sign_up,
};

async fn app_with_mail(extra_env: Vec<(&str, &str)>) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().unwrap();
    let mut env = smtp.env();
    env.extend(
        extra_env
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        env,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    (app, smtp)
}

fn pkce_pair() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = "a-very-long-random-verifier-string-of-43-chars-at-least-0123".to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::test]
async fn register_confirm_authorize_verify_and_update() {
    let (app, mut smtp) = app_with_mail(vec![]).await;

    // An app registers, gets an app token and signs a person up.
    let creds = register_app(&app, "read write follow").await;
    let token = app_token(&app, &creds, "read write").await;
    let response = sign_up(&app, &token, "alice", json!({})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let alice_token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");

    // Until the address is confirmed, the token cannot act.
    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some(&alice_token),
    )
    .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Your login is missing a confirmed e-mail address"
    );

    // The confirmation mail arrives over SMTP; its link confirms the address.
    let mail = smtp
        .next(Duration::from_secs(20))
        .await
        .expect("a confirmation mail");
    assert_eq!(mail.to, vec!["alice@mail.example".to_string()]);
    let link = mail
        .link("http://stampede.test/auth/confirmation")
        .expect("a confirmation link");
    let path = link.trim_start_matches("http://stampede.test");
    let mut browser = Browser::new(&app);
    let (status, page, _) = browser.get(path).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("has been confirmed"));

    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some(&alice_token),
    )
    .await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["acct"], "alice");
    assert_eq!(me["source"]["privacy"], "public");
    assert_eq!(me["url"], "http://stampede.test/@alice");
    let alice_id = me["id"].as_str().unwrap().to_string();

    // The authorization-code flow with PKCE, through the log-in and consent pages.
    let (verifier, challenge) = pkce_pair();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=read+write&state=xyz&code_challenge={challenge}&code_challenge_method=S256",
        creds.client_id, "http%3A%2F%2F127.0.0.1%2Fcallback"
    );
    let (status, _, location) = browser.get(&authorize).await;
    assert_eq!(status, 302);
    let to_sign_in = location.unwrap();
    assert!(
        to_sign_in.starts_with("/auth/sign_in?return_to="),
        "{to_sign_in}"
    );
    let (status, page, _) = browser.get(&to_sign_in).await;
    assert_eq!(status, 200);
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let return_to = hidden(&page, "return_to").unwrap();
    assert_eq!(return_to, authorize.as_str());

    let (status, _, _) = browser
        .post_form(
            "/auth/sign_in",
            &[
                ("authenticity_token", &csrf),
                ("email", "alice@mail.example"),
                ("password", "wrong password"),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(status, 401, "a wrong password is refused");
    let (status, _, location) = browser
        .post_form(
            "/auth/sign_in",
            &[
                ("authenticity_token", &csrf),
                ("email", "alice@mail.example"),
                ("password", "correct horse battery"),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some(authorize.as_str()));

    let (status, consent, _) = browser.get(&authorize).await;
    assert_eq!(status, 200, "{consent}");
    assert!(consent.contains("Test Client") && consent.contains("@alice"));
    let csrf = hidden(&consent, "authenticity_token").unwrap();
    let (status, _, location) = browser
        .post_form(
            "/oauth/authorize",
            &[
                ("authenticity_token", &csrf),
                ("client_id", &creds.client_id),
                ("redirect_uri", "http://127.0.0.1/callback"),
                ("scope", "read write"),
                ("state", "xyz"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(
        location.starts_with("http://127.0.0.1/callback?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz"));
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();

    let exchange = |verifier: String, code: String| {
        let creds = creds.clone();
        let app = &app;
        async move {
            post_form(
                app,
                "/oauth/token",
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &creds.client_id),
                    ("client_secret", &creds.client_secret),
                    ("redirect_uri", "http://127.0.0.1/callback"),
                    ("code", &code),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let wrong = exchange(
        "the-wrong-verifier-the-wrong-verifier-00000".into(),
        code.clone(),
    )
    .await;
    assert_eq!(wrong.status(), 400, "a wrong PKCE verifier is refused");
    // The failed exchange used the code up? No: it failed before commit, so the right one works.
    let response = exchange(verifier.clone(), code.clone()).await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["scope"], "read write");
    let browser_token = token["access_token"].as_str().unwrap().to_string();
    let again = exchange(verifier, code).await;
    assert_eq!(again.status(), 400, "a code is good for one exchange");
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // The profile is edited the way Mastodon clients send it (a form with Rails nesting).
    let response = app
        .client
        .patch(app.url("/api/v1/accounts/update_credentials"))
        .bearer_auth(&browser_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::mastodon::form(&[
            ("display_name", "Alice Liddell"),
            ("note", "Down the rabbit hole\n\n<b>curious</b>"),
            ("locked", "true"),
            ("fields_attributes[0][name]", "Home"),
            ("fields_attributes[0][value]", "Wonderland"),
            ("source[privacy]", "unlisted"),
            ("source[language]", "en"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["display_name"], "Alice Liddell");
    assert_eq!(me["locked"], true);
    assert_eq!(
        me["note"],
        "<p>Down the rabbit hole</p><p>&lt;b&gt;curious&lt;/b&gt;</p>"
    );
    assert_eq!(
        me["source"]["note"],
        "Down the rabbit hole\n\n<b>curious</b>"
    );
    assert_eq!(me["fields"][0]["name"], "Home");
    assert_eq!(me["source"]["privacy"], "unlisted");
    assert_eq!(me["source"]["language"], "en");

    // A status that names no visibility takes the account's default; one that names it keeps it.
    for (body, expected) in [
        (json!({"status": "by default"}), "unlisted"),
        (
            json!({"status": "said so", "visibility": "public"}),
            "public",
        ),
    ] {
        let response = post_json(&app, "/api/v1/statuses", Some(&browser_token), body).await;
        assert_eq!(response.status(), 200);
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["visibility"], expected);
    }

    // Anyone can look the account up.
    let public: Value = get(&app, &format!("/api/v1/accounts/{alice_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["display_name"], "Alice Liddell");
    assert!(
        public.get("source").is_none(),
        "the source is the owner's only"
    );
    let looked_up = get(
        &app,
        "/api/v1/accounts/lookup?acct=alice@stampede.test",
        None,
    )
    .await;
    assert_eq!(looked_up.status(), 200);
    assert_eq!(
        get(&app, "/api/v1/accounts/lookup?acct=nobody", None)
            .await
            .status(),
        404
    );

    // Revoking a token takes effect at once.
    let response = post_form(
        &app,
        "/oauth/revoke",
        None,
        &[
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("token", &browser_token),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some(&browser_token),
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "The access token was revoked");
}

#[tokio::test]
async fn invalid_sign_ups_get_mastodon_errors_and_create_nothing() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "write").await;
    assert_eq!(
        sign_up(&app, &token, "taken", json!({})).await.status(),
        200
    );

    let response = sign_up(
        &app,
        &token,
        "Taken",
        json!({ "email": "not-an-address", "password": "short", "agreement": false }),
    )
    .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["details"]["username"][0]["error"], "ERR_TAKEN",
        "{body}"
    );
    assert_eq!(body["details"]["email"][0]["error"], "ERR_INVALID");
    assert_eq!(body["details"]["password"][0]["error"], "ERR_TOO_SHORT");
    assert_eq!(body["details"]["agreement"][0]["error"], "ERR_ACCEPTED");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Validation failed: "),
        "{body}"
    );

    for (username, code) in [
        ("admin", "ERR_RESERVED"),
        ("bad name", "ERR_INVALID"),
        ("", "ERR_BLANK"),
    ] {
        let body: Value = sign_up(&app, &token, username, json!({ "email": "x@mail.example" }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["details"]["username"][0]["error"], code,
            "{username}: {body}"
        );
    }
    let body: Value = sign_up(
        &app,
        &token,
        "other",
        json!({ "email": "TAKEN@mail.example" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["details"]["email"][0]["error"], "ERR_TAKEN",
        "addresses are unique case-insensitively"
    );

    // Ten sign-ups race for one name: one wins, the rest get the same 422, nothing half-made.
    let racers = (0..10).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            sign_up(
                app,
                &token,
                "racer",
                json!({ "email": format!("racer{i}@mail.example") }),
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(racers).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 422),
        "{statuses:?}"
    );
    let db = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let (accounts, users): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM users)")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (accounts, users),
        (2, 2),
        "only 'taken' and one 'racer' exist"
    );
}

#[tokio::test]
async fn scopes_and_tokens_are_enforced() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let creds = register_app(&app, "read write").await;
    let read_only = app_token(&app, &creds, "read").await;

    let response = sign_up(&app, &read_only, "bob", json!({})).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "This action is outside the authorized scopes"
    );

    let response = get(&app, "/api/v1/accounts/verify_credentials", None).await;
    assert_eq!(response.status(), 401);
    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some("nonsense"),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some(&read_only),
    )
    .await;
    assert_eq!(response.status(), 422, "an app token has no user");

    // A scope the app never registered cannot be granted.
    let response = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", "admin:read"),
        ],
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    let response = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let verified = get(&app, "/api/v1/apps/verify_credentials", Some(&read_only)).await;
    assert_eq!(verified.status(), 200);
    let body: Value = verified.json().await.unwrap();
    assert_eq!(body["name"], "Test Client");
    assert!(body.get("client_secret").is_none());

    let metadata: Value = get(&app, "/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["token_endpoint"],
        "http://stampede.test/oauth/token"
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );

    // Bad app registrations get 422 with details.
    let response = post_form(
        &app,
        "/api/v1/apps",
        None,
        &[("client_name", ""), ("redirect_uris", "not a uri")],
    )
    .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"]["name"][0]["error"], "ERR_BLANK", "{body}");
    assert_eq!(
        body["details"]["redirect_uri"][0]["error"], "ERR_INVALID",
        "{body}"
    );
}

#[tokio::test]
async fn approval_mode_waits_for_a_moderator() {
    let (app, mut smtp) = app_with_mail(vec![("REGISTRATIONS_MODE", "approved")]).await;
    let state = stampede_web::AppState::new(app.ctx.clone());
    let creds = register_app(&app, "read write admin:read admin:write").await;
    let token = app_token(&app, &creds, "read write").await;

    let response = sign_up(&app, &token, "carol", json!({})).await;
    assert_eq!(response.status(), 422, "a reason is required");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"]["reason"][0]["error"], "ERR_BLANK");

    let body: Value = sign_up(&app, &token, "carol", json!({ "reason": "I like tea" }))
        .await
        .json()
        .await
        .unwrap();
    let carol_token = body["access_token"].as_str().unwrap().to_string();
    assert!(
        sign_up(&app, &token, "dave", json!({ "reason": "spam" }))
            .await
            .status()
            .is_success()
    );
    let mail = smtp.next(Duration::from_secs(20)).await.unwrap();
    let mail = if mail.to[0].starts_with("carol") {
        mail
    } else {
        smtp.next(Duration::from_secs(20)).await.unwrap()
    };
    let link = mail.link("http://stampede.test/auth/confirmation").unwrap();
    Browser::new(&app)
        .get(link.trim_start_matches("http://stampede.test"))
        .await;

    let response = get(
        &app,
        "/api/v1/accounts/verify_credentials",
        Some(&carol_token),
    )
    .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Your login is currently pending approval");

    // A moderator (made from the command line) reviews the queue.
    let output = crate::process::command(
        &app.env,
        &[
            "admin",
            "accounts",
            "create",
            "tea_mod",
            "--email",
            "mod@mail.example",
            "--role",
            "moderator",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .output()
    .unwrap();
    assert!(output.status.success());
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mod_token: Value = password_token(
        &app,
        &creds,
        "mod@mail.example",
        created["password"].as_str().unwrap(),
        "read admin:read admin:write",
    )
    .await
    .json()
    .await
    .unwrap();
    let mod_token = mod_token["access_token"].as_str().unwrap().to_string();

    // One per page: the next page keeps the filter.
    let first = get(
        &app,
        "/api/v1/admin/accounts?status=pending&limit=1",
        Some(&mod_token),
    )
    .await;
    let link = first.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("status=pending") && link.contains("max_id="),
        "{link}"
    );
    let pending: Value = get(
        &app,
        "/api/v1/admin/accounts?status=pending",
        Some(&mod_token),
    )
    .await
    .json()
    .await
    .unwrap();
    let usernames: Vec<&str> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(usernames, vec!["dave", "carol"]);
    let carol = &pending.as_array().unwrap()[1];
    assert_eq!(carol["invite_request"], "I like tea");
    assert_eq!(carol["confirmed"], true);
    assert_eq!(carol["approved"], false);
    let carol_id = carol["id"].as_str().unwrap();
    let dave_id = pending[0]["id"].as_str().unwrap();

    // Carol's own token cannot approve anyone, whatever its scopes.
    let response = post_form(
        &app,
        &format!("/api/v1/admin/accounts/{carol_id}/approve"),
        Some(&carol_token),
        &[],
    )
    .await;
    assert_eq!(response.status(), 403);

    let response = post_form(
        &app,
        &format!("/api/v1/admin/accounts/{carol_id}/approve"),
        Some(&mod_token),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["approved"], true);
    let again = post_form(
        &app,
        &format!("/api/v1/admin/accounts/{carol_id}/approve"),
        Some(&mod_token),
        &[],
    )
    .await;
    assert_eq!(again.status(), 403, "only pending accounts can be approved");
    assert_eq!(
        get(
            &app,
            "/api/v1/accounts/verify_credentials",
            Some(&carol_token)
        )
        .await
        .status(),
        200
    );
    let approved_mail = smtp.next(Duration::from_secs(20)).await.unwrap();
    assert!(
        approved_mail.raw.contains("approved"),
        "{}",
        approved_mail.raw
    );

    let response = post_form(
        &app,
        &format!("/api/v1/admin/accounts/{dave_id}/reject"),
        Some(&mod_token),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        get(
            &app,
            &format!("/api/v1/admin/accounts/{dave_id}"),
            Some(&mod_token)
        )
        .await
        .status(),
        404
    );
    // Rejection frees the name.
    assert!(
        sign_up(&app, &token, "dave", json!({ "reason": "second try" }))
            .await
            .status()
            .is_success()
    );

    drop(state);
}

#[tokio::test]
async fn a_sign_up_surge_gets_429_with_retry_after_never_5xx() {
    let app = spawn_app(AppOptions {
        env: vec![
            ("PASSWORD_HASH_THREADS".into(), "1".into()),
            ("SIGNUP_MAX_WAIT_MS".into(), "1".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "write").await;
    let surge = (0..24).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            let response = sign_up(app, &token, &format!("surge{i}"), json!({})).await;
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after)
        }
    });
    let results = futures_util::future::join_all(surge).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert!(ok >= 1, "{results:?}");
    assert!(
        !limited.is_empty(),
        "a surge beyond the bound is answered 429: {results:?}"
    );
    assert_eq!(
        ok + limited.len(),
        results.len(),
        "only 200 and 429: {results:?}"
    );
    assert!(
        limited
            .iter()
            .all(|(_, r)| r.as_deref().is_some_and(|r| r.parse::<u64>().unwrap() >= 1))
    );

    // Reads stay served meanwhile, and the refusals are counted.
    let metrics = get(&app, "/metrics", None).await.text().await.unwrap();
    let rejected = metrics
        .lines()
        .find(|l| l.starts_with("stampede_password_hash_rejected_total"))
        .unwrap();
    assert!(
        rejected.ends_with(&format!(" {}", limited.len())),
        "{rejected}"
    );
}

#[tokio::test]
async fn sign_ups_and_sign_ins_are_rate_limited_per_ip() {
    let app = spawn_app(AppOptions {
        redis: true,
        env: vec![("RATE_LIMITS".into(), "true".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "write").await;
    let from = |ip: &'static str, username: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.client
                .post(app.url("/api/v1/accounts"))
                .bearer_auth(&token)
                .header("x-forwarded-for", ip)
                .json(&json!({ "username": username, "email": format!("{username}@mail.example"), "password": "correct horse battery", "agreement": true }))
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..5 {
        assert_eq!(from("10.9.9.1", format!("ip1user{i}")).await.status(), 200);
    }
    let limited = from("10.9.9.1", "ip1user5".into()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1800");
    assert_eq!(
        from("10.9.9.2", "ip2user0".into()).await.status(),
        200,
        "other addresses are not limited"
    );
}

#[tokio::test]
async fn instance_endpoints_describe_the_server() {
    let app = spawn_app(AppOptions {
        env: vec![
            ("REGISTRATIONS_MIN_AGE".into(), "16".into()),
            ("SITE_TITLE".into(), "Stampede Test".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let output = crate::process::command(
        &app.env,
        &[
            "admin",
            "rules",
            "add",
            "Be kind",
            "--hint",
            "No harassment",
        ],
    )
    .output()
    .unwrap();
    assert!(output.status.success());

    let v2: Value = get(&app, "/api/v2/instance", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["domain"], "stampede.test");
    assert_eq!(v2["title"], "Stampede Test");
    assert!(
        v2["version"]
            .as_str()
            .unwrap()
            .starts_with("4.5.0 (compatible; Stampede ")
    );
    assert_eq!(v2["registrations"]["enabled"], true);
    assert_eq!(v2["registrations"]["approval_required"], false);
    assert_eq!(v2["registrations"]["min_age"], 16);
    assert_eq!(v2["configuration"]["statuses"]["max_characters"], 500);
    assert_eq!(
        v2["configuration"]["urls"]["streaming"],
        "ws://stampede.test"
    );
    assert_eq!(v2["rules"][0]["text"], "Be kind");

    let v1: Value = get(&app, "/api/v1/instance", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1["uri"], "stampede.test");
    assert_eq!(v1["registrations"], true);
    assert_eq!(v1["urls"]["streaming_api"], "ws://stampede.test");
    let rules: Value = get(&app, "/api/v1/instance/rules", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rules[0]["hint"], "No harassment");

    // Under the minimum age, sign-up is refused.
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "write").await;
    let young = (chrono::Utc::now() - chrono::Duration::days(365 * 10))
        .format("%Y-%m-%d")
        .to_string();
    let body: Value = sign_up(&app, &token, "kid", json!({ "date_of_birth": young }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["details"]["date_of_birth"][0]["error"], "ERR_BELOW_LIMIT",
        "{body}"
    );
    let body: Value = sign_up(&app, &token, "kid", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["details"]["date_of_birth"][0]["error"], "ERR_BLANK",
        "{body}"
    );
    let adult = (chrono::Utc::now() - chrono::Duration::days(365 * 30))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        sign_up(&app, &token, "grownup", json!({ "date_of_birth": adult }))
            .await
            .status(),
        200
    );
}

/// Logs `email` in through the pages and approves `creds`' app; returns the code.
async fn authorization_code(
    browser: &mut Browser,
    creds: &crate::mastodon::AppCreds,
    email: &str,
    password: &str,
) -> String {
    let (_, page, _) = browser.get("/auth/sign_in").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, _, _) = browser
        .post_form(
            "/auth/sign_in",
            &[
                ("authenticity_token", &csrf),
                ("email", email),
                ("password", password),
                ("return_to", "/"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, consent, _) = browser
        .get(&format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=read",
            creds.client_id
        ))
        .await;
    let csrf = hidden(&consent, "authenticity_token").unwrap();
    let (_, _, location) = browser
        .post_form(
            "/oauth/authorize",
            &[
                ("authenticity_token", &csrf),
                ("client_id", &creds.client_id),
                ("redirect_uri", "http://127.0.0.1/callback"),
                ("scope", "read"),
                ("decision", "approve"),
            ],
        )
        .await;
    location.unwrap().split("code=").nth(1).unwrap().to_string()
}

#[tokio::test]
async fn a_code_issued_without_pkce_needs_the_client_secret() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let output = crate::process::command(
        &app.env,
        &[
            "admin",
            "accounts",
            "create",
            "frank",
            "--email",
            "frank@mail.example",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .output()
    .unwrap();
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let password = created["password"].as_str().unwrap().to_string();
    let creds = register_app(&app, "read").await;
    let mut browser = Browser::new(&app);
    let code = authorization_code(&mut browser, &creds, "frank@mail.example", &password).await;

    let exchange = |extra: Vec<(&'static str, String)>, bearer: Option<&'static str>| {
        let app = &app;
        let mut pairs = vec![
            ("grant_type", "authorization_code".to_string()),
            ("client_id", creds.client_id.clone()),
            ("redirect_uri", "http://127.0.0.1/callback".to_string()),
            ("code", code.clone()),
        ];
        pairs.extend(extra);
        async move {
            let body = crate::mastodon::form(
                &pairs
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>(),
            );
            let mut request = app
                .client
                .post(app.url("/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(exchange(vec![], None).await, 401, "no secret, no PKCE");
    assert_eq!(
        exchange(vec![("client_secret", String::new())], None).await,
        401,
        "an empty secret is no secret"
    );
    assert_eq!(
        exchange(vec![], Some("anything")).await,
        401,
        "a bearer header is no client authentication"
    );
    assert_eq!(
        exchange(vec![("client_secret", creds.client_secret.clone())], None).await,
        200
    );
}

#[tokio::test]
async fn hostile_parameters_are_refused_not_fatal() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let deep = format!("a{}=1", "[".repeat(100_000));
    let response = app
        .client
        .post(app.url("/api/v1/apps"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let many: String = (0..5000).map(|i| format!("k{i}=v&")).collect();
    let response = app
        .client
        .post(app.url("/api/v1/apps"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(many)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    // Still serving.
    assert_eq!(get(&app, "/health/live", None).await.status(), 200);
    for bad in ["javascript:alert(1)", "data:text/html,hi"] {
        let response = post_form(
            &app,
            "/api/v1/apps",
            None,
            &[("client_name", "x"), ("redirect_uris", bad)],
        )
        .await;
        assert_eq!(response.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn invites_open_closed_registrations_and_blocked_domains_are_refused() {
    let app = spawn_app(AppOptions {
        env: vec![("REGISTRATIONS_MODE".into(), "none".into())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let creds = register_app(&app, "read write").await;
    let token = app_token(&app, &creds, "read write").await;

    let closed = sign_up(&app, &token, "gina", json!({})).await;
    assert_eq!(closed.status(), 403, "closed without an invite");

    let output =
        crate::process::command(&app.env, &["admin", "invites", "create", "--max-uses", "1"])
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
    assert!(output.status.success());
    let invite: Value = serde_json::from_slice(&output.stdout).unwrap();
    let code = invite["code"].as_str().unwrap().to_string();

    let body: Value = sign_up(&app, &token, "gina", json!({ "invite_code": "wrong" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["details"]["invite_code"][0]["error"], "ERR_INVALID",
        "{body}"
    );
    let response = sign_up(&app, &token, "gina", json!({ "invite_code": code })).await;
    assert_eq!(response.status(), 200);
    let body: Value = sign_up(&app, &token, "hank", json!({ "invite_code": code }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["details"]["invite_code"][0]["error"], "ERR_INVALID",
        "a one-use invite is spent: {body}"
    );

    // Blocked e-mail domains, and the domains below them.
    let status = crate::process::command(
        &app.env,
        &["admin", "email-domain-blocks", "add", "spam.example"],
    )
    .status()
    .unwrap();
    assert!(status.success());
    let output = crate::process::command(&app.env, &["admin", "invites", "create"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let open_invite: Value = serde_json::from_slice(&output.stdout).unwrap();
    for email in ["ivy@spam.example", "ivy@mx.spam.example"] {
        let body: Value = sign_up(
            &app,
            &token,
            "ivy",
            json!({ "email": email, "invite_code": open_invite["code"] }),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(
            body["details"]["email"][0]["error"], "ERR_BLOCKED",
            "{email}: {body}"
        );
    }
}

#[tokio::test]
async fn an_unconfirmed_user_gets_the_confirmation_mail_again_at_a_corrected_address() {
    let (app, mut smtp) = app_with_mail(vec![]).await;
    let creds = register_app(&app, "read write follow").await;
    let token = app_token(&app, &creds, "read write").await;
    let response = sign_up(&app, &token, "alice", json!({})).await;
    let body: Value = response.json().await.unwrap();
    let alice_token = body["access_token"].as_str().unwrap().to_string();
    let first = smtp.next(Duration::from_secs(20)).await.expect("a mail");
    assert_eq!(first.to, vec!["alice@mail.example".to_string()]);

    // A wrong address is refused with nothing changed; a good one gets a new mail and link.
    let resend = |body: Value| {
        app.client
            .post(app.url("/api/v1/emails/confirmations"))
            .bearer_auth(&alice_token)
            .json(&body)
            .send()
    };
    let wrong = resend(json!({ "email": "not an address" })).await.unwrap();
    assert_eq!(wrong.status(), 422);
    let ok = resend(json!({ "email": "alice@fixed.example" }))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let again = smtp
        .next(Duration::from_secs(20))
        .await
        .expect("a second mail");
    assert_eq!(again.to, vec!["alice@fixed.example".to_string()]);
    let link = again
        .link("http://stampede.test/auth/confirmation")
        .expect("a confirmation link");
    // The first link no longer confirms; the new one does.
    let old = first
        .link("http://stampede.test/auth/confirmation")
        .unwrap();
    let mut browser = Browser::new(&app);
    let (_, page, _) = browser
        .get(old.trim_start_matches("http://stampede.test"))
        .await;
    assert!(!page.contains("has been confirmed"), "{page}");
    let (status, page, _) = browser
        .get(link.trim_start_matches("http://stampede.test"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("has been confirmed"), "{page}");

    // Once confirmed, or from another app, the method is refused.
    let done = resend(json!({})).await.unwrap();
    assert_eq!(done.status(), 403);
    let body: Value = done.json().await.unwrap();
    assert_eq!(
        body["error"],
        "This method is only available while the e-mail is awaiting confirmation"
    );
    let other = app
        .client
        .post(app.url("/api/v1/emails/confirmations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 422, "an app token has no user");
    app.stop().await;
}
