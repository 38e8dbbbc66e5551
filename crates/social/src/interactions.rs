//! Favourites: one code path for the client API and the inbox.

use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

use crate::notification;

/// `account_id` favourites `status` (written by `author`): the favourite, the author's
/// notification and the count, in the caller's transaction. The new favourite's id, or `None`
/// when it was already a favourite (nothing changes).
pub async fn favourite(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    account_id: i64,
    status: i64,
    author: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let favourite_id = ids.next_id().as_i64();
    let inserted = sqlx::query(
        "INSERT INTO favourites (id, account_id, status_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(favourite_id)
    .bind(account_id)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    notification::create(
        conn,
        ids.next_id().as_i64(),
        author,
        account_id,
        notification::FAVOURITE,
        Some(status),
    )
    .await?;
    // Last: a popular status's row is locked from here to the commit.
    sqlx::query("UPDATE statuses SET favourites_count = favourites_count + 1 WHERE id = $1")
        .bind(status)
        .execute(&mut *conn)
        .await?;
    Ok(Some(favourite_id))
}

/// `account_id` takes back its favourite of `status`: the id of the favourite removed, or
/// `None` when there was none.
pub async fn unfavourite(
    conn: &mut PgConnection,
    account_id: i64,
    status: i64,
) -> Result<Option<i64>, sqlx::Error> {
    // The status first, then its favourite: a deletion of the status locks them in that order
    // (the favourite through its foreign key), so the two never wait for each other.
    let present = sqlx::query("SELECT 1 FROM statuses WHERE id = $1 FOR NO KEY UPDATE")
        .bind(status)
        .fetch_optional(&mut *conn)
        .await?;
    if present.is_none() {
        return Ok(None);
    }
    let removed: Option<i64> = sqlx::query_scalar(
        "DELETE FROM favourites WHERE account_id = $1 AND status_id = $2 RETURNING id",
    )
    .bind(account_id)
    .bind(status)
    .fetch_optional(&mut *conn)
    .await?;
    if removed.is_some() {
        sqlx::query(
            "UPDATE statuses SET favourites_count = greatest(favourites_count - 1, 0) WHERE id = $1",
        )
        .bind(status)
        .execute(&mut *conn)
        .await?;
    }
    Ok(removed)
}
