//! The instance's legal texts: its privacy policy (the operator's, or a built-in one that says
//! what Stampede keeps) and its terms of service, one version per effective date (Mastodon
//! 4.4). Both are written in Markdown by the operator (`stampede admin legal`) and shown as
//! sanitized HTML.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;
use stampede_db::Db;

/// The privacy policy shown until the operator sets one; `{domain}` is the server's domain.
const DEFAULT_PRIVACY_POLICY: &str = "\
# Privacy policy of {domain}

This server runs Stampede, a Mastodon-compatible social server. This policy says what it
keeps about you, why, and for how long.

## What is kept

- **Your account:** your username, e-mail address, hashed password, the date you signed up,
  the address (IP) you signed up from, your language and your profile (display name, bio,
  fields, avatar and header).
- **What you post:** your posts, their media, polls and edits; your favourites, boosts,
  bookmarks, follows, lists, filters, mutes and blocks.
- **Sessions:** the applications you authorized and their access tokens (kept as hashes), and
  browser sessions.
- **Direct messages** are stored like other posts and shown only to the people they mention;
  they are not end-to-end encrypted, so this server's operators could read them.

## Why

To run your account and show your posts to the people you chose: public posts to everyone,
followers-only posts to your followers, direct messages to those mentioned. Posts to people
on other servers are sent to those servers, which keep their own copies under their own
policies.

## How long

Your data is kept while your account exists. Browser sessions expire after two weeks; expired
authorization codes after a day. When you delete your account, your posts and media are
deleted here and other servers are asked to delete their copies.

## Your rights

You can download an archive of your data, correct your profile, and delete your account at any
time. Ask this server's operators about anything else this policy does not answer.
";

/// Markdown as sanitized HTML.
pub fn markdown(text: &str) -> String {
    static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
        let mut b = ammonia::Builder::default();
        b.link_rel(Some("nofollow noopener noreferrer"));
        b
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(text));
    CLEANER.clean(&html).to_string()
}

/// The privacy policy as HTML, and when it last changed.
pub async fn privacy_policy(db: &Db, domain: &str) -> Result<(String, DateTime<Utc>), sqlx::Error> {
    let set: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT text, updated_at FROM privacy_policy")
            .fetch_optional(db)
            .await?;
    Ok(match set {
        Some((text, at)) => (markdown(&text), at),
        None => {
            // The built-in text has not changed since this version of Stampede.
            let since = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            (
                markdown(&DEFAULT_PRIVACY_POLICY.replace("{domain}", domain)),
                since,
            )
        }
    })
}

/// Sets the privacy policy (Markdown).
pub async fn set_privacy_policy(conn: &mut PgConnection, text: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO privacy_policy (text) VALUES ($1) \
         ON CONFLICT (id) DO UPDATE SET text = EXCLUDED.text, updated_at = now()",
    )
    .bind(text)
    .execute(conn)
    .await?;
    Ok(())
}

/// One version of the terms of service.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Terms {
    pub text: String,
    pub effective_date: NaiveDate,
    /// The date of the version after this one.
    pub succeeded_by: Option<NaiveDate>,
}

const TERMS: &str = "SELECT t.text, t.effective_date, \
       (SELECT min(n.effective_date) FROM terms_of_service n \
        WHERE n.effective_date > t.effective_date) AS succeeded_by \
     FROM terms_of_service t";

/// The terms in force today, or the first coming ones when none are in force yet.
pub async fn current_terms(db: &Db, today: NaiveDate) -> Result<Option<Terms>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{TERMS} ORDER BY (t.effective_date <= $1) DESC, \
           CASE WHEN t.effective_date <= $1 THEN t.effective_date END DESC, \
           t.effective_date ASC LIMIT 1"
    ))
    .bind(today)
    .fetch_optional(db)
    .await
}

/// The version effective on `date` exactly.
pub async fn terms_of(db: &Db, date: NaiveDate) -> Result<Option<Terms>, sqlx::Error> {
    sqlx::query_as(&format!("{TERMS} WHERE t.effective_date = $1"))
        .bind(date)
        .fetch_optional(db)
        .await
}

/// Adds (or replaces) the version effective on `date`.
pub async fn set_terms(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    text: &str,
    changelog: &str,
    date: NaiveDate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO terms_of_service (id, text, changelog, effective_date) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (effective_date) DO UPDATE SET text = EXCLUDED.text, changelog = EXCLUDED.changelog",
    )
    .bind(ids.next_id().as_i64())
    .bind(text)
    .bind(changelog)
    .bind(date)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::markdown;

    #[test]
    fn markdown_is_rendered_and_sanitized() {
        let html =
            markdown("# Title\n\nSome *text* and <script>alert(1)</script> [a](https://x.example)");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>text</em>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("rel=\"nofollow noopener noreferrer\""),
            "{html}"
        );
    }
}
