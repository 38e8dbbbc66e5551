//! Accounts.

use serde::{Deserialize, Serialize};

/// A profile metadata pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub verified_at: Option<String>,
}

/// An account as anyone may see it.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub acct: String,
    pub display_name: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: Option<bool>,
    pub indexable: bool,
    pub group: bool,
    pub created_at: String,
    pub note: String,
    pub url: String,
    pub uri: String,
    pub avatar: String,
    pub avatar_static: String,
    pub header: String,
    pub header_static: String,
    pub followers_count: i64,
    pub following_count: i64,
    pub statuses_count: i64,
    pub last_status_at: Option<String>,
    pub hide_collections: Option<bool>,
    pub noindex: bool,
    pub emojis: Vec<crate::CustomEmoji>,
    pub roles: Vec<serde_json::Value>,
    pub fields: Vec<Field>,
    /// The account it moved to (Mastodon shows the key only on a moved account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<Box<Account>>,
}

/// A status's author: the account as rendered once and shared by every status that shows it,
/// and, when the renderer kept it, its JSON, written out as it is rather than serialized again
/// for each status. It reads as the [`Account`] it holds.
#[derive(Debug, Clone)]
pub struct StatusAccount {
    account: std::sync::Arc<Account>,
    json: Option<std::sync::Arc<serde_json::value::RawValue>>,
}

impl StatusAccount {
    /// `account`, serialized each time it is written.
    pub fn new(account: std::sync::Arc<Account>) -> Self {
        StatusAccount {
            account,
            json: None,
        }
    }

    /// `account` with its JSON made once, to be written as it is wherever it is shown.
    pub fn with_json(account: Account) -> Self {
        let json = serde_json::value::to_raw_value(&account)
            .ok()
            .map(std::sync::Arc::from);
        StatusAccount {
            account: std::sync::Arc::new(account),
            json,
        }
    }

    /// A copy of the account (for an entity that owns one).
    pub fn to_account(&self) -> Account {
        (*self.account).clone()
    }
}

impl std::ops::Deref for StatusAccount {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.account
    }
}

impl Serialize for StatusAccount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(serializer),
            None => self.account.serialize(serializer),
        }
    }
}

/// The values a client needs to edit the profile and post with the user's defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub privacy: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub note: String,
    pub fields: Vec<Field>,
    pub follow_requests_count: i64,
    pub hide_collections: Option<bool>,
    pub discoverable: Option<bool>,
    pub indexable: bool,
}

/// The user's role and what it permits (`permissions` is Mastodon's bit field).
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub color: String,
    pub permissions: String,
    pub highlighted: bool,
}

/// The signed-in user's own account.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialAccount {
    #[serde(flatten)]
    pub account: Account,
    pub source: Source,
    pub role: Role,
}

/// The viewer's own profile as they edit it (`/api/v1/profile`, Mastodon 4.6): raw note and
/// fields, and no picture where none was set.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub id: String,
    pub display_name: String,
    pub note: String,
    pub fields: Vec<Field>,
    pub avatar: Option<String>,
    pub avatar_static: Option<String>,
    pub avatar_description: String,
    pub header: Option<String>,
    pub header_static: Option<String>,
    pub header_description: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: Option<bool>,
    pub indexable: bool,
    pub hide_collections: Option<bool>,
    pub show_media: bool,
    pub show_media_replies: bool,
    pub show_featured: bool,
    pub attribution_domains: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: "1".into(),
            username: "alice".into(),
            acct: "alice".into(),
            display_name: "Alice \"A\" <3".into(),
            locked: false,
            bot: false,
            discoverable: Some(true),
            indexable: false,
            group: false,
            created_at: "2026-12-07T00:00:00.000Z".into(),
            note: "<p>hi</p>".into(),
            url: "https://example.test/@alice".into(),
            uri: "https://example.test/users/alice".into(),
            avatar: "a.png".into(),
            avatar_static: "a.png".into(),
            header: "h.png".into(),
            header_static: "h.png".into(),
            followers_count: 3,
            following_count: 2,
            statuses_count: 1,
            last_status_at: None,
            hide_collections: None,
            noindex: false,
            emojis: Vec::new(),
            roles: Vec::new(),
            fields: vec![Field {
                name: "web".into(),
                value: "ok".into(),
                verified_at: None,
            }],
            moved: None,
        }
    }

    #[test]
    fn a_status_account_is_written_exactly_as_its_account() {
        let plain = serde_json::to_string(&account()).unwrap();
        let kept = StatusAccount::with_json(account());
        assert_eq!(serde_json::to_string(&kept).unwrap(), plain);
        let shared = StatusAccount::new(std::sync::Arc::new(account()));
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        // Inside a value too (the streaming events are built as values).
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            serde_json::to_value(account()).unwrap()
        );
        assert_eq!(kept.username, "alice");
        assert_eq!(kept.to_account().statuses_count, 1);
    }
}
