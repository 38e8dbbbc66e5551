//! Fast, rebuildable state: home and list feeds, streaming pub/sub, rate-limit counters and
//! short-lived cache entries.
//!
//! Nothing here is the truth — PostgreSQL is — so losing Redis loses no data: feeds are rebuilt
//! from the database and counters start over. [`Cache`] fronts Redis ([`redis_backend`]) and an
//! in-process implementation ([`memory`]) used by `stampede all` when REDIS_URL is unset; both
//! pass the same tests. Every key and channel is prefixed with REDIS_NAMESPACE, so several
//! deployments (and parallel tests) can share one server.

pub mod memory;
pub mod redis_backend;

use std::time::Duration;

use tokio::sync::broadcast;

/// A Redis operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// A message received on a pub/sub channel; `channel` is without the namespace prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    pub payload: String,
}

/// Messages buffered per subscriber before it starts losing the oldest (and is told so).
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// The feed/pub-sub/counter store.
#[derive(Clone, Debug)]
pub enum Cache {
    Redis(redis_backend::RedisCache),
    Memory(memory::MemoryCache),
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            Cache::Redis($c) => $e,
            Cache::Memory($c) => $e,
        }
    };
}

impl Cache {
    /// Checks that the store answers (for readiness).
    pub async fn check(&self) -> Result<(), CacheError> {
        dispatch!(self, c => c.check().await)
    }

    /// The server this store talks to (`host:port`), or `in-process`.
    pub fn node(&self) -> &'static str {
        match self {
            Cache::Redis(c) => c.node(),
            Cache::Memory(_) => "in-process",
        }
    }

    /// A cached value.
    pub async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        dispatch!(self, c => c.get(key).await)
    }

    /// Stores a value that expires after `ttl`.
    pub async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        dispatch!(self, c => c.set_ex(key, value, ttl).await)
    }

    /// Removes a key of any kind.
    pub async fn del(&self, key: &str) -> Result<(), CacheError> {
        dispatch!(self, c => c.del(key).await)
    }

    /// Counts a hit in the fixed window `key`, which starts at the first hit and lasts `window`;
    /// returns the count including this hit. Used for rate limits.
    pub async fn hit(&self, key: &str, window: Duration) -> Result<u64, CacheError> {
        dispatch!(self, c => c.hit(key, window).await)
    }

    /// Adds each entry's ids to its feed (sorted sets scored by id) and trims each feed to the
    /// newest `max_len`; returns how many ids were written. With `kept_by` suffixes, a feed is
    /// written only while one of `key + suffix` exists (one round trip to ask, one to write);
    /// with none, every feed is (one round trip).
    pub async fn feed_push(
        &self,
        entries: &[(String, Vec<i64>)],
        max_len: usize,
        kept_by: &[&str],
    ) -> Result<usize, CacheError> {
        dispatch!(self, c => c.feed_push(entries, max_len, kept_by).await)
    }

    /// Ids in a feed, newest first, strictly between `min` and `max` when given.
    pub async fn feed_range(
        &self,
        key: &str,
        max: Option<i64>,
        min: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, CacheError> {
        dispatch!(self, c => c.feed_range(key, max, min, limit).await)
    }

    /// Removes `ids` from each feed in `keys`, in one round trip.
    pub async fn feed_remove(&self, keys: &[String], ids: &[i64]) -> Result<(), CacheError> {
        dispatch!(self, c => c.feed_remove(keys, ids).await)
    }

    /// Reads a feed that is known to be complete: `None` when `marker` is absent (the feed was
    /// never built, has expired or Redis lost it), else the ids as [`Cache::feed_range`] gives
    /// them — and the marker's lifetime starts over. One round trip.
    pub async fn feed_read(
        &self,
        key: &str,
        marker: &str,
        ttl: Duration,
        max: Option<i64>,
        min: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, CacheError> {
        dispatch!(self, c => c.feed_read(key, marker, ttl, max, min, limit).await)
    }

    /// Adds `ids` to feed `key`, trims it to the newest `max_len` and sets `marker` for `ttl`:
    /// the end of a rebuild. One round trip.
    pub async fn feed_fill(
        &self,
        key: &str,
        ids: &[i64],
        max_len: usize,
        marker: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        dispatch!(self, c => c.feed_fill(key, ids, max_len, Some((marker, ttl))).await)
    }

    /// Adds `ids` to feed `key` and trims it to the newest `max_len`, leaving its ready marker
    /// alone: a merge into a feed must never mark a feed ready that it did not build whole (if
    /// the feed was lost between the merge's check and its write, the next read rebuilds it).
    pub async fn feed_add(&self, key: &str, ids: &[i64], max_len: usize) -> Result<(), CacheError> {
        dispatch!(self, c => c.feed_fill(key, ids, max_len, None).await)
    }

    /// Publishes `payload` on `channel`; returns how many subscribers (processes) received it.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<u64, CacheError> {
        dispatch!(self, c => c.publish(channel, payload).await)
    }

    /// Every message published under the namespace. The process holds one subscription to the
    /// server, started on first call and re-established after a disconnect, fanned out in memory
    /// to every receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        dispatch!(self, c => c.subscribe())
    }
}
