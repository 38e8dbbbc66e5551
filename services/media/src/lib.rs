//! The media workers: make image and video variants, cache remote media, clean up. Stateless:
//! originals and variants live in object storage.

use std::net::SocketAddr;
use std::time::Duration;

use stampede_social::media::{self, MediaJob, MediaWorker};

use stampede_queue::{WorkQueue, Worker};
use stampede_runtime::canary::{self, CanaryHandler};
use stampede_runtime::workers::{self, Periodic};
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
    let sweeper = tokio::spawn(workers::run(ctx.clone(), Sweep));
    let ops = listener.map(|listener| {
        let ctx = ctx.clone();
        tokio::spawn(async move { server::serve_ops(&ctx, listener).await })
    });
    workers::track(
        ctx.clone(),
        "media/queue:media",
        worker.run(ctx.shutdown.clone(), ctx.config.shutdown_timeout),
    )
    .await;
    if ctx.shutdown.is_cancelled() {
        // The sweep ends at shutdown too, after its round.
        let _ = sweeper.await;
    } else {
        sweeper.abort();
    }
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
struct Sweep;

impl Periodic for Sweep {
    fn name(&self) -> &'static str {
        "media/sweep"
    }

    fn period(&self) -> Duration {
        SWEEP_EVERY
    }

    async fn round(&mut self, ctx: &Context) -> anyhow::Result<()> {
        let media = &ctx.config.media;
        let retention = (media.cache_retention_days > 0).then_some(media.cache_retention_days);
        let removed = media::cleanup(&ctx.jobs, &ctx.storage, media.unattached_hours, retention)
            .await
            .map_err(|error| anyhow::anyhow!("media cleanup: {error}"))?;
        if removed.files_removed > 0 {
            tracing::info!(?removed, "media cleanup");
        }
        Ok(())
    }
}

/// `stampede media`: binds `addr` for the ops endpoints, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, Some(listener)).await
}
