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
