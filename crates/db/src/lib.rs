//! PostgreSQL, the only source of truth.
//!
//! The pool connects lazily, so a process starts (and answers `/health/ready` with 503) while the
//! database is down, and recovers by itself when it returns. Migrations in `migrations/` are
//! embedded in the binary and applied by `stampede migrate` (and at start of `stampede all`).
//! Queries use sqlx's runtime API and are covered by the integration tests, so a build needs no
//! database.

pub mod gate;
pub mod lease;
pub mod replica;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use stampede_config::DatabaseConfig;

pub use gate::{Admission, Conn, Db, Tx, admitted};
pub use lease::{Lease, Leases};
pub use replica::Reads;

/// The schema migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Whether `error` says the server could not be reached, is going away or is still starting (a
/// restart, a fail-over, a dropped connection): the same work may succeed in a moment on a new
/// connection.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // 08: connection exceptions; 57P: the server shutting down, crashed or starting.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// When the primary was last found unavailable. The process's primary pools close the
/// connections opened before then instead of handing them out: a restart of PostgreSQL broke
/// them all, and each would otherwise fail one request before the pool replaced it.
pub fn primary_outage() -> &'static replica::Outage {
    static OUTAGE: std::sync::LazyLock<replica::Outage> =
        std::sync::LazyLock::new(replica::Outage::default);
    &OUTAGE
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// A pool of at most `size` connections that connects on first use; a caller waits at most
/// `acquire_timeout` for a connection. Its sessions run with PostgreSQL's JIT off.
///
/// sqlx pings every connection before handing it out by default: one more round trip to
/// PostgreSQL for every query run on the pool. Only connections that sat idle for a while (the
/// ones a database restart or a dropped idle connection would have broken) are pinged; a busy
/// connection that breaks fails its query, and the pool replaces it.
pub fn pool(
    config: &DatabaseConfig,
    application_name: &str,
    size: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    pool_with(config, application_name, size, acquire_timeout, None)
}

/// [`pool`], whose connections opened before `outage` (when set) are closed instead of handed
/// out: after a server went away, its old connections are broken and none is tried again.
pub(crate) fn pool_with(
    config: &DatabaseConfig,
    application_name: &str,
    size: u32,
    acquire_timeout: Duration,
    outage: Option<replica::Outage>,
) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let outage = outage.clone();
            Box::pin(async move {
                if outage.is_some_and(|o| o.opened_before(meta.age)) {
                    return Ok(false);
                }
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(
            options
                .application_name(application_name)
                // JIT compiles a query to machine code when its estimated cost is high, which
                // costs 10–100 ms of CPU each time: for a server whose queries take a few
                // milliseconds it is pure loss (issue 26: the home timeline's generic plan
                // took 105 ms with JIT, 4 ms without). Off for our sessions only.
                .options([("jit", "off")]),
        ))
}

/// How long a background job waits for a connection of the workers' pool before it fails and is
/// retried: work in a queue can wait; a request cannot.
pub const WORKER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The requests' pool and the workers' pool of a process (DB_POOL and DB_WORKER_POOL).
pub fn pools(
    config: &DatabaseConfig,
    application_name: &str,
    metrics: &std::sync::Arc<stampede_telemetry::Metrics>,
) -> Result<(Db, Db), sqlx::Error> {
    let outage = primary_outage();
    let requests = pool_with(
        config,
        application_name,
        config.pool_size,
        config.acquire_timeout,
        Some(outage.clone()),
    )?;
    let workers = pool_with(
        config,
        application_name,
        config.worker_pool_size,
        WORKER_ACQUIRE_TIMEOUT,
        Some(outage.clone()),
    )?;
    let admission = Admission {
        max_waiters: config.pool_queue,
        max_wait: config.pool_max_wait,
    };
    Ok((
        Db::of_primary(
            requests,
            "requests",
            admission,
            metrics.clone(),
            outage.clone(),
        ),
        // Jobs wait in their queue rather than fail: every consumer may wait its turn.
        Db::of_primary(
            workers,
            "workers",
            Admission::PATIENT,
            metrics.clone(),
            outage.clone(),
        ),
    ))
}

/// A pool of one connection for readiness, so that a busy pool reads as busy, not as down.
pub fn probe(config: &DatabaseConfig, application_name: &str) -> Result<PgPool, sqlx::Error> {
    pool(config, application_name, 1, Duration::from_secs(2))
}

/// Readiness: the database answers and its schema is current. A replica of a new version must
/// not take traffic before `stampede migrate` has run.
pub async fn check(pool: &PgPool) -> Result<(), String> {
    let pending = pending_migrations(pool).await.map_err(|e| e.to_string())?;
    if pending > 0 {
        return Err(format!(
            "{pending} migration(s) not applied; run `stampede migrate`"
        ));
    }
    Ok(())
}

/// How many of the embedded migrations the database has not applied.
pub async fn pending_migrations(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .count())
}

/// Waits until the database answers, logging each failure and backing off from 0.5 s to 30 s.
/// Returns `false` if `attempts` ran out first (`None`: wait for ever).
pub async fn wait_until_reachable(pool: &PgPool, attempts: Option<u32>) -> bool {
    let mut failures = 0u32;
    loop {
        match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!("PostgreSQL is reachable");
                }
                return true;
            }
            Err(error) => {
                failures += 1;
                if attempts.is_some_and(|max| failures >= max) {
                    tracing::error!(%error, "PostgreSQL is unreachable; giving up");
                    return false;
                }
                let delay =
                    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)).min(30_000));
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                    "PostgreSQL is unreachable; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Applies pending migrations. Concurrent callers are serialised by sqlx's advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_or_absent_server_is_unavailable_and_a_query_error_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_unavailable(&sqlx::Error::Io(io)));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::PoolTimedOut));
    }
}
