//! The in-process store used by `stampede all` when REDIS_URL is unset. Same semantics as Redis
//! within one process: feeds, expiring values, counters and pub/sub.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, broadcast};

use crate::{CacheError, Message, SUBSCRIBER_BUFFER};

#[derive(Debug)]
enum Entry {
    Value(String, Option<Instant>),
    Feed(BTreeSet<i64>),
}

/// In-process feeds, counters and pub/sub; clones share state.
#[derive(Clone, Debug)]
pub struct MemoryCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    bus: broadcast::Sender<Message>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

fn live(entry: &Entry) -> bool {
    match entry {
        Entry::Value(_, Some(expires)) => *expires > Instant::now(),
        _ => true,
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        MemoryCache {
            entries: Arc::new(Mutex::new(HashMap::new())),
            bus: broadcast::channel(SUBSCRIBER_BUFFER).0,
        }
    }

    pub(crate) async fn check(&self) -> Result<(), CacheError> {
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let entries = self.entries.lock().await;
        Ok(match entries.get(key) {
            Some(e @ Entry::Value(v, _)) if live(e) => Some(v.clone()),
            _ => None,
        })
    }

    pub(crate) async fn set_ex(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.entries.lock().await.insert(
            key.to_string(),
            Entry::Value(value.to_string(), Some(Instant::now() + ttl)),
        );
        Ok(())
    }

    pub(crate) async fn del(&self, key: &str) -> Result<(), CacheError> {
        self.entries.lock().await.remove(key);
        Ok(())
    }

    pub(crate) async fn hit(&self, key: &str, window: Duration) -> Result<u64, CacheError> {
        let mut entries = self.entries.lock().await;
        let count = match entries.get(key) {
            Some(e @ Entry::Value(v, _)) if live(e) => v.parse::<u64>().unwrap_or(0) + 1,
            _ => 1,
        };
        let expires = match entries.get(key) {
            Some(e @ Entry::Value(_, Some(at))) if live(e) => *at,
            _ => Instant::now() + window,
        };
        entries.insert(
            key.to_string(),
            Entry::Value(count.to_string(), Some(expires)),
        );
        Ok(count)
    }

    pub(crate) async fn feed_push(
        &self,
        pushes: &[(String, Vec<i64>)],
        max_len: usize,
        kept_by: &[&str],
    ) -> Result<usize, CacheError> {
        let mut entries = self.entries.lock().await;
        let mut written = 0;
        for (key, ids) in pushes.iter().filter(|(_, ids)| !ids.is_empty()) {
            let kept = kept_by.is_empty()
                || kept_by
                    .iter()
                    .any(|suffix| entries.get(&format!("{key}{suffix}")).is_some_and(live));
            if !kept {
                continue;
            }
            written += ids.len();
            let entry = entries
                .entry(key.clone())
                .or_insert_with(|| Entry::Feed(BTreeSet::new()));
            if !matches!(entry, Entry::Feed(_)) {
                *entry = Entry::Feed(BTreeSet::new());
            }
            if let Entry::Feed(set) = entry {
                set.extend(ids);
                while set.len() > max_len {
                    set.pop_first();
                }
            }
        }
        Ok(written)
    }

    pub(crate) async fn feed_range(
        &self,
        key: &str,
        max: Option<i64>,
        min: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, CacheError> {
        let entries = self.entries.lock().await;
        let Some(Entry::Feed(set)) = entries.get(key) else {
            return Ok(Vec::new());
        };
        Ok(set
            .iter()
            .rev()
            .filter(|id| max.is_none_or(|m| **id < m) && min.is_none_or(|m| **id > m))
            .take(limit)
            .copied()
            .collect())
    }

    pub(crate) async fn feed_remove(&self, keys: &[String], ids: &[i64]) -> Result<(), CacheError> {
        let mut entries = self.entries.lock().await;
        for key in keys {
            if let Some(Entry::Feed(set)) = entries.get_mut(key) {
                for id in ids {
                    set.remove(id);
                }
            }
        }
        Ok(())
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
        {
            let mut entries = self.entries.lock().await;
            match entries.get_mut(marker) {
                Some(Entry::Value(_, expires)) if expires.is_none_or(|at| at > Instant::now()) => {
                    *expires = Some(Instant::now() + ttl);
                }
                _ => return Ok(None),
            }
        }
        self.feed_range(key, max, min, limit).await.map(Some)
    }

    pub(crate) async fn feed_fill(
        &self,
        key: &str,
        ids: &[i64],
        max_len: usize,
        marker: Option<(&str, Duration)>,
    ) -> Result<(), CacheError> {
        let mut entries = self.entries.lock().await;
        let entry = entries
            .entry(key.to_string())
            .or_insert_with(|| Entry::Feed(BTreeSet::new()));
        if !matches!(entry, Entry::Feed(_)) {
            *entry = Entry::Feed(BTreeSet::new());
        }
        if let Entry::Feed(set) = entry {
            set.extend(ids.iter().copied());
            while set.len() > max_len {
                set.pop_first();
            }
        }
        if let Some((marker, ttl)) = marker {
            entries.insert(
                marker.to_string(),
                Entry::Value("1".to_string(), Some(Instant::now() + ttl)),
            );
        }
        Ok(())
    }

    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<u64, CacheError> {
        let receivers = self
            .bus
            .send(Message {
                channel: channel.to_string(),
                payload: payload.to_string(),
            })
            .unwrap_or(0);
        Ok(u64::from(receivers > 0))
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.bus.subscribe()
    }
}
