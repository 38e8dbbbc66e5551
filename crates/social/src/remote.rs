//! Accounts on other servers: found by handle (WebFinger) or actor URI, fetched through the
//! guarded client, and kept as `accounts` rows with their inbox and public key, so the client
//! API shows them like local ones.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use stampede_activitypub::keys::PrivateKey;
use stampede_activitypub::{Client, FetchError};
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use url::Url;

use crate::domain_policy::DomainPolicy;
use crate::text;

/// The documents a fetch accepts.
pub const ACCEPT: &str = "application/activity+json, application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

/// What is kept of a remote actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAccount {
    pub id: i64,
    pub uri: String,
    pub username: String,
    pub domain: String,
    pub inbox: String,
    /// The shared inbox where there is one, else the actor's own.
    pub delivery_inbox: String,
    pub public_key: Option<String>,
}

/// Why a remote account could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("not an actor: {0}")]
    NotAnActor(String),
    #[error("the instance actor's key: {0}")]
    Key(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0} is blocked by this server")]
    Blocked(String),
}

impl ResolveError {
    /// Whether trying again later may work.
    pub fn is_transient(&self) -> bool {
        match self {
            ResolveError::Fetch(e) => e.is_transient(),
            ResolveError::Db(_) => true,
            ResolveError::NotAnActor(_) => false,
            ResolveError::Key(_) => true,
            ResolveError::Blocked(_) => false,
        }
    }
}

impl From<ResolveError> for stampede_queue::JobError {
    /// A worker retries what may work later and parks the rest.
    fn from(error: ResolveError) -> Self {
        if error.is_transient() {
            stampede_queue::JobError::Retry(error.into())
        } else {
            stampede_queue::JobError::Permanent(error.into())
        }
    }
}

/// Finds and stores remote actors.
#[derive(Clone, Debug)]
pub struct Resolver {
    db: Db,
    client: Client,
    /// `https` unless LOCAL_HTTPS=false (then handles resolve over http, for tests on one box).
    scheme: &'static str,
    local_domain: String,
    /// `https://WEB_DOMAIN`: the instance actor (`BASE/actor`) signs every fetch, so servers in
    /// authorized-fetch mode answer them.
    base: String,
    instance_key: std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<PrivateKey>>>,
    ids: std::sync::Arc<IdGenerator>,
    /// Fetches in flight, by URI: a second caller for the same document waits for the first
    /// one's answer instead of fetching it again (a viral remote post's likes and boosts all
    /// name the same object and author at once).
    flights: std::sync::Arc<tokio::sync::Mutex<HashMap<String, Flight>>>,
    /// MEDIA_CACHE_REMOTE=arrival: remote media is fetched as it arrives.
    cache_media: bool,
    /// The instance's domain blocks and allows: nothing is fetched from a refused domain.
    policy: std::sync::Arc<DomainPolicy>,
}

/// One fetch's answer, shared by everyone who asked for it meanwhile (`None`: it failed, and
/// each waiter fetches again for its own error).
type Flight = std::sync::Arc<tokio::sync::OnceCell<Option<(Url, Value)>>>;

/// The outbound client of a server configured by `config`.
pub fn client(config: &stampede_config::Config) -> Result<Client, FetchError> {
    let guard =
        stampede_activitypub::Guard::new(config.federation.allowed_private_addresses.clone());
    let agent = format!(
        "Stampede/{} (+{}/)",
        env!("CARGO_PKG_VERSION"),
        crate::post::base_url(config)
    );
    Client::new(guard, &agent)
}

/// The `host[:port]` of a URL: how a remote account's domain is written.
pub fn authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

impl Resolver {
    /// The resolver of a server configured by `config`: its outbound guard opened only as
    /// ALLOWED_PRIVATE_ADDRESSES says.
    pub fn from_config(db: Db, config: &stampede_config::Config) -> Result<Self, FetchError> {
        Ok(Resolver {
            client: client(config)?,
            cache_media: config.media.cache_remote_on_arrival,
            scheme: if config.web.https { "https" } else { "http" },
            local_domain: config.local_domain.clone(),
            base: crate::post::base_url(config),
            instance_key: Default::default(),
            ids: std::sync::Arc::new(IdGenerator::new()),
            flights: Default::default(),
            policy: DomainPolicy::new(db.clone(), config.federation.limited),
            db,
        })
    }

    /// The instance actor's key, read (or made) once.
    async fn instance_key(&self) -> Result<std::sync::Arc<PrivateKey>, ResolveError> {
        self.instance_key
            .get_or_try_init(|| async {
                let key = crate::keys::instance_key(&self.db)
                    .await
                    .map_err(|e| ResolveError::Key(format!("{e:#}")))?;
                let key = PrivateKey::from_pem(&key.private_key)
                    .map_err(|e| ResolveError::Key(e.to_string()))?;
                Ok(std::sync::Arc::new(key))
            })
            .await
            .cloned()
    }

    /// The guarded client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The instance's domain blocks and allows, as this resolver applies them.
    pub fn policy(&self) -> &std::sync::Arc<DomainPolicy> {
        &self.policy
    }

    /// `Blocked` when this server exchanges nothing with `domain`.
    async fn admit(&self, domain: &str) -> Result<(), ResolveError> {
        if self.policy.get().await?.refuses(domain) {
            return Err(ResolveError::Blocked(domain.to_string()));
        }
        Ok(())
    }

    /// GETs an ActivityPub document, sharing the answer with callers who ask for the same URI
    /// while the request is in flight.
    pub async fn fetch(&self, uri: &str) -> Result<(Url, Value), ResolveError> {
        let flight = self
            .flights
            .lock()
            .await
            .entry(uri.to_string())
            .or_default()
            .clone();
        let mut led = None;
        let shared = flight
            .get_or_init(|| async {
                let result = self.fetch_now(uri).await;
                let answer = result.as_ref().ok().cloned();
                led = Some(result);
                answer
            })
            .await
            .clone();
        if led.is_some() {
            self.flights.lock().await.remove(uri);
        }
        match (led, shared) {
            (Some(result), _) => result,
            (None, Some(answer)) => Ok(answer),
            (None, None) => self.fetch_now(uri).await,
        }
    }

    async fn fetch_now(&self, uri: &str) -> Result<(Url, Value), ResolveError> {
        let url = Url::parse(uri).map_err(|_| ResolveError::NotAnActor(uri.to_string()))?;
        self.admit(&authority(&url).unwrap_or_default()).await?;
        // Signed by the instance actor (`(request-target) host date accept`), as Mastodon signs
        // its fetches, so that servers in authorized-fetch mode answer.
        let key = self.instance_key().await?;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ACCEPT, http::HeaderValue::from_static(ACCEPT));
        stampede_activitypub::signature::sign(
            &key,
            &format!("{}/actor#main-key", self.base),
            &http::Method::GET,
            &url,
            &mut headers,
            None,
            chrono::Utc::now(),
        )
        .map_err(|e| ResolveError::Key(e.to_string()))?;
        let request = self
            .client
            .request(reqwest::Method::GET, &url)?
            .headers(headers);
        let (_, body) = self
            .client
            .send(request, stampede_activitypub::client::MAX_BODY)
            .await?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|_| ResolveError::NotAnActor(uri.to_string()))?;
        Ok((url, value))
    }

    /// The account `user@domain`: known already, or found through WebFinger and fetched.
    /// `None` for a local handle or one WebFinger does not know.
    pub async fn by_handle(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<RemoteAccount>, ResolveError> {
        if domain.eq_ignore_ascii_case(&self.local_domain) {
            return Ok(None);
        }
        self.admit(domain).await?;
        if let Some(known) = self.known_by_handle(user, domain).await? {
            return Ok(Some(known));
        }
        let url = Url::parse_with_params(
            &format!("{}://{domain}/.well-known/webfinger", self.scheme),
            &[("resource", format!("acct:{user}@{domain}"))],
        )
        .map_err(|_| ResolveError::NotAnActor(format!("{user}@{domain}")))?;
        let request = self.client.request(reqwest::Method::GET, &url)?.header(
            reqwest::header::ACCEPT,
            "application/jrd+json, application/json",
        );
        let body = match self
            .client
            .send(request, stampede_activitypub::client::MAX_BODY)
            .await
        {
            Ok((_, body)) => body,
            Err(FetchError::Status(_, status))
                if status.as_u16() == 404 || status.as_u16() == 410 =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let jrd: Value = serde_json::from_slice(&body)
            .map_err(|_| ResolveError::NotAnActor(format!("{user}@{domain}")))?;
        match webfinger_actor(&jrd) {
            Some(uri) => self.by_uri(&uri, false).await.map(Some),
            None => Ok(None),
        }
    }

    /// The account `user@domain` if this server knows it already; nothing is fetched.
    pub async fn known_by_handle(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<RemoteAccount>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE lower(username) = lower($1) \
             AND lower(domain) = lower($2) AND uri IS NOT NULL AND inbox_url IS NOT NULL"
        ))
        .bind(user)
        .bind(domain)
        .fetch_optional(&self.db)
        .await?;
        row.map(|r| remote_of(&r)).transpose()
    }

    /// The account whose actor is `uri`, stored; fetched when unknown or when `refresh` asks
    /// (a key that no longer verifies, say).
    pub async fn by_uri(&self, uri: &str, refresh: bool) -> Result<RemoteAccount, ResolveError> {
        if !refresh
            && let Some(row) = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM accounts WHERE uri = $1 AND inbox_url IS NOT NULL"
            ))
            .bind(uri)
            .fetch_optional(&self.db)
            .await?
        {
            return Ok(remote_of(&row)?);
        }
        let (url, doc) = self.fetch(uri).await?;
        self.store(&url, &doc).await
    }

    /// Fetches the object at `uri` from its own server and, when it is a Note (or Article or
    /// Question) written there, resolves its author: what is needed to store it. `None` for
    /// anything else.
    pub async fn note(&self, uri: &str) -> Result<Option<(RemoteAccount, Value)>, ResolveError> {
        let (url, doc) = self.fetch(uri).await?;
        if !matches!(doc["type"].as_str(), Some("Note" | "Article" | "Question")) {
            return Ok(None);
        }
        let id = doc["id"].as_str().and_then(|id| Url::parse(id).ok());
        let Some(author) = first_id(&doc["attributedTo"]) else {
            return Ok(None);
        };
        let author_url = Url::parse(&author).ok();
        // An object speaks only for its own server, and its author must be from there too.
        let here = authority(&url);
        if id.as_ref().and_then(authority) != here
            || author_url.as_ref().and_then(authority) != here
        {
            return Ok(None);
        }
        let account = self.by_uri(&author, false).await?;
        Ok(Some((account, doc)))
    }

    /// Stores (or refreshes) the actor `doc`, fetched from `url`.
    pub async fn store(&self, url: &Url, doc: &Value) -> Result<RemoteAccount, ResolveError> {
        let actor =
            Actor::parse(url, doc).ok_or_else(|| ResolveError::NotAnActor(url.to_string()))?;
        if actor.domain.eq_ignore_ascii_case(&self.local_domain) {
            return Err(ResolveError::NotAnActor(url.to_string()));
        }
        let policy = self.policy.get().await?;
        if policy.refuses(&actor.domain) {
            return Err(ResolveError::Blocked(actor.domain.clone()));
        }
        // The images it had: a changed one's cached copy is stale.
        let before: Option<crate::media::ProfileImages> = sqlx::query_as(
            "SELECT avatar_remote_url, avatar_key, header_remote_url, header_key \
                 FROM accounts WHERE uri = $1",
        )
        .bind(&actor.id)
        .fetch_optional(&self.db)
        .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO accounts (id, username, domain, display_name, note, locked, bot, \
               discoverable, indexable, uri, url, inbox_url, shared_inbox_url, followers_url, \
               public_key, created_at, fetched_at, featured_url, avatar_remote_url, \
               header_remote_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     coalesce($16, now()), now(), $17, $18, $19) \
             ON CONFLICT (uri) WHERE uri IS NOT NULL DO UPDATE SET \
               display_name = EXCLUDED.display_name, note = EXCLUDED.note, \
               locked = EXCLUDED.locked, bot = EXCLUDED.bot, \
               discoverable = EXCLUDED.discoverable, indexable = EXCLUDED.indexable, \
               url = EXCLUDED.url, inbox_url = EXCLUDED.inbox_url, \
               shared_inbox_url = EXCLUDED.shared_inbox_url, \
               followers_url = EXCLUDED.followers_url, public_key = EXCLUDED.public_key, \
               featured_url = EXCLUDED.featured_url, \
               avatar_remote_url = EXCLUDED.avatar_remote_url, \
               header_remote_url = EXCLUDED.header_remote_url, \
               avatar_key = CASE WHEN accounts.avatar_remote_url IS DISTINCT FROM \
                 EXCLUDED.avatar_remote_url THEN NULL ELSE accounts.avatar_key END, \
               header_key = CASE WHEN accounts.header_remote_url IS DISTINCT FROM \
                 EXCLUDED.header_remote_url THEN NULL ELSE accounts.header_key END, \
               fetched_at = now(), updated_at = now() \
             RETURNING {COLUMNS}"
        ))
        .bind(self.ids.next_id().as_i64())
        .bind(&actor.username)
        .bind(&actor.domain)
        .bind(&actor.name)
        .bind(&actor.summary)
        .bind(actor.locked)
        .bind(actor.bot)
        .bind(actor.discoverable)
        .bind(actor.indexable)
        .bind(&actor.id)
        .bind(&actor.url)
        .bind(&actor.inbox)
        .bind(&actor.shared_inbox)
        .bind(&actor.followers)
        .bind(&actor.public_key)
        .bind(actor.published)
        .bind(&actor.featured)
        .bind(&actor.avatar)
        .bind(&actor.header)
        .fetch_one(&self.db)
        .await?;
        let account = remote_of(&row)?;
        // An account of a silenced domain arrives silenced, stamped with the block's time so
        // that lifting the block lifts it too.
        if let Some(since) = policy.silenced_since(&actor.domain) {
            sqlx::query(
                "UPDATE accounts SET silenced_at = $2 WHERE id = $1 AND silenced_at IS NULL",
            )
            .bind(account.id)
            .bind(since)
            .execute(&self.db)
            .await?;
        }
        if policy.rejects_media(&actor.domain) {
            return Ok(account);
        }
        self.images_changed(account.id, before, &actor).await?;
        // The emojis of its name and bio.
        let mut conn = self.db.acquire().await?;
        crate::emojis::record_remote(&mut conn, &self.ids, &actor.domain, &doc["tag"]).await?;
        Ok(account)
    }

    /// Whether media from `domain` is cached as it arrives (MEDIA_CACHE_REMOTE=arrival, and
    /// the domain's media not rejected by a domain block).
    pub fn caches_media(&self, domain: &str) -> bool {
        self.cache_media && !self.policy.current().rejects_media(domain)
    }

    /// After an actor is stored: stale cached images go to the garbage, and new images are
    /// queued for caching when the server caches on arrival.
    async fn images_changed(
        &self,
        account_id: i64,
        before: Option<crate::media::ProfileImages>,
        actor: &Actor,
    ) -> Result<(), sqlx::Error> {
        let before = before.unwrap_or_default();
        let mut stale = Vec::new();
        let avatar_changed = before.avatar_remote_url != actor.avatar;
        let header_changed = before.header_remote_url != actor.header;
        if avatar_changed {
            stale.extend(before.avatar_key);
        }
        if header_changed {
            stale.extend(before.header_key);
        }
        let fresh = (actor.avatar.is_some() && avatar_changed)
            || (actor.header.is_some() && header_changed);
        if stale.is_empty() && !(fresh && self.cache_media) {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        crate::media::discard(&mut tx, &stale).await?;
        if fresh && self.cache_media {
            stampede_queue::outbox::send(
                &mut tx,
                &crate::media::MediaJob::CacheProfile { account_id },
            )
            .await?;
        }
        tx.commit().await
    }
}

const COLUMNS: &str = "id, uri, username, domain, inbox_url, shared_inbox_url, public_key";

fn remote_of(row: &sqlx::postgres::PgRow) -> Result<RemoteAccount, sqlx::Error> {
    let inbox: String = row.try_get("inbox_url")?;
    let shared: Option<String> = row.try_get("shared_inbox_url")?;
    Ok(RemoteAccount {
        id: row.try_get("id")?,
        uri: row.try_get("uri")?,
        username: row.try_get("username")?,
        domain: row.try_get("domain")?,
        delivery_inbox: shared.unwrap_or_else(|| inbox.clone()),
        inbox,
        public_key: row.try_get("public_key")?,
    })
}

/// An actor document, read liberally (strings or objects, arrays or single values).
#[derive(Debug)]
struct Actor {
    id: String,
    username: String,
    domain: String,
    name: String,
    summary: String,
    locked: bool,
    bot: bool,
    discoverable: Option<bool>,
    indexable: bool,
    url: Option<String>,
    inbox: String,
    shared_inbox: Option<String>,
    followers: Option<String>,
    featured: Option<String>,
    public_key: Option<String>,
    published: Option<DateTime<Utc>>,
    avatar: Option<String>,
    header: Option<String>,
}

/// The actor a WebFinger document (JRD) points to: its `self` link of an ActivityPub type.
pub fn webfinger_actor(jrd: &Value) -> Option<String> {
    jrd["links"].as_array()?.iter().find_map(|l| {
        let typ = l["type"].as_str().unwrap_or_default();
        (l["rel"] == "self"
            && (typ.starts_with("application/activity+json")
                || typ.starts_with("application/ld+json")))
        .then(|| l["href"].as_str().map(str::to_string))
        .flatten()
    })
}

/// Reads an actor document fetched from `fetched` as [`Resolver::store`] would, without
/// storing it: whether it was taken (for the fuzz targets).
pub fn reads_as_actor(fetched: &Url, doc: &Value) -> bool {
    Actor::parse(fetched, doc).is_some()
}

/// The URL of an actor's `icon` or `image` (an Image, a list of them, or a bare URL).
fn image_url(value: &Value) -> Option<String> {
    let first = *items(value).first()?;
    let url = match first {
        Value::String(url) => url.clone(),
        image => first_id(&image["url"])?,
    };
    let parsed = Url::parse(&url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then_some(url)
}

/// The items of a property that may be a list or, compacted by JSON-LD, a single value (Fedify
/// sends a one-element `tag` as a bare object).
pub fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// The first string of a value that may be a string, an object with `href`/`id`, or a list.
pub fn first_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("href")
            .or_else(|| o.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Value::Array(items) => items.iter().find_map(first_id),
        _ => None,
    }
}

impl Actor {
    fn parse(fetched: &Url, doc: &Value) -> Option<Actor> {
        let kind = doc["type"].as_str()?;
        if !matches!(
            kind,
            "Person" | "Service" | "Application" | "Group" | "Organization"
        ) {
            return None;
        }
        let id = doc["id"].as_str()?.to_string();
        let id_url = Url::parse(&id).ok()?;
        // A document speaks only for its own server.
        if authority(&id_url)? != authority(fetched)? {
            return None;
        }
        let inbox = doc["inbox"].as_str()?.to_string();
        let public_key = match &doc["publicKey"] {
            Value::Array(keys) => keys.iter().find_map(|k| k["publicKeyPem"].as_str()),
            key => key["publicKeyPem"].as_str(),
        }
        .map(str::to_string);
        Some(Actor {
            username: doc["preferredUsername"].as_str()?.to_string(),
            domain: authority(&id_url)?,
            name: doc["name"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect(),
            summary: text::sanitize(doc["summary"].as_str().unwrap_or_default()),
            locked: doc["manuallyApprovesFollowers"].as_bool().unwrap_or(false),
            bot: matches!(kind, "Service" | "Application"),
            discoverable: doc["discoverable"].as_bool(),
            indexable: doc["indexable"].as_bool().unwrap_or(false),
            url: first_id(&doc["url"]),
            shared_inbox: doc["endpoints"]["sharedInbox"].as_str().map(str::to_string),
            followers: first_id(&doc["followers"]),
            featured: first_id(&doc["featured"]),
            published: doc["published"]
                .as_str()
                .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
                .map(|t| t.with_timezone(&Utc)),
            avatar: image_url(&doc["icon"]),
            header: image_url(&doc["image"]),
            inbox,
            public_key,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_actor_is_read_liberally_and_only_from_its_own_server() {
        let doc = json!({
            "id": "http://127.0.0.2:8090/users/zoe", "type": "Person",
            "preferredUsername": "zoe", "inbox": "http://127.0.0.2:8090/users/zoe/inbox",
            "endpoints": { "sharedInbox": "http://127.0.0.2:8090/inbox" },
            "summary": "<p>hi<script>x</script></p>",
            "url": [{ "type": "Link", "href": "http://127.0.0.2:8090/@zoe" }],
            "publicKey": [{ "id": "k", "publicKeyPem": "PEM" }],
            "published": "2024-01-02T03:04:05.678Z",
        });
        let here = Url::parse("http://127.0.0.2:8090/users/zoe").expect("url");
        let actor = Actor::parse(&here, &doc).expect("actor");
        assert_eq!(actor.domain, "127.0.0.2:8090");
        assert_eq!(actor.summary, "<p>hi</p>");
        assert_eq!(actor.url.as_deref(), Some("http://127.0.0.2:8090/@zoe"));
        assert_eq!(actor.public_key.as_deref(), Some("PEM"));
        assert!(actor.published.is_some());
        let elsewhere = Url::parse("http://evil.example/users/zoe").expect("url");
        assert!(Actor::parse(&elsewhere, &doc).is_none());
        assert!(Actor::parse(&here, &json!({ "type": "Note", "id": "x" })).is_none());
    }
}
