//! `stampede`: one binary for every Stampede process.

mod admin;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stampede_config::Config;
use stampede_runtime::{Context, shutdown};
use stampede_telemetry::LogTarget;

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
    /// Serve the Mastodon REST API, OAuth and web pages on PORT (3000), and relay the outbox.
    Web,
    /// Serve the streaming API (WebSocket and server-sent events) on PORT (4000).
    Streaming,
    /// Run the delivery workers (fan-out, federation delivery, inbound activities, fetches,
    /// mail); health and metrics on PORT (4001).
    Delivery,
    /// Run the media workers; health and metrics on PORT (4002).
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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("stampede: configuration error: {error}");
            eprintln!("see docs/configuration.md for every variable and its default");
            return ExitCode::from(2);
        }
    };
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
        tracing::info!(
            command = command.process_name(),
            version = env!("CARGO_PKG_VERSION"),
            local_domain = %config.local_domain,
            queue = if config.amqp.is_some() { "rabbitmq" } else { "in-process" },
            cache = if config.redis.is_some() { "redis" } else { "in-process" },
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
            if !stampede_db::wait_until_reachable(&ctx.db, Some(8)).await {
                return Ok(ExitCode::FAILURE);
            }
            stampede_db::migrate(&ctx.db).await?;
            tracing::info!("migrations applied");
        }
        Command::Admin(admin) => return admin::run(admin, ctx).await,
    }
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

    if !config.database.skip_migrations {
        let db = ctx.db.clone();
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            // Readiness stays false (pending migrations) until this is done.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stampede_db::wait_until_reachable(&db, None) => {
                    match stampede_db::migrate(&db).await {
                        Ok(()) => tracing::info!("migrations applied"),
                        Err(error) => tracing::error!(%error, "migrations failed; not ready"),
                    }
                }
            }
        });
    }

    let (web, streaming, delivery, media) = tokio::join!(
        stampede_web::serve(ctx.clone(), web),
        stampede_streaming::serve(ctx.clone(), streaming),
        stampede_delivery::serve(ctx.clone(), None),
        stampede_media::serve(ctx.clone(), None),
    );
    web.and(streaming).and(delivery).and(media)
}
