//! Web Push: notifications sent to the push service a client subscribed with
//! (`/api/v1/push/subscription`), encrypted for the subscription's keys (RFC 8291, or the older
//! `aesgcm` coding for clients that did not ask for `standard`) and signed with the server's
//! VAPID key (RFC 8292). The distribute worker queues one `push.notification` message per
//! matching subscription when a notification is made; the deliver workers send it through the
//! outbound guard, retry when the push service is busy or down, and forget a subscription the
//! push service says is gone (404, 410).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use stampede_activitypub::{Client, FetchError};
use stampede_db::Db;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue, outbox};
use stampede_webpush::Vapid;
use url::Url;

use crate::render::{NOTIFICATION_COLUMNS, NotificationRow, Renderer};

/// The kinds of notification a subscription can ask for (Mastodon's alerts).
pub const ALERTS: [&str; 10] = [
    "mention",
    "status",
    "reblog",
    "follow",
    "follow_request",
    "favourite",
    "poll",
    "update",
    "admin.sign_up",
    "admin.report",
];

/// Whom a subscription hears from.
pub const POLICIES: [&str; 4] = ["all", "followed", "follower", "none"];

/// How long a push service keeps a notification for an offline device (Mastodon's 48 hours).
const TTL_SECONDS: u64 = 48 * 3600;
/// How long a VAPID token is good for (RFC 8292 allows up to a day).
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most of a push service's answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// The longest body text: a push payload must fit one 4 KiB record.
const MAX_BODY_CHARS: usize = 140;

/// The server's VAPID key: the configured one, or the one made on first use and kept in the
/// database. Read once per process.
#[derive(Clone, Debug, Default)]
pub struct PushKeys {
    configured: Option<(String, String)>,
    key: Arc<tokio::sync::OnceCell<Arc<Vapid>>>,
}

/// Why the VAPID key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("VAPID_PRIVATE_KEY / VAPID_PUBLIC_KEY: {0}")]
    Configured(stampede_webpush::Error),
    #[error("the stored VAPID key: {0}")]
    Stored(stampede_webpush::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl PushKeys {
    pub fn from_config(config: &stampede_config::Config) -> Self {
        PushKeys {
            configured: config.web.vapid.clone(),
            key: Arc::default(),
        }
    }

    /// The key pair.
    pub async fn get(&self, db: &Db) -> Result<Arc<Vapid>, KeyError> {
        self.key
            .get_or_try_init(|| async {
                if let Some((private, public)) = &self.configured {
                    return Vapid::from_base64(private, public)
                        .map(Arc::new)
                        .map_err(KeyError::Configured);
                }
                let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT pkcs8 FROM vapid_key")
                    .fetch_optional(db)
                    .await?;
                let pkcs8 = match stored {
                    Some(pkcs8) => pkcs8,
                    None => {
                        let (_, pkcs8) = Vapid::generate().map_err(KeyError::Stored)?;
                        // Two processes may make one at once: the first stored wins.
                        sqlx::query(
                            "INSERT INTO vapid_key (pkcs8) VALUES ($1) ON CONFLICT DO NOTHING",
                        )
                        .bind(&pkcs8)
                        .execute(db)
                        .await?;
                        sqlx::query_scalar("SELECT pkcs8 FROM vapid_key")
                            .fetch_one(db)
                            .await?
                    }
                };
                Vapid::from_pkcs8(&pkcs8)
                    .map(Arc::new)
                    .map_err(KeyError::Stored)
            })
            .await
            .cloned()
    }

    /// The public key as clients are given it (base64url).
    pub async fn public_key(&self, db: &Db) -> Result<String, KeyError> {
        Ok(self.get(db).await?.public_key_base64())
    }
}

/// What travels on the `deliver` queue for Web Push.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Push {
    /// Send notification `notification_id` to subscription `subscription_id`.
    #[serde(rename = "push.notification")]
    Notification(PushRef),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PushRef {
    pub subscription_id: i64,
    pub notification_id: i64,
}

impl Message for Push {
    const QUEUE: WorkQueue = WorkQueue::Deliver;
    const KINDS: &'static [&'static str] = &["push.notification"];
}

/// Queues notification `notification_id` (of `kind`, for `recipient`, from `from`) for each
/// of the recipient's subscriptions that asks for that kind and whose policy lets the sender
/// through; a revoked token's subscription hears nothing. Returns how many were queued.
pub async fn queue(
    conn: &mut PgConnection,
    notification_id: i64,
    recipient: i64,
    from: i64,
    kind: &str,
) -> Result<usize, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT s.id FROM web_push_subscriptions s \
         JOIN oauth_access_tokens t ON t.id = s.access_token_id AND t.revoked_at IS NULL \
         WHERE s.account_id = $1 AND coalesce((s.alerts ->> $2)::boolean, false) \
           AND (s.policy = 'all' \
                OR (s.policy = 'followed' AND EXISTS (SELECT 1 FROM follows \
                      WHERE account_id = $1 AND target_account_id = $3)) \
                OR (s.policy = 'follower' AND EXISTS (SELECT 1 FROM follows \
                      WHERE account_id = $3 AND target_account_id = $1)))",
    )
    .bind(recipient)
    .bind(kind)
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    let messages: Vec<Push> = ids
        .iter()
        .map(|&subscription_id| {
            Push::Notification(PushRef {
                subscription_id,
                notification_id,
            })
        })
        .collect();
    outbox::send_all(conn, &messages).await?;
    Ok(messages.len())
}

#[derive(Debug, sqlx::FromRow)]
struct SubscriptionRow {
    account_id: i64,
    endpoint: String,
    key_p256dh: String,
    key_auth: String,
    standard: bool,
}

/// Sends queued pushes.
pub struct PushSender {
    db: Db,
    client: Client,
    keys: PushKeys,
    render: Renderer,
    /// Who the push service may contact about this server's pushes (VAPID `sub`).
    subject: String,
}

impl PushSender {
    pub fn new(db: Db, client: Client, keys: PushKeys, render: Renderer, subject: String) -> Self {
        PushSender {
            db,
            client,
            keys,
            render,
            subject,
        }
    }

    async fn send(&self, r: PushRef) -> Result<(), JobError> {
        let subscription: Option<SubscriptionRow> = sqlx::query_as(
            "SELECT s.account_id, s.endpoint, s.key_p256dh, s.key_auth, s.standard \
             FROM web_push_subscriptions s \
             JOIN oauth_access_tokens t ON t.id = s.access_token_id AND t.revoked_at IS NULL \
             WHERE s.id = $1",
        )
        .bind(r.subscription_id)
        .fetch_optional(&self.db)
        .await?;
        // Unsubscribed, or the token was revoked, since it was queued.
        let Some(subscription) = subscription else {
            return Ok(());
        };
        let row: Option<NotificationRow> = sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n \
             WHERE n.id = $1 AND n.account_id = $2 AND NOT n.filtered"
        ))
        .bind(r.notification_id)
        .bind(subscription.account_id)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(()); // dismissed since
        };
        let Some(notification) = self
            .render
            .notifications(subscription.account_id, vec![row])
            .await?
            .pop()
        else {
            return Ok(()); // its status is gone, or its sender suspended
        };
        let payload = payload(&notification);
        let plaintext = serde_json::to_vec(&payload).map_err(|e| JobError::Permanent(e.into()))?;

        let vapid = self
            .keys
            .get(&self.db)
            .await
            .map_err(|e| JobError::Retry(e.into()))?;
        let expires = SystemTime::now()
            .checked_add(TOKEN_LIFETIME)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let url = Url::parse(&subscription.endpoint)
            .map_err(|e| JobError::Permanent(anyhow::anyhow!("endpoint: {e}")))?;
        let p256dh = decode_key(&subscription.key_p256dh)?;
        let auth = decode_key(&subscription.key_auth)?;
        let permanent = |e: stampede_webpush::Error| JobError::Permanent(e.into());
        let request = self
            .client
            .request(reqwest::Method::POST, &url)
            .map_err(|e| JobError::Permanent(e.into()))?
            .header("TTL", TTL_SECONDS.to_string())
            .header("Urgency", "normal")
            .header("Content-Type", "application/octet-stream");
        let request = if subscription.standard {
            let body = stampede_webpush::encrypt(&p256dh, &auth, &plaintext).map_err(permanent)?;
            let authorization = vapid
                .authorization(&subscription.endpoint, &self.subject, expires)
                .map_err(permanent)?;
            request
                .header("Content-Encoding", "aes128gcm")
                .header("Authorization", authorization)
                .body(body)
        } else {
            let sealed =
                stampede_webpush::encrypt_legacy(&p256dh, &auth, &plaintext).map_err(permanent)?;
            let headers = vapid
                .legacy_headers(&subscription.endpoint, &self.subject, expires)
                .map_err(permanent)?;
            request
                .header("Content-Encoding", "aesgcm")
                .header("Encryption", format!("salt={}", sealed.salt_b64))
                .header(
                    "Crypto-Key",
                    format!("dh={};{}", sealed.dh_b64, headers.crypto_key),
                )
                .header("Authorization", headers.authorization)
                .body(sealed.body)
        };
        match self.client.send(request, MAX_ANSWER).await {
            Ok(_) => Ok(()),
            Err(FetchError::Status(_, status))
                if status == reqwest::StatusCode::NOT_FOUND
                    || status == reqwest::StatusCode::GONE =>
            {
                // The push service forgot the subscription: so do we.
                sqlx::query("DELETE FROM web_push_subscriptions WHERE id = $1")
                    .bind(r.subscription_id)
                    .execute(&self.db)
                    .await?;
                Ok(())
            }
            Err(FetchError::Status(url, status)) if status.is_client_error() => Err(
                JobError::Permanent(anyhow::anyhow!("{url} refused the push: {status}")),
            ),
            Err(error @ (FetchError::Refused(_) | FetchError::Scheme(_))) => {
                Err(JobError::Permanent(error.into()))
            }
            Err(error) => Err(JobError::Retry(error.into())),
        }
    }
}

impl Consume<Push> for PushSender {
    fn consume<'a>(
        &'a self,
        message: Push,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        match message {
            Push::Notification(r) => self.send(r).boxed(),
        }
    }
}

fn decode_key(text: &str) -> Result<Vec<u8>, JobError> {
    stampede_webpush::decode_key(text).map_err(|e| JobError::Permanent(e.into()))
}

/// The JSON a client's service worker or push relay receives (Mastodon's fields; the access
/// token Mastodon adds for its own web client is not sent: Stampede keeps only tokens' hashes,
/// and clients fetch the notification by id with their own token).
fn payload(n: &stampede_mastodon::Notification) -> Value {
    let who = if n.account.display_name.trim().is_empty() {
        n.account.username.clone()
    } else {
        n.account.display_name.clone()
    };
    let title = match n.kind.as_str() {
        "mention" => format!("{who} mentioned you"),
        "status" => format!("{who} just posted"),
        "reblog" => format!("{who} boosted your post"),
        "follow" => format!("{who} is now following you"),
        "follow_request" => format!("{who} has requested to follow you"),
        "favourite" => format!("{who} favourited your post"),
        "poll" => "A poll has ended".to_string(),
        "update" => format!("{who} edited a post"),
        "admin.sign_up" => format!("{who} signed up"),
        "admin.report" => format!("{who} filed a report"),
        other => format!("{who}: {other}"),
    };
    let body = match &n.status {
        Some(status) if !status.spoiler_text.is_empty() => status.spoiler_text.clone(),
        Some(status) => plain(&status.content),
        None => plain(&n.account.note),
    };
    json!({
        "notification_id": n.id.parse::<i64>().unwrap_or_default(),
        "notification_type": n.kind,
        "preferred_locale": "en",
        "title": title,
        "body": truncate(&body, MAX_BODY_CHARS),
        "icon": n.account.avatar_static,
    })
}

/// The text of sanitized HTML: tags dropped (paragraphs and line breaks become spaces), the
/// few entities the sanitizer writes decoded.
fn plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(name), '>') => {
                let name = name.trim_start_matches('/').to_ascii_lowercase();
                if name.starts_with('p') || name.starts_with("br") {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(name), c) => name.push(c),
            (None, c) => out.push(c),
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_of_a_status() {
        assert_eq!(
            plain(
                "<p>Hi <span class=\"h-card\"><a href=\"x\">@<span>bob</span></a></span> &amp; you</p><p>Two</p>"
            ),
            "Hi @bob & you Two"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
