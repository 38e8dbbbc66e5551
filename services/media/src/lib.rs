//! The media workers: make image and video variants, cache remote media, clean up. Stateless:
//! originals and variants live in object storage.

use std::net::SocketAddr;

use stampede_queue::{WorkQueue, Worker};
use stampede_runtime::canary::{self, CanaryHandler};
use stampede_runtime::{Context, Dependency, server};
use tokio::net::TcpListener;

/// The port `stampede media` serves `/health/*` and `/metrics` on unless PORT says otherwise.
pub const DEFAULT_PORT: u16 = 4002;

/// Runs the media worker (and, with `listener`, the ops endpoints) until shutdown.
pub async fn serve(ctx: Context, listener: Option<TcpListener>) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Amqp).await;
    ctx.require(Dependency::Storage).await;
    let prefetch = ctx.config.amqp.as_ref().map_or(8, |a| a.prefetch);
    // Media jobs are CPU-heavy: no more at once than there are cores.
    let concurrency =
        prefetch.min(std::thread::available_parallelism().map_or(2, |n| n.get() as u16));
    let worker = Worker::new(
        ctx.queue.clone(),
        WorkQueue::Media,
        concurrency,
        ctx.metrics.clone(),
    )
    .handle(canary::KIND, CanaryHandler::new(ctx.jobs.pool().clone()))
    .handle(canary::NOOP_KIND, std::sync::Arc::new(canary::NoopHandler));
    let ops = listener.map(|listener| {
        let ctx = ctx.clone();
        tokio::spawn(async move { server::serve_ops(&ctx, listener).await })
    });
    worker
        .run(ctx.shutdown.clone(), ctx.config.shutdown_timeout)
        .await;
    if let Some(ops) = ops {
        ops.await??;
    }
    Ok(())
}

/// `stampede media`: binds `addr` for the ops endpoints, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, Some(listener)).await
}
