//! The OAuth scopes each kind of route accepts, in one place: a route takes its own scope, the
//! broad `read` or `write` that contains it, and — for follows, blocks and mutes — the legacy
//! `follow`, as Mastodon's controllers do. The admin API's scopes stay beside their routes.

pub const READ: &[&str] = &["read"];
pub const PROFILE: &[&str] = &["profile"];
pub const PUSH: &[&str] = &["push"];

pub const ACCOUNTS_READ: &[&str] = &["read", "read:accounts"];
pub const ACCOUNTS_WRITE: &[&str] = &["write", "write:accounts"];
/// The signed-in account itself (`verify_credentials`): `profile` is enough.
pub const OWN_ACCOUNT_READ: &[&str] = &["read", "read:accounts", "profile"];
pub const BLOCKS_READ: &[&str] = &["read", "read:blocks", "follow"];
pub const BLOCKS_WRITE: &[&str] = &["write", "write:blocks", "follow"];
pub const BOOKMARKS_READ: &[&str] = &["read", "read:bookmarks"];
pub const BOOKMARKS_WRITE: &[&str] = &["write", "write:bookmarks"];
pub const CONVERSATIONS_WRITE: &[&str] = &["write", "write:conversations"];
pub const FAVOURITES_READ: &[&str] = &["read", "read:favourites"];
pub const FAVOURITES_WRITE: &[&str] = &["write", "write:favourites"];
pub const FILTERS_READ: &[&str] = &["read", "read:filters"];
pub const FILTERS_WRITE: &[&str] = &["write", "write:filters"];
pub const FOLLOWS_READ: &[&str] = &["read", "read:follows", "follow"];
pub const FOLLOWS_WRITE: &[&str] = &["write", "write:follows", "follow"];
pub const LISTS_READ: &[&str] = &["read", "read:lists"];
pub const LISTS_WRITE: &[&str] = &["write", "write:lists"];
pub const MEDIA_WRITE: &[&str] = &["write", "write:media"];
pub const MUTES_READ: &[&str] = &["read", "read:mutes", "follow"];
pub const MUTES_WRITE: &[&str] = &["write", "write:mutes", "follow"];
/// Muting a conversation: Mastodon takes `write:mutes` there, without the legacy `follow`.
pub const CONVERSATION_MUTES_WRITE: &[&str] = &["write", "write:mutes"];
pub const NOTIFICATIONS_READ: &[&str] = &["read", "read:notifications"];
pub const NOTIFICATIONS_WRITE: &[&str] = &["write", "write:notifications"];
pub const REPORTS_WRITE: &[&str] = &["write", "write:reports"];
pub const SEARCH_READ: &[&str] = &["read", "read:search"];
pub const STATUSES_READ: &[&str] = &["read", "read:statuses"];
pub const STATUSES_WRITE: &[&str] = &["write", "write:statuses"];
