//! A real Mastodon client library (Mastodon.py) drives the account flow. deploy/local/test.sh
//! installs it in a virtual environment and points STAMPEDE_COMPAT_PYTHON at that interpreter.

use std::process::Command;
use std::time::Duration;

use stampede_test_support::{AppOptions, SmtpServer, spawn_app};

use crate::mastodon::Browser;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_flow.py"
);
const SOCIAL_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_social.py"
);
pub(crate) const MEDIA_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_media.py"
);
const STREAMING_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_streaming.py"
);

fn python() -> String {
    std::env::var("STAMPEDE_COMPAT_PYTHON").unwrap_or_else(|_| {
        panic!("STAMPEDE_COMPAT_PYTHON is not set: run the suite with deploy/local/test.sh, which installs Mastodon.py")
    })
}

fn run(args: &[&str]) -> String {
    run_script(SCRIPT, args)
}

pub(crate) fn run_script(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A traceback can be long; its end says what failed.
    let tail: String = stderr
        .chars()
        .rev()
        .take(4000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        output.status.success(),
        "Mastodon.py failed:\n{stdout}\n…{tail}"
    );
    stdout
}

#[tokio::test]
async fn mastodon_py_drives_the_account_flow() {
    let mut smtp = SmtpServer::start().unwrap();
    // The client discovers the OAuth endpoints from the server's metadata, which names the
    // server's own URL: make that the address it listens on.
    let port = crate::process::free_port();
    let mut env = smtp.env();
    env.push(("WEB_DOMAIN".into(), format!("127.0.0.1:{port}")));
    let app = spawn_app(AppOptions {
        workers: true,
        env,
        port: Some(port),
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", app.addr);

    let creds = tokio::task::spawn_blocking({
        let base = base.clone();
        move || run(&["signup", &base])
    })
    .await
    .unwrap();
    let creds = creds.lines().last().unwrap().to_string();

    let mail = smtp
        .next(Duration::from_secs(20))
        .await
        .expect("a confirmation mail");
    let link = mail.link(&format!("{base}/auth/confirmation")).unwrap();
    let (status, _, _) = Browser::new(&app).get(&link).await;
    assert_eq!(status, 200);

    let out = tokio::task::spawn_blocking(move || run(&["use", &base, &creds]))
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["ok"], true);
}

#[tokio::test]
async fn mastodon_py_drives_the_social_api() {
    let app = crate::social::full_app().await;
    let mut tokens = serde_json::Map::new();
    for (name, locked) in [
        ("alice", false),
        ("bob", true),
        ("carol", false),
        ("eve", false),
    ] {
        let user = crate::social::seed_user(&app, name, locked).await;
        tokens.insert(name.to_string(), user.token.into());
    }
    let base = format!("http://{}", app.addr);
    let tokens = serde_json::Value::Object(tokens).to_string();
    let out = tokio::task::spawn_blocking(move || run_script(SOCIAL_SCRIPT, &[&base, &tokens]))
        .await
        .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
}

#[tokio::test]
async fn mastodon_py_streams_events() {
    // Mastodon.py finds the streaming server through /api/v1/instance, which advertises
    // ws://WEB_DOMAIN: the web port serves the streaming API too, as in `stampede all`.
    let port = crate::process::free_port();
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        streaming: true,
        env: vec![("WEB_DOMAIN".into(), format!("127.0.0.1:{port}"))],
        port: Some(port),
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = crate::social::seed_user(&app, "alice", false).await;
    let bob = crate::social::seed_user(&app, "bob", false).await;
    let registered = crate::social::call(
        &app,
        reqwest::Method::POST,
        "/api/v1/apps",
        None,
        Some(serde_json::json!({"client_name": "py", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read write follow"})),
    )
    .await;
    assert_eq!(registered.status, 200, "{:?}", registered.body);
    let client_id = registered.body["client_id"].as_str().unwrap().to_string();
    // Alice's token belongs to the app, so that the app may revoke it.
    sqlx::query(
        "UPDATE oauth_access_tokens SET application_id = \
           (SELECT id FROM oauth_applications WHERE client_id = $1) WHERE account_id = $2",
    )
    .bind(&client_id)
    .bind(alice.id.parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let config = serde_json::json!({
        "alice": alice.token,
        "bob": bob.token,
        "client_id": client_id,
        "client_secret": registered.body["client_secret"],
    })
    .to_string();
    let base = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || run_script(STREAMING_SCRIPT, &[&base, &config]))
        .await
        .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
}

const SCHEMATHESIS_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/schemathesis_run.py"
);

/// schemathesis, with Mastodon's OpenAPI description, against every operation Stampede serves:
/// no 5xx, every answer's status documented and its body valid against the schema (with the
/// corrections to the description that the script lists and explains).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_only_valid_answers() {
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        env: vec![("RATE_LIMITS".to_string(), "false".to_string())],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = crate::social::seed_user(&app, "alice", false).await;
    let bob = crate::social::seed_user(&app, "bob", false).await;
    // A token issued to an application, as every real client's is.
    let creds = crate::mastodon::register_app(&app, "read write follow push").await;
    sqlx::query(
        "UPDATE oauth_access_tokens SET application_id = \
           (SELECT id FROM oauth_applications WHERE client_id = $1) \
         WHERE account_id = $2",
    )
    .bind(&creds.client_id)
    .bind(alice.id.parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    let base = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        run_script(
            SCHEMATHESIS_SCRIPT,
            &[
                "--base-url",
                &base,
                "--token",
                &alice.token,
                "--other-account-id",
                &bob.id,
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.contains(" 0 failed"), "{out}");
    app.stop().await;
}

const CLIENT_API_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_client_api.py"
);

/// Mastodon.py through grouped notifications, the notification policy and its requests, Web
/// Push (decrypted by Mastodon.py's own code), custom emojis and announcements made with the
/// operator's commands, domain blocks, reports, link previews, link trends and the link
/// timeline.
#[tokio::test]
async fn mastodon_py_drives_the_client_api_extras() {
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
    let mut tokens = serde_json::Map::new();
    for name in ["alice", "bob", "carol"] {
        let user = crate::social::seed_user(&app, name, false).await;
        tokens.insert(name.to_string(), user.token.into());
    }
    let emoji = std::env::temp_dir().join(stampede_test_support::unique("blobcat"));
    std::fs::write(&emoji, crate::media::png(32, 32)).unwrap();
    for args in [
        vec!["admin", "emoji", "add", "blobcat", emoji.to_str().unwrap()],
        vec!["admin", "announcements", "create", "Welcome, newcomers!"],
    ] {
        let status = crate::process::command(&app.env, &args).status().unwrap();
        assert!(status.success(), "{args:?}");
    }
    std::fs::remove_file(&emoji).ok();
    let base = format!("http://{}", app.addr);
    let tokens = serde_json::Value::Object(tokens).to_string();
    let out = tokio::task::spawn_blocking(move || run_script(CLIENT_API_SCRIPT, &[&base, &tokens]))
        .await
        .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
    app.stop().await;
}

/// masto.js (from npm, pinned in interop/masto) through grouped notifications, the policy and
/// requests, v2 filters, Web Push subscriptions, announcements, custom emojis, domain blocks,
/// reports, the profile, trends and the legal texts.
#[tokio::test]
async fn masto_js_drives_the_client_api() {
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let mut tokens = serde_json::Map::new();
    for name in ["alice", "bob", "carol"] {
        let user = crate::social::seed_user(&app, name, false).await;
        tokens.insert(name.to_string(), user.token.into());
    }
    let status = crate::process::command(
        &app.env,
        &["admin", "announcements", "create", "Welcome, newcomers!"],
    )
    .status()
    .unwrap();
    assert!(status.success());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../interop/masto/client_api.mjs"
    );
    let base = format!("http://{}", app.addr);
    let tokens = serde_json::Value::Object(tokens).to_string();
    let output = tokio::process::Command::new("node")
        .env("MASTO_LOG", "debug")
        .arg(script)
        .arg(&base)
        .arg(&tokens)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("{\"ok\":true}"),
        "masto.js failed:\n{stdout}\n{stderr}"
    );
    app.stop().await;
}

const ADMIN_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/compat/mastodon_py_admin.py"
);

/// Mastodon.py as an admin client: accounts filtered, a report worked to a silence, suspension
/// and its lifting (each seen from another person's side), domain blocks and allows, e-mail,
/// canonical e-mail and IP blocks, the dashboard's measures, dimensions and retention, and the
/// deletion of a suspended account.
#[tokio::test]
async fn mastodon_py_drives_the_admin_api() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let mut tokens = serde_json::Map::new();
    for name in ["root", "bob", "carol"] {
        let user = crate::social::seed_user(&app, name, false).await;
        if name == "root" {
            crate::moderation::make_admin(&app, &user).await;
        }
        tokens.insert(name.to_string(), user.token.into());
    }
    let base = format!("http://{}", app.addr);
    let tokens = serde_json::Value::Object(tokens).to_string();
    let out = tokio::task::spawn_blocking(move || run_script(ADMIN_SCRIPT, &[&base, &tokens]))
        .await
        .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
    app.stop().await;
}
