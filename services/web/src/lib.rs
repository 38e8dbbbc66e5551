//! The web service: Mastodon's REST API, OAuth 2, the HTML pages and the ActivityPub endpoints.
//! Stateless: every replica serves any request. It also runs an outbox relay, since it writes
//! most outbox rows (relays coordinate through `SKIP LOCKED`).

use std::net::SocketAddr;

use axum::Router;
use stampede_queue::outbox::Relay;
use stampede_runtime::{Context, Dependency, server};
use tokio::net::TcpListener;

/// The port `stampede web` listens on unless PORT says otherwise.
pub const DEFAULT_PORT: u16 = 3000;

/// The application routes (without `/health/*` and `/metrics`, which every process serves, and
/// the JSON 404 every process answers unknown paths with).
pub fn router(_ctx: &Context) -> Router {
    Router::new()
}

/// Serves on `listener` and relays the outbox until shutdown.
pub async fn serve(ctx: Context, listener: TcpListener) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Redis).await;
    ctx.require(Dependency::Amqp).await;
    let relay = tokio::spawn(
        Relay::new(ctx.db.clone(), ctx.queue.clone(), ctx.metrics.clone())
            .run(ctx.shutdown.clone()),
    );
    let served = server::serve(&ctx, listener, router(&ctx)).await;
    ctx.shutdown.cancel();
    let _ = relay.await;
    served
}

/// `stampede web`: binds `addr`, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, listener).await
}
