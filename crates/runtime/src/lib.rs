//! The context every Stampede service runs in.
//!
//! A [`Context`] holds the process's handles to PostgreSQL, the queue, the cache and storage,
//! its metrics and health checks, and the shutdown signal. Every handle connects lazily and
//! reconnects by itself, so a process started while a dependency is down keeps running, logs
//! what it is waiting for, and answers `/health/ready` with 503 until it can serve.
//! In `stampede all` the services share one context.

pub mod canary;
pub mod mail;
pub mod server;
pub mod shutdown;
pub mod workers;

use std::sync::Arc;

use futures_util::FutureExt;
use sqlx::PgPool;
use stampede_cache::Cache;
use stampede_config::Config;
use stampede_db::Db;
use stampede_queue::Queue;
use stampede_storage::Storage;
use stampede_telemetry::{Health, Metrics};
use tokio_util::sync::CancellationToken;

pub use stampede_config as config;
pub use stampede_telemetry as telemetry;

/// A backing service a process needs to be ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    /// Only checked when REDIS_URL is set; the in-process cache is always ready.
    Redis,
    /// Only checked when AMQP_URL is set; the in-process queue is always ready.
    Amqp,
    Storage,
}

/// Shared handles of one process.
#[derive(Clone, Debug)]
pub struct Context {
    pub config: Arc<Config>,
    /// Connections for serving requests (DB_POOL).
    pub db: Db,
    /// Where reads that tolerate lag go: the read replica (REPLICA_DB_URL) while it keeps up,
    /// else `db`.
    pub reads: stampede_db::Reads,
    /// Connections for queue consumers and background loops (DB_WORKER_POOL), so that a backlog
    /// of jobs can never starve requests, nor a burst of requests stall fan-out.
    pub jobs: Db,
    /// One connection for readiness: a busy pool is not a database that is down.
    pub probe: PgPool,
    /// A few connections beside `db`, reused without a ping: for the hot paths (token lookups,
    /// `verify_credentials`, sign-up, the outbox relay, the mail worker). See
    /// [`stampede_db::lease`].
    pub leases: stampede_db::Leases,
    pub queue: Queue,
    pub cache: Cache,
    pub storage: Storage,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// Cancelled on SIGTERM/SIGINT: stop taking work and finish what is running.
    pub shutdown: CancellationToken,
    /// The process's role (`stampede-web`, `stampede-all` …), as connections and heartbeats name it.
    pub process: Arc<str>,
}

impl Context {
    /// Builds the handles; nothing connects yet. `process` names connections (`stampede-web`).
    pub fn new(config: Config, process: &str) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let (db, jobs) = stampede_db::pools(&config.database, process, &metrics)?;
        let probe = stampede_db::probe(&config.database, process)?;
        let reads = match &config.database.replica_url {
            Some(url) => stampede_db::Reads::with_replica(
                db.clone(),
                &stampede_config::DatabaseConfig {
                    url: url.clone(),
                    ..config.database.clone()
                },
                process,
                stampede_db::Admission {
                    max_waiters: config.database.pool_queue,
                    max_wait: config.database.pool_max_wait,
                },
                config.database.replica_max_lag,
                &metrics,
            )?,
            None => stampede_db::Reads::primary_only(db.clone(), &metrics),
        };
        let queue = match &config.amqp {
            Some(amqp) => Queue::Amqp(stampede_queue::amqp::AmqpQueue::cluster(
                &amqp.urls,
                &amqp.queue_prefix,
                process,
                amqp.tls_ca.as_deref(),
                amqp.queue_type == stampede_config::QueueType::Quorum,
            )),
            None => Queue::Memory(stampede_queue::memory::MemoryQueue::new()),
        };
        let cache = match &config.redis {
            Some(redis) if !redis.sentinels.is_empty() => {
                Cache::Redis(stampede_cache::redis_backend::RedisCache::with_sentinels(
                    &redis.url,
                    &redis.sentinels,
                    &redis.sentinel_master,
                    &redis.namespace,
                )?)
            }
            Some(redis) => Cache::Redis(stampede_cache::redis_backend::RedisCache::with_tls_ca(
                &redis.url,
                &redis.namespace,
                redis.tls_ca.as_deref(),
            )?),
            None => Cache::Memory(stampede_cache::memory::MemoryCache::new()),
        };
        Ok(Context {
            storage: Storage::from_config(&config.storage),
            config: Arc::new(config),
            leases: stampede_db::Leases::new(db.clone()),
            reads,
            db,
            jobs,
            probe,
            queue,
            cache,
            metrics,
            health: Health::default(),
            shutdown: CancellationToken::new(),
            process: Arc::from(process),
        })
    }

    /// Adds `dependency` to this process's readiness checks.
    /// Claims this process's id node number from PostgreSQL (the `id_nodes` sequence, which
    /// cycles through 1,024), once per process, retrying until the database answers and is
    /// migrated. Until then ids use a random node; nothing is written before the database
    /// answers anyway.
    fn claim_id_node(&self) {
        static CLAIMED: std::sync::Once = std::sync::Once::new();
        CLAIMED.call_once(|| {
            let db = self.db.clone();
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match sqlx::query_scalar::<_, i64>("SELECT nextval('id_nodes')")
                        .fetch_one(&db)
                        .await
                    {
                        Ok(node) => {
                            stampede_core::id::claim_node(node as u64);
                            tracing::debug!(node, "id node claimed");
                            return;
                        }
                        Err(_) => {
                            tokio::select! {
                                () = shutdown.cancelled() => return,
                                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                            }
                        }
                    }
                }
            });
        });
    }

    /// Starts measuring the read replica's lag (once per context, however many of its services
    /// require PostgreSQL), and reports in readiness whether reads use it. Readiness never fails
    /// for the replica: reads fall back to the primary.
    async fn track_replica(&self) {
        if !self.reads.has_replica() {
            return;
        }
        if let Err(error) = self.reads.track(
            &self.config.database,
            self.metrics.clone(),
            self.shutdown.clone(),
        ) {
            tracing::error!(%error, "cannot measure the read replica; reads stay on the primary");
        }
        let reads = self.reads.clone();
        self.health
            .report_load(
                "postgres_replica",
                Arc::new(move || {
                    if reads.replica_in_use() {
                        "ok"
                    } else {
                        "set aside (lagging or unreachable): reads use the primary"
                    }
                }),
            )
            .await;
    }

    pub async fn require(&self, dependency: Dependency) {
        let (name, check): (&str, stampede_telemetry::HealthCheck) = match dependency {
            Dependency::Postgres => {
                self.claim_id_node();
                for pool in [&self.db, &self.jobs] {
                    let pool = pool.clone();
                    self.health
                        .report_load(
                            &format!("postgres_{}", pool.name()),
                            Arc::new(move || if pool.saturated() { "saturated" } else { "ok" }),
                        )
                        .await;
                }
                self.track_replica().await;
                let db = self.probe.clone();
                (
                    "postgres",
                    Arc::new(move || {
                        let db = db.clone();
                        async move { stampede_db::check(&db).await }.boxed()
                    }),
                )
            }
            Dependency::Redis => {
                if self.config.redis.is_none() {
                    return;
                }
                let node = self.cache.clone();
                self.health
                    .report_load("redis_node", Arc::new(move || node.node()))
                    .await;
                let cache = self.cache.clone();
                (
                    "redis",
                    Arc::new(move || {
                        let cache = cache.clone();
                        async move { cache.check().await.map_err(|e| e.to_string()) }.boxed()
                    }),
                )
            }
            Dependency::Amqp => {
                if self.config.amqp.is_none() {
                    return;
                }
                let node = self.queue.clone();
                self.health
                    .report_load("rabbitmq_node", Arc::new(move || node.node()))
                    .await;
                let queue = self.queue.clone();
                (
                    "rabbitmq",
                    Arc::new(move || {
                        let queue = queue.clone();
                        async move { queue.check().await }.boxed()
                    }),
                )
            }
            Dependency::Storage => {
                let storage = self.storage.clone();
                (
                    "storage",
                    Arc::new(move || {
                        let storage = storage.clone();
                        async move { storage.check().await.map_err(|e| e.to_string()) }.boxed()
                    }),
                )
            }
        };
        self.health.register(name, check).await;
    }
}
