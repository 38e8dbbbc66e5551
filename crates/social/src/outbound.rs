//! Activities to other servers: written to the outbox in the transaction of the change that
//! causes them (one `deliver` message per [`BATCH`] inboxes), and POSTed by the `deliver`
//! workers ([`crate::delivery`]), signed with the acting account's key.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use stampede_queue::{Message, WorkQueue, outbox};

use crate::activitypub::actor_uri;

/// What the `deliver` queue carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Deliver {
    /// POST `activity` to `inbox`, signed by local account `signer` (a retry, a held delivery).
    #[serde(rename = "activity.deliver")]
    Activity(Outgoing),
    /// POST `activity` to each of `inboxes`: a change's deliveries travel together, one
    /// message per [`BATCH`] inboxes, and only those that must wait travel on alone.
    #[serde(rename = "activity.deliver_many")]
    Many(Batch),
}

impl Message for Deliver {
    const QUEUE: WorkQueue = WorkQueue::Deliver;
    const KINDS: &'static [&'static str] = &["activity.deliver", "activity.deliver_many"];
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Outgoing {
    pub inbox: String,
    pub signer: i64,
    pub activity: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    pub inboxes: Vec<String>,
    pub signer: i64,
    pub activity: Value,
}

/// Inboxes per `deliver` message at most.
pub const BATCH: usize = 50;

/// Queues `activity` for each of `inboxes` (duplicates collapsed) in the caller's transaction.
pub async fn send(
    conn: &mut PgConnection,
    signer: i64,
    activity: &Value,
    inboxes: impl IntoIterator<Item = String>,
) -> Result<(), sqlx::Error> {
    let mut inboxes: Vec<String> = inboxes.into_iter().collect();
    inboxes.sort();
    inboxes.dedup();
    let messages: Vec<Deliver> = inboxes
        .chunks(BATCH)
        .map(|inboxes| {
            Deliver::Many(Batch {
                inboxes: inboxes.to_vec(),
                signer,
                activity: activity.clone(),
            })
        })
        .collect();
    outbox::send_all(conn, &messages).await
}

/// The inboxes of `account_id`'s remote followers, a shared inbox once for all its accounts.
pub async fn follower_inboxes(
    conn: &mut PgConnection,
    account_id: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT coalesce(a.shared_inbox_url, a.inbox_url) FROM follows f \
         JOIN accounts a ON a.id = f.account_id \
         WHERE f.target_account_id = $1 AND a.domain IS NOT NULL AND a.inbox_url IS NOT NULL",
    )
    .bind(account_id)
    .fetch_all(conn)
    .await
}

/// The inboxes of the remote accounts among `ids`.
pub async fn inboxes_of(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT coalesce(shared_inbox_url, inbox_url) FROM accounts \
         WHERE id = ANY($1) AND domain IS NOT NULL AND inbox_url IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The local account's username and actor URI, and the remote account's URI and inbox; `None`
/// unless `account_id` is local and `other` remote.
async fn pair(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    other: i64,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT me.username, t.uri, t.inbox_url FROM accounts me, accounts t \
         WHERE me.id = $1 AND me.domain IS NULL AND t.id = $2 AND t.domain IS NOT NULL",
    )
    .bind(account_id)
    .bind(other)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((username, Some(uri), Some(inbox))) => Some((actor_uri(base, &username), uri, inbox)),
        _ => None,
    })
}

fn wrap_undo(me: &str, activity: Value) -> Value {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/undo", activity["id"].as_str().unwrap_or_default()),
        "type": "Undo",
        "actor": me,
        "object": activity,
    })
}

/// A local account favourited (or, with `undo`, unfavourited) a remote status: `Like` (or
/// `Undo` of it) to the author's inbox, in the caller's transaction. The Like's id is the
/// favourite's, as Mastodon's is, so favouriting again after an undo is a new activity.
pub async fn like(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    status_id: i64,
    favourite_id: i64,
    undo: bool,
) -> Result<(), sqlx::Error> {
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT account_id, uri FROM statuses WHERE id = $1")
            .bind(status_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((author, Some(object))) = row else {
        return Ok(()); // a local status: nothing leaves the server
    };
    let Some((me, _, inbox)) = pair(conn, base, account_id, author).await? else {
        return Ok(());
    };
    let like = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{me}#likes/{favourite_id}"),
        "type": "Like",
        "actor": me,
        "object": object,
    });
    let activity = if undo { wrap_undo(&me, like) } else { like };
    send(conn, account_id, &activity, [inbox]).await
}

/// A local account blocked (or unblocked) a remote one: `Block` (or its `Undo`).
pub async fn block(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    target: i64,
    undo: bool,
) -> Result<(), sqlx::Error> {
    let Some((me, uri, inbox)) = pair(conn, base, account_id, target).await? else {
        return Ok(());
    };
    let block = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{me}#blocks/{target}"),
        "type": "Block",
        "actor": me,
        "object": uri,
    });
    let activity = if undo { wrap_undo(&me, block) } else { block };
    send(conn, account_id, &activity, [inbox]).await
}

/// The signer that stands for the server itself: deliveries it signs carry the instance
/// actor's key (`/actor#main-key`), as Mastodon signs forwarded reports.
pub const INSTANCE_SIGNER: i64 = 0;

/// A report about remote account `target` forwarded to its server: a `Flag` from the instance
/// actor (so the reporter stays anonymous), naming the account and the reported statuses.
/// Returns whether there was a remote server to tell.
pub async fn flag(
    conn: &mut PgConnection,
    base: &str,
    report_id: i64,
    target: i64,
    status_uris: &[String],
    comment: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT uri, inbox_url, shared_inbox_url FROM accounts WHERE id = $1 AND domain IS NOT NULL",
    )
    .bind(target)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((Some(uri), Some(inbox), shared)) = row else {
        return Ok(false);
    };
    let mut object = vec![Value::String(uri)];
    object.extend(status_uris.iter().cloned().map(Value::String));
    let activity = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{base}/reports/{report_id}"),
        "type": "Flag",
        "actor": format!("{base}/actor"),
        "content": comment,
        "object": object,
    });
    send(conn, INSTANCE_SIGNER, &activity, [shared.unwrap_or(inbox)]).await?;
    Ok(true)
}

/// A local account accepted (or rejected) a remote account's follow request `follow_uri`.
pub async fn answer_follow(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    requester: i64,
    follow_uri: Option<String>,
    accept: bool,
) -> Result<(), sqlx::Error> {
    let Some((me, uri, inbox)) = pair(conn, base, account_id, requester).await? else {
        return Ok(());
    };
    let kind = if accept { "Accept" } else { "Reject" };
    let activity = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{me}#{}s/follows/{requester}", kind.to_ascii_lowercase()),
        "type": kind,
        "actor": me,
        "object": { "id": follow_uri, "type": "Follow", "actor": uri, "object": me },
    });
    send(conn, account_id, &activity, [inbox]).await
}

/// A local account's profile changed: `Update` of its actor to its remote followers.
pub async fn profile_updated(
    conn: &mut PgConnection,
    account_id: i64,
    actor: Value,
) -> Result<(), sqlx::Error> {
    let inboxes = follower_inboxes(conn, account_id).await?;
    if inboxes.is_empty() {
        return Ok(());
    }
    let id = actor["id"].as_str().unwrap_or_default().to_string();
    let activity = serde_json::json!({
        "@context": crate::activitypub::context(),
        "id": format!("{id}#updates/{}", Utc::now().timestamp_millis()),
        "type": "Update",
        "actor": id,
        "to": [crate::activitypub::PUBLIC],
        "object": actor,
    });
    send(conn, account_id, &activity, inboxes).await
}

/// A local account voted in a remote poll: one `Create` of a Note named after each choice,
/// answering the Question, to its author's inbox (Mastodon's form of a vote).
pub async fn vote(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    status_id: i64,
    choices: &[String],
) -> Result<(), sqlx::Error> {
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT account_id, uri FROM statuses WHERE id = $1")
            .bind(status_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((author, Some(question))) = row else {
        return Ok(()); // a local poll
    };
    let Some((me, author_uri, inbox)) = pair(conn, base, account_id, author).await? else {
        return Ok(());
    };
    for (n, name) in choices.iter().enumerate() {
        let id = format!("{me}#votes/{status_id}/{n}");
        let activity = serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{id}/activity"),
            "type": "Create",
            "actor": me,
            "to": [author_uri],
            "object": {
                "id": id,
                "type": "Note",
                "name": name,
                "attributedTo": me,
                "inReplyTo": question,
                "to": [author_uri],
            },
        });
        send(conn, account_id, &activity, [inbox.clone()]).await?;
    }
    Ok(())
}

/// A local account pinned (`Add`) or unpinned (`Remove`) a public or unlisted status of its
/// own: the change to its featured collection, to its remote followers.
pub async fn featured(
    conn: &mut PgConnection,
    base: &str,
    account_id: i64,
    status_id: i64,
    pinned: bool,
) -> Result<(), sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT a.username, s.visibility FROM statuses s JOIN accounts a ON a.id = s.account_id \
         WHERE s.id = $1 AND a.id = $2 AND a.domain IS NULL",
    )
    .bind(status_id)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((username, visibility)) = row else {
        return Ok(());
    };
    if visibility != "public" && visibility != "unlisted" {
        return Ok(());
    }
    let inboxes = follower_inboxes(conn, account_id).await?;
    if inboxes.is_empty() {
        return Ok(());
    }
    let me = actor_uri(base, &username);
    let kind = if pinned { "Add" } else { "Remove" };
    let activity = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{me}#{}/{status_id}/{}", kind.to_ascii_lowercase(), Utc::now().timestamp_millis()),
        "type": kind,
        "actor": me,
        "object": format!("{me}/statuses/{status_id}"),
        "target": format!("{me}/collections/featured"),
    });
    send(conn, account_id, &activity, inboxes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_listed_and_round_trips() {
        stampede_queue::message::assert_kinds(&[
            Deliver::Activity(Outgoing {
                inbox: "http://a/inbox".into(),
                signer: 1,
                activity: serde_json::json!({ "type": "Follow" }),
            }),
            Deliver::Many(Batch {
                inboxes: vec!["http://a/inbox".into(), "http://b/inbox".into()],
                signer: 1,
                activity: serde_json::json!({ "type": "Follow" }),
            }),
        ]);
    }
}
