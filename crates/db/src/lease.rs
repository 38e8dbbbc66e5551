//! Connections for the hot paths, handed back without a round trip.
//!
//! sqlx pings every connection that goes back to its pool: a protocol Sync and its answer, one
//! more round trip per checkout. It does that because it cannot know whether the last user
//! finished (a future cancelled mid-query leaves a connection mid-protocol; a dropped transaction
//! leaves a queued ROLLBACK). Under a sign-up surge that ping was a third of the round trips a
//! sign-up caused, and each round trip wakes a process on the other core (ADR 0015).
//!
//! [`Leases`] keeps a few connections of its own, outside sqlx's pool, so that keeping them never
//! starves code that uses the pool. A [`Lease`] knows whether its work finished: the code that
//! took it says [`Lease::finish`] once every query is answered and no transaction is open, and
//! only then is the connection kept, unpinged, for the next lease. A lease dropped any other way
//! (an error returned with `?`, a cancelled future) closes its connection; PostgreSQL rolls back
//! whatever it left open. When all of its own connections are leased, a lease borrows one from
//! sqlx's pool, and that one goes back to the pool (with sqlx's ping) as before.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use sqlx::{Connection, PgConnection};

use crate::gate::{Conn, Db};

/// A kept connection unused this long may have been dropped by the server or a firewall; it is
/// pinged before it is leased again.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// A connection of our own is closed after this long, as sqlx does with its own (its default
/// maximum lifetime), so that server-side memory and a changed DNS answer are picked up.
pub const LIFETIME: Duration = Duration::from_secs(30 * 60);

struct Kept {
    conn: PgConnection,
    opened: Instant,
    idle_since: Instant,
}

/// A few connections reused without sqlx's ping on release, beside a pool. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    pool: Db,
    kept: Arc<ArrayQueue<Kept>>,
    /// Connections of our own that exist (kept or leased); never more than `kept`'s capacity.
    open: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("keep", &self.kept.capacity())
            .field("kept", &self.kept.len())
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish()
    }
}

impl Leases {
    /// Up to a quarter of `pool`'s size (at least one) in connections of its own, opened with
    /// the pool's options when first needed.
    pub fn new(pool: Db) -> Self {
        let keep = (pool.pool().options().get_max_connections() as usize / 4).max(1);
        Leases {
            pool,
            kept: Arc::new(ArrayQueue::new(keep)),
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The pool beside which the connections are kept.
    pub fn pool(&self) -> &Db {
        &self.pool
    }

    /// How many connections are kept, waiting for a lease, right now.
    pub fn kept_now(&self) -> usize {
        self.kept.len()
    }

    /// How many connections of its own exist, kept or leased.
    pub fn open_now(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A connection: a kept one, else a new one of its own while fewer than a quarter of the
    /// pool's size exist, else one borrowed from the pool.
    pub async fn take(&self) -> Result<Lease, sqlx::Error> {
        while let Some(kept) = self.kept.pop() {
            if kept.opened.elapsed() >= LIFETIME {
                self.discard(kept.conn);
                continue;
            }
            // A lease from here on, so that a caller cancelled during the ping still closes the
            // connection and gives back its place.
            let mut lease = self.lease(Held::Own(kept.conn), kept.opened);
            if kept.idle_since.elapsed() >= IDLE_LIMIT && lease.ping().await.is_err() {
                continue;
            }
            return Ok(lease);
        }
        if let Some(place) = Place::reserve(self) {
            let options = self.pool.pool().connect_options();
            let conn = PgConnection::connect_with(&options).await?;
            place.fill();
            return Ok(self.lease(Held::Own(conn), Instant::now()));
        }
        Ok(self.lease(Held::Pooled(self.pool.acquire().await?), Instant::now()))
    }

    fn lease(&self, held: Held, opened: Instant) -> Lease {
        Lease {
            held: Some(held),
            opened,
            home: self.clone(),
        }
    }

    /// Closes a connection of our own that will not be kept. PostgreSQL rolls back whatever a
    /// closed connection left open.
    fn discard(&self, conn: PgConnection) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
            });
        }
    }
}

/// A reserved place for a new connection of our own, given back unless [`Place::fill`] is
/// called (the connection failed, or the caller was cancelled while it connected).
struct Place<'a>(Option<&'a AtomicUsize>);

impl<'a> Place<'a> {
    fn reserve(leases: &'a Leases) -> Option<Self> {
        let capacity = leases.kept.capacity();
        leases
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(Some(&leases.open)))
    }

    fn fill(mut self) {
        self.0 = None;
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(open) = self.0 {
            open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

enum Held {
    /// One of [`Leases`]' own connections.
    Own(PgConnection),
    /// Borrowed from the pool (through its gate), because all our own were leased.
    Pooled(Conn),
}

/// A connection taken from [`Leases`]. Use it as a `&mut PgConnection` (`&mut *lease`); call
/// [`Lease::finish`] when the work is done. Dropping it instead closes the connection (or, if it
/// was borrowed from the pool, hands it back to sqlx, which pings it).
pub struct Lease {
    held: Option<Held>,
    opened: Instant,
    home: Leases,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// The work on this connection is done: every query answered, any transaction committed or
    /// rolled back. The connection is kept for the next lease without a ping. A connection
    /// still in a transaction, or with a message not yet sent (the ROLLBACK that a dropped
    /// transaction queues), is closed instead.
    pub fn finish(mut self) {
        match self.held.take() {
            Some(Held::Own(conn)) if !conn.is_in_transaction() && !conn.should_flush() => {
                let kept = Kept {
                    conn,
                    opened: self.opened,
                    idle_since: Instant::now(),
                };
                // There is room: no more connections of our own exist than the queue holds.
                if let Err(kept) = self.home.kept.push(kept) {
                    self.home.discard(kept.conn);
                }
            }
            Some(Held::Own(conn)) => self.home.discard(conn),
            // Back to sqlx, with its ping.
            Some(Held::Pooled(_)) | None => {}
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(Held::Own(conn)) = self.held.take() {
            self.home.discard(conn);
        }
    }
}

impl Deref for Lease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self.held.as_ref() {
            Some(Held::Own(conn)) => conn,
            Some(Held::Pooled(conn)) => conn,
            None => unreachable!("a lease holds its connection until it is finished or dropped"),
        }
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self.held.as_mut() {
            Some(Held::Own(conn)) => conn,
            Some(Held::Pooled(conn)) => conn,
            None => unreachable!("a lease holds its connection until it is finished or dropped"),
        }
    }
}
