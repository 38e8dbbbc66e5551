//! Every Prometheus metric a Stampede process exports, declared once with its help text.
//!
//! Handlers never name a metric by string: they reach a typed field of [`Metrics`]. All metrics
//! share the `stampede_` prefix. One [`Metrics`] lives per process (in `all` mode the services
//! share it), and `/metrics` encodes its registry.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request: the route *template* (`/api/v1/accounts/{id}`), never the raw path,
/// so the number of series stays bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// Labels of an inbound activity: its type and what became of it (`applied`, `dropped`,
/// `refused`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityLabels {
    pub r#type: String,
    pub outcome: String,
}

/// Labels naming a work queue (`deliver`, `media`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

/// Labels of a finished job: its queue, its kind and how it ended (`ack`, `retry`, `park`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub queue: String,
    pub kind: String,
    pub outcome: String,
}

/// Labels naming a rate-limited action (`sign_up`, `sign_in`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

/// Labels naming a stream type (`user`, `public:local`, `hashtag`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream: String,
}

/// Labels of a backing service (`postgres`, `redis`, `rabbitmq`, `storage`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: String,
}

/// Labels of a background loop's rounds (`clock`, `prune` …; `ok`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: String,
    pub outcome: String,
}

/// Labels of an entity-cache look-up (`status`, `account`; `hit`, `miss`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntityCacheLabels {
    pub kind: String,
    pub outcome: String,
}

/// Labels naming a background loop.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerNameLabels {
    pub worker: String,
}

/// Labels naming a database pool (`requests`, `workers`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

/// Labels of a delivery to a remote inbox: what became of it (`success`, `retry`, `parked`,
/// `skipped_unavailable`, `circuit_open`, `deferred`) and its domain's class (`healthy`,
/// `failing`: failures on record or a breaker not closed, `unavailable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub outcome: String,
    pub class: String,
}

/// Labels of a processed upload or remote file: what became of it (`ready`, `failed`: refused
/// as bad input) and where it was processed (`web`: in the request, `worker`: by the media
/// service).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MediaLabels {
    pub outcome: String,
    pub place: String,
}

/// Labels naming a state (of a circuit breaker: `open`, `half_open`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// Labels naming an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// HTTP request duration by method, route template and status.
    pub http_request_duration: Family<HttpLabels, Histogram>,
    /// Messages published to a work queue (confirmed by the broker).
    pub messages_published: Family<QueueLabels, Counter>,
    /// Messages taken from a work queue by a consumer.
    pub messages_consumed: Family<QueueLabels, Counter>,
    /// Messages sent to a retry tier after a failure.
    pub messages_retried: Family<QueueLabels, Counter>,
    /// Messages moved to the parking queue after failing for good.
    pub messages_parked: Family<QueueLabels, Counter>,
    /// How long a job ran, by queue, kind and outcome.
    pub job_duration: Family<JobLabels, Histogram>,
    /// Time from a message's creation (outbox commit) to a consumer receiving it.
    pub message_age: Family<QueueLabels, Histogram>,
    /// Messages waiting in each work queue, as last sampled from the broker.
    pub queue_depth: Family<QueueLabels, Gauge>,
    /// Rows in the transactional outbox not yet published, as last seen by the relay.
    pub outbox_backlog: Gauge,
    /// Time from an outbox row's commit to the broker's confirm of its publication.
    pub outbox_publish_lag: Histogram,
    /// Outbox rows published (and deleted) by the relay.
    pub outbox_published: Counter,
    /// 1 while a backing service answers, 0 while it does not.
    pub dependency_up: Family<DependencyLabels, Gauge>,
    /// Password hashes (sign-ups, sign-ins) admitted to the hashing pool.
    pub signup_admitted: Counter,
    /// Password hashes refused with 429 because the pool's queue was too long.
    pub signup_rejected: Counter,
    /// Requests waiting for a hashing thread.
    pub password_hash_waiting: Gauge,
    /// Time one argon2id hash or verification took.
    pub password_hash_duration: Histogram,
    /// Requests refused by a per-IP rate limit, by action.
    pub rate_limited: Family<ActionLabels, Counter>,
    /// Time from a status's commit to the last home feed written for it.
    pub fanout_duration: Histogram,
    /// Home-feed entries written by fan-out.
    pub fanout_feeds_written: Counter,
    /// Open streaming connections (WebSocket and SSE).
    pub streaming_connections: Gauge,
    /// Streaming subscriptions, by stream type.
    pub streaming_subscriptions: Family<StreamLabels, Gauge>,
    /// Events sent to streaming clients, by stream type.
    pub streaming_messages_sent: Family<StreamLabels, Counter>,
    /// Streaming clients disconnected for falling behind.
    pub streaming_slow_clients_dropped: Counter,
    /// Time from an event's publication to its frame being written to a client.
    pub streaming_event_lag: Histogram,
    /// The most connections each database pool opens.
    pub db_pool_max: Family<PoolLabels, Gauge>,
    /// Connections of each pool held by the process's code right now.
    pub db_pool_in_use: Family<PoolLabels, Gauge>,
    /// Callers waiting for a connection of each pool.
    pub db_pool_waiters: Family<PoolLabels, Gauge>,
    /// Time a caller waited for a connection.
    pub db_pool_acquire: Family<PoolLabels, Histogram>,
    /// Acquisitions that failed: the pool's waiters were at their bound, or the wait timed out.
    pub db_pool_timeouts: Family<PoolLabels, Counter>,
    /// Inbound activities by type and outcome.
    pub inbox_activities: Family<ActivityLabels, Counter>,
    /// Deliveries to remote inboxes by outcome and domain class.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Media processed (variants made, or the file refused), by outcome and place.
    pub media_processed: Family<MediaLabels, Counter>,
    /// How long processing one file took, by outcome and place.
    pub media_processing_duration: Family<MediaLabels, Histogram>,
    /// Signed POSTs to remote inboxes, by how they ended (`answered`, `outage`).
    pub delivery_duration: Family<OutcomeLabels, Histogram>,
    /// Circuit breakers not closed, by state, in this process.
    pub delivery_breakers: Family<StateLabels, Gauge>,
    /// Domains marked unavailable (failing on 7 distinct days).
    pub unavailable_domains: Gauge,
    /// Age of the message a queue's consumer received last (how far behind it runs; 0 once
    /// the queue is empty).
    pub queue_oldest_age: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// How far the read replica (REPLICA_DB_URL) trails the primary, as last measured.
    pub db_replica_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while reads that tolerate lag go to the replica; 0 while they fall back to the primary.
    pub db_replica_in_use: Gauge,
    /// Lag-tolerant reads by the pool that served them (`replica`, or `requests` on the primary).
    pub db_reads: Family<PoolLabels, Counter>,
    /// Rounds of each background loop, by outcome.
    pub worker_rounds: Family<WorkerLabels, Counter>,
    /// When each background loop last finished a round without error (Unix seconds).
    pub worker_last_ok: Family<WorkerNameLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 while each background loop runs, 0 once it has ended.
    pub worker_running: Family<WorkerNameLabels, Gauge>,
    /// Statuses and accounts looked up in the process's entity cache (ADR 0032), by outcome.
    pub entity_cache_lookups: Family<EntityCacheLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("stampede");
        let m = Metrics {
            http_request_duration: Family::new_with_constructor(latency_buckets),
            messages_published: Family::default(),
            messages_consumed: Family::default(),
            messages_retried: Family::default(),
            messages_parked: Family::default(),
            job_duration: Family::new_with_constructor(latency_buckets),
            message_age: Family::new_with_constructor(latency_buckets),
            queue_depth: Family::default(),
            outbox_backlog: Gauge::default(),
            outbox_publish_lag: latency_buckets(),
            outbox_published: Counter::default(),
            dependency_up: Family::default(),
            signup_admitted: Counter::default(),
            signup_rejected: Counter::default(),
            password_hash_waiting: Gauge::default(),
            password_hash_duration: latency_buckets(),
            rate_limited: Family::default(),
            // Steps of √2 from 1 ms to 46 s: a fan-out lag near the 1 s goal reads as ≤ 0.72,
            // ≤ 1.02 or ≤ 1.45 s rather than ≤ 1 or ≤ 2 s.
            fanout_duration: Histogram::new(exponential_buckets(
                0.001,
                std::f64::consts::SQRT_2,
                32,
            )),
            fanout_feeds_written: Counter::default(),
            streaming_connections: Gauge::default(),
            streaming_subscriptions: Family::default(),
            streaming_messages_sent: Family::default(),
            streaming_slow_clients_dropped: Counter::default(),
            streaming_event_lag: latency_buckets(),
            db_pool_max: Family::default(),
            db_pool_in_use: Family::default(),
            db_pool_waiters: Family::default(),
            db_pool_acquire: Family::new_with_constructor(|| {
                // 0.1 ms … ~3 s
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
            db_pool_timeouts: Family::default(),
            inbox_activities: Family::default(),
            deliveries: Family::default(),
            media_processed: Family::default(),
            media_processing_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            delivery_duration: Family::new_with_constructor(latency_buckets),
            delivery_breakers: Family::default(),
            unavailable_domains: Gauge::default(),
            queue_oldest_age: Family::default(),
            db_replica_lag: Gauge::default(),
            db_replica_in_use: Gauge::default(),
            db_reads: Family::default(),
            worker_rounds: Family::default(),
            worker_last_ok: Family::default(),
            worker_running: Family::default(),
            entity_cache_lookups: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by method, route template and status",
            m.http_request_duration.clone(),
        );
        registry.register(
            "queue_messages_published",
            "Messages published to a work queue and confirmed by the broker",
            m.messages_published.clone(),
        );
        registry.register(
            "queue_messages_consumed",
            "Messages received from a work queue by a consumer",
            m.messages_consumed.clone(),
        );
        registry.register(
            "queue_messages_retried",
            "Messages sent to a retry tier after a failed attempt",
            m.messages_retried.clone(),
        );
        registry.register(
            "queue_messages_parked",
            "Messages moved to the parking queue after failing for good",
            m.messages_parked.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Job run time by queue, kind and outcome (ack, retry, park)",
            m.job_duration.clone(),
        );
        registry.register(
            "queue_message_age_seconds",
            "Time from a message's creation to a consumer receiving it",
            m.message_age.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages ready in each work queue, as last sampled from the broker",
            m.queue_depth.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox rows not yet published, as last seen by the relay",
            m.outbox_backlog.clone(),
        );
        registry.register(
            "outbox_publish_lag_seconds",
            "Time from an outbox row's commit to the broker's confirm",
            m.outbox_publish_lag.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox rows published and deleted by the relay",
            m.outbox_published.clone(),
        );
        registry.register(
            "dependency_up",
            "1 while a backing service answers its health check, 0 while it does not",
            m.dependency_up.clone(),
        );
        registry.register(
            "password_hash_admitted",
            "Password hashes (sign-ups, sign-ins) admitted to the hashing pool",
            m.signup_admitted.clone(),
        );
        registry.register(
            "password_hash_rejected",
            "Password hashes refused with 429 because the hashing queue was too long",
            m.signup_rejected.clone(),
        );
        registry.register(
            "password_hash_waiting",
            "Requests waiting for a password hashing thread",
            m.password_hash_waiting.clone(),
        );
        registry.register(
            "password_hash_duration_seconds",
            "Time one argon2id hash or verification took",
            m.password_hash_duration.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a per-IP rate limit, by action",
            m.rate_limited.clone(),
        );
        registry.register(
            "fanout_duration_seconds",
            "Time from a status's commit to the last home feed written for it",
            m.fanout_duration.clone(),
        );
        registry.register(
            "fanout_feeds_written",
            "Home-feed entries written by fan-out",
            m.fanout_feeds_written.clone(),
        );
        registry.register(
            "streaming_connections",
            "Open streaming connections (WebSocket and SSE)",
            m.streaming_connections.clone(),
        );
        registry.register(
            "streaming_subscriptions",
            "Streaming subscriptions, by stream type",
            m.streaming_subscriptions.clone(),
        );
        registry.register(
            "streaming_messages_sent",
            "Events sent to streaming clients, by stream type",
            m.streaming_messages_sent.clone(),
        );
        registry.register(
            "streaming_slow_clients_dropped",
            "Streaming clients disconnected for falling behind",
            m.streaming_slow_clients_dropped.clone(),
        );
        registry.register(
            "streaming_event_lag_seconds",
            "Time from an event's publication to its frame being written to a client",
            m.streaming_event_lag.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "The most connections each database pool opens",
            m.db_pool_max.clone(),
        );
        registry.register(
            "db_replica_lag_seconds",
            "How far the read replica trails the primary, as last measured",
            m.db_replica_lag.clone(),
        );
        registry.register(
            "db_replica_in_use",
            "1 while lag-tolerant reads go to the read replica, 0 while they use the primary",
            m.db_replica_in_use.clone(),
        );
        registry.register(
            "db_reads",
            "Lag-tolerant reads (timelines, account pages, collections) by the pool serving them",
            m.db_reads.clone(),
        );
        registry.register(
            "db_pool_in_use",
            "Connections of each database pool held by the process right now",
            m.db_pool_in_use.clone(),
        );
        registry.register(
            "db_pool_waiters",
            "Callers waiting for a connection of each database pool",
            m.db_pool_waiters.clone(),
        );
        registry.register(
            "db_pool_acquire_seconds",
            "Time a caller waited for a database connection",
            m.db_pool_acquire.clone(),
        );
        registry.register(
            "db_pool_timeouts",
            "Database acquisitions refused because the pool's waiters were at their bound or the wait timed out",
            m.db_pool_timeouts.clone(),
        );
        registry.register(
            "inbox_activities",
            "Inbound ActivityPub activities by type and outcome (applied, dropped, refused)",
            m.inbox_activities.clone(),
        );
        registry.register(
            "media_processed",
            "Uploads and remote files processed, by outcome (ready, failed) and place (web, worker)",
            m.media_processed.clone(),
        );
        registry.register(
            "media_processing_duration_seconds",
            "Time to make one file's variants (or refuse it), by outcome and place",
            m.media_processing_duration.clone(),
        );
        registry.register(
            "deliveries",
            "Deliveries to remote inboxes by outcome (success, retry, parked, skipped_unavailable, circuit_open, deferred) and domain class (healthy, failing, unavailable)",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "Signed POSTs to remote inboxes by how they ended (answered, outage)",
            m.delivery_duration.clone(),
        );
        registry.register(
            "delivery_breakers",
            "Circuit breakers of remote domains not closed in this process, by state (open, half_open)",
            m.delivery_breakers.clone(),
        );
        registry.register(
            "unavailable_domains",
            "Remote domains marked unavailable after failing on 7 distinct days",
            m.unavailable_domains.clone(),
        );
        registry.register(
            "queue_oldest_message_age_seconds",
            "Age of the message each queue's consumer received last (0 once the queue is empty)",
            m.queue_oldest_age.clone(),
        );
        registry.register(
            "worker_rounds",
            "Rounds of each background loop (clock, prune, queue depths, media sweep …), by outcome (ok, failed)",
            m.worker_rounds.clone(),
        );
        registry.register(
            "worker_last_ok_timestamp_seconds",
            "When each background loop last finished a round without error",
            m.worker_last_ok.clone(),
        );
        registry.register(
            "worker_running",
            "1 while each background loop runs, 0 once it has ended",
            m.worker_running.clone(),
        );
        registry.register(
            "entity_cache_lookups",
            "Statuses and accounts looked up in the process's entity cache, by kind (status, \
             account) and outcome (hit: used at the version just read; miss: read from PostgreSQL)",
            m.entity_cache_lookups.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// The registry in Prometheus's text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The counter of entity-cache look-ups of `kind` (`status`, `account`, `viewer_flags`) with `outcome`
    /// (`hit`, `miss`): a handle to keep, so that counting allocates nothing.
    pub fn entity_cache(&self, kind: &str, outcome: &str) -> Counter {
        self.entity_cache_lookups
            .get_or_create(&EntityCacheLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .clone()
    }

    /// Counts one inbound activity of `kind` with `outcome`.
    pub fn inbox_activity(&self, kind: &str, outcome: &str) {
        // Types are the peer's choice: an unknown one is counted as `other`, so a peer cannot
        // make the series unbounded.
        const KNOWN: [&str; 14] = [
            "Follow", "Accept", "Reject", "Undo", "Create", "Update", "Delete", "Announce", "Like",
            "Block", "Move", "Add", "Remove", "Flag",
        ];
        let kind = if KNOWN.contains(&kind) { kind } else { "other" };
        self.inbox_activities
            .get_or_create(&ActivityLabels {
                r#type: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The label set for one queue.
    pub fn state(state: &str) -> StateLabels {
        StateLabels {
            state: state.to_string(),
        }
    }

    /// Counts one processed file and how long it took.
    pub fn media(&self, outcome: &str, place: &str, seconds: f64) {
        let labels = MediaLabels {
            outcome: outcome.to_string(),
            place: place.to_string(),
        };
        self.media_processed.get_or_create(&labels).inc();
        self.media_processing_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Counts one delivery.
    pub fn delivery(&self, outcome: &str, class: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                outcome: outcome.to_string(),
                class: class.to_string(),
            })
            .inc();
    }

    pub fn queue(queue: &str) -> QueueLabels {
        QueueLabels {
            queue: queue.to_string(),
        }
    }
}
