//! The local social network's domain, shared by the web service (which writes statuses and
//! relationships) and the delivery service (which fans them out and publishes scheduled
//! statuses):
//!
//! - [`text`]: parsing and rendering status text;
//! - [`post`]: creating a status in one transaction, with its mentions, tags, poll, counters,
//!   notifications and the outbox message that fans it out;
//! - [`feeds`]: the Redis home feeds — keys, rebuilding from PostgreSQL;
//! - [`follows`]: following an account in one statement;
//! - [`media`]: uploads, their variants, remote media and its cache;
//! - [`distribute`]: the `distribute` queue's handlers (fan-out, removal, merge on follow).
//!
//! Who may see a status is decided in one place, [`visibility`], whose SQL predicates every
//! read path embeds.

pub mod account_domain_blocks;
pub mod accounts;
pub mod activitypub;
pub mod announcements;
pub mod cards;
pub mod deletion;
pub mod delivery;
pub mod distribute;
pub mod domain_policy;
pub mod domains;
pub mod emojis;
pub mod export;
pub mod feeds;
pub mod filters;
pub mod follows;
pub mod import;
pub mod inbox;
pub mod interactions;
pub mod keys;
pub mod legal;
pub mod media;
pub mod moderation;
pub mod moves;
pub mod notification_requests;
pub mod outbound;
pub mod passwords;
pub mod post;
pub mod push;
pub mod quotes;
pub mod relations;
pub mod remote;
pub mod render;
pub mod stream;
pub mod text;
pub mod tokens;
pub mod visibility;

use std::fmt;
use std::str::FromStr;

/// Who a status is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    Public,
    Unlisted,
    Private,
    Direct,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }
}

impl FromStr for Visibility {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "public" => Ok(Visibility::Public),
            "unlisted" => Ok(Visibility::Unlisted),
            "private" => Ok(Visibility::Private),
            "direct" => Ok(Visibility::Direct),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Notification types (Mastodon's names).
pub mod notification {
    pub const MENTION: &str = "mention";
    pub const STATUS: &str = "status";
    pub const REBLOG: &str = "reblog";
    pub const FOLLOW: &str = "follow";
    pub const FOLLOW_REQUEST: &str = "follow_request";
    pub const FAVOURITE: &str = "favourite";
    pub const POLL: &str = "poll";
    pub const UPDATE: &str = "update";
    pub const QUOTE: &str = "quote";
    pub const ALL: [&str; 9] = [
        MENTION,
        STATUS,
        REBLOG,
        FOLLOW,
        FOLLOW_REQUEST,
        FAVOURITE,
        POLL,
        UPDATE,
        QUOTE,
    ];

    /// Inserts a notification unless the recipient blocks the actor, or mutes them with
    /// notifications hidden, or it already exists, and queues it for the recipient's streams.
    /// Runs in the caller's transaction.
    pub async fn create(
        conn: &mut sqlx::PgConnection,
        id: i64,
        recipient: i64,
        from: i64,
        kind: &str,
        status_id: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        if recipient == from {
            return Ok(());
        }
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, account_id, from_account_id, type, status_id) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM blocks WHERE (account_id = $2 AND target_account_id = $3) \
                                                     OR (account_id = $3 AND target_account_id = $2)) \
               AND NOT EXISTS (SELECT 1 FROM mutes WHERE account_id = $2 AND target_account_id = $3 \
                                 AND hide_notifications AND (expires_at IS NULL OR expires_at > now())) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(recipient)
        .bind(from)
        .bind(kind)
        .bind(status_id)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            // The distribute worker renders it for the recipient's streams.
            stampede_queue::outbox::send(
                conn,
                &crate::distribute::Fanout::NotificationCreated(
                    crate::distribute::NotificationRef {
                        notification_id: id,
                    },
                ),
            )
            .await?;
        }
        Ok(())
    }
}
