//! Accounts as stored, and as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};
use stampede_mastodon::time::day;
use stampede_mastodon::{Account, CredentialAccount, Field, Role, Source};
use stampede_social::text::escape;

use crate::AppState;

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
}

/// The parts of a `users` row the account's owner sees.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub account_id: i64,
    pub email: String,
    pub role: String,
    pub approved: bool,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub locale: Option<String>,
    pub reason: Option<String>,
    pub source_privacy: String,
    pub source_sensitive: bool,
    pub source_language: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// The columns of [`AccountRow`], read from the view `accounts_with_stats`.
pub const ACCOUNT_COLUMNS: &str = "id, username, domain, display_name, note, locked, bot, \
     discoverable, indexable, fields, created_at, suspended_at, statuses_count, following_count, \
     followers_count, last_status_at";

const USER_COLUMNS: &str = "id, account_id, email, role, approved, confirmed_at, locale, reason, \
     source_privacy, source_sensitive, source_language, disabled, created_at";

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

/// The user of a local account.
pub async fn user_of(
    db: impl PgExecutor<'_>,
    account_id: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1"
    ))
    .bind(account_id)
    .fetch_optional(db)
    .await
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

impl AppState {
    /// The public view of an account.
    pub fn render_account(&self, row: &AccountRow) -> Account {
        let base = self.base_url();
        let avatar = format!("{base}/avatars/original/missing.png");
        let header = format!("{base}/headers/original/missing.png");
        let (acct, url, uri) = match &row.domain {
            None => (
                row.username.clone(),
                format!("{base}/@{}", row.username),
                format!("{base}/users/{}", row.username),
            ),
            Some(domain) => (
                format!("{}@{domain}", row.username),
                format!("https://{domain}/@{}", row.username),
                format!("https://{domain}/users/{}", row.username),
            ),
        };
        Account {
            id: row.id.to_string(),
            username: row.username.clone(),
            acct,
            display_name: row.display_name.clone(),
            locked: row.locked,
            bot: row.bot,
            discoverable: row.discoverable,
            indexable: row.indexable,
            group: false,
            created_at: day(row.created_at),
            note: render_note(&row.note),
            url,
            uri,
            avatar: avatar.clone(),
            avatar_static: avatar,
            header: header.clone(),
            header_static: header,
            followers_count: row.followers_count,
            following_count: row.following_count,
            statuses_count: row.statuses_count,
            last_status_at: row.last_status_at.map(|t| t.date_naive().to_string()),
            hide_collections: None,
            noindex: !row.indexable,
            emojis: Vec::new(),
            roles: Vec::new(),
            fields: row
                .fields
                .0
                .iter()
                .map(|f| Field {
                    name: escape(&f.name),
                    value: escape(&f.value),
                    verified_at: None,
                })
                .collect(),
        }
    }

    /// The owner's view: the account plus the source values and role.
    pub fn render_credential_account(&self, row: &AccountRow, user: &UserRow) -> CredentialAccount {
        let (role_id, role_name, permissions) = match user.role.as_str() {
            "admin" => ("3", "Admin", "1"),
            "moderator" => ("2", "Moderator", "1308"),
            _ => ("-99", "", "65536"),
        };
        CredentialAccount {
            account: self.render_account(row),
            source: Source {
                privacy: user.source_privacy.clone(),
                sensitive: user.source_sensitive,
                language: user.source_language.clone(),
                note: row.note.clone(),
                fields: row
                    .fields
                    .0
                    .iter()
                    .map(|f| Field {
                        name: f.name.clone(),
                        value: f.value.clone(),
                        verified_at: None,
                    })
                    .collect(),
                follow_requests_count: 0,
                hide_collections: None,
                discoverable: row.discoverable,
                indexable: row.indexable,
            },
            role: Role {
                id: role_id.to_string(),
                name: role_name.to_string(),
                color: String::new(),
                permissions: permissions.to_string(),
                highlighted: user.role != "user",
            },
        }
    }
}
