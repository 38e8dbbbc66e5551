//! Blocks and mutes between accounts, as plain functions on a connection: the client API and
//! the CSV import apply them through the same code.

use sqlx::{PgConnection, PgExecutor};
use stampede_core::id::IdGenerator;

use crate::follows;

/// `account_id` blocks `target` in the caller's transaction: the follows and follow requests
/// between them end, and a remote target's server is told (`base`: this server's URL).
pub async fn block(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    account_id: i64,
    target: i64,
    target_is_remote: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blocks (id, account_id, target_account_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(target)
    .execute(&mut *conn)
    .await?;
    if target_is_remote {
        crate::outbound::block(conn, base, account_id, target, false).await?;
    }
    follows::unfollow(conn, account_id, target).await?;
    follows::unfollow(conn, target, account_id).await?;
    sqlx::query(
        "DELETE FROM follow_requests WHERE (account_id = $1 AND target_account_id = $2) \
                                        OR (account_id = $2 AND target_account_id = $1)",
    )
    .bind(account_id)
    .bind(target)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `account_id` mutes `target` (its notifications too with `notifications`), for `seconds`
/// (0: until unmuted); a mute that exists is updated.
pub async fn mute(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    account_id: i64,
    target: i64,
    notifications: bool,
    seconds: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mutes (id, account_id, target_account_id, hide_notifications, expires_at) \
         VALUES ($1, $2, $3, $4, CASE WHEN $5 > 0 THEN now() + make_interval(secs => $5) END) \
         ON CONFLICT (account_id, target_account_id) DO UPDATE SET \
           hide_notifications = EXCLUDED.hide_notifications, expires_at = EXCLUDED.expires_at",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(target)
    .bind(notifications)
    .bind(f64::from(seconds))
    .execute(conn)
    .await?;
    Ok(())
}

/// `account_id` lifts its block of `target`; a remote target's server is told with an `Undo`
/// (`base`: this server's URL). `false` if there was no block.
pub async fn unblock(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    target: i64,
    target_is_remote: bool,
) -> Result<bool, sqlx::Error> {
    let removed =
        sqlx::query("DELETE FROM blocks WHERE account_id = $1 AND target_account_id = $2")
            .bind(account_id)
            .bind(target)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            > 0;
    if removed && target_is_remote {
        crate::outbound::block(conn, base, account_id, target, true).await?;
    }
    Ok(removed)
}

/// `account_id` unmutes `target`. `false` if there was no mute.
pub async fn unmute(
    db: impl PgExecutor<'_>,
    account_id: i64,
    target: i64,
) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM mutes WHERE account_id = $1 AND target_account_id = $2")
        .bind(account_id)
        .bind(target)
        .execute(db)
        .await?;
    Ok(removed.rows_affected() > 0)
}
