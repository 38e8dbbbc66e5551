//! Reads that tolerate lag, served by a streaming read replica (REPLICA_DB_URL) while it keeps up.
//!
//! A [`Reads`] hands out the pool for a read: the replica while its measured lag is within
//! REPLICA_MAX_LAG_MS and the replica answers, the primary otherwise, and always the primary
//! inside [`Reads::on_primary`] (a client that has just written reads its own writes). Without a
//! replica every read goes to the primary and nothing else changes.
//!
//! Lag is measured by WAL position rather than by replay timestamps (which grow while the primary
//! is idle): a tracker samples the primary's `pg_current_wal_lsn()` a few times a second and the
//! replica's `pg_last_wal_replay_lsn()`; the replica holds everything committed before the newest
//! sample at or below its replay position, so the lag is at most the time since that sample.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use sqlx::PgPool;
use stampede_telemetry::Metrics;
use stampede_telemetry::metrics::PoolLabels;
use tokio_util::sync::CancellationToken;

use stampede_config::DatabaseConfig;

use crate::{Admission, Db};

tokio::task_local! {
    /// Set for a request whose client wrote within the lag bound: its reads go to the primary.
    static ON_PRIMARY: ();
}

/// The replica's pool's name in metrics.
const REPLICA: &str = "replica";

/// How often the tracker samples both servers' WAL positions.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Where lag-tolerant reads go. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reads {
    primary: Db,
    replica: Option<Arc<Replica>>,
    primary_reads: Counter,
}

#[derive(Debug)]
struct Replica {
    db: Db,
    /// Where the replica is (its URL), for the tracker's own connection.
    config: DatabaseConfig,
    /// Whether a tracker runs already (the first `track` starts it).
    tracked: AtomicBool,
    max_lag: Duration,
    usable: AtomicBool,
    outage: Outage,
    reads: Counter,
}

/// When the replica was last found unreachable: its pool's connections opened before then are
/// closed rather than used.
#[derive(Clone, Debug, Default)]
pub struct Outage(Arc<AtomicU64>);

/// The clock outages are read on: milliseconds since the process first asked.
fn millis() -> u64 {
    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64 + 1
}

impl Outage {
    /// Marks an outage now: connections opened until now are closed rather than used.
    pub fn now(&self) {
        self.0.store(millis(), Ordering::Relaxed);
    }

    /// Whether a connection `age` old was opened before (or at) the last outage.
    pub(crate) fn opened_before(&self, age: Duration) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        last != 0 && millis().saturating_sub(age.as_millis() as u64) <= last
    }
}

impl Reads {
    /// Every read on `primary`.
    pub fn primary_only(primary: Db, metrics: &Metrics) -> Self {
        Reads {
            primary_reads: metrics
                .db_reads
                .get_or_create(&PoolLabels {
                    pool: primary.name().to_string(),
                })
                .clone(),
            primary,
            replica: None,
        }
    }

    /// Lag-tolerant reads on the replica `config` names (DB_POOL connections, admitted as
    /// `admission`, named `replica` in metrics) while it trails the primary by at most
    /// `max_lag` (once [`Reads::track`] has measured it; until then, on the primary).
    pub fn with_replica(
        primary: Db,
        config: &DatabaseConfig,
        application_name: &str,
        admission: Admission,
        max_lag: Duration,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, sqlx::Error> {
        let outage = Outage::default();
        let pool = crate::pool_with(
            config,
            application_name,
            config.pool_size,
            config.acquire_timeout,
            Some(outage.clone()),
        )?;
        let replica = Db::new(pool, REPLICA, admission, metrics.clone());
        let mut reads = Reads::primary_only(primary, metrics);
        reads.replica = Some(Arc::new(Replica {
            reads: metrics
                .db_reads
                .get_or_create(&PoolLabels {
                    pool: replica.name().to_string(),
                })
                .clone(),
            db: replica,
            config: config.clone(),
            tracked: AtomicBool::new(false),
            max_lag,
            usable: AtomicBool::new(false),
            outage,
        }));
        Ok(reads)
    }

    /// Runs `read` where [`Reads::db`] says; if the replica cannot answer it (gone, restarting,
    /// not yet holding the database, a query cancelled by a conflict with its recovery), sets the
    /// replica aside until the tracker finds it well and runs `read` again on the primary.
    pub async fn read<T, F, Fut>(&self, read: F) -> Result<T, sqlx::Error>
    where
        F: Fn(Db) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let db = self.db().clone();
        if db.name() != REPLICA {
            return read(db).await;
        }
        match read(db).await {
            Err(error) if self.replica_failed(&error) => read(self.primary.clone()).await,
            other => other,
        }
    }

    /// Whether `error`, from a read on the replica, means the replica could not serve it; if
    /// so, the replica is set aside (reads go to the primary until the tracker finds it well).
    pub fn replica_failed(&self, error: &sqlx::Error) -> bool {
        let Some(replica) = &self.replica else {
            return false;
        };
        // Besides the server being unavailable — 3D000: the database not replayed yet; 40001: a
        // query cancelled by a conflict with recovery.
        let failed = crate::is_unavailable(error)
            || matches!(error, sqlx::Error::Database(db)
                if db.code().is_some_and(|code| code == "3D000" || code == "40001"));
        if failed {
            tracing::warn!(%error, "read replica failed a read; reads use the primary");
            replica.usable.store(false, Ordering::Relaxed);
            replica.outage.now();
        }
        failed
    }

    /// The pool for a read that tolerates lag (timelines, account pages, collections).
    pub fn db(&self) -> &Db {
        if let Some(replica) = &self.replica
            && replica.usable.load(Ordering::Relaxed)
            && ON_PRIMARY.try_with(|_| ()).is_err()
        {
            replica.reads.inc();
            return &replica.db;
        }
        self.primary_reads.inc();
        &self.primary
    }

    /// The primary, for reads that must see the latest writes.
    pub fn primary(&self) -> &Db {
        &self.primary
    }

    /// Whether a replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Whether lag-tolerant reads go to the replica right now.
    pub fn replica_in_use(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| r.usable.load(Ordering::Relaxed))
    }

    /// The lag bound, when a replica is configured.
    pub fn max_lag(&self) -> Option<Duration> {
        self.replica.as_ref().map(|r| r.max_lag)
    }

    /// Runs `work` with every read on the primary (read-your-writes).
    pub async fn on_primary<F: Future>(work: F) -> F::Output {
        ON_PRIMARY.scope((), work).await
    }

    /// Measures the replica's lag until `shutdown`, through one-connection pools of their own to
    /// the primary (`primary` names it) and the replica, so a busy request pool never delays
    /// the measurement. Once per `Reads` (its clones share the tracker); nothing without a
    /// replica.
    pub fn track(
        &self,
        primary: &DatabaseConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let Some(state) = self.replica.clone() else {
            return Ok(());
        };
        if state.tracked.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let (name, timeout) = ("stampede-replica-lag", Duration::from_secs(2));
        let primary = crate::pool(primary, name, 1, timeout)?;
        let replica = crate::pool(&state.config, name, 1, timeout)?;
        tokio::spawn(async move {
            let mut lag = Lag::default();
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_usable = false;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let measured = measure(&primary, &replica, &mut lag).await;
                let usable = match measured {
                    Ok(Some(behind)) => {
                        metrics.db_replica_lag.set(behind.as_secs_f64());
                        behind <= state.max_lag
                    }
                    Ok(None) => false,
                    Err(error) => {
                        if was_usable {
                            tracing::warn!(%error, "read replica unreachable; reads use the primary");
                        }
                        state.outage.now();
                        false
                    }
                };
                if usable != was_usable {
                    tracing::info!(
                        usable,
                        "read replica {}",
                        if usable { "in use" } else { "set aside" }
                    );
                }
                was_usable = usable;
                state.usable.store(usable, Ordering::Relaxed);
                metrics.db_replica_in_use.set(i64::from(usable));
            }
        });
        Ok(())
    }
}

/// The primary's recent WAL positions and when they were read.
#[derive(Default)]
struct Lag {
    samples: VecDeque<(Instant, i64)>,
}

impl Lag {
    /// Records the primary at `now` and returns how far a replica replayed to `replayed` trails.
    fn update(&mut self, now: Instant, primary: i64, replayed: i64) -> Duration {
        self.samples.push_back((now, primary));
        // A minute of samples is far beyond any useful lag bound.
        while self.samples.len() > 300 {
            self.samples.pop_front();
        }
        match self.samples.iter().rev().find(|(_, lsn)| *lsn <= replayed) {
            Some((at, _)) => now.saturating_duration_since(*at),
            // Behind everything remembered: at least as old as the oldest sample.
            None => self
                .samples
                .front()
                .map_or(Duration::MAX, |(at, _)| now.saturating_duration_since(*at))
                .max(Duration::from_secs(60)),
        }
    }
}

/// One measurement: the replica's lag, or `None` when the server named as replica is not
/// replaying (it was promoted, or is a primary: its data may have left ours behind).
async fn measure(
    primary: &PgPool,
    replica: &PgPool,
    lag: &mut Lag,
) -> Result<Option<Duration>, sqlx::Error> {
    // Read the primary first: a replica that already replayed up to it holds every earlier commit.
    let position: i64 = sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0')::bigint")
        .fetch_one(primary)
        .await?;
    let now = Instant::now();
    let (recovering, replayed): (bool, Option<i64>) =
        sqlx::query_as("SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::bigint")
            .fetch_one(replica)
            .await?;
    match (recovering, replayed) {
        (true, Some(replayed)) => Ok(Some(lag.update(now, position, replayed))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_newest_position_replayed() {
        let start = Instant::now();
        let mut lag = Lag::default();
        let at = |ms| start + Duration::from_millis(ms);
        // Caught up: no lag, however long the primary has been idle.
        assert_eq!(lag.update(at(0), 100, 100), Duration::ZERO);
        assert_eq!(lag.update(at(5_000), 100, 100), Duration::ZERO);
        // Writes arrive; the replica has replayed what the sample at 5 s held.
        assert_eq!(lag.update(at(5_200), 200, 100), Duration::from_millis(200));
        assert_eq!(lag.update(at(5_400), 300, 200), Duration::from_millis(200));
        // It stops replaying: the lag grows with the clock.
        assert_eq!(
            lag.update(at(6_400), 300, 200),
            Duration::from_millis(1_200)
        );
        // Behind every sample remembered.
        assert!(lag.update(at(6_600), 400, 50) >= Duration::from_secs(60));
    }
}
