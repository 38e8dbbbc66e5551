//! ActivityPub documents built from what the client API renders, so a status reads the same
//! through both: the actor, the Note with Mastodon's addressing (`to`/`cc` by visibility), and
//! the activities that carry them (Create, Announce, Follow, Accept, Undo, Delete). Shared by
//! `web` (documents served) and `delivery` (activities sent).

use std::collections::HashMap;

use serde_json::{Value, json};
use stampede_mastodon::{Account, Status};

use crate::accounts;
use crate::render::Renderer;

/// `https://www.w3.org/ns/activitystreams#Public`.
pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// The JSON-LD context of every document, with Mastodon's extensions.
pub fn context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        {
            "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
            "toot": "http://joinmastodon.org/ns#",
            "featured": { "@id": "toot:featured", "@type": "@id" },
            "alsoKnownAs": { "@id": "as:alsoKnownAs", "@type": "@id" },
            "discoverable": "toot:discoverable",
            "indexable": "toot:indexable",
            "schema": "http://schema.org#",
            "PropertyValue": "schema:PropertyValue",
            "value": "schema:value",
            "sensitive": "as:sensitive",
            "Hashtag": "as:Hashtag",
            "Emoji": "toot:Emoji"
        }
    ])
}

/// The actor URI of a local account.
pub fn actor_uri(base: &str, username: &str) -> String {
    format!("{base}/users/{username}")
}

/// The actor URI of any account as rendered (`acct` has a domain for a remote one).
pub fn uri_of(base: &str, account: &Account) -> String {
    if account.acct.contains('@') {
        account.uri.clone()
    } else {
        actor_uri(base, &account.username)
    }
}

/// The actor document of a local account.
pub fn person(base: &str, account: &Account, indexable: bool, public_key: &str) -> Value {
    let id = actor_uri(base, &account.username);
    let attachment: Vec<Value> = account
        .fields
        .iter()
        .map(|f| json!({ "type": "PropertyValue", "name": f.name, "value": f.value }))
        .collect();
    json!({
        "@context": context(),
        "id": id,
        "type": if account.bot { "Service" } else { "Person" },
        "following": format!("{id}/following"),
        "followers": format!("{id}/followers"),
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "featured": format!("{id}/collections/featured"),
        "preferredUsername": account.username,
        "name": account.display_name,
        "summary": account.note,
        "url": account.url,
        "manuallyApprovesFollowers": account.locked,
        "discoverable": account.discoverable.unwrap_or(false),
        "indexable": indexable,
        "published": account.created_at,
        "publicKey": {
            "id": format!("{id}#main-key"),
            "owner": id,
            "publicKeyPem": public_key,
        },
        "attachment": attachment,
        "alsoKnownAs": [],
        "endpoints": { "sharedInbox": format!("{base}/inbox") },
        "tag": account.emojis.iter().map(|e| crate::emojis::to_tag(base, e)).collect::<Vec<_>>(),
        "icon": { "type": "Image", "mediaType": media_type_of(&account.avatar), "url": account.avatar },
        "image": { "type": "Image", "mediaType": media_type_of(&account.header), "url": account.header },
    })
}

/// The media type of a file of ours, from the extension its key was given.
pub fn media_type_of(url: &str) -> &'static str {
    let extension = url.rsplit('.').next().unwrap_or_default();
    match extension {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// An attachment as a Note carries it (Mastodon's `Document` with its extensions).
fn attachment(media: &stampede_mastodon::MediaAttachment) -> Value {
    let url = media.remote_url.clone().or_else(|| media.url.clone());
    let mut document = json!({
        "type": "Document",
        "mediaType": url.as_deref().map_or("application/octet-stream", media_type_of),
        "url": url,
        "name": media.description,
        "blurhash": media.blurhash,
    });
    if let Some(focus) = media.meta.get("focus") {
        document["focalPoint"] = json!([focus["x"], focus["y"]]);
    }
    if let Some(original) = media.meta.get("original") {
        for key in ["width", "height"] {
            if let Some(value) = original.get(key).filter(|v| v.is_u64()) {
                document[key] = value.clone();
            }
        }
    }
    document
}

/// Builds Notes and activities for one server.
#[derive(Clone, Debug)]
pub struct Documents {
    render: Renderer,
    local_domain: String,
}

impl Documents {
    pub fn new(render: Renderer, local_domain: String) -> Self {
        Documents {
            render,
            local_domain,
        }
    }

    fn base(&self) -> &str {
        self.render.base_url()
    }

    /// The actor URIs of the accounts a status mentions, by account id.
    async fn mentioned(&self, status: &Status) -> Result<HashMap<String, String>, sqlx::Error> {
        let ids: Vec<i64> = status
            .mentions
            .iter()
            .filter_map(|m| m.id.parse().ok())
            .collect();
        let rows = self.render.accounts(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|a| {
                let uri = match (&a.domain, &a.uri) {
                    (Some(_), Some(uri)) => uri.clone(),
                    _ => actor_uri(self.base(), &a.username),
                };
                (a.id.to_string(), uri)
            })
            .collect())
    }

    /// Who a status is addressed to, as Mastodon addresses it: public to Public with the
    /// followers in cc, unlisted the other way round, private to the followers, direct to the
    /// mentioned only; the mentioned are always addressed.
    pub async fn addressing(
        &self,
        status: &Status,
    ) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
        let actor = uri_of(self.base(), &status.account);
        let followers = format!("{actor}/followers");
        let mentioned: Vec<String> = self.mentioned(status).await?.into_values().collect();
        Ok(match status.visibility.as_str() {
            "public" => (vec![PUBLIC.into()], [vec![followers], mentioned].concat()),
            "unlisted" => (vec![followers], [vec![PUBLIC.into()], mentioned].concat()),
            "private" => (vec![followers], mentioned),
            _ => (mentioned, Vec::new()),
        })
    }

    /// The Note of a status (not a boost).
    pub async fn note(&self, status: &Status) -> Result<Value, sqlx::Error> {
        let base = self.base();
        let actor = uri_of(base, &status.account);
        let (to, cc) = self.addressing(status).await?;
        let in_reply_to = match status
            .in_reply_to_id
            .as_deref()
            .and_then(|p| p.parse().ok())
        {
            Some(parent) => self
                .render
                .load_published(&[parent])
                .await?
                .pop()
                .map(|p| Value::String(p.uri))
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        let uris = self.mentioned(status).await?;
        let mut tags: Vec<Value> = status
            .mentions
            .iter()
            .map(|m| {
                let handle = if m.acct.contains('@') {
                    format!("@{}", m.acct)
                } else {
                    format!("@{}@{}", m.acct, self.local_domain)
                };
                json!({ "type": "Mention", "href": uris.get(&m.id), "name": handle })
            })
            .collect();
        tags.extend(
            status.tags.iter().map(
                |t| json!({ "type": "Hashtag", "href": t.url, "name": format!("#{}", t.name) }),
            ),
        );
        tags.extend(status.emojis.iter().map(|e| crate::emojis::to_tag(base, e)));
        let mut note = json!({
            "id": status.uri,
            "type": "Note",
            "summary": if status.spoiler_text.is_empty() { Value::Null } else { Value::String(status.spoiler_text.clone()) },
            "inReplyTo": in_reply_to,
            "published": status.created_at,
            "url": status.url,
            "attributedTo": actor,
            "to": to,
            "cc": cc,
            "sensitive": status.sensitive,
            "content": status.content,
            "attachment": status.media_attachments.iter().map(attachment).collect::<Vec<_>>(),
            "tag": tags,
        });
        if let Some(language) = &status.language {
            note["contentMap"] = json!({ language.clone(): status.content });
        }
        if let Some(edited) = &status.edited_at {
            note["updated"] = Value::String(edited.clone());
        }
        if let Some(poll) = &status.poll {
            // A poll is a Question, its options Notes with their reply counts (Mastodon's form).
            note["type"] = json!("Question");
            let options: Vec<Value> = poll
                .options
                .iter()
                .map(|o| {
                    json!({
                        "type": "Note",
                        "name": o.title,
                        "replies": { "type": "Collection", "totalItems": o.votes_count.unwrap_or(0) },
                    })
                })
                .collect();
            note[if poll.multiple { "anyOf" } else { "oneOf" }] = Value::Array(options);
            if let Some(end) = &poll.expires_at {
                note["endTime"] = json!(end);
                if poll.expired {
                    note["closed"] = json!(end);
                }
            }
            note["votersCount"] = json!(poll.voters_count.unwrap_or(poll.votes_count));
        }
        Ok(note)
    }

    /// The activity that published a status: Create with its Note, or Announce of the original.
    pub async fn publication(&self, status: &Status) -> Result<Value, sqlx::Error> {
        let base = self.base();
        let actor = uri_of(base, &status.account);
        let (to, mut cc) = self.addressing(status).await?;
        if let Some(original) = &status.reblog {
            cc.insert(0, uri_of(base, &original.account));
            return Ok(json!({
                "id": status.uri,
                "type": "Announce",
                "actor": actor,
                "published": status.created_at,
                "to": to,
                "cc": cc,
                "object": original.uri,
            }));
        }
        Ok(json!({
            "id": format!("{}/activity", status.uri),
            "type": "Create",
            "actor": actor,
            "published": status.created_at,
            "to": to,
            "cc": cc,
            "object": self.note(status).await?,
        }))
    }
}

/// Adds the JSON-LD context to a top-level document.
pub fn with_context(mut value: Value) -> Value {
    value["@context"] = context();
    value
}

/// The local accounts' actor URIs, looked up in bulk (for collections).
pub async fn actor_uris(
    db: impl sqlx::PgExecutor<'_>,
    base: &str,
    ids: &[i64],
) -> Result<HashMap<i64, String>, sqlx::Error> {
    Ok(accounts::find_many(db, ids)
        .await?
        .into_iter()
        .map(|a| {
            let uri = match (&a.domain, &a.uri) {
                (Some(_), Some(uri)) => uri.clone(),
                (Some(domain), None) => format!("https://{domain}/users/{}", a.username),
                _ => actor_uri(base, &a.username),
            };
            (a.id, uri)
        })
        .collect())
}
