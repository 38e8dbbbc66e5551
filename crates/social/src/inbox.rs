//! Activities from other servers, applied by the `ingress` workers after `web` verified their
//! signatures. Each is applied once (its id is recorded in the transaction that applies it) and
//! through the same domain code as the local API: a remote Follow goes through
//! [`follows::follow`], a remote unfollow through [`follows::unfollow`].
//!
//! Applied: Follow, Accept and Reject (of a Follow), Undo (Follow, Like, Announce, Block),
//! Create (Note), Update (Note, the signer's actor), Delete (a Note), Like, Announce (of a
//! status this server has), Block, Add/Remove (featured), Move (its local followers follow the
//! new account, which must name the old one in `alsoKnownAs`). Anything else is acknowledged
//! and dropped, counted by type.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue, outbox};
use stampede_telemetry::Metrics;

use crate::activitypub::actor_uri;
use crate::distribute::{RemoteFanout, StatusRef};
use crate::follows::{self, Followed, Tell};
use crate::remote::{RemoteAccount, Resolver, first_id, items};
use crate::{interactions, notification, outbound, post, text};

/// What the `ingress` queue carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Ingress {
    /// An activity whose HTTP signature verified as `signer`'s (an actor URI).
    #[serde(rename = "activity.received")]
    Activity(Received),
}

impl Message for Ingress {
    const QUEUE: WorkQueue = WorkQueue::Ingress;
    const KINDS: &'static [&'static str] = &["activity.received"];
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Received {
    pub signer: String,
    pub activity: Value,
    /// The request was signed with RFC 9421 (so the signer's server speaks it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rfc9421: bool,
}

/// Stores a Note by `signer` (its author) as a remote status, fanned out to local followers,
/// mentions notified; its id (an existing one's when it is known already). Unless `solicited`
/// (fetched because someone here wanted it), it is taken only from an author someone here
/// follows, or when it mentions someone here or answers a status this server has.
pub async fn store_note(
    tx: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    signer: &RemoteAccount,
    note: &Value,
    solicited: bool,
    cache_media: bool,
) -> Result<Option<i64>, sqlx::Error> {
    if note["type"] != "Note" && note["type"] != "Article" && note["type"] != "Question" {
        return Ok(None);
    }
    let Some(uri) = note["id"].as_str() else {
        return Ok(None);
    };
    if first_id(&note["attributedTo"]).as_deref() != Some(signer.uri.as_str()) {
        return Ok(None);
    }
    let same_server = url::Url::parse(uri)
        .ok()
        .and_then(|u| crate::remote::authority(&u));
    if same_server.as_deref() != Some(signer.domain.as_str()) {
        return Ok(None);
    }
    if let Some((existing, _, _)) = status_by_uri(tx, base, uri).await? {
        return Ok(Some(existing));
    }
    let audience: Vec<String> = ["to", "cc"]
        .iter()
        .flat_map(|k| match &note[*k] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().filter_map(first_id).collect(),
            _ => Vec::new(),
        })
        .collect();
    let to: Vec<String> = match &note["to"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(first_id).collect(),
        _ => Vec::new(),
    };
    let public = |s: &String| s == crate::activitypub::PUBLIC || s == "as:Public" || s == "Public";
    let followers_url: Option<String> =
        sqlx::query_scalar("SELECT followers_url FROM accounts WHERE id = $1")
            .bind(signer.id)
            .fetch_one(&mut *tx)
            .await?;
    let visibility = if to.iter().any(public) {
        "public"
    } else if audience.iter().any(public) {
        "unlisted"
    } else if followers_url.is_some_and(|f| audience.contains(&f)) {
        "private"
    } else {
        "direct"
    };
    let mut mentioned = Vec::new();
    {
        for tag in items(&note["tag"])
            .into_iter()
            .filter(|t| t["type"] == "Mention")
        {
            if let Some(href) = first_id(&tag["href"])
                && let Some(local) = local_by_uri(tx, base, &href).await?
                && !mentioned.contains(&local)
            {
                mentioned.push(local);
            }
        }
    }
    let parent = match first_id(&note["inReplyTo"]) {
        Some(parent_uri) => status_by_uri(tx, base, &parent_uri).await?,
        None => None,
    };
    // A vote in a local poll: a Note with just a `name` (the option), answering the poll.
    if let (Some(name), Some((parent_id, _, _))) = (note["name"].as_str(), parent)
        && note["content"].as_str().is_none_or(str::is_empty)
        && record_vote(tx, parent_id, signer.id, name).await?.is_some()
    {
        return Ok(Some(parent_id));
    }
    // As Mastodon: a note is taken only if someone here follows its author, or it mentions
    // someone here, or it answers a status this server has — not from strangers at large.
    if !solicited
        && mentioned.is_empty()
        && parent.is_none()
        && !followed_here(&mut *tx, signer.id).await?
    {
        return Ok(None);
    }
    let id = ids.next_id().as_i64();
    let content = text::sanitize(
        note["content"]
            .as_str()
            .or_else(|| {
                note["contentMap"]
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(Value::as_str)
            })
            .unwrap_or_default(),
    );
    let language = note["contentMap"]
        .as_object()
        .and_then(|m| m.keys().next().cloned());
    let published = note["published"]
        .as_str()
        .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    sqlx::query(
        "INSERT INTO statuses (id, account_id, content, spoiler_text, sensitive, visibility, \
           language, in_reply_to_id, in_reply_to_account_id, conversation_id, uri, url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(signer.id)
    .bind(&content)
    .bind(note["summary"].as_str().unwrap_or_default())
    .bind(note["sensitive"].as_bool().unwrap_or(false))
    .bind(visibility)
    .bind(language)
    .bind(parent.map(|p| p.0))
    .bind(parent.map(|p| p.1))
    .bind(parent.map_or(id, |p| p.2))
    .bind(uri)
    .bind(first_id(&note["url"]))
    .bind(published)
    .execute(&mut *tx)
    .await?;
    let tags: Vec<String> = items(&note["tag"])
        .into_iter()
        .filter(|t| t["type"] == "Hashtag")
        .filter_map(|t| t["name"].as_str())
        .map(|n| n.trim_start_matches('#').to_string())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .collect();
    post::attach(tx, id, &mentioned, &tags).await?;
    crate::emojis::record_remote(tx, ids, &signer.domain, &note["tag"]).await?;
    if items(&note["attachment"]).is_empty() {
        crate::cards::queue(tx, id, &content, visibility, base).await?;
    }
    let media = crate::media::RemoteMedia::from_note(note);
    if !media.is_empty() {
        crate::media::record_remote(tx, ids, signer.id, id, &media, cache_media).await?;
    }
    if note["type"] == "Question" {
        store_poll(tx, ids, id, note, published).await?;
    }
    for account in &mentioned {
        notification::create(
            tx,
            ids.next_id().as_i64(),
            *account,
            signer.id,
            notification::MENTION,
            Some(id),
        )
        .await?;
    }
    post::counted(tx, signer.id, parent.map(|p| p.0)).await?;
    outbox::send(
        tx,
        &RemoteFanout::StatusCreated(StatusRef { status_id: id }),
    )
    .await?;
    Ok(Some(id))
}

/// A Question's poll as its origin counts it.
pub(crate) struct RemotePoll {
    options: Vec<String>,
    counts: Vec<i64>,
    /// `anyOf`: several choices allowed.
    multiple: bool,
    voters: Option<i64>,
}

/// A Question's options (`oneOf` or, for several choices, `anyOf`) and their counts.
pub(crate) fn poll_of(question: &Value) -> Option<RemotePoll> {
    let (key, multiple) = if question["anyOf"].is_null() {
        ("oneOf", false)
    } else {
        ("anyOf", true)
    };
    let options = items(&question[key]);
    if options.is_empty() {
        return None;
    }
    let names = options
        .iter()
        .map(|o| {
            o["name"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect()
        })
        .collect();
    let counts = options
        .iter()
        .map(|o| o["replies"]["totalItems"].as_i64().unwrap_or(0))
        .collect();
    Some(RemotePoll {
        options: names,
        counts,
        multiple,
        voters: question["votersCount"].as_i64(),
    })
}

/// The poll of a stored remote Question, with the origin's counts.
async fn store_poll(
    tx: &mut PgConnection,
    ids: &IdGenerator,
    status_id: i64,
    question: &Value,
    published: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Some(RemotePoll {
        options,
        counts,
        multiple,
        voters,
    }) = poll_of(question)
    else {
        return Ok(());
    };
    let end = [&question["endTime"], &question["closed"]]
        .iter()
        .find_map(|v| v.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(published + chrono::Duration::days(1));
    sqlx::query(
        "INSERT INTO polls (id, status_id, options, multiple, expires_at, remote_counts, remote_voters) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (status_id) DO NOTHING",
    )
    .bind(ids.next_id().as_i64())
    .bind(status_id)
    .bind(&options)
    .bind(multiple)
    .bind(end)
    .bind(&counts)
    .bind(voters)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The origin's new counts for the poll of remote status `status_id` (an Update of its Question).
async fn update_poll(
    tx: &mut PgConnection,
    status_id: i64,
    question: &Value,
) -> Result<(), sqlx::Error> {
    if let Some(poll) = poll_of(question) {
        sqlx::query("UPDATE polls SET remote_counts = $2, remote_voters = $3 WHERE status_id = $1")
            .bind(status_id)
            .bind(&poll.counts)
            .bind(poll.voters)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A remote account's vote for option `name` in the poll of local status `status_id`; the
/// poll's id, or `None` when the status has no poll with that option (then the note is not a
/// vote). One vote per account in a single-choice poll; none after the poll ended.
async fn record_vote(
    tx: &mut PgConnection,
    status_id: i64,
    voter: i64,
    name: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let poll: Option<(i64, Vec<String>, bool, bool)> = sqlx::query_as(
        "SELECT p.id, p.options, p.multiple, p.expires_at > now() FROM polls p \
         JOIN statuses s ON s.id = p.status_id WHERE p.status_id = $1 AND s.uri IS NULL",
    )
    .bind(status_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((poll_id, options, multiple, open)) = poll else {
        return Ok(None);
    };
    let Some(choice) = options.iter().position(|o| o == name) else {
        return Ok(None);
    };
    if open {
        sqlx::query(
            "INSERT INTO poll_votes (poll_id, account_id, choice) \
             SELECT $1, $2, $3 WHERE $4 OR NOT EXISTS \
               (SELECT 1 FROM poll_votes WHERE poll_id = $1 AND account_id = $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(poll_id)
        .bind(voter)
        .bind(choice as i32)
        .bind(multiple)
        .execute(&mut *tx)
        .await?;
    }
    Ok(Some(poll_id))
}

fn is_actor(object: &Value) -> bool {
    matches!(
        object["type"].as_str(),
        Some("Person" | "Service" | "Application" | "Group" | "Organization")
    )
}

/// The `ingress` worker.
#[derive(Clone, Debug)]
pub struct Inbox {
    db: Db,
    resolver: Resolver,
    base: String,
    ids: Arc<IdGenerator>,
    metrics: Arc<Metrics>,
    /// Told that the signer's server is alive (a domain marked failing or unavailable for
    /// deliveries is cleared by one signed request from it).
    health: Option<Arc<crate::domains::DomainHealth>>,
}

/// The local account a local actor URI names (`BASE/users/NAME`).
async fn local_by_uri(
    conn: &mut PgConnection,
    base: &str,
    uri: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let Some(name) = uri
        .strip_prefix(base)
        .and_then(|p| p.strip_prefix("/users/"))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    else {
        return Ok(None);
    };
    sqlx::query_scalar(
        "SELECT id FROM accounts WHERE lower(username) = lower($1) AND domain IS NULL \
         AND suspended_at IS NULL",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// Whether some local account follows `account_id`: what makes a remote account's notes and
/// boosts wanted here.
async fn followed_here(
    db: impl sqlx::PgExecutor<'_>,
    account_id: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM follows f JOIN accounts a ON a.id = f.account_id \
                        WHERE f.target_account_id = $1 AND a.domain IS NULL)",
    )
    .bind(account_id)
    .fetch_one(db)
    .await
}

/// The local status a URI names: a remote one by its stored `uri`, a local one by its path.
async fn status_by_uri(
    conn: &mut PgConnection,
    base: &str,
    uri: &str,
) -> Result<Option<(i64, i64, i64)>, sqlx::Error> {
    let local_id = uri
        .strip_prefix(base)
        .and_then(|p| p.strip_prefix("/users/"))
        .and_then(|p| p.split_once("/statuses/"))
        .and_then(|(_, id)| id.parse::<i64>().ok());
    let row = sqlx::query(
        "SELECT id, account_id, conversation_id FROM statuses \
         WHERE (uri = $1 OR ($2::bigint IS NOT NULL AND id = $2 AND uri IS NULL))",
    )
    .bind(uri)
    .bind(local_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("id")?,
            r.try_get("account_id")?,
            r.try_get("conversation_id")?,
        ))
    })
    .transpose()
}

impl Inbox {
    pub fn new(db: Db, resolver: Resolver, base: String, metrics: Arc<Metrics>) -> Self {
        Inbox {
            db,
            resolver,
            base,
            ids: Arc::new(IdGenerator::new()),
            metrics,
            health: None,
        }
    }

    /// Reports signers' servers as alive to `health`.
    pub fn with_health(mut self, health: Arc<crate::domains::DomainHealth>) -> Self {
        self.health = Some(health);
        self
    }

    async fn apply(&self, received: Received) -> Result<(), JobError> {
        let activity = &received.activity;
        let kind = activity["type"].as_str().unwrap_or("").to_string();
        let actor = first_id(&activity["actor"]).unwrap_or_default();
        // Only the signer may act for itself.
        if actor != received.signer {
            self.dropped(&kind, "actor is not the signer");
            return Ok(());
        }
        // Queued before its domain was blocked: dropped now.
        let domain = url::Url::parse(&actor)
            .ok()
            .and_then(|u| crate::remote::authority(&u))
            .unwrap_or_default();
        let policy = self.resolver.policy();
        if policy.get().await?.refuses(&domain) && policy.refuses_now(&domain).await? {
            self.dropped(&kind, "the domain is blocked");
            return Ok(());
        }
        let signer = self.resolver.by_uri(&actor, false).await?;
        if let Some(health) = &self.health
            && let Ok(inbox) = url::Url::parse(&signer.delivery_inbox)
        {
            let domain = crate::remote::authority(&inbox).unwrap_or_default();
            health.revived(&domain).await;
            if received.rfc9421 {
                health.learned_rfc9421(&domain, true).await;
            }
        }
        if kind == "Update" && is_actor(&activity["object"]) {
            // The actor's own new profile: stored as a fetch would store it (idempotent, and
            // through the resolver's own connection, so not inside a transaction here).
            let applied = self.update_actor(&signer, &activity["object"]).await?;
            let outcome = if applied { "applied" } else { "dropped" };
            self.metrics.inbox_activity(&kind, outcome);
            return Ok(());
        }
        if kind == "Announce" {
            self.fetch_boosted(&signer, &activity["object"]).await?;
        }
        if kind == "Create" && self.wanted(&signer, &activity["object"]).await? {
            self.fetch_parent(&activity["object"]).await?;
        }
        // A Move names the new account, which must name the old one among its aliases: fetched
        // fresh (and stored) before the transaction.
        let moved_to = if kind == "Move" {
            match self.moved_to(&signer, activity).await? {
                Some(target) => Some(target),
                None => {
                    self.dropped(&kind, "the target does not name the mover as an alias");
                    return Ok(());
                }
            }
        } else {
            None
        };
        let mut tx = self.db.begin().await?;
        if let Some(id) = activity["id"].as_str() {
            let fresh =
                sqlx::query("INSERT INTO inbox_activities (id) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            if !fresh {
                return Ok(());
            }
        }
        let applied = match kind.as_str() {
            "Follow" => self.follow(&mut tx, &signer, activity).await?,
            "Accept" => self.accept(&mut tx, &signer, activity).await?,
            "Reject" => self.reject(&mut tx, &signer, activity).await?,
            "Undo" => self.undo(&mut tx, &signer, activity).await?,
            "Create" => self.create(&mut tx, &signer, &activity["object"]).await?,
            "Delete" => self.delete(&mut tx, &signer, activity).await?,
            "Like" => self.like(&mut tx, &signer, activity).await?,
            "Announce" => self.announce(&mut tx, &signer, activity).await?,
            "Update" => self.update(&mut tx, &signer, activity).await?,
            "Block" => self.block(&mut tx, &signer, activity).await?,
            "Flag" => self.flag(&mut tx, &signer, activity).await?,
            "Move" => match moved_to {
                Some(target) => self.moved(&mut tx, &signer, target).await?,
                None => false,
            },
            "Add" | "Remove" => {
                self.featured(&mut tx, &signer, activity, kind == "Add")
                    .await?
            }
            _ => false,
        };
        tx.commit().await?;
        if applied {
            self.metrics.inbox_activity(&kind, "applied");
        } else {
            self.dropped(&kind, "not applicable");
        }
        Ok(())
    }

    fn dropped(&self, kind: &str, why: &str) {
        tracing::debug!(kind, why, "inbound activity dropped");
        self.metrics.inbox_activity(kind, "dropped");
    }

    /// A remote account follows a local one: at once (and Accepted), or as a request to a
    /// locked account.
    async fn follow(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let object = first_id(&activity["object"]).unwrap_or_default();
        let Some(target) = local_by_uri(tx, &self.base, &object).await? else {
            return Ok(false);
        };
        let follow_id = activity["id"].as_str().unwrap_or_default();
        let locked: bool = sqlx::query_scalar("SELECT locked FROM accounts WHERE id = $1")
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
        if locked {
            let fresh: bool = sqlx::query_scalar(
                "INSERT INTO follow_requests (id, account_id, target_account_id, uri) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, target_account_id) \
                 DO UPDATE SET uri = EXCLUDED.uri RETURNING (xmax = 0)",
            )
            .bind(self.ids.next_id().as_i64())
            .bind(signer.id)
            .bind(target)
            .bind(follow_id)
            .fetch_one(&mut *tx)
            .await?;
            if fresh {
                notification::create(
                    tx,
                    self.ids.next_id().as_i64(),
                    target,
                    signer.id,
                    notification::FOLLOW_REQUEST,
                    None,
                )
                .await?;
            }
            return Ok(true);
        }
        let followed =
            follows::follow(tx, &self.ids, signer.id, target, None, None, Tell::Target).await?;
        if followed == Followed::Blocked {
            let reject = self.answer("Reject", tx, target, signer, activity).await?;
            outbound::send(tx, target, &reject, [signer.inbox.clone()]).await?;
            return Ok(true);
        }
        sqlx::query("UPDATE follows SET uri = $3 WHERE account_id = $1 AND target_account_id = $2")
            .bind(signer.id)
            .bind(target)
            .bind(follow_id)
            .execute(&mut *tx)
            .await?;
        let accept = self.answer("Accept", tx, target, signer, activity).await?;
        outbound::send(tx, target, &accept, [signer.inbox.clone()]).await?;
        Ok(true)
    }

    /// `Accept` or `Reject` of `follow`, by local account `target`.
    async fn answer(
        &self,
        kind: &str,
        tx: &mut PgConnection,
        target: i64,
        signer: &RemoteAccount,
        follow: &Value,
    ) -> Result<Value, JobError> {
        let username: String = sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1")
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
        let me = actor_uri(&self.base, &username);
        Ok(json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{me}#{}s/{}", kind.to_ascii_lowercase(), self.ids.next_id().as_i64()),
            "type": kind,
            "actor": me,
            "object": {
                "id": follow["id"],
                "type": "Follow",
                "actor": signer.uri,
                "object": me,
            },
        }))
    }

    /// The local follower and the request a Follow (embedded or by id) refers to.
    async fn our_request(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        follow: &Value,
    ) -> Result<Option<(i64, bool, bool, Option<String>)>, sqlx::Error> {
        let follow_id = first_id(follow).unwrap_or_default();
        let follower = match first_id(&follow["actor"]) {
            Some(actor) => local_by_uri(tx, &self.base, &actor).await?,
            None => None,
        };
        let row = sqlx::query(
            "DELETE FROM follow_requests WHERE target_account_id = $1 \
               AND (uri = $2 OR ($3::bigint IS NOT NULL AND account_id = $3)) \
             RETURNING account_id, show_reblogs, notify, uri",
        )
        .bind(signer.id)
        .bind(&follow_id)
        .bind(follower)
        .fetch_optional(&mut *tx)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("account_id")?,
                r.try_get("show_reblogs")?,
                r.try_get("notify")?,
                r.try_get("uri")?,
            ))
        })
        .transpose()
    }

    /// The remote account accepted a local account's follow request.
    async fn accept(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let object = &activity["object"];
        if object.is_object() && object["type"] != "Follow" {
            return Ok(false);
        }
        let Some((follower, reblogs, notify, uri)) = self.our_request(tx, signer, object).await?
        else {
            return Ok(false);
        };
        follows::follow(
            tx,
            &self.ids,
            follower,
            signer.id,
            Some(reblogs),
            Some(notify),
            Tell::Nobody,
        )
        .await?;
        sqlx::query("UPDATE follows SET uri = $3 WHERE account_id = $1 AND target_account_id = $2")
            .bind(follower)
            .bind(signer.id)
            .bind(uri)
            .execute(&mut *tx)
            .await?;
        Ok(true)
    }

    /// The remote account refused (or ended) a local account's follow.
    async fn reject(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let object = &activity["object"];
        if self.our_request(tx, signer, object).await?.is_some() {
            return Ok(true);
        }
        let follower = match first_id(&object["actor"]) {
            Some(actor) => local_by_uri(tx, &self.base, &actor).await?,
            None => None,
        };
        match follower {
            Some(follower) => Ok(follows::unfollow(tx, follower, signer.id).await?),
            None => Ok(false),
        }
    }

    /// Undo of a Follow: the remote account stops following.
    async fn undo(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let object = &activity["object"];
        let kind = object["type"].as_str().unwrap_or_default();
        let follow_id = first_id(object).unwrap_or_default();
        match kind {
            "Like" => return self.unlike(tx, signer, object).await,
            "Announce" => {
                let boost: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM statuses WHERE uri = $1 AND account_id = $2 AND reblog_of_id IS NOT NULL",
                )
                .bind(&follow_id)
                .bind(signer.id)
                .fetch_optional(&mut *tx)
                .await?;
                return match boost {
                    Some(id) => Ok(post::delete(tx, id, None).await?),
                    None => Ok(false),
                };
            }
            "Block" => {
                let target = match first_id(&object["object"]) {
                    Some(uri) => local_by_uri(tx, &self.base, &uri).await?,
                    None => None,
                };
                let Some(target) = target else {
                    return Ok(false);
                };
                return Ok(
                    crate::relations::unblock(tx, &self.base, signer.id, target, false).await?,
                );
            }
            "Follow" => {}
            _ if object.is_string() => {}
            _ => return Ok(false),
        }
        let target = match first_id(&object["object"]) {
            Some(uri) => local_by_uri(tx, &self.base, &uri).await?,
            None => sqlx::query_scalar(
                "SELECT target_account_id FROM follows WHERE account_id = $1 AND uri = $2 \
                 UNION SELECT target_account_id FROM follow_requests WHERE account_id = $1 AND uri = $2",
            )
            .bind(signer.id)
            .bind(&follow_id)
            .fetch_optional(&mut *tx)
            .await?,
        };
        let Some(target) = target else {
            return Ok(false);
        };
        Ok(follows::withdraw(tx, signer.id, target).await?)
    }

    /// A boost by an account someone here follows, of a status this server does not have yet:
    /// fetched from its own server and stored, so the boost can show it. Outside any
    /// transaction (the fetch may take seconds).
    async fn fetch_boosted(&self, signer: &RemoteAccount, object: &Value) -> Result<(), JobError> {
        let Some(uri) = first_id(object) else {
            return Ok(());
        };
        if uri.starts_with(&self.base) {
            return Ok(());
        }
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM statuses WHERE uri = $1)")
                .bind(&uri)
                .fetch_one(&self.db)
                .await?;
        if known || !followed_here(&self.db, signer.id).await? {
            return Ok(());
        }
        let fetched = match self.resolver.note(&uri).await {
            Ok(fetched) => fetched,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                tracing::debug!(error = %e, uri, "a boosted object could not be fetched");
                return Ok(());
            }
        };
        if let Some((author, note)) = fetched {
            let mut tx = self.db.begin().await?;
            store_note(
                &mut tx,
                &self.ids,
                &self.base,
                &author,
                &note,
                true,
                self.resolver.caches_media(&author.domain),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Whether a note by `signer` is one someone here wants: its author is followed here, or it
    /// mentions a local account.
    async fn wanted(&self, signer: &RemoteAccount, note: &Value) -> Result<bool, JobError> {
        let mentions_us = items(&note["tag"]).into_iter().any(|t| {
            t["type"] == "Mention"
                && first_id(&t["href"])
                    .is_some_and(|h| h.starts_with(&format!("{}/users/", self.base)))
        });
        if mentions_us {
            return Ok(true);
        }
        Ok(followed_here(&self.db, signer.id).await?)
    }

    /// A reply to a status this server does not have: the parent is fetched from its own
    /// server first (one level), so the thread shows. Outside any transaction.
    async fn fetch_parent(&self, note: &Value) -> Result<(), JobError> {
        let Some(parent) = first_id(&note["inReplyTo"]) else {
            return Ok(());
        };
        if parent.starts_with(&self.base) {
            return Ok(());
        }
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM statuses WHERE uri = $1)")
                .bind(&parent)
                .fetch_one(&self.db)
                .await?;
        if known {
            return Ok(());
        }
        match self.resolver.note(&parent).await {
            Ok(Some((author, parent_note))) => {
                let mut tx = self.db.begin().await?;
                store_note(
                    &mut tx,
                    &self.ids,
                    &self.base,
                    &author,
                    &parent_note,
                    true,
                    self.resolver.caches_media(&author.domain),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                tracing::debug!(error = %e, parent, "the parent of a reply could not be fetched");
                Ok(())
            }
        }
    }

    /// A Note from `signer` (its author), delivered to us.
    async fn create(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        note: &Value,
    ) -> Result<bool, JobError> {
        let cache = self.resolver.caches_media(&signer.domain);
        Ok(
            store_note(tx, &self.ids, &self.base, signer, note, false, cache)
                .await?
                .is_some(),
        )
    }

    /// Delete of a Note (by id or Tombstone) by its author.
    async fn delete(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let Some(uri) = first_id(&activity["object"]) else {
            return Ok(false);
        };
        // The actor itself is gone: so is everything it left here.
        if uri == signer.uri {
            return Ok(crate::deletion::purge(tx, signer.id, None).await?);
        }
        let status: Option<i64> =
            sqlx::query_scalar("SELECT id FROM statuses WHERE uri = $1 AND account_id = $2")
                .bind(&uri)
                .bind(signer.id)
                .fetch_optional(&mut *tx)
                .await?;
        match status {
            Some(id) => Ok(post::delete(tx, id, None).await?),
            None => Ok(false),
        }
    }
}

impl Inbox {
    /// The local (or known) status an activity's `object` names.
    async fn object_status(
        &self,
        tx: &mut PgConnection,
        object: &Value,
    ) -> Result<Option<(i64, i64, i64)>, sqlx::Error> {
        match first_id(object) {
            Some(uri) => status_by_uri(tx, &self.base, &uri).await,
            None => Ok(None),
        }
    }

    /// A remote account favourites a status this server has.
    async fn like(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let Some((status, author, _)) = self.object_status(tx, &activity["object"]).await? else {
            return Ok(false);
        };
        interactions::favourite(tx, &self.ids, signer.id, status, author).await?;
        Ok(true)
    }

    /// Undo of a Like.
    async fn unlike(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        like: &Value,
    ) -> Result<bool, JobError> {
        let Some((status, _, _)) = self.object_status(tx, &like["object"]).await? else {
            return Ok(false);
        };
        Ok(interactions::unfavourite(tx, signer.id, status)
            .await?
            .is_some())
    }

    /// A remote account boosts a status this server has: a boost row of its own, fanned out to
    /// its local followers, the author notified.
    async fn announce(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let Some(uri) = activity["id"].as_str() else {
            return Ok(false);
        };
        let Some((original, author, _)) = self.object_status(tx, &activity["object"]).await? else {
            return Ok(false);
        };
        let (visibility, remote_original): (String, bool) =
            sqlx::query_as("SELECT visibility, uri IS NOT NULL FROM statuses WHERE id = $1")
                .bind(original)
                .fetch_one(&mut *tx)
                .await?;
        if visibility != "public" && visibility != "unlisted" {
            return Ok(false);
        }
        // A boost of another server's status matters here only to the booster's followers.
        if remote_original && !followed_here(&mut *tx, signer.id).await? {
            return Ok(false);
        }
        let id = self.ids.next_id().as_i64();
        let inserted = sqlx::query(
            "INSERT INTO statuses (id, account_id, visibility, reblog_of_id, conversation_id, uri) \
             VALUES ($1, $2, 'public', $3, $1, $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(signer.id)
        .bind(original)
        .bind(uri)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(true);
        }
        notification::create(
            tx,
            self.ids.next_id().as_i64(),
            author,
            signer.id,
            notification::REBLOG,
            Some(original),
        )
        .await?;
        outbox::send(
            tx,
            &RemoteFanout::StatusCreated(StatusRef { status_id: id }),
        )
        .await?;
        sqlx::query("UPDATE statuses SET reblogs_count = reblogs_count + 1 WHERE id = $1")
            .bind(original)
            .execute(&mut *tx)
            .await?;
        Ok(true)
    }

    /// Update of the signer's own actor.
    async fn update_actor(&self, signer: &RemoteAccount, object: &Value) -> Result<bool, JobError> {
        if object["id"].as_str() != Some(signer.uri.as_str()) {
            return Ok(false);
        }
        let url = url::Url::parse(&signer.uri).map_err(|e| JobError::Permanent(e.into()))?;
        self.resolver.store(&url, object).await?;
        Ok(true)
    }

    /// Update of a Note: its author's edit.
    async fn update(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let object = &activity["object"];
        let kind = object["type"].as_str().unwrap_or_default();
        if !matches!(kind, "Note" | "Article" | "Question") {
            return Ok(false);
        }
        let Some(uri) = object["id"].as_str() else {
            return Ok(false);
        };
        let content = text::sanitize(object["content"].as_str().unwrap_or_default());
        let updated = sqlx::query(
            "UPDATE statuses SET content = $3, spoiler_text = $4, sensitive = $5, \
               edited_at = CASE WHEN content IS DISTINCT FROM $3 OR spoiler_text IS DISTINCT FROM $4 \
                                THEN now() ELSE edited_at END \
             WHERE uri = $1 AND account_id = $2 RETURNING id",
        )
        .bind(uri)
        .bind(signer.id)
        .bind(&content)
        .bind(object["summary"].as_str().unwrap_or_default())
        .bind(object["sensitive"].as_bool().unwrap_or(false))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id")?;
        if kind == "Question" {
            update_poll(tx, id, object).await?;
        }
        crate::emojis::record_remote(tx, &self.ids, &signer.domain, &object["tag"]).await?;
        crate::media::record_remote(
            tx,
            &self.ids,
            signer.id,
            id,
            &crate::media::RemoteMedia::from_note(object),
            self.resolver.caches_media(&signer.domain),
        )
        .await?;
        outbox::send(
            tx,
            &RemoteFanout::StatusUpdated(StatusRef { status_id: id }),
        )
        .await?;
        Ok(true)
    }

    /// Add to (or Remove from) the signer's featured collection: its pins, for statuses of its
    /// own that this server has.
    async fn featured(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
        add: bool,
    ) -> Result<bool, JobError> {
        let target = first_id(&activity["target"]).unwrap_or_default();
        let featured: Option<String> = sqlx::query_scalar(
            "SELECT coalesce(featured_url, uri || '/collections/featured') FROM accounts WHERE id = $1",
        )
        .bind(signer.id)
        .fetch_one(&mut *tx)
        .await?;
        if featured.as_deref() != Some(target.as_str()) {
            return Ok(false);
        }
        let Some((status, author, _)) = self.object_status(tx, &activity["object"]).await? else {
            return Ok(false);
        };
        if author != signer.id {
            return Ok(false);
        }
        if add {
            sqlx::query(
                "INSERT INTO status_pins (id, account_id, status_id) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(self.ids.next_id().as_i64())
            .bind(signer.id)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM status_pins WHERE account_id = $1 AND status_id = $2")
                .bind(signer.id)
                .bind(status)
                .execute(&mut *tx)
                .await?;
        }
        Ok(true)
    }

    /// The account a `Move` by `signer` (of itself) goes to, if that account names `signer` in
    /// its `alsoKnownAs` (fetched fresh, as Mastodon checks it).
    async fn moved_to(
        &self,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<Option<(i64, bool)>, JobError> {
        if first_id(&activity["object"]).as_deref() != Some(signer.uri.as_str()) {
            return Ok(None);
        }
        let Some(target) = first_id(&activity["target"]) else {
            return Ok(None);
        };
        if target == signer.uri {
            return Ok(None);
        }
        if target.starts_with(&format!("{}/", self.base)) {
            // A move to an account of this server, which must name the mover as an alias.
            let mut conn = self.db.acquire().await?;
            let Some(local) = local_by_uri(&mut conn, &self.base, &target).await? else {
                return Ok(None);
            };
            let named: bool =
                sqlx::query_scalar("SELECT $2 = ANY(also_known_as) FROM accounts WHERE id = $1")
                    .bind(local)
                    .bind(&signer.uri)
                    .fetch_one(&mut *conn)
                    .await?;
            return Ok(named.then_some((local, true)));
        }
        let (url, doc) = match self.resolver.fetch(&target).await {
            Ok(found) => found,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(_) => return Ok(None),
        };
        let aliases = match &doc["alsoKnownAs"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if !aliases.contains(&signer.uri) {
            return Ok(None);
        }
        match self.resolver.store(&url, &doc).await {
            Ok(account) => Ok(Some((account.id, false))),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    /// `signer` moved to `target`: it is marked moved, and each local follower follows
    /// `target` instead (a Follow to its server, keeping the follow's boosts and notification
    /// settings) and unfollows `signer` (an Undo to its server), as Mastodon moves followers.
    async fn moved(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        target: (i64, bool),
    ) -> Result<bool, JobError> {
        let (target, local) = target;
        sqlx::query("UPDATE accounts SET moved_to_account_id = $2 WHERE id = $1")
            .bind(signer.id)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        let followers: Vec<(i64, bool, bool)> = sqlx::query_as(
            "SELECT f.account_id, f.show_reblogs, f.notify FROM follows f              JOIN accounts a ON a.id = f.account_id              WHERE f.target_account_id = $1 AND a.domain IS NULL",
        )
        .bind(signer.id)
        .fetch_all(&mut *tx)
        .await?;
        for (follower, reblogs, notify) in followers {
            if follower == target {
                // The new account itself followed the old one.
            } else if local {
                follows::follow(
                    tx,
                    &self.ids,
                    follower,
                    target,
                    Some(reblogs),
                    Some(notify),
                    follows::Tell::Target,
                )
                .await?;
            } else {
                follows::ask_remote(
                    tx,
                    &self.ids,
                    &self.base,
                    follower,
                    target,
                    Some(reblogs),
                    Some(notify),
                )
                .await?;
            }
            follows::undo_remote(tx, &self.base, follower, signer.id).await?;
            follows::unfollow(tx, follower, signer.id).await?;
        }
        Ok(true)
    }

    /// Another server reports a local account (and some of its statuses) to this server's
    /// moderators: a report by the sender (often that server's instance actor), unless reports
    /// from its domain are rejected.
    async fn flag(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        if self
            .resolver
            .policy()
            .current()
            .rejects_reports(&signer.domain)
        {
            return Ok(false);
        }
        let mut target = None;
        let mut statuses = Vec::new();
        for object in crate::remote::items(&activity["object"]) {
            let Some(uri) = first_id(object) else {
                continue;
            };
            if let Some(account) = local_by_uri(tx, &self.base, &uri).await? {
                target.get_or_insert(account);
            } else if let Some((id, author, _)) = status_by_uri(tx, &self.base, &uri).await? {
                statuses.push((id, author));
            }
        }
        // Statuses alone name their author.
        let Some(target) = target.or_else(|| statuses.first().map(|s| s.1)) else {
            return Ok(false);
        };
        let status_ids: Vec<i64> = statuses
            .into_iter()
            .filter(|(_, author)| *author == target)
            .map(|(id, _)| id)
            .collect();
        let comment: String = activity["content"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(1000)
            .collect();
        sqlx::query(
            "INSERT INTO reports (id, account_id, target_account_id, status_ids, category, comment, uri) \
             VALUES ($1, $2, $3, $4, 'other', $5, $6)",
        )
        .bind(self.ids.next_id().as_i64())
        .bind(signer.id)
        .bind(target)
        .bind(&status_ids)
        .bind(&comment)
        .bind(activity["id"].as_str())
        .execute(&mut *tx)
        .await?;
        Ok(true)
    }

    /// A remote account blocks a local one: the follows between them end.
    async fn block(
        &self,
        tx: &mut PgConnection,
        signer: &RemoteAccount,
        activity: &Value,
    ) -> Result<bool, JobError> {
        let target = match first_id(&activity["object"]) {
            Some(uri) => local_by_uri(tx, &self.base, &uri).await?,
            None => None,
        };
        let Some(target) = target else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO blocks (id, account_id, target_account_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(self.ids.next_id().as_i64())
        .bind(signer.id)
        .bind(target)
        .execute(&mut *tx)
        .await?;
        follows::unfollow(tx, signer.id, target).await?;
        follows::unfollow(tx, target, signer.id).await?;
        sqlx::query(
            "DELETE FROM follow_requests WHERE (account_id = $1 AND target_account_id = $2) \
                                            OR (account_id = $2 AND target_account_id = $1)",
        )
        .bind(signer.id)
        .bind(target)
        .execute(&mut *tx)
        .await?;
        Ok(true)
    }
}

impl Consume<Ingress> for Inbox {
    fn consume<'a>(
        &'a self,
        message: Ingress,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        match message {
            Ingress::Activity(received) => self.apply(received).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_listed_and_round_trips() {
        stampede_queue::message::assert_kinds(&[Ingress::Activity(Received {
            signer: "http://a/users/b".into(),
            activity: json!({ "type": "Follow" }),
            rfc9421: true,
        })]);
    }
}
