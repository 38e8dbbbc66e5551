//! Grouped notifications (`/api/v2/notifications`), notification requests and the policy.

use serde::Serialize;

use crate::{Account, Status};

/// Notifications that belong together: several favourites of one status, several follows in
/// the same hours; a notification of another kind is a group of one (`ungrouped-ID`).
#[derive(Debug, Clone, Serialize)]
pub struct NotificationGroup {
    pub group_key: String,
    pub notifications_count: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// A number, not a string, as Mastodon renders it.
    pub most_recent_notification_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_min_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_max_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_page_notification_at: Option<String>,
    pub sample_account_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<String>,
}

/// An account as `expand_accounts=partial_avatars` shows the ones not rendered in full.
#[derive(Debug, Clone, Serialize)]
pub struct PartialAccountWithAvatar {
    pub id: String,
    pub acct: String,
    pub url: String,
    pub avatar: String,
    pub avatar_static: String,
    pub locked: bool,
    pub bot: bool,
}

impl From<&Account> for PartialAccountWithAvatar {
    fn from(a: &Account) -> Self {
        PartialAccountWithAvatar {
            id: a.id.clone(),
            acct: a.acct.clone(),
            url: a.url.clone(),
            avatar: a.avatar.clone(),
            avatar_static: a.avatar_static.clone(),
            locked: a.locked,
            bot: a.bot,
        }
    }
}

/// The groups of a page, with each account and status they name once.
#[derive(Debug, Clone, Serialize)]
pub struct GroupedNotificationsResults {
    pub accounts: Vec<Account>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_accounts: Option<Vec<PartialAccountWithAvatar>>,
    pub statuses: Vec<Status>,
    pub notification_groups: Vec<NotificationGroup>,
}

/// Filtered mentions from one sender, waiting for the user to accept or dismiss them.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRequest {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub account: Account,
    /// A string, as Mastodon renders it.
    pub notifications_count: String,
    pub last_status: Option<Status>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationPolicySummary {
    pub pending_requests_count: i64,
    pub pending_notifications_count: i64,
}

/// What happens to notifications from people the user may not want to hear from: `accept`,
/// `filter` (into requests) or `drop`.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationPolicy {
    pub for_not_following: String,
    pub for_not_followers: String,
    pub for_new_accounts: String,
    pub for_private_mentions: String,
    pub for_limited_accounts: String,
    pub summary: NotificationPolicySummary,
}

/// A Web Push subscription (one per access token).
#[derive(Debug, Clone, Serialize)]
pub struct WebPushSubscription {
    pub id: String,
    pub endpoint: String,
    pub standard: bool,
    pub alerts: std::collections::BTreeMap<String, bool>,
    pub server_key: String,
    pub policy: String,
}

/// A reaction to an announcement, counted.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncementReaction {
    pub name: String,
    pub count: i64,
    pub me: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_url: Option<String>,
}

/// An announcement from the server's operator.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub id: String,
    pub content: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub all_day: bool,
    pub published_at: String,
    pub updated_at: String,
    pub read: bool,
    pub mentions: Vec<serde_json::Value>,
    pub statuses: Vec<serde_json::Value>,
    pub tags: Vec<serde_json::Value>,
    pub emojis: Vec<crate::CustomEmoji>,
    pub reactions: Vec<AnnouncementReaction>,
}
