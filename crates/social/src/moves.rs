//! Account migration, Mastodon's way: the new account names the old one among its aliases
//! (`alsoKnownAs`), then the old account moves (`movedTo`, a `Move` to its followers' servers).
//! Local followers follow the new account at once (a remote one through a Follow to its
//! server); remote followers' servers do the same on receiving the Move, after checking the
//! alias ([`crate::inbox`]).

use serde_json::{Value, json};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

use crate::activitypub::{actor_uri, context};
use crate::follows;

/// How many aliases an account may have (Mastodon allows any number; a bound keeps the actor
/// document small).
pub const MAX_ALIASES: usize = 10;

/// The aliases of local account `id` and the URI of the account it moved to, as its actor
/// document shows them.
pub async fn identity(
    conn: &mut PgConnection,
    base: &str,
    id: i64,
) -> Result<(Vec<String>, Option<String>), sqlx::Error> {
    let row: Option<(Vec<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.also_known_as, m.uri, m.username FROM accounts a \
         LEFT JOIN accounts m ON m.id = a.moved_to_account_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((aliases, uri, username)) => {
            let moved = uri.or_else(|| username.map(|u| actor_uri(base, &u)));
            (aliases, moved)
        }
        None => (Vec::new(), None),
    })
}

/// Writes the aliases and the new home into an actor document.
pub fn decorate(doc: &mut Value, aliases: Vec<String>, moved_to: Option<String>) {
    doc["alsoKnownAs"] = json!(aliases);
    if let Some(target) = moved_to {
        doc["movedTo"] = json!(target);
    }
}

/// Adds actor `uri` to the aliases of local account `id`; false when it has too many.
pub async fn add_alias(conn: &mut PgConnection, id: i64, uri: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE accounts SET also_known_as = array_append(also_known_as, $2), updated_at = now() \
         WHERE id = $1 AND NOT $2 = ANY(also_known_as) AND cardinality(also_known_as) < $3",
    )
    .bind(id)
    .bind(uri)
    .bind(MAX_ALIASES as i32)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes actor `uri` from the aliases of local account `id`.
pub async fn remove_alias(conn: &mut PgConnection, id: i64, uri: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET also_known_as = array_remove(also_known_as, $2), updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(uri)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves local account `from` to account `to` (local or remote, whose aliases the caller
/// checked name `from`), in the caller's transaction: `from` is marked moved, its remote
/// followers' servers are sent a `Move`, and its local followers follow `to` instead. How many
/// local followers moved.
pub async fn move_account(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    from: i64,
    to: i64,
) -> Result<usize, sqlx::Error> {
    let (username, target_uri, target_local): (String, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT f.username, t.uri, CASE WHEN t.domain IS NULL THEN t.username END \
             FROM accounts f, accounts t WHERE f.id = $1 AND t.id = $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
    let target_uri = target_uri
        .or_else(|| target_local.as_ref().map(|u| actor_uri(base, u)))
        .unwrap_or_default();
    sqlx::query("UPDATE accounts SET moved_to_account_id = $2, updated_at = now() WHERE id = $1")
        .bind(from)
        .bind(to)
        .execute(&mut *conn)
        .await?;
    let me = actor_uri(base, &username);
    let activity = json!({
        "@context": context(),
        "id": format!("{me}#moves/{}", ids.next_id().as_i64()),
        "type": "Move",
        "actor": me,
        "object": me,
        "target": target_uri,
        "to": [format!("{me}/followers")],
    });
    let inboxes = crate::outbound::follower_inboxes(conn, from).await?;
    crate::outbound::send(conn, from, &activity, inboxes).await?;
    let followers: Vec<(i64, bool, bool)> = sqlx::query_as(
        "SELECT f.account_id, f.show_reblogs, f.notify FROM follows f \
         JOIN accounts a ON a.id = f.account_id \
         WHERE f.target_account_id = $1 AND a.domain IS NULL AND f.account_id <> $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    for (follower, reblogs, notify) in &followers {
        if target_local.is_some() {
            follows::follow(
                conn,
                ids,
                *follower,
                to,
                Some(*reblogs),
                Some(*notify),
                follows::Tell::Target,
            )
            .await?;
        } else {
            follows::ask_remote(
                conn,
                ids,
                base,
                *follower,
                to,
                Some(*reblogs),
                Some(*notify),
            )
            .await?;
        }
        follows::unfollow(conn, *follower, from).await?;
    }
    Ok(followers.len())
}
