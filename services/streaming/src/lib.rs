//! The streaming service: Mastodon's streaming API — one multiplexed WebSocket at
//! `/api/v1/streaming`, and server-sent events at `/api/v1/streaming/{user, public, hashtag, …}`.
//!
//! Stateless: each process holds one Redis subscription ([`stampede_cache::Cache::subscribe`])
//! and fans the events out in memory to its own clients through the [`hub`]. Any number of
//! processes run behind a load balancer; every one receives every event.

pub mod hub;
mod request;
mod sse;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures_util::StreamExt as _;
use stampede_runtime::workers::{self, Periodic};
use stampede_runtime::{Context, Dependency, server};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;

use crate::hub::Hub;

/// The port `stampede streaming` listens on unless PORT (or, in `all`, STREAMING_PORT) says otherwise.
pub const DEFAULT_PORT: u16 = 4000;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct State {
    pub ctx: Context,
    pub hub: Arc<Hub>,
}

impl State {
    /// A hub for `ctx`, fed by the process's pub/sub subscription until shutdown.
    pub fn start(ctx: &Context) -> State {
        let hub = Hub::new(
            ctx.db.clone(),
            ctx.metrics.clone(),
            ctx.config.streaming.client_buffer,
        );
        let mut events = ctx.cache.subscribe();
        let feeding = hub.clone();
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(workers::track(
            ctx.clone(),
            "streaming/subscription",
            async move {
                loop {
                    let received = tokio::select! {
                        received = events.recv() => received,
                        () = shutdown.cancelled() => {
                            // Clients reconnect elsewhere (WebSockets get 1001, going away).
                            feeding.kill_all();
                            break;
                        }
                    };
                    match received {
                        Ok(message) => feeding.dispatch(&message),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "streaming fell behind its subscription");
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
            },
        ));
        tokio::spawn(workers::run(
            ctx.clone(),
            TokenSweep {
                hub: hub.clone(),
                period: ctx.config.streaming.sweep_interval,
            },
        ));
        tokio::spawn(workers::run(ctx.clone(), Listening { hub: hub.clone() }));
        tokio::spawn(workers::run(
            ctx.clone(),
            Heartbeat {
                hub: hub.clone(),
                period: ctx.config.streaming.ping_interval,
                round: 0,
            },
        ));
        State {
            ctx: ctx.clone(),
            hub,
        }
    }
}

/// Revocations are announced over pub/sub; this sweep closes the streams of any this process
/// missed.
struct TokenSweep {
    hub: Arc<Hub>,
    period: Duration,
}

impl Periodic for TokenSweep {
    fn name(&self) -> &'static str {
        "streaming/token-sweep"
    }

    fn period(&self) -> Duration {
        self.period
    }

    async fn round(&mut self, _ctx: &Context) -> anyhow::Result<()> {
        let closed = self
            .hub
            .sweep()
            .await
            .map_err(|error| anyhow::anyhow!("cannot check streaming tokens: {error}"))?;
        if closed > 0 {
            tracing::info!(closed, "closed streams of revoked tokens");
        }
        Ok(())
    }
}

/// The accounts this process holds streams for stay marked as listening.
struct Listening {
    hub: Arc<Hub>,
}

impl Periodic for Listening {
    fn name(&self) -> &'static str {
        "streaming/listening"
    }

    fn period(&self) -> Duration {
        stampede_social::stream::LISTENING_REFRESH
    }

    async fn round(&mut self, ctx: &Context) -> anyhow::Result<()> {
        futures_util::stream::iter(self.hub.accounts())
            .for_each_concurrent(32, |account| {
                stampede_social::stream::mark_listening(&ctx.cache, account)
            })
            .await;
        Ok(())
    }
}

/// Every WebSocket client is pinged once a period, so that proxies keep idle connections
/// open: a slice of the clients at each of [`Heartbeat::SLICES`] rounds a period.
struct Heartbeat {
    hub: Arc<Hub>,
    period: Duration,
    round: u64,
}

impl Heartbeat {
    const SLICES: u64 = 10;
}

impl Periodic for Heartbeat {
    fn name(&self) -> &'static str {
        "streaming/heartbeat"
    }

    fn period(&self) -> Duration {
        self.period / Self::SLICES as u32
    }

    async fn round(&mut self, _ctx: &Context) -> anyhow::Result<()> {
        self.hub.ping(self.round % Self::SLICES, Self::SLICES);
        self.round += 1;
        Ok(())
    }
}

/// The streaming routes.
pub fn router(state: State) -> Router {
    // Mastodon's streaming server answers its health check with a plain "OK".
    Router::new()
        .route("/api/v1/streaming/health", get(|| async { "OK" }))
        .route("/api/v1/streaming", get(ws::connect))
        .route("/api/v1/streaming/{*stream}", get(sse::connect))
        .with_state(state)
}

/// Serves on `listener` until shutdown.
pub async fn serve(ctx: Context, listener: TcpListener) -> anyhow::Result<()> {
    let state = State::start(&ctx);
    serve_state(ctx, listener, state).await
}

/// [`serve`] with a hub already started (`stampede all` shares it with the web listener).
pub async fn serve_state(ctx: Context, listener: TcpListener, state: State) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Redis).await;
    server::serve(&ctx, listener, router(state)).await
}

/// `stampede streaming`: binds `addr`, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, listener).await
}
