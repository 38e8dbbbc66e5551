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
pub mod entity_cache;
pub mod export;
pub mod feeds;
pub mod filters;
pub mod follows;
#[doc(hidden)]
pub mod fuzzing;
pub mod grant_cache;
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
pub mod viewer_cache;
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
    use std::sync::LazyLock;

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

    /// SQL for a notification's `group_key`, computed inside its own `INSERT` when that is
    /// cheap and certain: a follow, favourite or boost to someone under Mastodon's default
    /// policy (no `notification_policies` row) from a sender who is not limited, while the
    /// recipient's group bucket is current. Such a notification cannot be filtered, and its key
    /// is the bucket's, so `notifications_classify` — which fires only for rows that arrive
    /// without a key — has nothing left to do. Anything else (a policy, a limited sender, a
    /// bucket to open, a mention) yields NULL and the trigger classifies the row as before. The
    /// arguments are the SQL expressions (parameters) for the recipient, the sender, the type
    /// and the status.
    pub fn group_key_in_place(recipient: &str, sender: &str, kind: &str, status: &str) -> String {
        format!(
            "CASE WHEN {kind} IN ('favourite', 'reblog', 'follow') \
               AND NOT EXISTS (SELECT 1 FROM notification_policies WHERE account_id = {recipient}) \
               AND (SELECT a.silenced_at IS NULL FROM accounts a WHERE a.id = {sender}) \
             THEN (SELECT b.prefix || '-' || b.bucket FROM notification_group_buckets b \
                   WHERE b.account_id = {recipient} \
                     AND b.prefix = CASE WHEN {kind} = 'follow' THEN {kind} \
                                         ELSE {kind} || '-' || coalesce({status}::text, '') END \
                     AND floor(extract(epoch FROM now()) / 3600)::bigint < b.bucket + 12) END"
        )
    }

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
        static INSERT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO notifications (id, account_id, from_account_id, type, status_id, group_key) \
                 SELECT $1, $2, $3, $4, $5, {} \
                 WHERE NOT EXISTS (SELECT 1 FROM blocks WHERE (account_id = $2 AND target_account_id = $3) \
                                                         OR (account_id = $3 AND target_account_id = $2)) \
                   AND NOT EXISTS (SELECT 1 FROM mutes WHERE account_id = $2 AND target_account_id = $3 \
                                     AND hide_notifications AND (expires_at IS NULL OR expires_at > now())) \
                 ON CONFLICT DO NOTHING",
                group_key_in_place("$2", "$3", "$4", "$5")
            )
        });
        let inserted = sqlx::query(INSERT.as_str())
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
