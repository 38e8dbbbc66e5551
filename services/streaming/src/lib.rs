//! The streaming service: Mastodon's streaming API (`/api/v1/streaming`, WebSocket and
//! server-sent events). Stateless: each process holds one Redis subscription and fans events out
//! to its own connections.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use stampede_runtime::{Context, Dependency, server};
use tokio::net::TcpListener;

/// The port `stampede streaming` listens on unless PORT (or, in `all`, STREAMING_PORT) says otherwise.
pub const DEFAULT_PORT: u16 = 4000;

/// The streaming routes.
pub fn router(_ctx: &Context) -> Router {
    // Mastodon's streaming server answers its health check with a plain "OK".
    Router::new().route("/api/v1/streaming/health", get(|| async { "OK" }))
}

/// Serves on `listener` until shutdown.
pub async fn serve(ctx: Context, listener: TcpListener) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Redis).await;
    server::serve(&ctx, listener, router(&ctx)).await
}

/// `stampede streaming`: binds `addr`, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, listener).await
}
