//! Following an account: one statement, one round trip.
//!
//! In a migration surge following is what newcomers do most (each follows 50–200 accounts within
//! a minute of signing up), and a follow written as a transaction of eight statements cost ten
//! round trips to PostgreSQL. Here the block check, the follow (or the update of an existing one),
//! both counters, the home-feed merge, the notification and its stream message are one statement
//! of data-modifying CTEs: atomic without BEGIN and COMMIT, and one round trip.

use std::sync::LazyLock;

use sqlx::{PgConnection, Row};
use stampede_core::id::IdGenerator;
use stampede_queue::{Envelope, Message, outbox};

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
    static FOLLOW: LazyLock<String> = LazyLock::new(|| {
        format!(
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
           INSERT INTO notifications (id, account_id, from_account_id, type, group_key) \
           SELECT $8, $3, $2, $9, {} FROM f WHERE f.fresh AND $12 \
             AND NOT EXISTS (SELECT 1 FROM mutes WHERE account_id = $3 AND target_account_id = $2 \
                               AND hide_notifications \
                               AND (expires_at IS NULL OR expires_at > now())) \
           ON CONFLICT DO NOTHING RETURNING id), \
         announce AS ( \
           INSERT INTO outbox (queue, envelope) SELECT $10, $11 FROM n) \
         SELECT (SELECT yes FROM blocked) AS blocked, (SELECT fresh FROM f) AS fresh",
            notification::group_key_in_place("$3", "$2", "$9", "NULL::bigint")
        )
    });
    let row = sqlx::query(FOLLOW.as_str())
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

/// Adds `delta` to the follower's `following_count` and the followed account's
/// `followers_count`, locking the two rows in the order of their ids: two people following each
/// other at the same moment would otherwise each hold one row and wait for the other's (a
/// deadlock PostgreSQL breaks by failing one of them).
async fn bump_follow_counts(
    conn: &mut PgConnection,
    account_id: i64,
    target: i64,
    delta: i64,
) -> Result<(), sqlx::Error> {
    let mut rows = [(account_id, "following_count"), (target, "followers_count")];
    rows.sort_by_key(|(id, _)| *id);
    for (id, column) in rows {
        sqlx::query(&format!(
            "INSERT INTO account_stats (account_id, {column}) VALUES ($1, greatest($2, 0)) \
             ON CONFLICT (account_id) DO UPDATE SET {column} = greatest(account_stats.{column} + $2, 0)"
        ))
        .bind(id)
        .bind(delta)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies `reblogs` and `notify` (when given) to a follow that already exists; false when
/// there is none. Asking again to follow someone already followed only changes these options.
async fn update_existing(
    conn: &mut PgConnection,
    account_id: i64,
    target: i64,
    reblogs: Option<bool>,
    notify: Option<bool>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE follows SET show_reblogs = coalesce($3, show_reblogs), notify = coalesce($4, notify) \
         WHERE account_id = $1 AND target_account_id = $2",
    )
    .bind(account_id)
    .bind(target)
    .bind(reblogs)
    .bind(notify)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// `account_id` asks locked local account `target` to be followed, in the caller's
/// transaction: a follow accepted earlier is updated instead (`reblogs`, `notify`), otherwise a
/// follow request is filed (once, with a `follow_request` notification). False when one blocks
/// the other (nothing written).
pub async fn request(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    account_id: i64,
    target: i64,
    reblogs: Option<bool>,
    notify: Option<bool>,
) -> Result<bool, sqlx::Error> {
    let blocked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (account_id = $1 AND target_account_id = $2) \
                                               OR (account_id = $2 AND target_account_id = $1))",
    )
    .bind(account_id)
    .bind(target)
    .fetch_one(&mut *conn)
    .await?;
    if blocked {
        return Ok(false);
    }
    if update_existing(conn, account_id, target, reblogs, notify).await? {
        return Ok(true);
    }
    let fresh: bool = sqlx::query_scalar(
        "INSERT INTO follow_requests (id, account_id, target_account_id, show_reblogs, notify) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, target_account_id) \
         DO UPDATE SET show_reblogs = EXCLUDED.show_reblogs, notify = EXCLUDED.notify \
         RETURNING (xmax = 0)",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(target)
    .bind(reblogs.unwrap_or(true))
    .bind(notify.unwrap_or(false))
    .fetch_one(&mut *conn)
    .await?;
    if fresh {
        notification::create(
            conn,
            ids.next_id().as_i64(),
            target,
            account_id,
            notification::FOLLOW_REQUEST,
            None,
        )
        .await?;
    }
    Ok(true)
}

/// `account_id` stops following `target` (either direction is the caller's choice: removing a
/// follower is the follower's unfollow): the follow, both counters, and the feed unmerge.
/// `false` if there was no follow.
pub async fn unfollow(
    conn: &mut PgConnection,
    account_id: i64,
    target: i64,
) -> Result<bool, sqlx::Error> {
    let removed =
        sqlx::query("DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2")
            .bind(account_id)
            .bind(target)
            .execute(&mut *conn)
            .await?;
    if removed.rows_affected() == 0 {
        return Ok(false);
    }
    bump_follow_counts(conn, account_id, target, -1).await?;
    outbox::send(
        conn,
        &Backfill::FeedUnmerge(Pair {
            account_id,
            target_account_id: target,
        }),
    )
    .await?;
    Ok(true)
}

/// `account_id` no longer follows `target` and withdraws any request to: the follow (as
/// [`unfollow`]) and the request go. A remote target is told by [`undo_remote`], called first.
/// `false` if there was neither.
pub async fn withdraw(
    conn: &mut PgConnection,
    account_id: i64,
    target: i64,
) -> Result<bool, sqlx::Error> {
    let request =
        sqlx::query("DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2")
            .bind(account_id)
            .bind(target)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok(unfollow(conn, account_id, target).await? || request > 0)
}

/// Local account `account_id` authorizes the follow request of `requester`: the follow starts
/// (with no `follow` notification: the account chose it) and a remote requester's server gets an
/// `Accept`. `false` if there was no request.
pub async fn authorize(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    account_id: i64,
    requester: i64,
) -> Result<bool, sqlx::Error> {
    let request = sqlx::query(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 \
         RETURNING show_reblogs, notify, uri",
    )
    .bind(requester)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(request) = request else {
        return Ok(false);
    };
    follow(
        conn,
        ids,
        requester,
        account_id,
        Some(request.try_get("show_reblogs")?),
        Some(request.try_get("notify")?),
        Tell::Nobody,
    )
    .await?;
    crate::outbound::answer_follow(
        conn,
        base,
        account_id,
        requester,
        request.try_get("uri")?,
        true,
    )
    .await?;
    Ok(true)
}

/// Local account `account_id` rejects the follow request of `requester`; a remote requester's
/// server gets a `Reject`. `false` if there was no request.
pub async fn reject(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    requester: i64,
) -> Result<bool, sqlx::Error> {
    let removed: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2 RETURNING uri",
    )
    .bind(requester)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(follow_uri) = removed else {
        return Ok(false);
    };
    crate::outbound::answer_follow(conn, base, account_id, requester, follow_uri, false).await?;
    Ok(true)
}

/// `follower` no longer follows local account `account_id`: a remote follower's server is told
/// with a `Reject` of its `Follow`, as Mastodon does. `false` if it did not follow.
pub async fn remove_follower(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    follower: i64,
    follower_is_remote: bool,
) -> Result<bool, sqlx::Error> {
    let follow_uri: Option<Option<String>> = sqlx::query_scalar(
        "SELECT uri FROM follows WHERE account_id = $1 AND target_account_id = $2",
    )
    .bind(follower)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(uri) = follow_uri else {
        return Ok(false);
    };
    if follower_is_remote {
        crate::outbound::answer_follow(conn, base, account_id, follower, uri, false).await?;
    }
    unfollow(conn, follower, account_id).await
}

/// What a follow of a remote account became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// One of the two blocks the other.
    Blocked,
    /// Already followed: `reblogs` / `notify` updated.
    Updated,
    /// A request was sent (or is still pending); the follow starts when the server Accepts.
    Requested,
}

/// `account_id` asks remote account `target` to be followed: a follow request and a `Follow`
/// activity to the account's inbox, in the caller's transaction. Already following updates
/// `reblogs` / `notify`, as a local follow does.
pub async fn ask_remote(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    account_id: i64,
    target: i64,
    reblogs: Option<bool>,
    notify: Option<bool>,
) -> Result<Asked, sqlx::Error> {
    let row = sqlx::query(
        "SELECT me.username, t.uri, t.inbox_url, \
           EXISTS (SELECT 1 FROM blocks WHERE (account_id = $1 AND target_account_id = $2) \
                                           OR (account_id = $2 AND target_account_id = $1)) AS blocked \
         FROM accounts me, accounts t WHERE me.id = $1 AND t.id = $2",
    )
    .bind(account_id)
    .bind(target)
    .fetch_one(&mut *conn)
    .await?;
    if row.try_get::<bool, _>("blocked")? {
        return Ok(Asked::Blocked);
    }
    if update_existing(conn, account_id, target, reblogs, notify).await? {
        return Ok(Asked::Updated);
    }
    let me = crate::activitypub::actor_uri(base, &row.try_get::<String, _>("username")?);
    let request_id = ids.next_id().as_i64();
    let follow_uri = format!("{me}#follows/{request_id}");
    let fresh: bool = sqlx::query_scalar(
        "INSERT INTO follow_requests (id, account_id, target_account_id, show_reblogs, notify, uri) \
         VALUES ($1, $2, $3, coalesce($4, true), coalesce($5, false), $6) \
         ON CONFLICT (account_id, target_account_id) DO UPDATE \
           SET show_reblogs = coalesce($4, follow_requests.show_reblogs), \
               notify = coalesce($5, follow_requests.notify) \
         RETURNING (xmax = 0)",
    )
    .bind(request_id)
    .bind(account_id)
    .bind(target)
    .bind(reblogs)
    .bind(notify)
    .bind(&follow_uri)
    .fetch_one(&mut *conn)
    .await?;
    if fresh {
        let target_uri: Option<String> = row.try_get("uri")?;
        let inbox: Option<String> = row.try_get("inbox_url")?;
        let follow = serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": follow_uri,
            "type": "Follow",
            "actor": me,
            "object": target_uri,
        });
        crate::outbound::send(conn, account_id, &follow, inbox).await?;
    }
    Ok(Asked::Requested)
}

/// Tells remote account `target` that `account_id` no longer follows it (or withdraws the
/// request): an `Undo` of the Follow, in the caller's transaction. Call before the rows go.
pub async fn undo_remote(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    target: i64,
) -> Result<(), sqlx::Error> {
    let row = sqlx::query(
        "SELECT me.username, t.uri, t.inbox_url, \
           coalesce((SELECT uri FROM follows WHERE account_id = $1 AND target_account_id = $2), \
                    (SELECT uri FROM follow_requests WHERE account_id = $1 AND target_account_id = $2)) \
             AS follow_uri, \
           EXISTS (SELECT 1 FROM follows WHERE account_id = $1 AND target_account_id = $2) \
             OR EXISTS (SELECT 1 FROM follow_requests WHERE account_id = $1 AND target_account_id = $2) \
             AS following \
         FROM accounts me, accounts t WHERE me.id = $1 AND t.id = $2 AND t.domain IS NOT NULL",
    )
    .bind(account_id)
    .bind(target)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    if !row.try_get::<bool, _>("following")? {
        return Ok(());
    }
    let me = crate::activitypub::actor_uri(base, &row.try_get::<String, _>("username")?);
    let follow_uri: Option<String> = row.try_get("follow_uri")?;
    let follow_uri = follow_uri.unwrap_or_else(|| format!("{me}#follows/{target}"));
    let undo = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{follow_uri}/undo"),
        "type": "Undo",
        "actor": me,
        "object": {
            "id": follow_uri,
            "type": "Follow",
            "actor": me,
            "object": row.try_get::<Option<String>, _>("uri")?,
        },
    });
    let inbox: Option<String> = row.try_get("inbox_url")?;
    crate::outbound::send(conn, account_id, &undo, inbox).await
}
