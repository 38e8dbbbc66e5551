//! A viewer's flags for the statuses on their pages, kept in the process between pages (ADR 0043).
//!
//! Whether a viewer may see a status, mutes it, favourited, boosted, bookmarked or pinned it,
//! muted its conversation or follows its author depends on three things only: the status's row,
//! its author's row, and the viewer's own rows (favourites, bookmarks, pins, conversation mutes,
//! filters, mutes, domain blocks, follows, boosts, blocks either way). The first two have
//! versions (`xmin`, ADR 0032). The third has the viewer's version: the sum of their rows in
//! `viewer_changes`, which a trigger on each of those tables adds to in the writing transaction.
//!
//! A page of a viewer held here reads only the versions (with the authors' counts); the flags of
//! a status are taken from here when all three versions are the ones they were read under, and
//! read with the full statement otherwise. A mute that expires changes a flag without a write:
//! the viewer's entry ends at the next expiry the full statement saw.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::entity_cache::{MAX_AGE, make_room};

/// What a viewer's relations say about one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Flags {
    pub visible: bool,
    pub muted: bool,
    pub favourited: bool,
    pub reblogged: bool,
    pub bookmarked: bool,
    pub pinned: bool,
    pub conversation_muted: bool,
    pub viewer_follows: bool,
    pub viewer_filters: bool,
}

/// A status's versions as a page read them: its row's and its author's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub status: i64,
    pub account: i64,
}

/// A viewer's kept flags beyond this many statuses start afresh.
const STATUSES_PER_VIEWER: usize = 1_000;

#[derive(Debug)]
struct Entry {
    version: i64,
    until: Instant,
    at: Instant,
    flags: HashMap<i64, (Versions, Flags)>,
}

/// Flags by viewer, each viewer's under their version; at most `capacity` viewers (0: none).
#[derive(Debug)]
pub struct ViewerCache {
    viewers: Mutex<HashMap<i64, Entry>>,
    capacity: usize,
}

impl ViewerCache {
    /// A cache of at most `capacity` viewers; past it, the older half is dropped.
    pub fn new(capacity: usize) -> Self {
        ViewerCache {
            viewers: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Whether `viewer`'s flags are kept (then a page asks for the versions first).
    pub fn holds(&self, viewer: i64) -> bool {
        self.capacity > 0
            && self
                .viewers
                .lock()
                .get(&viewer)
                .is_some_and(|e| e.until > Instant::now())
    }

    /// The flags of each status of `page` (id and versions) as kept for `viewer` at `version`;
    /// `None` for those not kept at these versions.
    pub fn lookup(
        &self,
        viewer: i64,
        version: i64,
        page: impl Iterator<Item = (i64, Versions)>,
    ) -> Vec<Option<Flags>> {
        let viewers = self.viewers.lock();
        let entry = viewers
            .get(&viewer)
            .filter(|e| e.version == version && e.until > Instant::now());
        page.map(|(id, versions)| {
            let (kept, flags) = entry?.flags.get(&id)?;
            (*kept == versions).then_some(*flags)
        })
        .collect()
    }

    /// Keeps `flags` (status id, versions, flags), read for `viewer` at `version` in a statement
    /// that saw the viewer's next mute expiry `expires_in` from then.
    pub fn store(
        &self,
        viewer: i64,
        version: i64,
        expires_in: Option<Duration>,
        flags: impl Iterator<Item = (i64, Versions, Flags)>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let until = now + expires_in.map_or(MAX_AGE, |d| d.min(MAX_AGE));
        let mut viewers = self.viewers.lock();
        make_room(&mut viewers, viewer, self.capacity, |e| e.at);
        let entry = viewers.entry(viewer).or_insert_with(|| Entry {
            version,
            until,
            at: now,
            flags: HashMap::new(),
        });
        if version < entry.version {
            // Read where the viewer's last change had not arrived yet (a lagging replica).
            return;
        }
        if version > entry.version || entry.flags.len() >= STATUSES_PER_VIEWER {
            entry.flags.clear();
            entry.version = version;
            entry.at = now;
        }
        // The entry ends at the earliest expiry any of its statements saw.
        entry.until = entry.until.min(until);
        if entry.until <= now {
            entry.until = until;
            entry.flags.clear();
            entry.at = now;
        }
        entry
            .flags
            .extend(flags.map(|(id, versions, flags)| (id, (versions, flags))));
    }

    /// How many viewers are kept.
    pub fn len(&self) -> usize {
        self.viewers.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Versions = Versions {
        status: 10,
        account: 20,
    };

    fn fav() -> Flags {
        Flags {
            visible: true,
            favourited: true,
            ..Flags::default()
        }
    }

    #[test]
    fn flags_are_found_only_under_the_viewers_and_the_statuses_versions() {
        let cache = ViewerCache::new(10);
        assert!(!cache.holds(1));
        cache.store(1, 5, None, [(100, V, fav())].into_iter());
        assert!(cache.holds(1));
        assert_eq!(
            cache.lookup(1, 5, [(100, V)].into_iter()),
            vec![Some(fav())]
        );
        // The viewer changed something: nothing kept counts.
        assert_eq!(cache.lookup(1, 6, [(100, V)].into_iter()), vec![None]);
        // The status or its author changed.
        let edited = Versions { status: 11, ..V };
        let renamed = Versions { account: 21, ..V };
        assert_eq!(
            cache.lookup(1, 5, [(100, edited), (100, renamed), (101, V)].into_iter()),
            vec![None, None, None]
        );
        assert_eq!(cache.lookup(2, 5, [(100, V)].into_iter()), vec![None]);
    }

    #[test]
    fn a_newer_version_starts_afresh_and_an_older_one_is_not_kept() {
        let cache = ViewerCache::new(10);
        cache.store(1, 5, None, [(100, V, fav())].into_iter());
        cache.store(1, 4, None, [(101, V, Flags::default())].into_iter());
        assert_eq!(
            cache.lookup(1, 5, [(100, V), (101, V)].into_iter()),
            vec![Some(fav()), None]
        );
        cache.store(1, 6, None, [(101, V, Flags::default())].into_iter());
        assert_eq!(
            cache.lookup(1, 6, [(100, V), (101, V)].into_iter()),
            vec![None, Some(Flags::default())]
        );
    }

    #[test]
    fn an_expiring_mute_ends_the_entry() {
        let cache = ViewerCache::new(10);
        cache.store(1, 5, Some(Duration::ZERO), [(100, V, fav())].into_iter());
        assert!(!cache.holds(1));
        assert_eq!(cache.lookup(1, 5, [(100, V)].into_iter()), vec![None]);
    }

    #[test]
    fn a_full_cache_drops_its_older_half_and_an_empty_one_keeps_nothing() {
        let cache = ViewerCache::new(2);
        cache.store(1, 1, None, std::iter::empty());
        cache.store(2, 1, None, std::iter::empty());
        cache.store(3, 1, None, std::iter::empty());
        assert_eq!(cache.len(), 2);
        assert!(!cache.holds(1) && cache.holds(3));
        let off = ViewerCache::new(0);
        off.store(1, 1, None, std::iter::empty());
        assert!(off.is_empty() && !off.holds(1));
    }
}
