//! Entities kept in the process between requests, each under the version of the row it was read
//! from (ADR 0032).
//!
//! A status or an account looks the same to every viewer except for a few flags. Reading and
//! decoding its text, mentions, tags, card, quote, media and application from PostgreSQL on
//! every page was most of a timeline's cost. Here a process keeps what it read, keyed by id,
//! with the row's version: PostgreSQL's `xmin`, the transaction that wrote the row's current
//! version. Any `UPDATE` writes a new version, so a change made by anything — the API, the inbox,
//! a worker, an operator's SQL — shows as a new `xmin`; the tables a status is rendered from
//! (media, cards, quotes, polls) touch their status's row when they change, so they move it too.
//!
//! Each page still asks PostgreSQL for the versions, together with the viewer's flags and the
//! authors' counts (one statement): an entry is used only when its version is the one read in
//! that statement. Nothing here can be stale beyond what the statement read; what is not checked
//! this way (a mentioned account's name and page, an application's name) is bounded by
//! [`MAX_AGE`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// An entry is dropped after this long, checked or not.
pub const MAX_AGE: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Entry<V> {
    version: i64,
    at: Instant,
    value: Arc<V>,
}

impl<V> Entry<V> {
    /// The value, if it was read at `version` and is not too old at `now`.
    fn at(&self, version: i64, now: Instant) -> Option<Arc<V>> {
        (self.version == version && now.duration_since(self.at) < MAX_AGE)
            .then(|| self.value.clone())
    }
}

/// Values by id, each under its row's version; at most `capacity` of them (0: none).
#[derive(Debug)]
pub struct VersionedCache<V> {
    entries: Mutex<HashMap<i64, Entry<V>>>,
    capacity: usize,
}

impl<V> VersionedCache<V> {
    /// A cache of at most `capacity` values; past it, the older half is dropped.
    pub fn new(capacity: usize) -> Self {
        VersionedCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value of `id` if it was read at `version`.
    pub fn get(&self, id: i64, version: i64) -> Option<Arc<V>> {
        self.entries.lock().get(&id)?.at(version, Instant::now())
    }

    /// The value of each `(id, version)` if it was read at that version: [`Self::get`] for a
    /// whole page under one lock.
    pub fn get_many(&self, keys: impl Iterator<Item = (i64, i64)>) -> Vec<Option<Arc<V>>> {
        let entries = self.entries.lock();
        let now = Instant::now();
        keys.map(|(id, version)| entries.get(&id)?.at(version, now))
            .collect()
    }

    /// The value of `id` whatever its version (only for what does not change in practice, and
    /// no older than [`MAX_AGE`]).
    pub fn get_any(&self, id: i64) -> Option<Arc<V>> {
        let entries = self.entries.lock();
        let entry = entries.get(&id)?;
        (entry.at.elapsed() < MAX_AGE).then(|| entry.value.clone())
    }

    /// Keeps `value`, read from the row of `id` at `version`.
    pub fn put(&self, id: i64, version: i64, value: Arc<V>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock();
        make_room(&mut entries, id, self.capacity, |e| e.at);
        entries.insert(
            id,
            Entry {
                version,
                at: Instant::now(),
                value,
            },
        );
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Before `id` is added to `entries`, which hold at most `capacity`: when they are full and `id`
/// is new, drops the older half (by `at`). Shared by this process's caches.
pub(crate) fn make_room<E>(
    entries: &mut HashMap<i64, E>,
    id: i64,
    capacity: usize,
    at: impl Fn(&E) -> Instant,
) {
    if entries.len() >= capacity && !entries.contains_key(&id) {
        let mut ages: Vec<(Instant, i64)> = entries.iter().map(|(id, e)| (at(e), *id)).collect();
        ages.sort_unstable();
        for (_, old) in ages.into_iter().take(capacity.div_ceil(2)) {
            entries.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_only_under_its_version() {
        let cache = VersionedCache::new(10);
        cache.put(1, 7, Arc::new("seven"));
        assert_eq!(cache.get(1, 7).as_deref(), Some(&"seven"));
        assert_eq!(cache.get(1, 8), None);
        assert_eq!(cache.get(2, 7), None);
        assert_eq!(cache.get_any(1).as_deref(), Some(&"seven"));
        cache.put(1, 8, Arc::new("eight"));
        assert_eq!(cache.get(1, 7), None);
        assert_eq!(cache.get(1, 8).as_deref(), Some(&"eight"));
        let many = cache.get_many([(1, 8), (1, 7), (2, 8)].into_iter());
        assert_eq!(many[0].as_deref(), Some(&"eight"));
        assert!(many[1].is_none() && many[2].is_none());
    }

    #[test]
    fn a_full_cache_drops_its_older_half_and_an_empty_one_keeps_nothing() {
        let cache = VersionedCache::new(4);
        for id in 0..4 {
            cache.put(id, 1, Arc::new(id));
        }
        assert_eq!(cache.len(), 4);
        cache.put(4, 1, Arc::new(4));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(0, 1).is_none() && cache.get(1, 1).is_none());
        assert!(cache.get(4, 1).is_some());
        let off = VersionedCache::new(0);
        off.put(1, 1, Arc::new(1));
        assert!(off.is_empty());
    }
}
