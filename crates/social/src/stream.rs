//! Streaming events: what the delivery and web services publish through Redis pub/sub for the
//! streaming service to push to connected clients (ADR 0013).
//!
//! There are three channels, and every streaming process receives all of them on its one
//! subscription:
//!
//! - [`STATUS_CHANNEL`]: one [`StatusEvent`] per status event (`update`, `status.update`,
//!   `delete`), rendered once, carrying its whole audience — the accounts whose user stream gets
//!   it, its lists, hashtags, and whether it belongs on the public streams — plus the accounts it
//!   involves, so that each process filters it per viewer (blocks, mutes) without a query;
//! - [`ACCOUNT_CHANNEL`]: one [`AccountEvent`] for one account (`notification`, `conversation`);
//! - [`CONTROL_CHANNEL`]: [`Control`] messages — a token revoked, an account's relations changed.
//!
//! Publishing is best effort: streaming is a live view, and a client that missed an event reads it
//! from the REST API when it reconnects (Mastodon works the same way).
//!
//! Events for one account are rendered only while it listens somewhere: every streaming process
//! marks the accounts it holds streams for ([`mark_listening`], on connect and then every
//! [`LISTENING_REFRESH`]), as Mastodon's streaming server keeps `subscribed:timeline:<id>`, and
//! the delivery workers ask [`is_listening`] before they render a notification. A follow on a
//! migration day notifies an account that is rarely online; its notification is stored and sent
//! to Web Push, but nothing is rendered for streams nobody holds.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use stampede_cache::Cache;

/// Status events.
pub const STATUS_CHANNEL: &str = "streaming:status";
/// Events for one account.
pub const ACCOUNT_CHANNEL: &str = "streaming:account";
/// Connection control.
pub const CONTROL_CHANNEL: &str = "streaming:control";

/// A status event with its audience.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusEvent {
    /// `update`, `status.update` or `delete`.
    pub event: String,
    /// The event's payload as sent to clients: the status JSON, or the id for `delete`.
    pub payload: String,
    /// When it was published, in Unix milliseconds (for the lag metric).
    pub published_ms: i64,
    pub author: i64,
    /// The author, the boosted status's author and the mentioned accounts: a viewer who blocks,
    /// mutes or is blocked by any of them does not get the event.
    #[serde(default)]
    pub involved: Vec<i64>,
    /// On the public streams (a public status, not a boost).
    #[serde(default)]
    pub public: bool,
    /// Written on this server.
    #[serde(default)]
    pub local: bool,
    /// Has media attached.
    #[serde(default)]
    pub media: bool,
    /// Lower-cased hashtags (for the hashtag streams; public statuses only).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Accounts whose `user` stream gets it.
    #[serde(default)]
    pub home: Vec<i64>,
    /// Lists whose stream gets it.
    #[serde(default)]
    pub lists: Vec<i64>,
}

/// Which of an account's streams an [`AccountEvent`] goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStream {
    /// `user` and `user:notification`.
    Notification,
    /// `direct`.
    Direct,
    /// `user` only.
    User,
}

/// An event for one account's streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEvent {
    pub account: i64,
    pub stream: AccountStream,
    /// `notification`, `conversation`, `filters_changed` …
    pub event: String,
    pub payload: String,
    pub published_ms: i64,
}

/// Connection control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// The token was revoked: close its connections.
    Revoke { token_id: i64 },
    /// Every token of the account was revoked, or it was suspended: close its connections.
    Disconnect { account: i64 },
    /// The account blocked, muted, followed … someone, or was blocked: reload what is filtered.
    Relations { account: i64 },
    /// The account's filters changed: reload them, then send `filters_changed` to its `user`
    /// streams (in that order, so a client that hears the event gets the new filters applied).
    FiltersChanged { account: i64 },
}

/// `account`'s filters changed: its streams reload them and then tell its `user` streams
/// (`filters_changed`, no payload in Mastodon).
pub async fn filters_changed(cache: &Cache, account: i64) {
    publish(cache, CONTROL_CHANNEL, &Control::FiltersChanged { account }).await;
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Publishes `message` on `channel`; a failure is logged, not returned (see the module docs).
pub async fn publish<T: Serialize>(cache: &Cache, channel: &str, message: &T) {
    let body = match serde_json::to_string(message) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, channel, "cannot encode a streaming event");
            return;
        }
    };
    if let Err(error) = cache.publish(channel, &body).await {
        tracing::warn!(%error, channel, "cannot publish a streaming event");
    }
}

/// How long an account counts as listening after a streaming process last marked it.
pub const LISTENING_TTL: Duration = Duration::from_secs(180);
/// How often each streaming process marks the accounts it holds streams for.
pub const LISTENING_REFRESH: Duration = Duration::from_secs(60);

fn listening_key(account: i64) -> String {
    format!("streaming:listening:{account}")
}

/// Marks `account` as holding a stream on this process, for [`LISTENING_TTL`].
pub async fn mark_listening(cache: &Cache, account: i64) {
    if let Err(error) = cache
        .set_ex(&listening_key(account), "1", LISTENING_TTL)
        .await
    {
        tracing::warn!(%error, account, "cannot mark a streaming account as listening");
    }
}

/// Whether some streaming process holds a stream of `account`. When the store cannot say, the
/// answer is yes: an event rendered for nobody costs less than one lost.
pub async fn is_listening(cache: &Cache, account: i64) -> bool {
    match cache.get(&listening_key(account)).await {
        Ok(mark) => mark.is_some(),
        Err(_) => true,
    }
}

/// Tells the streaming processes that `accounts`' relations changed.
pub async fn relations_changed(cache: &Cache, accounts: &[i64]) {
    for &account in accounts {
        publish(cache, CONTROL_CHANNEL, &Control::Relations { account }).await;
    }
}
