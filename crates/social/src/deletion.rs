//! Deleting an account and everything it left on this server.
//!
//! A local account's deletion is asked for first ([`request`]): by its owner (the settings
//! page), or by a moderator's suspension. The account is suspended at once — it disappears from
//! every read path and its tokens stop working — and after the grace period the delivery
//! service's sweeper ([`purge_due`]) purges it; a moderator may purge a suspended account
//! before that (`DELETE /api/v1/admin/accounts/:id`), and lifting the suspension cancels the
//! request. A remote account is purged when its server sends a `Delete` of the actor.
//!
//! [`purge`] removes every row that names the account: it reads PostgreSQL's catalog for the
//! foreign keys to `accounts`, so a table added later is covered without a change here, and
//! does for each what the key's `ON DELETE` says (delete the row, or clear the column). Only
//! the moderation records stay (reports, warnings, the audit log). Media files go to the
//! storage garbage; a local account's deletion sends a `Delete` of its actor to every server
//! this one knows. The `accounts` row stays as a tombstone, emptied, with `deleted_at`.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use stampede_db::Db;

use crate::activitypub::{actor_uri, context};

/// Days between a deletion request and the purge, unless ACCOUNT_DELETION_GRACE_DAYS says
/// otherwise (Mastodon's 30).
pub const GRACE_DAYS: u32 = 30;

/// Tables whose rows about an account outlive it: the moderation history.
const KEPT: &[&str] = &[
    "reports",
    "account_warnings",
    "admin_action_logs",
    "accounts",
];

/// Why a deletion was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The owner deleted their account.
    Own,
    /// A moderator suspended it.
    Suspension,
}

/// Suspends local account `account_id` and asks for its purge at `due`, in the caller's
/// transaction (an earlier request keeps the earlier date).
pub async fn request(
    conn: &mut PgConnection,
    account_id: i64,
    reason: Reason,
    due: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET suspended_at = coalesce(suspended_at, now()) \
         WHERE id = $1 AND domain IS NULL",
    )
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO account_deletion_requests (account_id, reason, due_at) \
         SELECT id, $2, $3 FROM accounts WHERE id = $1 AND domain IS NULL AND deleted_at IS NULL \
         ON CONFLICT (account_id) DO UPDATE SET due_at = least(account_deletion_requests.due_at, EXCLUDED.due_at)",
    )
    .bind(account_id)
    .bind(match reason {
        Reason::Own => "self",
        Reason::Suspension => "suspension",
    })
    .bind(due)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Cancels the deletion a suspension of `account_id` asked for (its suspension was lifted).
/// An owner's own deletion stays.
pub async fn cancel(conn: &mut PgConnection, account_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM account_deletion_requests WHERE account_id = $1 AND reason = 'suspension'",
    )
    .bind(account_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the owner of `account_id` deleted it (then no moderator may lift its suspension).
pub async fn deleted_by_owner(
    conn: &mut PgConnection,
    account_id: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM account_deletion_requests WHERE account_id = $1 AND reason = 'self') \
             OR EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND deleted_at IS NOT NULL)",
    )
    .bind(account_id)
    .fetch_one(conn)
    .await
}

/// Whether `account_id` is suspended with a deletion pending (what a moderator may purge now).
pub async fn pending(conn: &mut PgConnection, account_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM account_deletion_requests r JOIN accounts a ON a.id = r.account_id \
                        WHERE r.account_id = $1 AND a.suspended_at IS NOT NULL AND a.deleted_at IS NULL)",
    )
    .bind(account_id)
    .fetch_one(conn)
    .await
}

/// One foreign key to `accounts`: the table, the column, and whether deleting clears the
/// column (`ON DELETE SET NULL`) rather than the row.
#[derive(Debug, sqlx::FromRow)]
struct Reference {
    table_name: String,
    column_name: String,
    set_null: bool,
}

/// The foreign keys to `accounts`, from the catalog.
async fn references(conn: &mut PgConnection) -> Result<Vec<Reference>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.conrelid::regclass::text AS table_name, a.attname::text AS column_name, \
                c.confdeltype = 'n' AS set_null \
         FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         WHERE c.contype = 'f' AND c.confrelid = 'accounts'::regclass \
           AND cardinality(c.conkey) = 1 \
         ORDER BY 1, 2",
    )
    .fetch_all(conn)
    .await
}

/// The rows that still name `account_id` outside the moderation history, by table and column
/// (what a purge leaves: nothing).
pub async fn leftovers(
    conn: &mut PgConnection,
    account_id: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut found = Vec::new();
    for reference in references(conn).await? {
        if KEPT.contains(&reference.table_name.as_str()) {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE {} = $1",
            reference.table_name, reference.column_name
        ))
        .bind(account_id)
        .fetch_one(&mut *conn)
        .await?;
        if n > 0 {
            found.push((
                format!("{}.{}", reference.table_name, reference.column_name),
                n,
            ));
        }
    }
    Ok(found)
}

/// The account row's username, domain, avatar and header keys.
type Purged = (String, Option<String>, Option<String>, Option<String>);

/// Purges `account_id` in the caller's transaction, as the module describes. With `base` (this
/// server's URL) a local account's `Delete` goes to every known server. Whether there was an
/// account to purge.
pub async fn purge(
    conn: &mut PgConnection,
    account_id: i64,
    base: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let row: Option<Purged> = sqlx::query_as(
        "SELECT username, domain, avatar_key, header_key FROM accounts \
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((username, domain, avatar, header)) = row else {
        return Ok(false);
    };
    if let (Some(base), None) = (base, &domain) {
        let actor = actor_uri(base, &username);
        let activity = json!({
            "@context": context(),
            "id": format!("{actor}#delete"),
            "type": "Delete",
            "actor": actor,
            "object": actor,
            "to": [crate::activitypub::PUBLIC],
        });
        let inboxes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT coalesce(shared_inbox_url, inbox_url) FROM accounts \
             WHERE domain IS NOT NULL AND inbox_url IS NOT NULL AND suspended_at IS NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        crate::outbound::send(conn, account_id, &activity, inboxes).await?;
    }
    // Its files: uploads and their variants, avatar and header, export archives.
    let mut keys: Vec<String> = sqlx::query_scalar(
        "SELECT k FROM media_attachments m, \
           unnest(ARRAY[m.upload_key, m.file_key, m.small_key, m.thumbnail_key]) k \
         WHERE m.account_id = $1 AND k IS NOT NULL \
         UNION ALL SELECT storage_key FROM backups WHERE account_id = $1 AND storage_key IS NOT NULL",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    keys.extend(avatar);
    keys.extend(header);
    crate::media::discard(conn, &keys).await?;
    // The counters it held up on others: followers and following, replies, boosts and
    // favourites of their statuses.
    for sql in [
        "UPDATE account_stats SET followers_count = greatest(followers_count - 1, 0) \
         WHERE account_id IN (SELECT target_account_id FROM follows WHERE account_id = $1)",
        "UPDATE account_stats SET following_count = greatest(following_count - 1, 0) \
         WHERE account_id IN (SELECT account_id FROM follows WHERE target_account_id = $1)",
        "UPDATE statuses p SET replies_count = greatest(p.replies_count - r.n, 0) \
         FROM (SELECT in_reply_to_id AS id, count(*) AS n FROM statuses \
               WHERE account_id = $1 AND in_reply_to_id IS NOT NULL GROUP BY 1) r \
         WHERE p.id = r.id AND p.account_id <> $1",
        "UPDATE statuses p SET reblogs_count = greatest(p.reblogs_count - r.n, 0) \
         FROM (SELECT reblog_of_id AS id, count(*) AS n FROM statuses \
               WHERE account_id = $1 AND reblog_of_id IS NOT NULL GROUP BY 1) r \
         WHERE p.id = r.id AND p.account_id <> $1",
        "UPDATE statuses p SET favourites_count = greatest(p.favourites_count - 1, 0) \
         FROM favourites f WHERE f.account_id = $1 AND f.status_id = p.id AND p.account_id <> $1",
    ] {
        sqlx::query(sql)
            .bind(account_id)
            .execute(&mut *conn)
            .await?;
    }
    // Its statuses first (their own dependents go with them), then every other row naming it.
    sqlx::query("DELETE FROM statuses WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    for reference in references(conn).await? {
        if KEPT.contains(&reference.table_name.as_str()) {
            continue;
        }
        let sql = if reference.set_null {
            format!(
                "UPDATE {table} SET {column} = NULL WHERE {column} = $1",
                table = reference.table_name,
                column = reference.column_name
            )
        } else {
            format!(
                "DELETE FROM {} WHERE {} = $1",
                reference.table_name, reference.column_name
            )
        };
        sqlx::query(&sql)
            .bind(account_id)
            .execute(&mut *conn)
            .await?;
    }
    // The tombstone: the name and key stay, nothing personal does.
    sqlx::query(
        "UPDATE accounts SET display_name = '', note = '', fields = '[]'::jsonb, \
           avatar_key = NULL, header_key = NULL, avatar_remote_url = NULL, header_remote_url = NULL, \
           discoverable = false, indexable = false, \
           suspended_at = coalesce(suspended_at, now()), deleted_at = now(), updated_at = now() \
         WHERE id = $1",
    )
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Purges the local accounts whose grace period is over, each in its own transaction, at most
/// `batch` per call; how many.
pub async fn purge_due(db: &Db, base: &str, batch: i64) -> Result<usize, sqlx::Error> {
    let mut purged = 0;
    for _ in 0..batch {
        let mut tx = db.begin().await?;
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT account_id FROM account_deletion_requests WHERE due_at <= now() \
             ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(account_id) = due else {
            break;
        };
        if !purge(&mut tx, account_id, Some(base)).await? {
            // Purged already (by a moderator or the command line): the request is spent, and
            // must not stand in front of the others.
            sqlx::query("DELETE FROM account_deletion_requests WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(account_id, "account purged");
        purged += 1;
    }
    Ok(purged)
}
