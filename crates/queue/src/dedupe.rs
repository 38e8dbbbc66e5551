//! Idempotent handling under at-least-once delivery.
//!
//! A handler records the message id in the same PostgreSQL transaction as the message's effect.
//! If the message was handled before (a worker died after committing but before acknowledging,
//! or the relay published twice), the insert finds the id and the handler skips the effect. Two
//! workers holding the same message at once serialise on the row: the second waits for the first
//! to commit, then skips.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Records `message_id` as processed within the caller's transaction; `false` means it already
/// was and the effect must not be applied again.
pub async fn first_time(conn: &mut PgConnection, message_id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO processed_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records that `message_id`'s effect outside the database (an e-mail handed to the SMTP
/// server, say) has happened, so that a redelivery skips it. The commit does not wait for the
/// disk (`synchronous_commit` off for this statement's own transaction): a record lost in a
/// crash repeats the effect once, which at-least-once delivery allows anyway, and the worker
/// saves a WAL flush per message.
pub async fn record_done(conn: &mut PgConnection, message_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true)) \
         INSERT INTO processed_messages (message_id) SELECT $1 FROM lazy ON CONFLICT DO NOTHING",
    )
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets message ids older than `retention`; no message is redelivered after that long, since
/// the last retry tier is a day. Returns the number of rows removed.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM processed_messages WHERE processed_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
