//! The process's clients and the streams they listen to.
//!
//! One task reads the process's single Redis subscription and hands each event to
//! [`Hub::dispatch`], which looks up the listeners of every stream the event belongs on, filters
//! it per viewer (blocks and mutes, held in memory per account) and queues a frame built once per
//! stream. Queues are bounded: a client that falls behind is disconnected and counted, and never
//! slows the others.

// The index and filter locks guard map operations only and are never held across an `.await`
// (tokio's own advice for such state): the dispatcher, which runs for every event and every
// client, must not yield between clients. clippy.toml forbids std's locks elsewhere.
#![allow(clippy::disallowed_types)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use prometheus_client::metrics::counter::Counter;
use stampede_cache::Message;
use stampede_db::Db;
use stampede_social::filters::Matcher;
use stampede_social::stream::{self, AccountEvent, AccountStream, Control, StatusEvent};
use stampede_telemetry::Metrics;
use stampede_telemetry::metrics::StreamLabels;
use tokio::sync::mpsc;

/// Which public timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Local,
    Remote,
}

/// A stream a client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamKey {
    User(i64),
    Notification(i64),
    Direct(i64),
    Public { scope: Scope, media: bool },
    Hashtag { tag: String, local: bool },
    List(i64),
}

impl StreamKey {
    /// The type's name, as Mastodon spells it (`public:local:media`, `hashtag`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StreamKey::User(_) => "user",
            StreamKey::Notification(_) => "user:notification",
            StreamKey::Direct(_) => "direct",
            StreamKey::Public { scope, media } => match (scope, media) {
                (Scope::All, false) => "public",
                (Scope::All, true) => "public:media",
                (Scope::Local, false) => "public:local",
                (Scope::Local, true) => "public:local:media",
                (Scope::Remote, false) => "public:remote",
                (Scope::Remote, true) => "public:remote:media",
            },
            StreamKey::Hashtag { local: false, .. } => "hashtag",
            StreamKey::Hashtag { local: true, .. } => "hashtag:local",
            StreamKey::List(_) => "list",
        }
    }

    /// The `stream` array of the frames it sends: `["public"]`, `["hashtag", "rust"]`.
    pub fn label(&self) -> Vec<String> {
        let mut label = vec![self.name().to_string()];
        match self {
            StreamKey::Hashtag { tag, .. } => label.push(tag.clone()),
            StreamKey::List(id) => label.push(id.to_string()),
            _ => {}
        }
        label
    }
}

/// An event ready to send, built once per stream label and shared by every listener.
#[derive(Debug)]
pub struct Frame {
    pub stream: &'static str,
    pub published_ms: i64,
    event: Arc<str>,
    payload: Arc<str>,
    label: Vec<String>,
    json: OnceLock<Utf8Bytes>,
    /// `stampede_streaming_messages_sent_total{stream=…}`, looked up once per frame.
    sent: Counter,
}

impl Frame {
    fn new(
        key: &StreamKey,
        event: &Arc<str>,
        payload: &Arc<str>,
        published_ms: i64,
        metrics: &Metrics,
    ) -> Arc<Frame> {
        let stream = key.name();
        Arc::new(Frame {
            stream,
            published_ms,
            event: event.clone(),
            payload: payload.clone(),
            label: key.label(),
            json: OnceLock::new(),
            sent: metrics
                .streaming_messages_sent
                .get_or_create(&label(stream))
                .clone(),
        })
    }

    /// The WebSocket text frame: `{"stream":[…],"event":…,"payload":"<JSON string>"}`; an
    /// event without a payload (`filters_changed`) has no `payload` key, as Mastodon sends it.
    pub fn json(&self) -> Utf8Bytes {
        self.json
            .get_or_init(|| {
                let mut frame = serde_json::json!({
                    "stream": self.label,
                    "event": &*self.event,
                });
                if !self.payload.is_empty() {
                    frame["payload"] = serde_json::Value::from(&*self.payload);
                }
                frame.to_string().into()
            })
            .clone()
    }

    /// The server-sent event's name and data (`undefined` for an event without a payload, as
    /// Mastodon's streaming server writes it).
    pub fn sse(&self) -> (&str, &str) {
        let data = if self.payload.is_empty() {
            "undefined"
        } else {
            &self.payload
        };
        (&self.event, data)
    }
}

/// Frames of one event, one per stream label: every `user` stream shares one.
struct Frames {
    event: Arc<str>,
    payload: Arc<str>,
    published_ms: i64,
    user: Option<Arc<Frame>>,
    /// The status, parsed for filters the first time a listener has some.
    matchable: OnceLock<Option<Matchable>>,
}

impl Frames {
    fn new(event: &str, payload: &str, published_ms: i64) -> Self {
        Frames {
            event: event.into(),
            payload: payload.into(),
            published_ms,
            user: None,
            matchable: OnceLock::new(),
        }
    }

    fn matchable(&self) -> Option<&Matchable> {
        self.matchable
            .get_or_init(|| Matchable::parse(&self.payload))
            .as_ref()
    }

    fn for_key(&mut self, key: &StreamKey, metrics: &Metrics) -> Arc<Frame> {
        let build = |f: &Frames| Frame::new(key, &f.event, &f.payload, f.published_ms, metrics);
        if let StreamKey::User(_) = key {
            if self.user.is_none() {
                self.user = Some(build(self));
            }
            return self.user.clone().expect("just built");
        }
        build(self)
    }
}

/// What a client is sent: an event, an error about its own request, or a keep-alive ping
/// (queued for every client; the server-sent events handler skips it and keeps its own).
#[derive(Debug)]
pub enum Outgoing {
    Event(Arc<Frame>),
    Error(String),
    Ping,
}

/// Accounts a viewer never wants to hear from: those they block, mute or are blocked by, and
/// the known accounts of domains they block; and the viewer's active filters.
#[derive(Debug, Default)]
pub struct Relations {
    excluded: RwLock<Arc<HashSet<i64>>>,
    filters: RwLock<Arc<ViewerFilters>>,
}

impl Relations {
    fn excludes_any(&self, accounts: &[i64]) -> bool {
        let excluded = self.excluded.read().expect("relations lock").clone();
        !excluded.is_empty() && accounts.iter().any(|a| excluded.contains(a))
    }

    fn filters(&self) -> Arc<ViewerFilters> {
        self.filters.read().expect("relations lock").clone()
    }
}

/// A viewer's active filters by the context a stream shows: `home` for the user and list
/// streams, `public` for the public and hashtag streams (as Mastodon's streaming server
/// applies them).
#[derive(Debug, Default)]
pub struct ViewerFilters {
    home: Matcher,
    public: Matcher,
}

impl ViewerFilters {
    fn new(filters: Vec<stampede_social::filters::Filter>) -> Self {
        let of = |context: &str| {
            Matcher::new(
                filters
                    .iter()
                    .filter(|f| f.context.iter().any(|c| c == context))
                    .cloned()
                    .collect(),
            )
        };
        ViewerFilters {
            home: of("home"),
            public: of("public"),
        }
    }

    fn for_key(&self, key: &StreamKey) -> Option<&Matcher> {
        let matcher = match key {
            StreamKey::User(_) | StreamKey::List(_) => &self.home,
            StreamKey::Public { .. } | StreamKey::Hashtag { .. } => &self.public,
            _ => return None,
        };
        (!matcher.is_empty()).then_some(matcher)
    }
}

/// What a filter needs of a streamed status, read once per event and only when a listener has
/// filters.
struct Matchable {
    id: i64,
    text: String,
    spoiler: String,
    status: serde_json::Value,
}

impl Matchable {
    fn parse(payload: &str) -> Option<Self> {
        let status: serde_json::Value = serde_json::from_str(payload).ok()?;
        // A boost is matched by what it boosts, as Mastodon does.
        let shown = if status["reblog"].is_object() {
            &status["reblog"]
        } else {
            &status
        };
        Some(Matchable {
            id: shown["id"].as_str()?.parse().ok()?,
            text: stampede_social::filters::plain_text(
                shown["content"].as_str().unwrap_or_default(),
            ),
            spoiler: shown["spoiler_text"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            status,
        })
    }
}

/// Loads what `account` filters out from PostgreSQL.
pub async fn load_relations(
    db: &Db,
    account: i64,
) -> Result<(HashSet<i64>, ViewerFilters), sqlx::Error> {
    let mut conn = db.acquire().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT target_account_id FROM blocks WHERE account_id = $1 \
         UNION SELECT account_id FROM blocks WHERE target_account_id = $1 \
         UNION SELECT target_account_id FROM mutes WHERE account_id = $1 \
           AND (expires_at IS NULL OR expires_at > now()) \
         UNION SELECT a.id FROM account_domain_blocks d JOIN accounts a ON a.domain = d.domain \
           WHERE d.account_id = $1",
    )
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    let filters = stampede_social::filters::load(&mut conn, account, None, true).await?;
    Ok((ids.into_iter().collect(), ViewerFilters::new(filters)))
}

/// Tells one client's task to disconnect. Cheaper than a cancellation token on the hot path:
/// checking it is an atomic load, and waiting for it registers the task's waker once.
#[derive(Debug, Default)]
pub struct Kill {
    fired: AtomicBool,
    waker: AtomicWaker,
}

impl Kill {
    /// Asks the client's task to disconnect.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Resolves once [`Kill::fire`] was called. Only the client's own task waits on it.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.is_fired() {
                return std::task::Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.is_fired() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub account: Option<i64>,
    pub token_id: Option<i64>,
    tx: mpsc::Sender<Outgoing>,
    relations: Option<Arc<Relations>>,
    /// Fired to disconnect the client: revoked, suspended, too slow, or shutting down.
    pub kill: Kill,
    /// Why it was killed (for the close frame).
    slow: AtomicBool,
}

impl Client {
    /// Whether it was dropped for falling behind.
    pub fn was_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }

    fn wants(&self, event: &StatusEvent) -> bool {
        if self.account == Some(event.author) {
            return true;
        }
        match &self.relations {
            Some(relations) => !relations.excludes_any(&event.involved),
            None => true,
        }
    }

    /// Queues without waiting; a full queue disconnects the client.
    fn offer(&self, message: Outgoing, metrics: &Metrics) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.slow.swap(true, Ordering::Relaxed) {
                    metrics.streaming_slow_clients_dropped.inc();
                    self.kill.fire();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Sends an error frame about the client's own request.
    pub fn error(&self, message: String, metrics: &Metrics) {
        self.offer(Outgoing::Error(message), metrics);
    }
}

#[derive(Default)]
struct Index {
    all: HashMap<u64, Arc<Client>>,
    streams: HashMap<StreamKey, HashMap<u64, Arc<Client>>>,
    by_account: HashMap<i64, HashMap<u64, Arc<Client>>>,
    by_token: HashMap<i64, HashMap<u64, Arc<Client>>>,
}

/// The process's clients.
pub struct Hub {
    metrics: Arc<Metrics>,
    db: Db,
    index: RwLock<Index>,
    relations: Mutex<HashMap<i64, Arc<Relations>>>,
    next_id: AtomicU64,
    buffer: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// Why a client was not admitted.
#[derive(Debug)]
pub enum JoinError {
    /// The account already holds as many connections as it may.
    TooManyConnections,
    /// Its filters could not be loaded.
    Database(sqlx::Error),
}

impl Hub {
    pub fn new(db: Db, metrics: Arc<Metrics>, buffer: usize) -> Arc<Hub> {
        Arc::new(Hub {
            metrics,
            db,
            index: RwLock::new(Index::default()),
            relations: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            buffer,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Registers a client (without subscriptions); it is removed by [`Hub::leave`].
    pub async fn join(
        &self,
        account: Option<i64>,
        token_id: Option<i64>,
        max_per_account: usize,
    ) -> Result<(Arc<Client>, mpsc::Receiver<Outgoing>), JoinError> {
        let relations = match account {
            None => None,
            Some(account) => Some(
                self.relations_of(account)
                    .await
                    .map_err(JoinError::Database)?,
            ),
        };
        let (tx, rx) = mpsc::channel(self.buffer);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            account,
            token_id,
            tx,
            relations,
            kill: Kill::default(),
            slow: AtomicBool::new(false),
        });
        let mut index = self.index.write().expect("hub lock");
        if let Some(account) = account {
            let held = index.by_account.entry(account).or_default();
            if held.len() >= max_per_account {
                if held.is_empty() {
                    index.by_account.remove(&account);
                }
                return Err(JoinError::TooManyConnections);
            }
            held.insert(client.id, client.clone());
        }
        if let Some(token) = token_id {
            index
                .by_token
                .entry(token)
                .or_default()
                .insert(client.id, client.clone());
        }
        index.all.insert(client.id, client.clone());
        self.metrics.streaming_connections.inc();
        Ok((client, rx))
    }

    async fn relations_of(&self, account: i64) -> Result<Arc<Relations>, sqlx::Error> {
        if let Some(shared) = self.relations.lock().expect("relations lock").get(&account) {
            return Ok(shared.clone());
        }
        let (excluded, filters) = load_relations(&self.db, account).await?;
        let mut all = self.relations.lock().expect("relations lock");
        Ok(all
            .entry(account)
            .or_insert_with(|| {
                Arc::new(Relations {
                    excluded: RwLock::new(Arc::new(excluded)),
                    filters: RwLock::new(Arc::new(filters)),
                })
            })
            .clone())
    }

    /// The accounts holding at least one stream here.
    pub fn accounts(&self) -> Vec<i64> {
        self.index
            .read()
            .expect("hub lock")
            .by_account
            .keys()
            .copied()
            .collect()
    }

    /// Adds `client` to `key`'s listeners; false if it already listens.
    pub fn subscribe(&self, client: &Arc<Client>, key: StreamKey) -> bool {
        let name = key.name();
        let added = self
            .index
            .write()
            .expect("hub lock")
            .streams
            .entry(key)
            .or_default()
            .insert(client.id, client.clone())
            .is_none();
        if added {
            self.metrics
                .streaming_subscriptions
                .get_or_create(&label(name))
                .inc();
        }
        added
    }

    /// Removes `client` from `key`'s listeners.
    pub fn unsubscribe(&self, client: &Client, key: &StreamKey) {
        let mut index = self.index.write().expect("hub lock");
        if let Some(listeners) = index.streams.get_mut(key)
            && listeners.remove(&client.id).is_some()
        {
            if listeners.is_empty() {
                index.streams.remove(key);
            }
            self.metrics
                .streaming_subscriptions
                .get_or_create(&label(key.name()))
                .dec();
        }
    }

    /// Removes the client and all its subscriptions.
    pub fn leave(&self, client: &Client, keys: &[StreamKey]) {
        for key in keys {
            self.unsubscribe(client, key);
        }
        let mut index = self.index.write().expect("hub lock");
        if let Some(account) = client.account
            && let Some(held) = index.by_account.get_mut(&account)
        {
            held.remove(&client.id);
            if held.is_empty() {
                index.by_account.remove(&account);
                self.relations
                    .lock()
                    .expect("relations lock")
                    .remove(&account);
            }
        }
        if let Some(token) = client.token_id
            && let Some(held) = index.by_token.get_mut(&token)
        {
            held.remove(&client.id);
            if held.is_empty() {
                index.by_token.remove(&token);
            }
        }
        index.all.remove(&client.id);
        self.metrics.streaming_connections.dec();
    }

    /// Queues a ping for the clients of one slice (`id % slices == slice`): the process's
    /// heartbeat walks the slices in turn, so every client is pinged once a period without a
    /// timer of its own and without the whole process pinging at once. A client whose queue is
    /// full is being written to anyway and is skipped.
    pub fn ping(&self, slice: u64, slices: u64) {
        let index = self.index.read().expect("hub lock");
        for client in index.all.values().filter(|c| c.id % slices == slice) {
            let _ = client.tx.try_send(Outgoing::Ping);
        }
    }

    /// Disconnects every client (shutdown).
    pub fn kill_all(&self) {
        for client in self.index.read().expect("hub lock").all.values() {
            client.kill.fire();
        }
    }

    /// Closes the connections of tokens revoked, and of users disabled or suspended, since they
    /// connected. Revocation is announced at once over pub/sub; this sweep catches what a Redis
    /// outage made this process miss. Returns how many were closed.
    pub async fn sweep(&self) -> Result<usize, sqlx::Error> {
        let tokens: Vec<i64> = self
            .index
            .read()
            .expect("hub lock")
            .by_token
            .keys()
            .copied()
            .collect();
        if tokens.is_empty() {
            return Ok(0);
        }
        let gone: Vec<i64> = sqlx::query_scalar(
            "SELECT t.id FROM oauth_access_tokens t \
             LEFT JOIN users u ON u.account_id = t.account_id \
             LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE t.id = ANY($1) \
               AND (t.revoked_at IS NOT NULL OR u.disabled OR a.suspended_at IS NOT NULL)",
        )
        .bind(&tokens)
        .fetch_all(&self.db)
        .await?;
        let index = self.index.read().expect("hub lock");
        let mut closed = 0;
        for token in gone {
            for client in index
                .by_token
                .get(&token)
                .into_iter()
                .flat_map(|m| m.values())
            {
                client.kill.fire();
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Routes one pub/sub message.
    pub fn dispatch(self: &Arc<Self>, message: &Message) {
        let result = match message.channel.as_str() {
            stream::STATUS_CHANNEL => serde_json::from_str(&message.payload)
                .map(|event: StatusEvent| self.status_event(&event)),
            stream::ACCOUNT_CHANNEL => serde_json::from_str(&message.payload)
                .map(|event: AccountEvent| self.account_event(&event)),
            stream::CONTROL_CHANNEL => {
                serde_json::from_str(&message.payload).map(|control: Control| self.control(control))
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, channel = %message.channel, "malformed streaming event");
        }
    }

    /// Offers the event to `key`'s listeners that want it. A status goes to a listener with
    /// filters for the stream's context as Mastodon sends it: not at all when a `hide` filter
    /// matches, with `filtered` when others do.
    fn send(&self, key: &StreamKey, frames: &mut Frames, wanted: impl Fn(&Client) -> bool) {
        let index = self.index.read().expect("hub lock");
        let Some(listeners) = index.streams.get(key) else {
            return;
        };
        let frame = frames.for_key(key, &self.metrics);
        let filterable = matches!(&*frames.event, "update" | "status.update");
        for client in listeners.values() {
            if !wanted(client) {
                continue;
            }
            let filters = client
                .relations
                .as_ref()
                .filter(|_| filterable)
                .map(|r| r.filters());
            let Some(matcher) = filters.as_deref().and_then(|f| f.for_key(key)) else {
                client.offer(Outgoing::Event(frame.clone()), &self.metrics);
                continue;
            };
            let Some(status) = frames.matchable() else {
                client.offer(Outgoing::Event(frame.clone()), &self.metrics);
                continue;
            };
            let results = matcher.results(status.id, &status.text, &status.spoiler);
            if results.is_empty() {
                client.offer(Outgoing::Event(frame.clone()), &self.metrics);
            } else if !results
                .iter()
                .any(|r| r["filter"]["filter_action"] == "hide")
            {
                let mut filtered = status.status.clone();
                filtered["filtered"] = serde_json::Value::Array(results);
                let own = Frame::new(
                    key,
                    &frames.event,
                    &Arc::from(filtered.to_string()),
                    frames.published_ms,
                    &self.metrics,
                );
                client.offer(Outgoing::Event(own), &self.metrics);
            }
        }
    }

    fn status_event(&self, event: &StatusEvent) {
        let mut frames = Frames::new(&event.event, &event.payload, event.published_ms);
        let wanted = |client: &Client| event.event == "delete" || client.wants(event);
        let mut send = |key: StreamKey| self.send(&key, &mut frames, wanted);
        for &account in &event.home {
            send(StreamKey::User(account));
        }
        if event.public {
            let scope = if event.local {
                Scope::Local
            } else {
                Scope::Remote
            };
            for scope in [Scope::All, scope] {
                send(StreamKey::Public {
                    scope,
                    media: false,
                });
                if event.media {
                    send(StreamKey::Public { scope, media: true });
                }
            }
            for tag in &event.tags {
                send(StreamKey::Hashtag {
                    tag: tag.clone(),
                    local: false,
                });
                if event.local {
                    send(StreamKey::Hashtag {
                        tag: tag.clone(),
                        local: true,
                    });
                }
            }
        }
        for &list in &event.lists {
            send(StreamKey::List(list));
        }
    }

    fn account_event(&self, event: &AccountEvent) {
        let keys: &[StreamKey] = match event.stream {
            AccountStream::Notification => &[
                StreamKey::User(event.account),
                StreamKey::Notification(event.account),
            ],
            AccountStream::Direct => &[StreamKey::Direct(event.account)],
            AccountStream::User => &[StreamKey::User(event.account)],
        };
        let mut frames = Frames::new(&event.event, &event.payload, event.published_ms);
        for key in keys {
            self.send(key, &mut frames, |_| true);
        }
    }

    fn control(self: &Arc<Self>, control: Control) {
        let index = self.index.read().expect("hub lock");
        match control {
            Control::Revoke { token_id } => {
                for client in index
                    .by_token
                    .get(&token_id)
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    client.kill.fire();
                }
            }
            Control::Disconnect { account } => {
                for client in index
                    .by_account
                    .get(&account)
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    client.kill.fire();
                }
            }
            Control::Relations { account } => {
                if !index.by_account.contains_key(&account) {
                    return;
                }
                let hub = self.clone();
                tokio::spawn(async move { hub.reload_relations(account).await });
            }
            Control::FiltersChanged { account } => {
                if !index.by_account.contains_key(&account) {
                    return;
                }
                let hub = self.clone();
                tokio::spawn(async move {
                    hub.reload_relations(account).await;
                    hub.account_event(&AccountEvent {
                        account,
                        stream: AccountStream::User,
                        event: "filters_changed".to_string(),
                        payload: String::new(),
                        published_ms: stream::now_ms(),
                    });
                });
            }
        }
    }

    async fn reload_relations(&self, account: i64) {
        match load_relations(&self.db, account).await {
            Ok((excluded, filters)) => {
                let shared = self
                    .relations
                    .lock()
                    .expect("relations lock")
                    .get(&account)
                    .cloned();
                if let Some(shared) = shared {
                    *shared.excluded.write().expect("relations lock") = Arc::new(excluded);
                    *shared.filters.write().expect("relations lock") = Arc::new(filters);
                }
            }
            Err(error) => tracing::warn!(%error, account, "cannot reload streaming filters"),
        }
    }

    /// Counts a frame written to a client, and how long after its publication.
    pub fn sent(&self, frame: &Frame) {
        frame.sent.inc();
        let lag_ms = (stream::now_ms() - frame.published_ms).max(0);
        self.metrics
            .streaming_event_lag
            .observe(lag_ms as f64 / 1000.0);
    }
}

fn label(stream: &str) -> StreamLabels {
    StreamLabels {
        stream: stream.to_string(),
    }
}
