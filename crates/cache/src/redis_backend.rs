//! Redis through the `redis` crate's ConnectionManager (reconnects by itself) and one pattern
//! subscription per process for pub/sub.
//!
//! Behind Sentinel (REDIS_SENTINELS), the sentinels name the primary; a connection error or a
//! `READONLY` answer (the old primary came back as a replica) drops the connection, and the next
//! command asks the sentinels again, so a failover is followed without a restart.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{OnceCell, broadcast};

use crate::{CacheError, Message, SUBSCRIBER_BUFFER};

/// Redis-backed store. Connects on first use, so a process can start (and report itself not
/// ready) while Redis is down.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    namespace: String,
    /// The connection in use; emptied when a Sentinel-named primary fails.
    manager: tokio::sync::RwLock<Option<ConnectionManager>>,
    /// The server connected to last (`host:port`), as readiness names it.
    node: parking_lot::Mutex<&'static str>,
    bus: broadcast::Sender<Message>,
    subscribed: OnceCell<()>,
}

/// Where the server is.
enum Target {
    /// A fixed address (REDIS_URL).
    Fixed(redis::Client),
    /// The primary the sentinels name.
    Sentinel {
        sentinel: tokio::sync::Mutex<redis::sentinel::Sentinel>,
        master: String,
        node: redis::sentinel::SentinelNodeConnectionInfo,
    },
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError(error.to_string())
}

impl RedisCache {
    /// A store on the server at `url` with every key under `namespace:`.
    pub fn new(url: &str, namespace: &str) -> Result<Self, CacheError> {
        Self::with_tls_ca(url, namespace, None)
    }

    /// The same, trusting only the PEM certificates in `tls_ca` for a
    /// `rediss://` server: a managed Redis whose certificate a private CA signed.
    pub fn with_tls_ca(
        url: &str,
        namespace: &str,
        tls_ca: Option<&str>,
    ) -> Result<Self, CacheError> {
        let client = match tls_ca {
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.as_bytes().to_vec()),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(unavailable)?;
        Ok(Self::with_target(Target::Fixed(client), namespace))
    }

    /// A store on the primary that the sentinels at `sentinels` (`host:port`) monitor as
    /// `master`; `url` gives the database number and password (its host is not used).
    pub fn with_sentinels(
        url: &str,
        sentinels: &[String],
        master: &str,
        namespace: &str,
    ) -> Result<Self, CacheError> {
        use redis::IntoConnectionInfo;
        let settings = url
            .into_connection_info()
            .map_err(unavailable)?
            .redis_settings()
            .clone();
        let sentinel = redis::sentinel::Sentinel::build(
            sentinels
                .iter()
                .map(|s| format!("redis://{s}"))
                .collect::<Vec<_>>(),
        )
        .map_err(unavailable)?;
        Ok(Self::with_target(
            Target::Sentinel {
                sentinel: tokio::sync::Mutex::new(sentinel),
                master: master.to_string(),
                node: redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(settings),
            },
            namespace,
        ))
    }

    fn with_target(target: Target, namespace: &str) -> Self {
        RedisCache {
            inner: Arc::new(Inner {
                target,
                namespace: namespace.to_string(),
                manager: tokio::sync::RwLock::new(None),
                node: parking_lot::Mutex::new("not connected"),
                bus: broadcast::channel(SUBSCRIBER_BUFFER).0,
                subscribed: OnceCell::new(),
            }),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.namespace)
    }

    async fn conn(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(manager) = self.inner.manager.read().await.as_ref() {
            return Ok(manager.clone());
        }
        let mut slot = self.inner.manager.write().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let client = self.inner.client().await.map_err(unavailable)?;
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        *self.inner.node.lock() = interned(client.get_connection_info().addr().to_string());
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// The server (`host:port`) the store talks to, as last connected.
    pub fn node(&self) -> &'static str {
        *self.inner.node.lock()
    }

    /// The error as the caller sees it; behind Sentinel, a failure that may mean the primary
    /// moved drops the connection so that the next command asks the sentinels again.
    fn failed(&self, error: redis::RedisError) -> CacheError {
        if matches!(self.inner.target, Target::Sentinel { .. })
            && (error.is_io_error()
                || error.is_connection_refusal()
                || error.is_connection_dropped()
                || error.is_timeout()
                || error.code() == Some("READONLY"))
            && let Ok(mut slot) = self.inner.manager.try_write()
        {
            tracing::warn!(%error, "redis primary failed; asking the sentinels again");
            *slot = None;
        }
        unavailable(error)
    }

    pub(crate) async fn check(&self) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn set_ex(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn del(&self, key: &str) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn hit(&self, key: &str, window: Duration) -> Result<u64, CacheError> {
        let mut conn = self.conn().await?;
        let key = self.key(key);
        // INCR, then start the window's clock only on the first hit (EXPIRE … NX).
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(window.as_millis().max(1) as u64)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(count)
    }

    pub(crate) async fn feed_push(
        &self,
        entries: &[(String, Vec<i64>)],
        max_len: usize,
        kept_by: &[&str],
    ) -> Result<usize, CacheError> {
        let mut keys: Vec<(String, &[i64])> = entries
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(key, ids)| (self.key(key), ids.as_slice()))
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        if !kept_by.is_empty() {
            // EXISTS of several keys counts those present: one command per feed.
            let mut pipe = redis::pipe();
            for (key, _) in &keys {
                let mut exists = redis::cmd("EXISTS");
                for suffix in kept_by {
                    exists.arg(format!("{key}{suffix}"));
                }
                pipe.add_command(exists);
            }
            let present: Vec<u32> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            let mut present = present.into_iter();
            keys.retain(|_| present.next().unwrap_or(0) > 0);
            if keys.is_empty() {
                return Ok(0);
            }
        }
        let mut pipe = redis::pipe();
        let mut written = 0;
        for (key, ids) in &keys {
            written += ids.len();
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(key);
            for id in *ids {
                zadd.arg(id).arg(id);
            }
            pipe.add_command(zadd).ignore();
            // Keep the newest max_len: remove ranks 0 … -(max_len+1).
            pipe.cmd("ZREMRANGEBYRANK")
                .arg(key)
                .arg(0)
                .arg(-(max_len as i64) - 1)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(written)
    }

    pub(crate) async fn feed_range(
        &self,
        key: &str,
        max: Option<i64>,
        min: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, CacheError> {
        let mut conn = self.conn().await?;
        let max = max.map_or_else(|| "+inf".to_string(), |m| format!("({m}"));
        let min = min.map_or_else(|| "-inf".to_string(), |m| format!("({m}"));
        redis::cmd("ZRANGE")
            .arg(self.key(key))
            .arg(max)
            .arg(min)
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn feed_remove(&self, keys: &[String], ids: &[i64]) -> Result<(), CacheError> {
        if keys.is_empty() || ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("ZREM").arg(self.key(key)).arg(ids).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn feed_read(
        &self,
        key: &str,
        marker: &str,
        ttl: Duration,
        max: Option<i64>,
        min: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, CacheError> {
        let mut conn = self.conn().await?;
        let max = max.map_or_else(|| "+inf".to_string(), |m| format!("({m}"));
        let min = min.map_or_else(|| "-inf".to_string(), |m| format!("({m}"));
        let (refreshed, ids): (bool, Vec<i64>) = redis::pipe()
            .cmd("EXPIRE")
            .arg(self.key(marker))
            .arg(ttl.as_secs().max(1))
            .cmd("ZRANGE")
            .arg(self.key(key))
            .arg(max)
            .arg(min)
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(refreshed.then_some(ids))
    }

    pub(crate) async fn feed_fill(
        &self,
        key: &str,
        ids: &[i64],
        max_len: usize,
        marker: Option<(&str, Duration)>,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        let key = self.key(key);
        let mut pipe = redis::pipe();
        for chunk in ids.chunks(500) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&key);
            for id in chunk {
                zadd.arg(id).arg(id);
            }
            pipe.add_command(zadd).ignore();
        }
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(max_len as i64) - 1)
            .ignore();
        if let Some((marker, ttl)) = marker {
            pipe.cmd("SET")
                .arg(self.key(marker))
                .arg(1)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<u64, CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("PUBLISH")
            .arg(self.key(channel))
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Message> {
        let receiver = self.inner.bus.subscribe();
        if self.inner.subscribed.set(()).is_ok() {
            tokio::spawn(pump(self.inner.clone()));
        }
        receiver
    }
}

/// `text` as a `&'static str`, leaked once per distinct value (a process meets a handful of
/// server addresses in its life).
fn interned(text: String) -> &'static str {
    static SEEN: parking_lot::Mutex<Vec<&'static str>> = parking_lot::Mutex::new(Vec::new());
    let mut seen = SEEN.lock();
    if let Some(known) = seen.iter().find(|s| **s == text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    seen.push(leaked);
    leaked
}

impl Inner {
    /// A client for the server: the fixed one, or the primary the sentinels name now.
    async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.target {
            Target::Fixed(client) => Ok(client.clone()),
            Target::Sentinel {
                sentinel,
                master,
                node,
            } => {
                sentinel
                    .lock()
                    .await
                    .async_master_for(master, Some(node))
                    .await
            }
        }
    }
}

/// Holds the process's one subscription and fans messages out; reconnects with backoff.
async fn pump(inner: Arc<Inner>) {
    let pattern = format!("{}:*", inner.namespace);
    let strip = inner.namespace.len() + 1;
    let mut failures = 0u32;
    loop {
        let subscribed = async {
            let mut pubsub = inner.client().await?.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                if failures > 0 {
                    tracing::info!("redis subscription re-established");
                }
                failures = 0;
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let channel = msg.get_channel_name();
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    let _ = inner.bus.send(Message {
                        channel: channel.get(strip..).unwrap_or_default().to_string(),
                        payload,
                    });
                }
                tracing::warn!("redis subscription lost; reconnecting");
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, "cannot subscribe to redis; retrying");
            }
        }
        let delay = Duration::from_millis(250u64 << failures.min(7));
        tokio::time::sleep(delay).await;
        if inner.bus.receiver_count() == 0 && Arc::strong_count(&inner) == 1 {
            return; // nobody left to deliver to
        }
    }
}
