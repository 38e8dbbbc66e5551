//! [`Db`]: a pool that refuses fast when it is full, measures itself, and catches nesting.
//!
//! ```text
//!  handler ──acquire──► waiters ≤ limit? ──no──► PoolTimedOut at once (web: 503 + Retry-After)
//!                            │ yes
//!                            ▼
//!                  sqlx pool (FIFO, acquire timeout) ──► connection ──► released on drop
//! ```
//!
//! Three things go wrong with a plain `PgPool` under a surge, and each is answered here:
//!
//! - **Nested acquisition.** Code that holds a connection (a transaction) and then asks the same
//!   pool for a second one waits for itself: with as many such callers as connections, every
//!   connection sits idle in transaction until the acquire timeout frees it. Debug builds (every
//!   test) refuse such an acquisition at once with an error naming the pool, so any route a test
//!   exercises proves it holds one connection at a time; release builds pay nothing for the check.
//! - **Waiting in a full pool.** A request queued behind many others gains nothing by waiting
//!   seconds and failing. An acquisition that would queue fails at once when `max_waiters`
//!   others already wait, or when the last caller served had waited longer than `max_wait` (a
//!   standing queue, as CoDel detects one: it sheds new arrivals while queueing delay stays
//!   above target, and admits again as soon as a caller is served quickly). The web service
//!   answers such a refusal with 503 and Retry-After.
//! - **Blindness.** Connections in use, waiters, acquire time and time-outs are exported as
//!   `stampede_db_pool_*`, labelled by pool (`requests`, `workers`).
//!
//! Queries run on `&Db` as on `&PgPool` (it is an [`Executor`]); a statement run that way holds a
//! connection only while it runs. Results are gathered before the connection goes back, which
//! suits a server whose queries return a page, not a table.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{
    Describe, Either, Error, Execute, Executor, PgConnection, PgPool, Postgres, Transaction,
};
use stampede_telemetry::Metrics;
use stampede_telemetry::metrics::PoolLabels;

/// A PostgreSQL pool with admission, metrics and (in debug builds) a nesting check. Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    gate: Arc<Gate>,
}

/// When a [`Db`] refuses a caller rather than let it queue.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// An acquisition that would queue behind this many others fails at once.
    pub max_waiters: usize,
    /// An acquisition that would queue fails at once while the last caller served waited longer.
    pub max_wait: Duration,
}

impl Admission {
    /// Never refuse: every caller waits its turn (work from a queue).
    pub const PATIENT: Admission = Admission {
        max_waiters: usize::MAX,
        max_wait: Duration::MAX,
    };
}

struct Gate {
    /// For a pool of the primary: marked when the server is found unavailable, and an
    /// acquisition then waits a little and tries again ([`UNAVAILABLE_RETRIES_MS`]).
    outage: Option<crate::replica::Outage>,
    name: String,
    admission: Admission,
    /// How long the last caller served waited, in microseconds.
    last_wait_us: AtomicU64,
    waiting: AtomicUsize,
    in_use: AtomicUsize,
    /// This pool's series, looked up once.
    waiters_gauge: Gauge,
    in_use_gauge: Gauge,
    acquire_seconds: Histogram,
    timeouts: Counter,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.gate.name)
            .field(
                "max_connections",
                &self.pool.options().get_max_connections(),
            )
            .field("in_use", &self.gate.in_use.load(Ordering::Relaxed))
            .field("waiting", &self.gate.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

impl Db {
    /// Fronts `pool`, named `name` in metrics and errors, refusing callers as `admission` says.
    pub fn new(pool: PgPool, name: &str, admission: Admission, metrics: Arc<Metrics>) -> Self {
        Self::build(pool, name, admission, metrics, None)
    }

    fn build(
        pool: PgPool,
        name: &str,
        admission: Admission,
        metrics: Arc<Metrics>,
        outage: Option<crate::replica::Outage>,
    ) -> Self {
        let labels = PoolLabels {
            pool: name.to_string(),
        };
        metrics
            .db_pool_max
            .get_or_create(&labels)
            .set(i64::from(pool.options().get_max_connections()));
        Db {
            pool,
            gate: Arc::new(Gate {
                outage,
                name: name.to_string(),
                admission,
                last_wait_us: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
                in_use: AtomicUsize::new(0),
                waiters_gauge: metrics.db_pool_waiters.get_or_create(&labels).clone(),
                in_use_gauge: metrics.db_pool_in_use.get_or_create(&labels).clone(),
                acquire_seconds: metrics.db_pool_acquire.get_or_create(&labels).clone(),
                timeouts: metrics.db_pool_timeouts.get_or_create(&labels).clone(),
            }),
        }
    }

    /// [`Db::new`] for a pool of the primary, sharing `outage` with the process's other primary
    /// pools: a server found unavailable marks it, and an acquisition then retries for a moment
    /// before it fails.
    pub fn of_primary(
        pool: PgPool,
        name: &str,
        admission: Admission,
        metrics: Arc<Metrics>,
        outage: crate::replica::Outage,
    ) -> Self {
        Self::build(pool, name, admission, metrics, Some(outage))
    }

    /// The pool underneath, for what needs sqlx's own type (migrations, leases).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This pool's name in metrics (`requests`, `workers`).
    pub fn name(&self) -> &str {
        &self.gate.name
    }

    /// Whether every connection is in use right now: busy, not broken.
    pub fn saturated(&self) -> bool {
        self.pool.num_idle() == 0 && self.pool.size() >= self.pool.options().get_max_connections()
    }

    /// Whether more than half its connections are in use: background work that can wait (key
    /// generation) yields to requests.
    pub fn busy(&self) -> bool {
        let pool = self.pool();
        let in_use = (pool.size() as usize).saturating_sub(pool.num_idle());
        self.saturated() || in_use * 2 > pool.options().get_max_connections() as usize
    }

    /// A connection of the caller's own, until the returned guard is dropped.
    pub async fn acquire(&self) -> Result<Conn, Error> {
        let (conn, held) = self.take().await?;
        Ok(Conn { conn, _held: held })
    }

    /// Starts a transaction on a connection of the caller's own.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let (conn, held) = self.take().await?;
        let tx = Transaction::begin(conn, None).await?;
        Ok(Tx { tx, _held: held })
    }

    async fn take(&self) -> Result<(PoolConnection<Postgres>, Held), Error> {
        let gate = &self.gate;
        #[cfg(debug_assertions)]
        nesting::check(gate)?;
        // Marked whether or not this one queues: any later acquisition of the request is not its
        // first.
        let first = first_of_request();
        let waiting = Waiting::enter(gate);
        // Only a caller that would queue is refused: one that finds an idle connection, or room
        // to open one, goes ahead whatever the count says.
        if first && self.saturated() && gate.refuses(waiting.ahead) {
            gate.timeouts.inc();
            return Err(Error::PoolTimedOut);
        }
        let started = Instant::now();
        let mut result = self.pool.acquire().await;
        // PostgreSQL restarting (refusing connections, or "starting up"): a few short waits
        // turn the moment into slower answers rather than errors.
        for pause_ms in UNAVAILABLE_RETRIES_MS {
            match (&result, &gate.outage) {
                (Err(error), Some(outage)) if crate::is_unavailable(error) => {
                    outage.now();
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                    result = self.pool.acquire().await;
                }
                _ => break,
            }
        }
        drop(waiting);
        let waited = started.elapsed();
        gate.last_wait_us
            .store(waited.as_micros() as u64, Ordering::Relaxed);
        gate.acquire_seconds.observe(waited.as_secs_f64());
        match result {
            Ok(conn) => Ok((conn, Held::new(gate))),
            Err(error) => {
                if matches!(error, Error::PoolTimedOut) {
                    gate.timeouts.inc();
                }
                Err(error)
            }
        }
    }
}

/// The waits, in milliseconds, before acquiring again when the server was unavailable: 1.5 s in
/// all. Longer is worse: in the chaos run a 4.7 s schedule doubled the 5xx of a PostgreSQL
/// restart (181 against 80), as the requests waiting it out made the rest queue and be refused.
const UNAVAILABLE_RETRIES_MS: [u64; 4] = [100, 200, 400, 800];

tokio::task_local! {
    /// Set once a request (see [`admitted`]) has been given its first connection.
    static ADMITTED: std::cell::Cell<bool>;
}

/// Runs `request` as one admission: only its first acquisition may be refused. A request that
/// got a connection has begun its work, and may have written; refusing it a connection later
/// (to render what it wrote) would answer 503 for a write that happened, which a client would
/// then repeat. Code outside such a scope (jobs, tests) is judged at every acquisition.
pub async fn admitted<F: std::future::Future>(request: F) -> F::Output {
    ADMITTED.scope(std::cell::Cell::new(false), request).await
}

/// Whether this acquisition is its request's first (always true outside [`admitted`]).
fn first_of_request() -> bool {
    ADMITTED
        .try_with(|admitted| !admitted.replace(true))
        .unwrap_or(true)
}

impl Gate {
    /// Whether a caller that would queue behind `ahead` others is refused.
    fn refuses(&self, ahead: usize) -> bool {
        let standing = || {
            Duration::from_micros(self.last_wait_us.load(Ordering::Relaxed))
                > self.admission.max_wait
        };
        ahead >= self.admission.max_waiters || (ahead > 0 && standing())
    }
}

/// Counts an acquisition as waiting until dropped (also when its future is cancelled).
struct Waiting<'a> {
    gate: &'a Gate,
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn enter(gate: &'a Gate) -> Self {
        let ahead = gate.waiting.fetch_add(1, Ordering::Relaxed);
        gate.waiters_gauge.set((ahead + 1) as i64);
        Waiting { gate, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let left = self.gate.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
        self.gate.waiters_gauge.set(left as i64);
    }
}

/// Marks a connection as held by the current task until dropped.
struct Held {
    gate: Arc<Gate>,
    #[cfg(debug_assertions)]
    task: Option<nesting::Key>,
}

impl Held {
    fn new(gate: &Arc<Gate>) -> Self {
        let in_use = gate.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        gate.in_use_gauge.set(in_use as i64);
        Held {
            gate: gate.clone(),
            #[cfg(debug_assertions)]
            task: nesting::hold(gate),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let in_use = self.gate.in_use.fetch_sub(1, Ordering::Relaxed) - 1;
        self.gate.in_use_gauge.set(in_use as i64);
        #[cfg(debug_assertions)]
        if let Some(key) = self.task.take() {
            nesting::release(key);
        }
    }
}

/// Debug builds: which task holds a connection of which pool.
#[cfg(debug_assertions)]
mod nesting {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock};

    use super::Gate;

    /// A task and a pool (by the address of its shared state).
    pub type Key = (tokio::task::Id, usize);

    // Held for a map lookup, never across an await: the async-safe locks would be heavier.
    #[allow(clippy::disallowed_types)]
    static HELD: LazyLock<std::sync::Mutex<HashMap<Key, u32>>> = LazyLock::new(Default::default);

    fn key(gate: &Arc<Gate>) -> Option<Key> {
        Some((tokio::task::try_id()?, Arc::as_ptr(gate) as usize))
    }

    fn held() -> std::sync::MutexGuard<'static, HashMap<Key, u32>> {
        HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn check(gate: &Arc<Gate>) -> Result<(), sqlx::Error> {
        let Some(key) = key(gate) else { return Ok(()) };
        if held().get(&key).is_some_and(|n| *n > 0) {
            let message = format!(
                "nested acquisition from the {} pool: this task already holds one of its \
                 connections and would wait for itself; run the query on the connection it holds",
                gate.name
            );
            tracing::error!("{message}");
            return Err(sqlx::Error::Configuration(message.into()));
        }
        Ok(())
    }

    pub fn hold(gate: &Arc<Gate>) -> Option<Key> {
        let key = key(gate)?;
        *held().entry(key).or_default() += 1;
        Some(key)
    }

    pub fn release(key: Key) {
        let mut held = held();
        if let Some(n) = held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&key);
            }
        }
    }
}

/// A connection of the caller's own from a [`Db`].
pub struct Conn {
    conn: PoolConnection<Postgres>,
    _held: Held,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// A transaction from a [`Db`]: commit it, roll it back, or drop it (which rolls back).
pub struct Tx {
    tx: Transaction<'static, Postgres>,
    _held: Held,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }
}

// Like sqlx's transaction, it is used as its connection: `&mut *tx` runs a query in it.
impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        async move {
            let mut conn = db.acquire().await?;
            conn.fetch_many(query).try_collect::<Vec<_>>().await
        }
        .map(|gathered| match gathered {
            Ok(items) => futures_util::stream::iter(items.into_iter().map(Ok)).boxed(),
            Err(error) => futures_util::stream::once(async { Err(error) }).boxed(),
        })
        .flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, Error>> {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, Error>> {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.describe(sql).await })
    }
}
