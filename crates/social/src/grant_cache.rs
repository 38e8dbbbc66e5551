//! Bearer-token look-ups kept in the process, invalidated by PostgreSQL itself (ADR 0030).
//!
//! Every authenticated request needs its token's grant — the scopes, and whether its user may
//! act. Reading it from PostgreSQL each time was one of the three or four statements of a home
//! page. Here a web process keeps the grants it has read, and forgets them when PostgreSQL says
//! they changed: triggers on `oauth_access_tokens`, `users` and `accounts` (a revocation, a
//! deleted token, a role, confirmation, approval or disabling, a suspension, a deletion) send
//! `NOTIFY stampede_auth, 'token:<digest>'` or `'account:<id>'` at commit, whatever wrote the
//! row — the API, the CLI, a worker, an operator's SQL. Each process LISTENs on one connection.
//!
//! What keeps it safe:
//! - nothing is cached while the listener is not connected (at start, after a lost connection),
//!   and the cache is emptied whenever it reconnects, since notifications may have been missed;
//! - a grant read from PostgreSQL is kept only if no invalidation arrived while it was being read
//!   (an epoch counter), so a revocation that commits during a look-up cannot be overwritten by
//!   the older answer;
//! - entries expire after `TOKEN_CACHE_SECONDS` (60 by default; 0 turns the cache off) whatever
//!   happens;
//! - writes that change a grant in this process evict it here at once ([`GrantCache::forget_account`],
//!   [`GrantCache::forget_token`]), so the process that revoked a token refuses it on the very
//!   next request; other processes follow within the notification's delivery (about a
//!   millisecond on a healthy database).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::tokens::Grant;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "stampede_auth";

/// At most this many grants are kept; past it the oldest half goes.
const CAPACITY: usize = 200_000;

#[derive(Debug, Default)]
struct Entries {
    by_digest: HashMap<String, (Grant, Instant)>,
    by_account: HashMap<i64, HashSet<String>>,
}

impl Entries {
    fn remove(&mut self, digest: &str) {
        if let Some((grant, _)) = self.by_digest.remove(digest)
            && let Some(account) = grant.account_id
            && let Some(digests) = self.by_account.get_mut(&account)
        {
            digests.remove(digest);
            if digests.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }

    fn clear(&mut self) {
        self.by_digest.clear();
        self.by_account.clear();
    }
}

/// The grants this process has read, by token digest.
#[derive(Debug)]
pub struct GrantCache {
    entries: Mutex<Entries>,
    ttl: Duration,
    /// The listener is connected and subscribed: only then are grants kept.
    live: AtomicBool,
    /// Bumped by every invalidation: a look-up keeps its answer only if it did not move.
    epoch: AtomicU64,
}

impl GrantCache {
    /// A cache whose entries live `ttl` at most; `Duration::ZERO` keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        GrantCache {
            entries: Mutex::new(Entries::default()),
            ttl,
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.live.load(Ordering::Acquire)
    }

    /// The cached grant of the token with `digest`, if fresh.
    pub fn get(&self, digest: &str) -> Option<Grant> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock();
        let (grant, at) = entries.by_digest.get(digest)?;
        (at.elapsed() < self.ttl).then(|| grant.clone())
    }

    /// Where a look-up starts: pass it to [`GrantCache::put`] with the answer.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps `grant`, read from PostgreSQL since `epoch`, unless something was invalidated
    /// meanwhile.
    pub fn put(&self, digest: &str, grant: &Grant, epoch: u64) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock();
        // Checked under the lock that invalidations take: none can slip in between.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.by_digest.len() >= CAPACITY {
            let mut ages: Vec<(Instant, String)> = entries
                .by_digest
                .iter()
                .map(|(d, (_, at))| (*at, d.clone()))
                .collect();
            ages.sort_unstable();
            for (_, old) in ages.into_iter().take(CAPACITY / 2) {
                entries.remove(&old);
            }
        }
        entries.remove(digest);
        if let Some(account) = grant.account_id {
            entries
                .by_account
                .entry(account)
                .or_default()
                .insert(digest.to_string());
        }
        entries
            .by_digest
            .insert(digest.to_string(), (grant.clone(), Instant::now()));
    }

    /// Notes that the cached grant's user was just marked active, so the next hits do not mark
    /// it again.
    pub fn touch_active(&self, digest: &str) {
        if let Some((grant, _)) = self.entries.lock().by_digest.get_mut(digest) {
            grant.last_active_at = Some(chrono::Utc::now());
        }
    }

    /// Forgets the token with `digest`.
    pub fn forget_token(&self, digest: &str) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(digest);
    }

    /// Forgets every token of `account`.
    pub fn forget_account(&self, account: i64) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(digests) = entries.by_account.remove(&account) {
            for digest in digests {
                entries.by_digest.remove(&digest);
            }
        }
    }

    /// Forgets everything, and keeps nothing until [`GrantCache::set_live`] says so.
    fn reset(&self, live: bool) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.live.store(live, Ordering::Release);
    }

    /// Applies one notification's payload (`token:<digest>` or `account:<id>`); anything else
    /// empties the cache, to be safe.
    pub fn apply(&self, payload: &str) {
        if let Some(digest) = payload.strip_prefix("token:") {
            self.forget_token(digest);
        } else if let Some(account) = payload
            .strip_prefix("account:")
            .and_then(|id| id.parse().ok())
        {
            self.forget_account(account);
        } else {
            tracing::warn!(
                payload,
                "unknown auth invalidation; emptying the token cache"
            );
            self.reset(self.live.load(Ordering::Acquire));
        }
    }

    /// How many grants are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().by_digest.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether grants are being kept (the listener is connected and the cache is on).
    pub fn is_live(&self) -> bool {
        self.enabled()
    }
}

/// Listens for invalidations on `pool`'s database until `shutdown`, keeping `cache` live only
/// while subscribed. Reconnects after a second when the connection fails.
pub async fn listen(
    pool: sqlx::PgPool,
    cache: std::sync::Arc<GrantCache>,
    shutdown: CancellationToken,
) {
    if cache.ttl.is_zero() {
        shutdown.cancelled().await;
        return;
    }
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                // Subscribed: from here every change is heard, so grants may be kept.
                cache.reset(true);
                loop {
                    let received = tokio::select! {
                        () = shutdown.cancelled() => {
                            cache.reset(false);
                            return;
                        }
                        received = listener.try_recv() => received,
                    };
                    match received {
                        Ok(Some(notification)) => cache.apply(notification.payload()),
                        // The connection was lost: what happened meanwhile is unknown.
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "token cache listener failed; not caching");
                            break;
                        }
                    }
                }
                cache.reset(false);
            }
            Err(error) => {
                cache.reset(false);
                tracing::debug!(%error, "token cache listener cannot connect; not caching");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A pool of one connection to `requests`' database, for the listener: it holds its connection
/// for good, so it must not take one of the pools' (a pool of DB_POOL would serve one fewer).
pub fn listener_pool(requests: &sqlx::PgPool) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with((*requests.connect_options()).clone())
}

async fn subscribe(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported (try_recv answers None), not silently re-made.
    listener.ignore_pool_close_event(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(account: i64) -> Grant {
        Grant {
            id: 1,
            application_id: None,
            scopes: "read".into(),
            revoked_at: None,
            account_id: Some(account),
            user_id: Some(account),
            role: None,
            confirmed_at: None,
            approved: Some(true),
            disabled: Some(false),
            suspended_at: None,
            last_active_at: None,
        }
    }

    #[test]
    fn keeps_only_while_live_and_forgets_on_invalidation() {
        let cache = GrantCache::new(Duration::from_secs(60));
        cache.put("a", &grant(7), cache.epoch());
        assert!(
            cache.get("a").is_none(),
            "nothing kept before the listener is live"
        );
        cache.reset(true);
        cache.put("a", &grant(7), cache.epoch());
        cache.put("b", &grant(7), cache.epoch());
        cache.put("c", &grant(8), cache.epoch());
        assert!(cache.get("a").is_some());
        cache.apply("account:7");
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
        assert!(cache.get("c").is_some());
        cache.apply("token:c");
        assert!(cache.get("c").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn an_answer_read_across_an_invalidation_is_not_kept() {
        let cache = GrantCache::new(Duration::from_secs(60));
        cache.reset(true);
        let before = cache.epoch();
        // The token is revoked while its (older) grant is being read.
        cache.apply("token:a");
        cache.put("a", &grant(7), before);
        assert!(cache.get("a").is_none());
        cache.reset(false);
        assert!(!cache.is_live());
    }

    #[test]
    fn entries_expire() {
        let cache = GrantCache::new(Duration::from_millis(1));
        cache.reset(true);
        cache.put("a", &grant(7), cache.epoch());
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("a").is_none());
    }
}
