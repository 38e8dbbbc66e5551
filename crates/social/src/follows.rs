//! Following an account: one statement, one round trip.
//!
//! In a migration surge following is what newcomers do most (each follows 50–200 accounts within
//! a minute of signing up), and a follow written as a transaction of eight statements cost ten
//! round trips to PostgreSQL. Here the block check, the follow (or the update of an existing one),
//! both counters, the home-feed merge, the notification and its stream message are one statement
//! of data-modifying CTEs: atomic without BEGIN and COMMIT, and one round trip.

use sqlx::{PgConnection, Row};
use stampede_core::id::IdGenerator;
use stampede_queue::{Envelope, Message};

use crate::distribute::{Backfill, Fanout, NotificationRef, Pair};
use crate::notification;

/// What [`follow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// One of the two blocks the other: nothing was written.
    Blocked,
    /// A new follow, with its counters, feed merge and notification.
    New,
    /// The follow existed; `reblogs` and `notify` were updated where given.
    Updated,
}

/// Whether the followed account gets a `follow` notification: yes for a follow, no for a
/// follow request it authorized itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tell {
    Target,
    Nobody,
}

/// `account_id` follows `target` (not the same account): a new follow, or an update of
/// `reblogs` / `notify` on an existing one. Runs on the caller's connection, in its transaction
/// if it has one. Counter rows are locked in the order of their ids, so two people following
/// each other at once cannot deadlock.
pub async fn follow(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    account_id: i64,
    target: i64,
    reblogs: Option<bool>,
    notify: Option<bool>,
    tell: Tell,
) -> Result<Followed, sqlx::Error> {
    let notification_id = ids.next_id().as_i64();
    let merge = Envelope::of(&Backfill::FeedMerge(Pair {
        account_id,
        target_account_id: target,
    }));
    let announce = Envelope::of(&Fanout::NotificationCreated(NotificationRef {
        notification_id,
    }));
    let row = sqlx::query(
        "WITH blocked AS ( \
           SELECT EXISTS (SELECT 1 FROM blocks \
                          WHERE (account_id = $2 AND target_account_id = $3) \
                             OR (account_id = $3 AND target_account_id = $2)) AS yes), \
         f AS ( \
           INSERT INTO follows (id, account_id, target_account_id, show_reblogs, notify) \
           SELECT $1, $2, $3, coalesce($4, true), coalesce($5, false) FROM blocked WHERE NOT yes \
           ON CONFLICT (account_id, target_account_id) DO UPDATE \
             SET show_reblogs = coalesce($4, follows.show_reblogs), \
                 notify = coalesce($5, follows.notify) \
           RETURNING (xmax = 0) AS fresh), \
         counts AS ( \
           INSERT INTO account_stats AS st (account_id, following_count, followers_count) \
           SELECT c.id, c.following, c.followers FROM f, \
                  (VALUES ($2::bigint, 1, 0), ($3::bigint, 0, 1)) AS c (id, following, followers) \
           WHERE f.fresh ORDER BY c.id \
           ON CONFLICT (account_id) DO UPDATE \
             SET following_count = st.following_count + EXCLUDED.following_count, \
                 followers_count = st.followers_count + EXCLUDED.followers_count), \
         merge AS ( \
           INSERT INTO outbox (queue, envelope) SELECT $6, $7 FROM f WHERE f.fresh), \
         n AS ( \
           INSERT INTO notifications (id, account_id, from_account_id, type) \
           SELECT $8, $3, $2, $9 FROM f WHERE f.fresh AND $12 \
             AND NOT EXISTS (SELECT 1 FROM mutes WHERE account_id = $3 AND target_account_id = $2 \
                               AND hide_notifications \
                               AND (expires_at IS NULL OR expires_at > now())) \
           ON CONFLICT DO NOTHING RETURNING id), \
         announce AS ( \
           INSERT INTO outbox (queue, envelope) SELECT $10, $11 FROM n) \
         SELECT (SELECT yes FROM blocked) AS blocked, (SELECT fresh FROM f) AS fresh",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(target)
    .bind(reblogs)
    .bind(notify)
    .bind(Backfill::QUEUE.name())
    .bind(sqlx::types::Json(&merge))
    .bind(notification_id)
    .bind(notification::FOLLOW)
    .bind(Fanout::QUEUE.name())
    .bind(sqlx::types::Json(&announce))
    .bind(tell == Tell::Target)
    .fetch_one(conn)
    .await?;
    if row.try_get::<bool, _>("blocked")? {
        return Ok(Followed::Blocked);
    }
    Ok(if row.try_get::<Option<bool>, _>("fresh")? == Some(true) {
        Followed::New
    } else {
        Followed::Updated
    })
}
