//! Quote posts (Mastodon 4.5): a status may quote another when the quoted status's
//! `quote_approval_policy` lets its author (`public`: anyone who can see it; `followers`: its
//! followers; `nobody`: no one but the author). Private and direct statuses can be quoted by
//! their authors only. The quoted author can revoke a quote later; a deleted quoted status
//! leaves the quote `deleted`.

use sqlx::{PgConnection, Row};
use stampede_core::id::IdGenerator;

use crate::notification;
use crate::visibility::visible;

/// The policies a status can have.
pub const POLICIES: [&str; 3] = ["public", "followers", "nobody"];

/// Why a quote was refused.
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// The quoted status does not exist or the quoter may not see it.
    #[error("Record not found")]
    NotFound,
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What the quoted author allows a would-be quoter: `automatic`, or `denied` (Stampede asks
/// for no manual approval).
pub fn decision(policy: &str, visibility: &str, own: bool, follows_author: bool) -> &'static str {
    if own {
        return "automatic";
    }
    if !matches!(visibility, "public" | "unlisted") {
        return "denied";
    }
    match policy {
        "public" => "automatic",
        "followers" if follows_author => "automatic",
        _ => "denied",
    }
}

/// Status `status_id` by `author` quotes `quoted`, in the caller's transaction (after the
/// status is inserted): the quote, accepted as the policy allows, and a `quote` notification.
pub async fn attach(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    status_id: i64,
    author: i64,
    quoted: i64,
) -> Result<(), QuoteError> {
    let row = sqlx::query(&format!(
        "SELECT s.account_id, s.visibility, s.quote_approval_policy, s.reblog_of_id, \
                EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $2 \
                        AND f.target_account_id = s.account_id) AS follows \
         FROM statuses s WHERE s.id = $1 AND {} FOR SHARE OF s",
        visible("s", "$2")
    ))
    .bind(quoted)
    .bind(author)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(QuoteError::NotFound)?;
    if row.try_get::<Option<i64>, _>("reblog_of_id")?.is_some() {
        return Err(QuoteError::NotAllowed("A boost cannot be quoted"));
    }
    let quoted_author: i64 = row.try_get("account_id")?;
    let allowed = decision(
        &row.try_get::<String, _>("quote_approval_policy")?,
        &row.try_get::<String, _>("visibility")?,
        quoted_author == author,
        row.try_get("follows")?,
    );
    if allowed != "automatic" {
        return Err(QuoteError::NotAllowed(
            "Validation failed: Quoting this post is not allowed",
        ));
    }
    sqlx::query(
        "INSERT INTO quotes (id, status_id, quoted_status_id, quoted_account_id, state) \
         VALUES ($1, $2, $3, $4, 'accepted')",
    )
    .bind(ids.next_id().as_i64())
    .bind(status_id)
    .bind(quoted)
    .bind(quoted_author)
    .execute(&mut *conn)
    .await?;
    notification::create(
        conn,
        ids.next_id().as_i64(),
        quoted_author,
        author,
        notification::QUOTE,
        Some(status_id),
    )
    .await?;
    Ok(())
}

/// The author of `quoted` revokes the quote that `quoting` makes of it; whether there was one.
pub async fn revoke(
    conn: &mut PgConnection,
    quoted: i64,
    quoting: i64,
    author: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE quotes q SET state = 'revoked', updated_at = now() \
         FROM statuses s WHERE q.quoted_status_id = $1 AND q.status_id = $2 \
           AND s.id = q.quoted_status_id AND s.account_id = $3 AND q.state = 'accepted'",
    )
    .bind(quoted)
    .bind(quoting)
    .bind(author)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::decision;

    #[test]
    fn policies_decide_who_may_quote() {
        assert_eq!(decision("public", "public", false, false), "automatic");
        assert_eq!(decision("followers", "public", false, false), "denied");
        assert_eq!(decision("followers", "unlisted", false, true), "automatic");
        assert_eq!(decision("nobody", "public", false, true), "denied");
        assert_eq!(decision("nobody", "private", true, false), "automatic");
        assert_eq!(decision("public", "private", false, true), "denied");
        assert_eq!(decision("public", "direct", false, true), "denied");
    }
}
