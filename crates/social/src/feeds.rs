//! Home feeds: Redis sorted sets of status ids (scored by id), newest [`FEED_MAX`] kept.
//!
//! A feed is trusted only while its *ready marker* lives. The marker is set when the feed is
//! built and its lifetime starts over on every read; it lasts a little less than the fan-out's
//! activity window, so a feed that fan-out stopped writing to (its owner was away) has always
//! lost its marker first. A read that finds no marker — a returning user, a new follower of
//! nobody, or a Redis that lost everything — answers from PostgreSQL and rebuilds the feed.

use std::time::Duration;

use sqlx::PgPool;
use stampede_cache::{Cache, CacheError};
use stampede_config::StatusesConfig;

/// Statuses kept per home feed (Mastodon's 800).
pub const FEED_MAX: usize = 800;

/// The home feed of a local account.
pub fn home_key(account_id: i64) -> String {
    format!("feed:home:{account_id}")
}

/// Present while [`home_key`] is complete.
pub fn ready_key(account_id: i64) -> String {
    format!("feed:home:{account_id}:ready")
}

fn rebuilding_key(account_id: i64) -> String {
    format!("feed:home:{account_id}:rebuilding")
}

/// How long a built feed is trusted without being read: the activity window less 12 hours
/// (the window is measured from `users.last_active_at`, which is written at most hourly).
pub fn ready_ttl(config: &StatusesConfig) -> Duration {
    Duration::from_secs((u64::from(config.active_days) * 24 * 3600).saturating_sub(12 * 3600))
        .max(Duration::from_secs(3600))
}

/// Bounds of a page of ids: strictly below `max`, strictly above `min`; `ascending` when the
/// page should start just above `min` (Mastodon's `min_id`) rather than at the top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub max: Option<i64>,
    pub min: Option<i64>,
    pub ascending: bool,
    pub limit: usize,
}

impl Bounds {
    pub fn order(&self) -> &'static str {
        if self.ascending { "ASC" } else { "DESC" }
    }
}

/// The home timeline's candidates straight from PostgreSQL: the viewer's own statuses and those
/// of accounts they follow (reblogs only where they show them; replies only to themselves, to
/// the viewer or to someone the viewer follows), visible to the viewer and not muted — newest
/// first (or oldest first when `bounds.ascending`).
pub async fn home_from_db(
    db: &PgPool,
    viewer: i64,
    bounds: Bounds,
) -> Result<Vec<i64>, sqlx::Error> {
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE (s.account_id = $1 OR s.account_id IN \
                 (SELECT target_account_id FROM follows WHERE account_id = $1)) \
           AND ($2::bigint IS NULL OR s.id < $2) AND ($3::bigint IS NULL OR s.id > $3) \
           AND (s.reblog_of_id IS NULL OR s.account_id = $1 OR EXISTS ( \
                 SELECT 1 FROM follows f WHERE f.account_id = $1 \
                   AND f.target_account_id = s.account_id AND f.show_reblogs)) \
           AND (s.in_reply_to_account_id IS NULL OR s.account_id = $1 \
                OR s.in_reply_to_account_id IN (s.account_id, $1) OR EXISTS ( \
                 SELECT 1 FROM follows f WHERE f.account_id = $1 \
                   AND f.target_account_id = s.in_reply_to_account_id)) \
           AND status_visible(s.id, $1) AND NOT status_muted(s.id, $1) \
         ORDER BY s.id {} LIMIT $4",
        bounds.order()
    );
    sqlx::query_scalar(&sql)
        .bind(viewer)
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(bounds.limit as i64)
        .fetch_all(db)
        .await
}

/// Statuses of followed accounts with more followers than the fan-out threshold, which fan-out
/// skips: merged into the home timeline when it is read.
pub async fn hybrid_ids(
    db: &PgPool,
    viewer: i64,
    threshold: i64,
    bounds: Bounds,
) -> Result<Vec<i64>, sqlx::Error> {
    let sql = format!(
        "SELECT s.id FROM follows f \
         JOIN account_stats st ON st.account_id = f.target_account_id AND st.followers_count > $2 \
         CROSS JOIN LATERAL ( \
            SELECT id FROM statuses s WHERE s.account_id = f.target_account_id \
              AND ($3::bigint IS NULL OR s.id < $3) AND ($4::bigint IS NULL OR s.id > $4) \
            ORDER BY s.id {order} LIMIT $5) s \
         WHERE f.account_id = $1 ORDER BY s.id {order} LIMIT $5",
        order = bounds.order()
    );
    sqlx::query_scalar(&sql)
        .bind(viewer)
        .bind(threshold)
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(bounds.limit as i64)
        .fetch_all(db)
        .await
}

/// Rebuilds `account_id`'s home feed from PostgreSQL unless another request is already doing
/// so; returns whether this call did.
pub async fn rebuild_home(
    db: &PgPool,
    cache: &Cache,
    config: &StatusesConfig,
    account_id: i64,
) -> anyhow::Result<bool> {
    // The first caller within 30 s wins; the others answer from PostgreSQL meanwhile.
    if cache
        .hit(&rebuilding_key(account_id), Duration::from_secs(30))
        .await?
        > 1
    {
        return Ok(false);
    }
    let ids = home_from_db(
        db,
        account_id,
        Bounds {
            limit: FEED_MAX,
            ..Bounds::default()
        },
    )
    .await?;
    cache
        .feed_fill(
            &home_key(account_id),
            &ids,
            FEED_MAX,
            &ready_key(account_id),
            ready_ttl(config),
        )
        .await?;
    cache.del(&rebuilding_key(account_id)).await?;
    Ok(true)
}

/// Writes `status_id` into the home feeds of `accounts`, in batches (one round trip each).
pub async fn push(cache: &Cache, accounts: &[i64], status_id: i64) -> Result<(), CacheError> {
    for chunk in accounts.chunks(2_000) {
        let keys: Vec<String> = chunk.iter().map(|a| home_key(*a)).collect();
        cache.feed_push(&keys, status_id, FEED_MAX).await?;
    }
    Ok(())
}

/// Removes `status_ids` from the home feeds of `accounts`, in batches.
pub async fn remove(cache: &Cache, accounts: &[i64], status_ids: &[i64]) -> Result<(), CacheError> {
    for chunk in accounts.chunks(2_000) {
        let keys: Vec<String> = chunk.iter().map(|a| home_key(*a)).collect();
        cache.feed_remove(&keys, status_ids).await?;
    }
    Ok(())
}
