//! The delivery workers: `distribute` (local fan-out), `backfill` (follow merges), `deliver` (signed POSTs to remote inboxes),
//! `ingress` (inbound activities), `remote_fanout` (fan-out of what `ingress` stored), `fetch` (remote actors and objects) and `mail`. Each queue has
//! its own consumer and concurrency, so a flood on one never starves another. The process also
//! relays the outbox, samples queue depths for `/metrics`, and prunes old deduplication records.

pub mod mail;

use std::net::SocketAddr;
use std::time::Duration;

use stampede_queue::outbox::Relay;
use stampede_queue::{WorkQueue, Worker, dedupe};
use stampede_runtime::canary::{self, CanaryHandler};
use stampede_runtime::workers::{self, Periodic};
use stampede_runtime::{Context, Dependency, server};
use stampede_social::delivery::Deliverer;
use stampede_social::distribute::Distributor;
use stampede_social::domains::DomainHealth;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The port `stampede delivery` serves `/health/*` and `/metrics` on unless PORT says otherwise.
pub const DEFAULT_PORT: u16 = 4001;

/// The queues this service consumes.
pub const QUEUES: [WorkQueue; 7] = [
    WorkQueue::Distribute,
    WorkQueue::Backfill,
    WorkQueue::Deliver,
    WorkQueue::Ingress,
    WorkQueue::RemoteFanout,
    WorkQueue::Fetch,
    WorkQueue::Mail,
];

/// How long a processed message id is remembered for deduplication.
const DEDUPE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Runs the workers (and, with `listener`, the ops endpoints) until shutdown.
pub async fn serve(ctx: Context, listener: Option<TcpListener>) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Redis).await;
    ctx.require(Dependency::Amqp).await;
    let prefetch = ctx.config.amqp.as_ref().map_or(32, |a| a.prefetch);
    let mailer = mail::MailHandler::new(ctx.leases.clone(), ctx.config.smtp.as_ref())?;
    // One renderer (and so one entity cache) for streaming events and push notifications.
    let render = stampede_social::render::Renderer::for_config(ctx.jobs.clone(), &ctx.config)
        .with_metrics(&ctx.metrics);
    let distributor = Distributor::new(
        ctx.jobs.clone(),
        ctx.cache.clone(),
        ctx.config.statuses.clone(),
        ctx.metrics.clone(),
        render.clone(),
        ctx.config.local_domain.clone(),
    );
    let resolver = stampede_social::remote::Resolver::from_config(ctx.jobs.clone(), &ctx.config)?;
    let federation = &ctx.config.federation;
    let health = DomainHealth::new(
        ctx.jobs.clone(),
        ctx.metrics.clone(),
        federation.delivery_host_concurrency,
        federation.breaker_cooldown,
    );
    let inbox = std::sync::Arc::new(
        stampede_social::inbox::Inbox::new(
            ctx.jobs.clone(),
            resolver.clone(),
            stampede_social::post::base_url(&ctx.config),
            ctx.metrics.clone(),
        )
        .with_health(health.clone()),
    );
    let deliverer = std::sync::Arc::new(Deliverer::new(
        ctx.jobs.clone(),
        resolver.client().clone(),
        stampede_social::post::base_url(&ctx.config),
        ctx.queue.clone(),
        health.clone(),
        ctx.metrics.clone(),
        resolver.policy().clone(),
    ));
    let pusher = std::sync::Arc::new(stampede_social::push::PushSender::new(
        ctx.jobs.clone(),
        resolver.client().clone(),
        stampede_social::push::PushKeys::from_config(&ctx.config),
        render,
        stampede_social::post::base_url(&ctx.config),
    ));
    let base = stampede_social::post::base_url(&ctx.config);
    let card_fetcher = std::sync::Arc::new(stampede_social::cards::CardFetcher::new(
        ctx.jobs.clone(),
        resolver.client().clone(),
        stampede_social::cards::own_host(&base).to_string(),
    ));
    let importer = std::sync::Arc::new(stampede_social::import::Importer {
        db: ctx.jobs.clone(),
        resolver: resolver.clone(),
        ids: std::sync::Arc::new(stampede_core::id::IdGenerator::new()),
        base: base.clone(),
        local_domain: ctx.config.local_domain.clone(),
    });
    let mut tasks = JoinSet::new();
    for queue in QUEUES {
        // Bulk work and work from outside each take at most half the workers' connections at
        // once, so local statuses' fan-out always finds one.
        let concurrency = match queue {
            WorkQueue::Backfill | WorkQueue::Ingress | WorkQueue::RemoteFanout => {
                prefetch.min((ctx.config.database.worker_pool_size / 2).max(1) as u16)
            }
            // A message waits for its inboxes at most a few seconds, most of it on the network.
            WorkQueue::Deliver => federation.delivery_concurrency,
            // New statuses are fanned out in batches (ADR 0033): each message is held until its
            // batch is written, so the prefetch must cover whole batches.
            WorkQueue::Distribute => prefetch.max(stampede_social::distribute::IN_FLIGHT),
            _ => prefetch,
        };
        let mut worker = Worker::new(ctx.queue.clone(), queue, concurrency, ctx.metrics.clone())
            .handle(canary::KIND, CanaryHandler::new(ctx.jobs.pool().clone()))
            .handle(canary::NOOP_KIND, std::sync::Arc::new(canary::NoopHandler));
        if queue == WorkQueue::Ingress {
            worker = worker.consume::<stampede_social::inbox::Ingress, _>(inbox.clone());
        }
        if queue == WorkQueue::Deliver {
            worker = worker
                .consume::<stampede_social::outbound::Deliver, _>(deliverer.clone())
                .consume::<stampede_social::push::Push, _>(pusher.clone());
        }
        if queue == WorkQueue::Fetch {
            worker = worker
                .consume::<stampede_social::cards::CardJob, _>(card_fetcher.clone())
                .consume::<stampede_social::import::ImportJob, _>(importer.clone());
        }
        if queue == WorkQueue::Mail {
            worker = worker.consume::<stampede_runtime::mail::MailJob, _>(mailer.clone());
        }
        // Both take both message types, so messages queued by an older version still find a
        // handler; follow merges are queued to `backfill`.
        if matches!(
            queue,
            WorkQueue::Distribute | WorkQueue::Backfill | WorkQueue::RemoteFanout
        ) {
            worker = distributor.register(worker);
        }
        tasks.spawn(workers::track(
            ctx.clone(),
            format!("delivery/queue:{}", queue.name()),
            worker.run(ctx.shutdown.clone(), ctx.config.shutdown_timeout),
        ));
    }
    tasks.spawn(workers::track(
        ctx.clone(),
        "delivery/outbox-relay",
        Relay::new(ctx.leases.clone(), ctx.queue.clone(), ctx.metrics.clone())
            .gathering(ctx.config.database.outbox_gather)
            .run(ctx.shutdown.clone()),
    ));
    tasks.spawn(workers::run(ctx.clone(), QueueDepths));
    tasks.spawn(workers::track(
        ctx.clone(),
        "delivery/domain-health",
        health.refresh(ctx.shutdown.clone()),
    ));
    // Account keys for federation, made while requests leave the connections idle.
    let requests = ctx.db.clone();
    tasks.spawn(workers::track(
        ctx.clone(),
        "delivery/key-pool",
        stampede_social::keys::refill(
            ctx.jobs.clone(),
            ctx.config.federation.key_pool_size,
            move || requests.busy(),
            ctx.shutdown.clone(),
        ),
    ));
    tasks.spawn(workers::run(ctx.clone(), Prune));
    tasks.spawn(workers::run(
        ctx.clone(),
        Clock {
            ids: stampede_core::id::IdGenerator::new(),
        },
    ));
    if let Some(listener) = listener {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            if let Err(error) = server::serve_ops(&ctx, listener).await {
                tracing::error!(error = %format!("{error:#}"), "ops endpoint failed");
                ctx.shutdown.cancel();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// `stampede delivery`: binds `addr` for the ops endpoints, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, Some(listener)).await
}

/// Work that comes due with time, every 5 s: scheduled statuses are posted, ended polls
/// announced and accounts past their deletion's grace period purged. Safe with several delivery
/// processes (rows are claimed with SKIP LOCKED).
struct Clock {
    ids: stampede_core::id::IdGenerator,
}

impl Periodic for Clock {
    fn name(&self) -> &'static str {
        "delivery/clock"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn round(&mut self, ctx: &Context) -> anyhow::Result<()> {
        // Each step runs every round, whatever the others did: a scheduled status that keeps
        // failing must not hold up polls or deletions.
        let mut failed = Vec::new();
        match stampede_social::post::publish_due(&ctx.jobs, &self.ids, &ctx.config).await {
            Ok(0) => {}
            Ok(published) => tracing::info!(published, "scheduled statuses posted"),
            Err(error) => failed.push(format!("posting scheduled statuses: {error}")),
        }
        if let Err(error) = stampede_social::post::notify_ended_polls(&ctx.jobs, &self.ids).await {
            failed.push(format!("announcing ended polls: {error}"));
        }
        // Accounts whose deletion's grace period is over.
        let base = stampede_social::post::base_url(&ctx.config);
        if let Err(error) = stampede_social::deletion::purge_due(&ctx.jobs, &base, 10).await {
            failed.push(format!("purging deleted accounts: {error}"));
        }
        anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}

/// Publishes each queue's depth as `stampede_queue_depth` every 10 s (what KEDA scales on).
struct QueueDepths;

impl Periodic for QueueDepths {
    fn name(&self) -> &'static str {
        "delivery/queue-depths"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn first_round_at_once(&self) -> bool {
        true
    }

    async fn round(&mut self, ctx: &Context) -> anyhow::Result<()> {
        let mut unknown = Vec::new();
        for queue in WorkQueue::ALL {
            let Some(depth) = ctx.queue.depth(queue).await else {
                unknown.push(queue.name());
                continue;
            };
            let labels = stampede_runtime::telemetry::Metrics::queue(queue.name());
            ctx.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(i64::from(depth));
            if depth == 0 {
                ctx.metrics.queue_oldest_age.get_or_create(&labels).set(0.0);
            }
        }
        anyhow::ensure!(unknown.is_empty(), "no depth for {}", unknown.join(", "));
        Ok(())
    }
}

/// Forgets old deduplication records, canaries, authorization codes, sessions, export archives,
/// notification group buckets and the heartbeats of processes gone for a day, once an hour.
/// Every step runs each round; the round fails naming the steps that did.
struct Prune;

/// What the pruner deletes with one statement each, and on which pool.
const PRUNE_STATEMENTS: [(&str, &str); 5] = [
    // Expired authorization codes and browser sessions serve no one.
    (
        "expired authorization codes",
        "DELETE FROM oauth_access_grants WHERE expires_at < now() - interval '1 day'",
    ),
    (
        "old browser sessions",
        "DELETE FROM web_sessions WHERE created_at < now() - interval '14 days'",
    ),
    // Export archives are kept a week; their files go to the storage garbage.
    (
        "old export archives",
        "WITH old AS (DELETE FROM backups WHERE created_at < now() - interval '7 days' \
                      RETURNING storage_key) \
         INSERT INTO storage_garbage (key) SELECT storage_key FROM old \
         WHERE storage_key IS NOT NULL ON CONFLICT DO NOTHING",
    ),
    // A notification group's hour bucket matters for 12 hours after its last use.
    (
        "notification group buckets",
        "DELETE FROM notification_group_buckets WHERE updated_at < now() - interval '1 day'",
    ),
    (
        "heartbeats of vanished processes",
        "DELETE FROM worker_heartbeats WHERE seen_at < now() - interval '1 day'",
    ),
];

impl Periodic for Prune {
    fn name(&self) -> &'static str {
        "delivery/prune"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn first_round_at_once(&self) -> bool {
        true
    }

    async fn round(&mut self, ctx: &Context) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        if let Err(error) = canary::prune(ctx.jobs.pool(), DEDUPE_RETENTION).await {
            failed.push(format!("old canaries: {error}"));
        }
        for (what, statement) in PRUNE_STATEMENTS {
            if let Err(error) = sqlx::query(statement).execute(&ctx.jobs).await {
                failed.push(format!("{what}: {error}"));
            }
        }
        match dedupe::prune(ctx.jobs.pool(), DEDUPE_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned processed-message records"),
            Err(error) => failed.push(format!("processed-message records: {error}")),
        }
        anyhow::ensure!(failed.is_empty(), "could not prune {}", failed.join("; "));
        Ok(())
    }
}
