//! Accounts as stored (the `accounts_with_stats` view) and the queries that read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};

use crate::text::escape;

/// A profile field as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSource {
    pub name: String,
    pub value: String,
}

/// A row of `accounts`.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub domain: Option<String>,
    pub display_name: String,
    pub note: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: Option<bool>,
    pub indexable: bool,
    pub fields: sqlx::types::Json<Vec<FieldSource>>,
    pub created_at: DateTime<Utc>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub statuses_count: i64,
    pub following_count: i64,
    pub followers_count: i64,
    pub last_status_at: Option<DateTime<Utc>>,
    /// Remote: the actor's id (local accounts' URIs are made from the base URL).
    pub uri: Option<String>,
    /// Remote: the profile page.
    pub url: Option<String>,
    /// The stored avatar and header (storage keys), and where a remote account's live.
    pub avatar_key: Option<String>,
    pub avatar_remote_url: Option<String>,
    pub header_key: Option<String>,
    pub header_remote_url: Option<String>,
    /// Follower and following lists are shown to the owner only.
    pub hide_collections: bool,
    /// A moderator marked its media sensitive.
    pub sensitized_at: Option<DateTime<Utc>>,
    /// A moderator limited it to its followers.
    pub silenced_at: Option<DateTime<Utc>>,
    /// The account it moved to.
    pub moved_to_account_id: Option<i64>,
}

/// The columns of [`AccountRow`], read from the view `accounts_with_stats`.
pub const ACCOUNT_COLUMNS: &str = "id, username, domain, display_name, note, locked, bot, \
     discoverable, indexable, fields, created_at, suspended_at, statuses_count, following_count, \
     followers_count, last_status_at, uri, url, avatar_key, avatar_remote_url, header_key, \
     header_remote_url, hide_collections, sensitized_at, silenced_at, moved_to_account_id";

/// An account by id.
pub async fn find(db: impl PgExecutor<'_>, id: i64) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts_with_stats WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A local account by username, case-insensitively.
pub async fn find_local(
    db: impl PgExecutor<'_>,
    username: &str,
) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts_with_stats WHERE lower(username) = lower($1) AND domain IS NULL"
    ))
    .bind(username)
    .fetch_optional(db)
    .await
}

/// Accounts by id, in no particular order.
pub async fn find_many(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> Result<Vec<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts_with_stats WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await
}

/// Accounts by id, each with its row's version (`xmin`, as the entity cache keys it).
pub async fn find_many_versioned(
    db: impl PgExecutor<'_>,
    ids: &[i64],
) -> Result<Vec<(AccountRow, i64)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Versioned {
        #[sqlx(flatten)]
        row: AccountRow,
        version: i64,
    }
    let rows: Vec<Versioned> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS}, \
                (SELECT x.xmin::text::bigint FROM accounts x WHERE x.id = v.id) AS version \
         FROM accounts_with_stats v WHERE v.id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|v| (v.row, v.version)).collect())
}

/// A plain-text bio as Mastodon renders it: paragraphs split on blank lines, line breaks kept,
/// everything escaped.
pub fn render_note(note: &str) -> String {
    if note.trim().is_empty() {
        return String::new();
    }
    note.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", escape(p.trim()).replace('\n', "<br />")))
        .collect()
}

/// A plausible address: one `@`, something before it, a dotted domain after, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}
