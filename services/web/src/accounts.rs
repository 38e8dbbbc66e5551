//! Accounts as stored, and as the API shows them.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use stampede_mastodon::{CredentialAccount, Field, Role, Source};

use crate::AppState;

pub use stampede_social::accounts::{
    ACCOUNT_COLUMNS, AccountRow, FieldSource, find, find_local, find_many, render_note, valid_email,
};

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
    /// Follow requests waiting for the account's answer.
    pub follow_requests_count: i64,
}

const USER_COLUMNS: &str = "id, account_id, email, role, approved, confirmed_at, locale, reason, \
     source_privacy, source_sensitive, source_language, disabled, created_at, \
     (SELECT count(*) FROM follow_requests r WHERE r.target_account_id = users.account_id) \
     AS follow_requests_count";

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

impl AppState {
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
                follow_requests_count: user.follow_requests_count,
                hide_collections: Some(row.hide_collections),
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
