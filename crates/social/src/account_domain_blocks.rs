//! A person's own domain blocks (`/api/v1/domain_blocks`): statuses and notifications from
//! that domain's accounts are hidden from them (see [`crate::visibility::muted`]), and follows
//! both ways with those accounts end — the remote servers are told, as Mastodon tells them.

use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

use crate::follows;

/// The domain a person typed, as stored: lower case, without scheme, path, user or trailing
/// dot (`https://Example.COM/about` → `example.com`). `None` when nothing is left.
pub fn normalize(input: &str) -> Option<String> {
    let mut rest = input.trim();
    if let Some((_, after)) = rest.split_once("://") {
        rest = after;
    }
    let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let domain = rest.trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    valid.then_some(domain)
}

/// `account_id` blocks `domain`, in the caller's transaction: the block, then the end of
/// follows, follow requests and their federation messages with that domain's accounts.
pub async fn block(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    account_id: i64,
    domain: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_domain_blocks (id, account_id, domain) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, domain) DO NOTHING",
    )
    .bind(ids.next_id().as_i64())
    .bind(account_id)
    .bind(domain)
    .execute(&mut *conn)
    .await?;
    let followed: Vec<i64> = sqlx::query_scalar(
        "SELECT f.target_account_id FROM follows f JOIN accounts a ON a.id = f.target_account_id \
         WHERE f.account_id = $1 AND a.domain = $2",
    )
    .bind(account_id)
    .bind(domain)
    .fetch_all(&mut *conn)
    .await?;
    for target in followed {
        follows::undo_remote(conn, base, account_id, target).await?;
        follows::unfollow(conn, account_id, target).await?;
    }
    let followers: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT f.account_id, f.uri FROM follows f JOIN accounts a ON a.id = f.account_id \
         WHERE f.target_account_id = $1 AND a.domain = $2",
    )
    .bind(account_id)
    .bind(domain)
    .fetch_all(&mut *conn)
    .await?;
    for (follower, uri) in followers {
        crate::outbound::answer_follow(conn, base, account_id, follower, uri, false).await?;
        follows::unfollow(conn, follower, account_id).await?;
    }
    sqlx::query(
        "DELETE FROM follow_requests r USING accounts a \
         WHERE a.domain = $2 AND ((r.account_id = $1 AND r.target_account_id = a.id) \
                                 OR (r.target_account_id = $1 AND r.account_id = a.id))",
    )
    .bind(account_id)
    .bind(domain)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `account_id` unblocks `domain`; whether there was a block.
pub async fn unblock(
    conn: &mut PgConnection,
    account_id: i64,
    domain: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM account_domain_blocks WHERE account_id = $1 AND domain = $2")
            .bind(account_id)
            .bind(domain)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn domains_are_normalized() {
        assert_eq!(normalize("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(
            normalize("https://example.com/about?x#y").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize("alice@social.example.").as_deref(),
            Some("social.example")
        );
        assert_eq!(
            normalize("127.0.0.1:3000").as_deref(),
            Some("127.0.0.1:3000")
        );
        assert_eq!(normalize("  "), None);
        assert_eq!(normalize("bad domain"), None);
    }
}
