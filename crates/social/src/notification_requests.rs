//! Notification requests: mentions the recipient's notification policy filtered, one request
//! per sender (the `notifications_classify` and `notifications_request` triggers file them).
//! Accepting lets the sender through from then on and shows what was filtered; dismissing
//! removes the request and the notifications it held.

use sqlx::PgConnection;

/// Accepts the requests `ids` of `account_id` (others' or unknown ids are skipped): their
/// senders may notify from now on, their filtered notifications join the list, and the
/// requests go. Returns how many were accepted. Runs in the caller's transaction.
pub async fn accept(
    conn: &mut PgConnection,
    account_id: i64,
    ids: &[i64],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "WITH gone AS ( \
           DELETE FROM notification_requests WHERE account_id = $1 AND id = ANY($2) \
           RETURNING from_account_id), \
         allowed AS ( \
           INSERT INTO notification_permissions (account_id, from_account_id) \
           SELECT $1, from_account_id FROM gone ON CONFLICT DO NOTHING) \
         UPDATE notifications SET filtered = false \
         WHERE account_id = $1 AND filtered AND from_account_id IN (SELECT from_account_id FROM gone)",
    )
    .bind(account_id)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Dismisses the requests `ids` of `account_id` with the filtered notifications they held.
pub async fn dismiss(
    conn: &mut PgConnection,
    account_id: i64,
    ids: &[i64],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "WITH gone AS ( \
           DELETE FROM notification_requests WHERE account_id = $1 AND id = ANY($2) \
           RETURNING from_account_id) \
         DELETE FROM notifications \
         WHERE account_id = $1 AND filtered AND from_account_id IN (SELECT from_account_id FROM gone)",
    )
    .bind(account_id)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// The five policy settings, each `accept`, `filter` or `drop`.
pub const POLICY_FIELDS: [&str; 5] = [
    "for_not_following",
    "for_not_followers",
    "for_new_accounts",
    "for_private_mentions",
    "for_limited_accounts",
];

/// Sets `account_id`'s policy: each given field to its value (already checked to be one of
/// `accept`, `filter`, `drop`), the others as they were (Mastodon's defaults at first).
pub async fn set_policy(
    conn: &mut PgConnection,
    account_id: i64,
    values: &[Option<String>; 5],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_policies AS p (account_id) VALUES ($1) \
         ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE notification_policies SET \
           for_not_following = coalesce($2, for_not_following), \
           for_not_followers = coalesce($3, for_not_followers), \
           for_new_accounts = coalesce($4, for_new_accounts), \
           for_private_mentions = coalesce($5, for_private_mentions), \
           for_limited_accounts = coalesce($6, for_limited_accounts), \
           updated_at = now() \
         WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(&values[0])
    .bind(&values[1])
    .bind(&values[2])
    .bind(&values[3])
    .bind(&values[4])
    .execute(&mut *conn)
    .await?;
    Ok(())
}
