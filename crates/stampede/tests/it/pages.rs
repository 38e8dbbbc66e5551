//! The HTML pages, as a person in a browser uses them.

use std::time::Duration;

use serde_json::Value;
use stampede_test_support::{AppOptions, SmtpServer, spawn_app};

use crate::mastodon::{Browser, hidden, password_token, register_app};

#[tokio::test]
async fn sign_up_confirm_and_reset_the_password_in_a_browser() {
    let mut smtp = SmtpServer::start().unwrap();
    let app = spawn_app(AppOptions {
        workers: true,
        env: smtp.env(),
        ..AppOptions::default()
    })
    .await
    .unwrap();
    crate::process::command(&app.env, &["admin", "rules", "add", "No spam"])
        .status()
        .unwrap();
    let mut browser = Browser::new(&app);

    let (status, page, _) = browser.get("/auth/sign_up").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<label for=\"username\">"),
        "every field has a label"
    );
    assert!(page.contains("No spam"), "the rules are shown");
    let csrf = hidden(&page, "authenticity_token").unwrap();
    assert!(browser.cookies.contains_key("_stampede_csrf"));

    // A forged form (no token) is refused and creates nothing.
    let mut forger = Browser::new(&app);
    let (status, _, _) = forger
        .post_form(
            "/auth/sign_up",
            &[
                ("username", "mallory"),
                ("email", "m@mail.example"),
                ("password", "correct horse battery"),
                ("password_confirmation", "correct horse battery"),
                ("agreement", "1"),
            ],
        )
        .await;
    assert_eq!(status, 422);

    // Mistakes come back on the page, with the person's input kept.
    let (status, page, _) = browser
        .post_form(
            "/auth/sign_up",
            &[
                ("authenticity_token", &csrf),
                ("username", "erin"),
                ("email", "erin@mail.example"),
                ("password", "correct horse battery"),
                ("password_confirmation", "different"),
                ("agreement", "1"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("role=\"alert\"") && page.contains("doesn"),
        "{page}"
    );
    assert!(page.contains("value=\"erin@mail.example\""));

    let (status, page, _) = browser
        .post_form(
            "/auth/sign_up",
            &[
                ("authenticity_token", &csrf),
                ("username", "erin"),
                ("email", "erin@mail.example"),
                ("password", "correct horse battery"),
                ("password_confirmation", "correct horse battery"),
                ("agreement", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Check your inbox"));

    let mail = smtp.next(Duration::from_secs(20)).await.unwrap();
    let link = mail.link("http://stampede.test/auth/confirmation").unwrap();
    let (status, _, _) = browser
        .get(link.trim_start_matches("http://stampede.test"))
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = browser
        .get(link.trim_start_matches("http://stampede.test"))
        .await;
    assert_eq!(status, 404, "a confirmation link works once");

    // Forgotten password: the mail's link leads to a form that sets a new one.
    let (_, page, _) = browser.get("/auth/password/new").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, page, _) = browser
        .post_form(
            "/auth/password",
            &[
                ("authenticity_token", &csrf),
                ("email", "erin@mail.example"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let (status, same, _) = browser
        .post_form(
            "/auth/password",
            &[
                ("authenticity_token", &csrf),
                ("email", "nobody@mail.example"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page, same, "the answer does not reveal who has an account");
    let mail = smtp.next(Duration::from_secs(20)).await.unwrap();
    assert_eq!(mail.to, vec!["erin@mail.example".to_string()]);
    let link = mail
        .link("http://stampede.test/auth/password/edit")
        .unwrap();
    let (status, page, _) = browser
        .get(link.trim_start_matches("http://stampede.test"))
        .await;
    assert_eq!(status, 200, "{page}");
    let token = hidden(&page, "reset_password_token").unwrap();
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, page, _) = browser
        .post_form(
            "/auth/password/edit",
            &[
                ("authenticity_token", &csrf),
                ("reset_password_token", &token),
                ("password", "a brand new secret"),
                ("password_confirmation", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your password has been changed"));

    let creds = register_app(&app, "read").await;
    let old = password_token(
        &app,
        &creds,
        "erin@mail.example",
        "correct horse battery",
        "read",
    )
    .await;
    assert_eq!(old.status(), 400);
    let new = password_token(
        &app,
        &creds,
        "erin@mail.example",
        "a brand new secret",
        "read",
    )
    .await;
    assert_eq!(new.status(), 200);
    let token: Value = new.json().await.unwrap();
    let me = crate::mastodon::get(
        &app,
        "/api/v1/accounts/verify_credentials",
        token["access_token"].as_str(),
    )
    .await;
    assert_eq!(me.status(), 200);

    // Log in, see who you are, log out.
    let (_, page, _) = browser.get("/auth/sign_in").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, _, location) = browser
        .post_form(
            "/auth/sign_in",
            &[
                ("authenticity_token", &csrf),
                ("email", "erin@mail.example"),
                ("password", "a brand new secret"),
                ("return_to", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/"), "never redirected off-site");
    let (_, home, _) = browser.get("/").await;
    assert!(home.contains("logged in as @erin"), "{home}");
    let csrf = hidden(&home, "authenticity_token").unwrap();
    let (status, _, _) = browser
        .post_form("/auth/sign_out", &[("authenticity_token", &csrf)])
        .await;
    assert_eq!(status, 303);
    let (_, home, _) = browser.get("/").await;
    assert!(!home.contains("logged in"));
}
