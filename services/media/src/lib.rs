//! The media workers: make image and video variants, cache remote media, clean up. Stateless:
//! originals and variants live in object storage.

use std::net::SocketAddr;
use std::time::Duration;

use stampede_social::media::{self, MediaJob, MediaWorker};

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
    .handle(canary::NOOP_KIND, std::sync::Arc::new(canary::NoopHandler))
    .consume::<stampede_social::export::ExportJob, _>(std::sync::Arc::new({
        let render = stampede_social::render::Renderer::for_config(ctx.jobs.clone(), &ctx.config);
        stampede_social::export::Exporter {
            db: ctx.jobs.clone(),
            storage: ctx.storage.clone(),
            documents: stampede_social::activitypub::Documents::new(
                render.clone(),
                ctx.config.local_domain.clone(),
            ),
            render,
            local_domain: ctx.config.local_domain.clone(),
        }
    }))
    .consume::<MediaJob, _>(std::sync::Arc::new(MediaWorker {
        db: ctx.jobs.clone(),
        storage: ctx.storage.clone(),
        client: stampede_social::remote::client(&ctx.config)?,
        limits: media::limits(&ctx.config),
        metrics: ctx.metrics.clone(),
    }));
    let sweeper = tokio::spawn(sweep(ctx.clone()));
    let ops = listener.map(|listener| {
        let ctx = ctx.clone();
        tokio::spawn(async move { server::serve_ops(&ctx, listener).await })
    });
    worker
        .run(ctx.shutdown.clone(), ctx.config.shutdown_timeout)
        .await;
    sweeper.abort();
    if let Some(ops) = ops {
        ops.await??;
    }
    Ok(())
}

/// How often the cleanup runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Removes, every minute until shutdown: files nothing refers to any more, uploads never
/// attached, and (with MEDIA_CACHE_RETENTION_DAYS) old cached remote media. Each step takes
/// batches with SKIP LOCKED, so several media processes share the work.
async fn sweep(ctx: Context) {
    let media = ctx.config.media.clone();
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let retention = (media.cache_retention_days > 0).then_some(media.cache_retention_days);
        match media::cleanup(&ctx.jobs, &ctx.storage, media.unattached_hours, retention).await {
            Ok(removed) if removed.files_removed > 0 => {
                tracing::info!(?removed, "media cleanup");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "media cleanup failed; trying again in a minute"),
        }
    }
}

/// `stampede media`: binds `addr` for the ops endpoints, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, Some(listener)).await
}
