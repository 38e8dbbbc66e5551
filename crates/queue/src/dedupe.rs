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
