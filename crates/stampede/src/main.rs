//! `stampede`: one binary for every Stampede process.

mod admin;
mod admin_accounts;
#[allow(unsafe_code)]
mod allocator;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stampede_config::Config;
use stampede_runtime::{Context, shutdown};
use stampede_telemetry::LogTarget;

/// glibc's allocator in `streaming` and `delivery`, mimalloc in every other command (chosen by
/// the first allocation; ADR 0035): in a home-timeline profile glibc's malloc and free took about
/// a fifth of the web process's time, while mimalloc raised the memory per WebSocket.
#[global_allocator]
static ALLOCATOR: allocator::ByMode = allocator::ByMode;

/// A Mastodon-compatible social server built to absorb migration surges.
///
/// Configuration comes from environment variables (see docs/configuration.md); only
/// DATABASE_URL is required.
#[derive(Debug, Parser)]
#[command(name = "stampede", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web service (the Mastodon REST API as it is built) on PORT (3000), and relay the
    /// outbox. Needs AMQP_URL and REDIS_URL.
    Web,
    /// Serve the streaming service on PORT (4000). Needs REDIS_URL.
    Streaming,
    /// Run the workers of the distribute, deliver, ingress, fetch and mail queues and relay the
    /// outbox; health and metrics on PORT (4001). Needs AMQP_URL and REDIS_URL.
    Delivery,
    /// Run the workers of the media queue; health and metrics on PORT (4002). Needs AMQP_URL.
    Media,
    /// Run everything in one process: web on PORT (3000), streaming on STREAMING_PORT (4000),
    /// all workers, and migrations at start. Needs only PostgreSQL.
    All,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Operator commands.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

impl Command {
    fn process_name(&self) -> &'static str {
        match self {
            Command::Web => "stampede-web",
            Command::Streaming => "stampede-streaming",
            Command::Delivery => "stampede-delivery",
            Command::Media => "stampede-media",
            Command::All => "stampede-all",
            Command::Migrate => "stampede-migrate",
            Command::Admin(_) => "stampede-admin",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Redis and the OTLP exporter build their TLS configurations from the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("stampede: configuration error: {error}");
            eprintln!("see docs/configuration.md for every variable and its default");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = check_separate_process(&cli.command, &config) {
        eprintln!("stampede: configuration error: {error}");
        return ExitCode::from(2);
    }
    let target = match cli.command {
        Command::Admin(_) | Command::Migrate => LogTarget::Stderr,
        _ => LogTarget::Stdout,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stampede: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry =
            match stampede_telemetry::init(&config.telemetry, cli.command.process_name(), target) {
                Ok(guard) => guard,
                Err(error) => {
                    eprintln!("stampede: {error:#}");
                    return ExitCode::from(2);
                }
            };
        match run(cli.command, config).await {
            Ok(code) => code,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "stampede stopped");
                eprintln!("stampede: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Separate processes share work through RabbitMQ and Redis; the in-process queue and cache only
/// connect services inside one `stampede all`. A lone `stampede web` with an in-process queue would
/// accept work no worker ever sees, so it is refused at start.
fn check_separate_process(
    command: &Command,
    config: &Config,
) -> Result<(), stampede_config::ConfigError> {
    let (needs_amqp, needs_redis) = match command {
        Command::Web | Command::Delivery => (true, true),
        Command::Streaming => (false, true),
        Command::Media => (true, false),
        _ => (false, false),
    };
    let name = command.process_name();
    if needs_amqp && config.amqp.is_none() {
        return Err(stampede_config::ConfigError::new(
            "AMQP_URL",
            format!(
                "is required for {name}: separate processes exchange work through RabbitMQ (only `stampede all` has an in-process queue)"
            ),
        ));
    }
    if needs_redis && config.redis.is_none() {
        return Err(stampede_config::ConfigError::new(
            "REDIS_URL",
            format!(
                "is required for {name}: separate processes share feeds and events through Redis (only `stampede all` has an in-process cache)"
            ),
        ));
    }
    Ok(())
}

fn addr(config: &Config, port: u16) -> SocketAddr {
    SocketAddr::new(config.bind, port)
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    let port = |default| config.port.unwrap_or(default);
    let ctx = Context::new(config.clone(), command.process_name())?;
    if matches!(
        command,
        Command::Web | Command::Streaming | Command::Delivery | Command::Media | Command::All
    ) {
        shutdown::on_signals(ctx.shutdown.clone(), config.shutdown_timeout);
        let (health, stopping) = (ctx.health.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            stopping.cancelled().await;
            health.set_draining();
        });
        tracing::info!(
            command = command.process_name(),
            version = env!("CARGO_PKG_VERSION"),
            local_domain = %config.local_domain,
            queue = if config.amqp.is_some() { "rabbitmq" } else { "in-process" },
            cache = if config.redis.is_some() { "redis" } else { "in-process" },
            allocator = allocator::name(),
            "starting"
        );
        let (health, metrics, stop) = (
            ctx.health.clone(),
            ctx.metrics.clone(),
            ctx.shutdown.clone(),
        );
        tokio::spawn(async move {
            // Let the service register its dependencies first.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            stampede_telemetry::health::watch(
                health,
                metrics,
                std::time::Duration::from_secs(5),
                async move { stop.cancelled().await },
            )
            .await;
        });
    }
    let services = ctx.clone();
    match command {
        Command::Web => {
            stampede_web::run(ctx, addr(&config, port(stampede_web::DEFAULT_PORT))).await?
        }
        Command::Streaming => {
            stampede_streaming::run(ctx, addr(&config, port(stampede_streaming::DEFAULT_PORT)))
                .await?
        }
        Command::Delivery => {
            stampede_delivery::run(ctx, addr(&config, port(stampede_delivery::DEFAULT_PORT)))
                .await?
        }
        Command::Media => {
            stampede_media::run(ctx, addr(&config, port(stampede_media::DEFAULT_PORT))).await?
        }
        Command::All => run_all(ctx, &config).await?,
        Command::Migrate => {
            if !stampede_db::wait_until_reachable(ctx.jobs.pool(), Some(8)).await {
                return Ok(ExitCode::FAILURE);
            }
            stampede_db::migrate(ctx.jobs.pool()).await?;
            tracing::info!("migrations applied");
        }
        Command::Admin(admin) => return admin::run(admin, ctx).await,
    }
    stampede_runtime::workers::flush(&services).await;
    Ok(ExitCode::SUCCESS)
}

/// Every service in one process, sharing one context (connections, metrics, health).
async fn run_all(ctx: Context, config: &Config) -> anyhow::Result<()> {
    let web = stampede_runtime::server::bind(addr(
        config,
        config.port.unwrap_or(stampede_web::DEFAULT_PORT),
    ))
    .await?;
    let streaming = stampede_runtime::server::bind(addr(config, config.streaming_port)).await?;

    // The workers' loops start once the schema is in place, so none of them queries a table that
    // does not exist yet; web serves meanwhile (readiness says what is pending).
    let (migrated, schema) = tokio::sync::watch::channel(config.database.skip_migrations);
    if !config.database.skip_migrations {
        let db = ctx.jobs.pool().clone();
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            // Readiness stays false (pending migrations) until this is done.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stampede_db::wait_until_reachable(&db, None) => {
                    match stampede_db::migrate(&db).await {
                        Ok(()) => {
                            tracing::info!("migrations applied");
                            let _ = migrated.send(true);
                        }
                        Err(error) => tracing::error!(%error, "migrations failed; not ready"),
                    }
                }
            }
        });
    }
    let schema_ready = || {
        let (mut schema, shutdown) = (schema.clone(), ctx.shutdown.clone());
        async move {
            tokio::select! {
                applied = schema.wait_for(|applied| *applied) => applied.is_ok(),
                () = shutdown.cancelled() => false,
            }
        }
    };

    // If one service fails, stop the others rather than run half a server.
    let stop_all = |result: anyhow::Result<()>| {
        if result.is_err() {
            ctx.shutdown.cancel();
        }
        result
    };
    // One hub serves the streaming API on both ports: STREAMING_PORT, and the web port (where
    // the default streaming_api URL, wss://WEB_DOMAIN, points).
    let hub = stampede_streaming::State::start(&ctx);
    let on_web = stampede_streaming::router(hub.clone());
    let (web, streaming, delivery, media) = tokio::join!(
        async { stop_all(stampede_web::serve_with(ctx.clone(), web, on_web).await) },
        async { stop_all(stampede_streaming::serve_state(ctx.clone(), streaming, hub).await) },
        async {
            if !schema_ready().await {
                return Ok(());
            }
            stop_all(stampede_delivery::serve(ctx.clone(), None).await)
        },
        async {
            if !schema_ready().await {
                return Ok(());
            }
            stop_all(stampede_media::serve(ctx.clone(), None).await)
        },
    );
    if let stampede_queue::Queue::Memory(queue) = &ctx.queue {
        return_to_outbox(&ctx, queue).await;
    }
    web.and(streaming).and(delivery).and(media)
}

/// Writes messages still in the in-process queue back to the outbox, so a clean stop of
/// `stampede all` loses none; the next start publishes them again.
async fn return_to_outbox(ctx: &Context, queue: &stampede_queue::memory::MemoryQueue) {
    let pending = queue.drain_all().await;
    if pending.is_empty() {
        return;
    }
    let count = pending.len();
    let saved = async {
        let mut tx = ctx.db.begin().await?;
        for (work_queue, envelope) in &pending {
            stampede_queue::outbox::enqueue(&mut tx, *work_queue, envelope).await?;
        }
        tx.commit().await
    }
    .await;
    match saved {
        Ok(()) => tracing::info!(count, "returned queued messages to the outbox"),
        Err(error) => {
            tracing::error!(count, %error, "could not return queued messages to the outbox; they are lost")
        }
    }
}
