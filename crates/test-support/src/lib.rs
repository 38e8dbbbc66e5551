//! The integration-test harness.
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test, created from a template that is migrated
//!   once per set of migrations (`CREATE DATABASE … TEMPLATE …` takes milliseconds; migrating
//!   takes far longer).
//! - [`unique`] names for Redis namespaces and RabbitMQ queue prefixes, so tests run in parallel
//!   on shared servers. The test script recreates the RabbitMQ vhost and flushes the Redis
//!   database the tests use before each run.
//! - [`spawn_app`]: the real web service (and optionally the workers) on 127.0.0.1:0.
//! - [`spawn_s3`]: a real S3-protocol server (s3s-fs) on loopback.
//!
//! Logs stay quiet unless TEST_LOG is set.

mod s3;
mod smtp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;

use sqlx::{Connection, Executor, PgConnection};
use stampede_config::{Config, Env};
use stampede_runtime::Context;

pub use s3::{S3Server, spawn_s3};
pub use smtp::{ReceivedMail, SmtpServer};

/// The server tests create their databases on.
pub fn admin_database_url() -> String {
    std::env::var("STAMPEDE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The broker (and vhost) tests use.
pub fn amqp_url() -> String {
    std::env::var("STAMPEDE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The Redis database tests use.
pub fn redis_url() -> String {
    std::env::var("STAMPEDE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// A name no other test uses: `prefix` plus a random suffix.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Installs a log subscriber when TEST_LOG is set.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A database of one's own, migrated.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

fn run_id() -> String {
    let raw = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
    raw.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_lowercase()
}

fn database_url(name: &str) -> String {
    let admin = admin_database_url();
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin}/{name}"),
    }
}

impl TestDb {
    /// Creates a database from the migrated template (making the template first if needed).
    pub async fn new() -> anyhow::Result<Self> {
        let template = template_name();
        let mut admin = PgConnection::connect(&admin_database_url()).await?;
        // One process at a time builds the template and clears databases of earlier runs.
        admin.execute("SELECT pg_advisory_lock(7262)").await?;
        let result = async {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&template)
                    .fetch_one(&mut admin)
                    .await?;
            if !exists {
                build_template(&mut admin, &template).await?;
            }
            static CLEANED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
            if CLEANED.set(()).is_ok() {
                drop_stale(&mut admin).await?;
            }
            let name = format!("st_{}_{}", run_id(), unique(""));
            admin
                .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#).as_str())
                .await?;
            anyhow::Ok(name)
        }
        .await;
        let _ = admin.execute("SELECT pg_advisory_unlock(7262)").await;
        let name = result?;
        Ok(TestDb {
            url: database_url(&name),
            name,
        })
    }
}

fn template_name() -> String {
    // FNV-1a over the migrations' checksums: a new or edited migration makes a new template.
    let mut hash: u64 = 0xcbf29ce484222325;
    for migration in stampede_db::MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    format!("stampede_tmpl_{hash:016x}")
}

async fn build_template(admin: &mut PgConnection, template: &str) -> anyhow::Result<()> {
    let building = format!("{template}_building");
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#).as_str())
        .await?;
    admin
        .execute(format!(r#"CREATE DATABASE "{building}""#).as_str())
        .await?;
    {
        let mut conn = PgConnection::connect(&database_url(&building)).await?;
        stampede_db::MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
    }
    admin
        .execute(format!(r#"ALTER DATABASE "{building}" RENAME TO "{template}""#).as_str())
        .await?;
    Ok(())
}

/// Drops test databases and templates left by earlier runs.
async fn drop_stale(admin: &mut PgConnection) -> anyhow::Result<()> {
    let current = template_name();
    let mine = format!("st_{}_", run_id());
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'st\\_%' OR datname LIKE 'stampede\\_tmpl\\_%'",
    )
    .fetch_all(&mut *admin)
    .await?;
    for name in names {
        if name == current || name.starts_with(&mine) {
            continue;
        }
        let _ = admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
            .await;
    }
    Ok(())
}

/// Which backing services a spawned app uses.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Use RabbitMQ (a unique queue prefix) instead of the in-process queue.
    pub amqp: bool,
    /// Use Redis (a unique namespace) instead of the in-process cache.
    pub redis: bool,
    /// Also run the delivery and media workers in the same process.
    pub workers: bool,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Also run the streaming service, on its own port ([`TestApp::streaming`]) and on the web
    /// port.
    pub streaming: bool,
    /// Listen on this port instead of one the OS picks (for clients that must know the server's
    /// own URL in advance, through WEB_DOMAIN).
    pub port: Option<u16>,
    /// Federate on loopback: LOCAL_DOMAIN is `127.0.0.1:PORT` (the port the app listens on) and
    /// ALLOWED_PRIVATE_ADDRESSES opens the outbound guard to loopback.
    pub federating: bool,
}

/// A running Stampede on loopback.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub ctx: Context,
    pub db: TestDb,
    pub client: reqwest::Client,
    /// The environment the app was configured with (to start more processes like it).
    pub env: Vec<(String, String)>,
    /// The streaming service's address, when started.
    pub streaming: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// `http://127.0.0.1:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the app as SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        self.ctx.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// Another streaming process configured like `app` (its own connections and Redis
/// subscription), as a second replica behind a load balancer would be. Stops with `shutdown`.
pub async fn spawn_streaming(
    app: &TestApp,
) -> anyhow::Result<(SocketAddr, tokio_util::sync::CancellationToken)> {
    spawn_like(app, "stampede-test-streaming", stampede_streaming::serve).await
}

/// Another web process configured like `app` (same database, queue and cache), as a second
/// replica behind a load balancer would be. Stops with `shutdown`.
pub async fn spawn_web(
    app: &TestApp,
) -> anyhow::Result<(SocketAddr, tokio_util::sync::CancellationToken)> {
    spawn_like(app, "stampede-test-web", |ctx, listener| {
        stampede_web::serve_with(ctx, listener, Default::default())
    })
    .await
}

/// A process serving `serve` on a loopback port the OS picks, configured like `app`.
async fn spawn_like<F, Fut>(
    app: &TestApp,
    name: &str,
    serve: F,
) -> anyhow::Result<(SocketAddr, tokio_util::sync::CancellationToken)>
where
    F: FnOnce(Context, tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let config = Config::from_source(&Env::from_pairs(app.env.clone()))?;
    let ctx = Context::new(config, name)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(serve(ctx, listener));
    Ok((addr, shutdown))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.ctx.shutdown.cancel();
    }
}

/// The configuration of a test app on `db`.
pub fn test_env(db: &TestDb, options: &AppOptions) -> Vec<(String, String)> {
    let media_root: PathBuf = std::env::temp_dir().join(unique("stampede-media-"));
    let mut env = vec![
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("LOCAL_DOMAIN".to_string(), "stampede.test".to_string()),
        ("LOG_FORMAT".to_string(), "text".to_string()),
        ("SHUTDOWN_TIMEOUT".to_string(), "10".to_string()),
        ("DB_POOL".to_string(), "5".to_string()),
        ("DB_WORKER_POOL".to_string(), "3".to_string()),
        ("LOCAL_HTTPS".to_string(), "false".to_string()),
        // Tests sign up many accounts from 127.0.0.1; the rate-limit tests turn this back on.
        ("RATE_LIMITS".to_string(), "false".to_string()),
        ("TRUSTED_PROXY_IP".to_string(), "127.0.0.1".to_string()),
        ("REGISTRATIONS_MIN_AGE".to_string(), "0".to_string()),
        // A key costs ~100 ms of CPU: tests that federate get theirs on first use.
        ("KEY_POOL_SIZE".to_string(), "0".to_string()),
        (
            "PAPERCLIP_ROOT_PATH".to_string(),
            media_root.display().to_string(),
        ),
    ];
    if options.amqp {
        env.push(("AMQP_URL".into(), amqp_url()));
        env.push(("AMQP_QUEUE_PREFIX".into(), unique("t")));
        // Each test declares its own ~70 queues on the shared broker: classic ones are cheap;
        // quorum queues (the default) are tested on a cluster of their own (cluster.rs).
        env.push(("AMQP_QUEUE_TYPE".into(), "classic".into()));
    }
    if options.redis {
        env.push(("REDIS_URL".into(), redis_url()));
        env.push(("REDIS_NAMESPACE".into(), unique("t")));
    }
    // Later entries win, so a test's own settings override the defaults above.
    for (key, value) in &options.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

/// Starts the web service (and, with `options.workers`, the delivery and media workers) on a
/// fresh database, listening on 127.0.0.1 with a port the OS picks.
pub async fn spawn_app(options: AppOptions) -> anyhow::Result<TestApp> {
    init_logs();
    let db = TestDb::new().await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port.unwrap_or(0))).await?;
    let addr = listener.local_addr()?;
    let mut env = test_env(&db, &options);
    if options.federating {
        let own = [
            (
                "LOCAL_DOMAIN".to_string(),
                format!("127.0.0.1:{}", addr.port()),
            ),
            (
                "ALLOWED_PRIVATE_ADDRESSES".to_string(),
                "127.0.0.0/8,::1".to_string(),
            ),
        ];
        env.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
        env.extend(own);
    }
    // `{database}` in a value names this test's database (a replica's URL, say).
    for (_, value) in env.iter_mut() {
        *value = value.replace("{database}", &db.name);
    }
    let config = Config::from_source(&Env::from_pairs(env.clone()))?;
    let ctx = Context::new(config, "stampede-test")?;
    // With streaming, one hub serves its own port and the web port, as in `stampede all`.
    let hub = options
        .streaming
        .then(|| stampede_streaming::State::start(&ctx));
    let on_web = hub
        .clone()
        .map(stampede_streaming::router)
        .unwrap_or_default();
    let mut tasks = vec![tokio::spawn(stampede_web::serve_with(
        ctx.clone(),
        listener,
        on_web,
    ))];
    if options.workers {
        tasks.push(tokio::spawn(stampede_delivery::serve(ctx.clone(), None)));
        tasks.push(tokio::spawn(stampede_media::serve(ctx.clone(), None)));
    }
    let mut streaming = None;
    if let Some(hub) = hub {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        streaming = Some(listener.local_addr()?);
        tasks.push(tokio::spawn(stampede_streaming::serve_state(
            ctx.clone(),
            listener,
            hub,
        )));
    }
    Ok(TestApp {
        addr,
        ctx,
        db,
        client: reqwest::Client::new(),
        env,
        streaming,
        tasks,
    })
}
