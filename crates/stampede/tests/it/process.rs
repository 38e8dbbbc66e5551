//! The `stampede` binary as an operator runs it: separate processes, real signals.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stampede_test_support::{AppOptions, TestDb, test_env};

pub const BIN: &str = env!("CARGO_BIN_EXE_stampede");

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn command(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("BIND", "127.0.0.1");
    if std::env::var_os("TEST_LOG").is_none() {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    cmd
}

pub fn spawn(env: &[(String, String)], args: &[&str], port: u16) -> Proc {
    Proc(
        command(env, args)
            .env("PORT", port.to_string())
            .spawn()
            .unwrap(),
    )
}

/// Waits for `/health/ready` on `port` to answer `status`.
pub async fn wait_ready(port: u16, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
            && response.status() == status
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn migrate(env: &[(String, String)]) {
    let status = command(env, &["migrate"]).status().unwrap();
    assert!(status.success(), "stampede migrate failed");
}

fn run_capture(env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let mut child = command(env, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// Runs `stampede admin canary` for `count` canaries on the media queue with `env`, expecting
/// every one completed; returns its report.
pub fn media_canaries(env: &[(String, String)], count: u32) -> serde_json::Value {
    let count_arg = count.to_string();
    let (code, out, err) = run_capture(
        env,
        &[
            "admin",
            "canary",
            "--count",
            &count_arg,
            "--queue",
            "media",
            "--timeout",
            "30",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["completed"], count, "{report}");
    report
}

#[test]
fn help_names_every_command() {
    let (code, out, _) = run_capture(&[], &["--help"]);
    assert_eq!(code, 0);
    for command in [
        "web",
        "streaming",
        "delivery",
        "media",
        "all",
        "migrate",
        "admin",
    ] {
        assert!(out.contains(command), "{command} missing from:\n{out}");
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let (code, _, err) = run_capture(&[], &["web"]);
    assert_eq!(code, 2);
    assert!(err.contains("DATABASE_URL"), "{err}");

    let env = vec![
        (
            "DATABASE_URL".to_string(),
            "postgres://127.0.0.1/x".to_string(),
        ),
        ("PORT".to_string(), "eighty".to_string()),
    ];
    let (code, _, err) = run_capture(&env, &["web"]);
    assert_eq!(code, 2);
    assert!(err.contains("PORT"), "{err}");

    let env = vec![
        (
            "DATABASE_URL".to_string(),
            "postgres://127.0.0.1/x".to_string(),
        ),
        ("AMQP_URL".to_string(), "http://127.0.0.1".to_string()),
    ];
    let (code, _, err) = run_capture(&env, &["delivery"]);
    assert_eq!(code, 2);
    assert!(err.contains("AMQP_URL"), "{err}");

    // A CA bundle for a connection that is not TLS is a mistake, refused at start rather than
    // ignored (the link would go in clear while the operator believes it is verified).
    let env = vec![
        (
            "DATABASE_URL".to_string(),
            "postgres://127.0.0.1/x".to_string(),
        ),
        ("AMQP_URL".to_string(), "amqp://127.0.0.1".to_string()),
        (
            "AMQP_TLS_CA_FILE".to_string(),
            "/nonexistent/ca.pem".to_string(),
        ),
    ];
    let (code, _, err) = run_capture(&env, &["all"]);
    assert_eq!(code, 2);
    assert!(err.contains("AMQP_TLS_CA_FILE"), "{err}");
}

#[test]
fn separate_services_need_the_shared_queue_and_cache() {
    let env = vec![(
        "DATABASE_URL".to_string(),
        "postgres://127.0.0.1/x".to_string(),
    )];
    let (code, _, err) = run_capture(&env, &["web"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("AMQP_URL") && err.contains("stampede all"),
        "{err}"
    );
    let (code, _, err) = run_capture(&env, &["streaming"]);
    assert_eq!(code, 2);
    assert!(err.contains("REDIS_URL"), "{err}");
    let mut env = env;
    env.push(("AMQP_URL".to_string(), "amqp://127.0.0.1:1".to_string()));
    let (code, _, err) = run_capture(&env, &["delivery"]);
    assert_eq!(code, 2);
    assert!(err.contains("REDIS_URL"), "{err}");
}

#[tokio::test]
async fn all_runs_with_only_a_database_and_carries_canaries() {
    let db = TestDb::new().await.unwrap();
    // Only DATABASE_URL, ports and a media directory: no Redis, RabbitMQ or S3.
    let media = std::env::temp_dir().join(stampede_test_support::unique("media-"));
    let env = vec![
        ("DATABASE_URL".to_string(), db.url.clone()),
        (
            "PAPERCLIP_ROOT_PATH".to_string(),
            media.display().to_string(),
        ),
    ];
    let (web, streaming) = (free_port(), free_port());
    let mut env_all = env.clone();
    env_all.push(("STREAMING_PORT".into(), streaming.to_string()));
    let mut all = spawn(&env_all, &["all"], web);
    wait_ready(web, 200).await;
    wait_ready(streaming, 200).await;
    let health = reqwest::get(format!(
        "http://127.0.0.1:{streaming}/api/v1/streaming/health"
    ))
    .await
    .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    let health = reqwest::get(format!("http://127.0.0.1:{web}/health"))
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    let missing = reqwest::get(format!("http://127.0.0.1:{streaming}/nope"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({ "error": "Record not found" })
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{web}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("stampede_outbox_backlog"));

    // Work written by another process flows through all's in-process queue and workers.
    let report = media_canaries(&env, 5);
    assert_eq!(report["max_applied"], 1);

    all.signal("TERM");
    let status = all
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_dependency_down_at_start_means_not_ready_not_a_crash() {
    let db = TestDb::new().await.unwrap();
    let mut env = test_env(
        &db,
        &AppOptions {
            redis: true,
            ..AppOptions::default()
        },
    );
    migrate(&env).await;
    env.push((
        "AMQP_URL".into(),
        "amqp://guest:guest@127.0.0.1:1/%2f".into(),
    ));
    let port = free_port();
    let mut web = spawn(&env, &["web"], port);
    wait_ready(port, 503).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(web.0.try_wait().unwrap().is_none(), "web must keep running");
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(body["dependencies"]["rabbitmq"], "ok");
    assert_eq!(body["dependencies"]["postgres"], "ok");
    web.signal("TERM");
    assert!(web.wait_exit(Duration::from_secs(20)).is_some());
}

#[tokio::test]
async fn web_is_not_ready_until_migrated() {
    let db = TestDb::new().await.unwrap();
    // A bare database, not from the template.
    let bare = format!("{}_bare", db.name);
    let mut admin: sqlx::PgConnection =
        sqlx::Connection::connect(&stampede_test_support::admin_database_url())
            .await
            .unwrap();
    sqlx::Executor::execute(&mut admin, format!(r#"CREATE DATABASE "{bare}""#).as_str())
        .await
        .unwrap();
    let url = db.url.replace(&db.name, &bare);
    let mut env = test_env(
        &db,
        &AppOptions {
            amqp: true,
            redis: true,
            ..AppOptions::default()
        },
    );
    env.retain(|(k, _)| k != "DATABASE_URL");
    env.push(("DATABASE_URL".to_string(), url));
    let port = free_port();
    let _web = spawn(&env, &["web"], port);
    wait_ready(port, 503).await;
    migrate(&env).await;
    wait_ready(port, 200).await;
}

/// A stand-in OpenTelemetry collector: counts the OTLP/HTTP trace exports it receives.
pub async fn collector() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    let protobuf = headers
                        .get("content-type")
                        .is_some_and(|v| v.to_str().unwrap_or("").contains("protobuf"));
                    if protobuf && !body.is_empty() {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, received)
}

// Multi-threaded: the collector must keep answering while this test blocks waiting for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_when_configured() {
    let db = TestDb::new().await.unwrap();
    let mut env = test_env(
        &db,
        &AppOptions {
            amqp: true,
            redis: true,
            ..AppOptions::default()
        },
    );
    migrate(&env).await;
    let (collector_port, received) = collector().await;
    env.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        format!("http://127.0.0.1:{collector_port}"),
    ));
    env.push(("RUST_LOG".into(), "info".into()));
    let port = free_port();
    let mut web = spawn(&env, &["web"], port);
    wait_ready(port, 200).await;
    for _ in 0..5 {
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/instance"))
            .await
            .unwrap();
    }
    // Spans are exported in batches; stopping flushes the last one.
    web.signal("TERM");
    assert!(web.wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        received.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the collector received no trace export"
    );
}
