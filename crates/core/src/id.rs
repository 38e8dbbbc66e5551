//! Mastodon-style snowflake ids.
//!
//! An id is a 64-bit integer whose upper 48 bits are milliseconds since the Unix epoch and whose
//! lower 16 bits tell apart ids made in the same millisecond. Ids therefore sort by creation time,
//! which pagination (`max_id`, `since_id`, `min_id`) and feed scores rely on. In JSON they are
//! strings, as in Mastodon, because JavaScript numbers cannot hold 64 bits.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A snowflake id: `(unix_millis << 16) | sequence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(i64);

impl Id {
    /// The smallest id that could have been made at `unix_millis`; used to turn a time into a
    /// pagination bound.
    pub fn floor_at(unix_millis: u64) -> Self {
        Id(((unix_millis << 16) & (i64::MAX as u64)) as i64)
    }

    /// The raw value as stored in PostgreSQL (`bigint`).
    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// The millisecond timestamp the id was made at.
    pub fn unix_millis(self) -> u64 {
        (self.0 as u64) >> 16
    }
}

impl From<i64> for Id {
    fn from(raw: i64) -> Self {
        Id(raw)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client sent something that is not a decimal 64-bit id.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid id")
    }
}

impl std::error::Error for InvalidId {}

impl FromStr for Id {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Id(v)),
            _ => Err(InvalidId),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bits of an id's low 16 that name the process that made it (1,024 processes).
const NODE_BITS: u32 = 10;
/// Bits left for the sequence within one millisecond (64 ids per millisecond per process; more
/// borrow from the next millisecond).
const SEQUENCE_BITS: u32 = 16 - NODE_BITS;
const SEQUENCE_MAX: u64 = (1 << SEQUENCE_BITS) - 1;

/// This process's node number. Random until [`claim_node`] sets one that no other live process
/// holds (the runtime claims one from PostgreSQL as soon as the database answers).
static NODE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The last id this process made, shared by every [`IdGenerator`] in it, so two generators in
/// one process never make the same id.
static LAST: AtomicU64 = AtomicU64::new(0);

fn node() -> u64 {
    let node = NODE.load(Ordering::Relaxed);
    if node != u64::MAX {
        return node;
    }
    let random = u64::from(rand::random::<u16>()) & ((1 << NODE_BITS) - 1);
    match NODE.compare_exchange(u64::MAX, random, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => random,
        Err(set) => set,
    }
}

/// Sets this process's node number (taken modulo 1,024).
pub fn claim_node(node: u64) {
    NODE.store(node & ((1 << NODE_BITS) - 1), Ordering::Relaxed);
}

/// Makes ids: `(unix_millis << 16) | (node << 6) | sequence`. Ids from one process never repeat
/// and always increase; ids from processes with different node numbers never collide.
#[derive(Debug, Default)]
pub struct IdGenerator {
    _private: (),
}

impl IdGenerator {
    pub fn new() -> Self {
        IdGenerator { _private: () }
    }

    /// The next id of this process.
    pub fn next_id(&self) -> Id {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let node = node();
        let mut prev = LAST.load(Ordering::Relaxed);
        loop {
            // `LAST` holds (millis << SEQUENCE_BITS) | sequence.
            let prev_ms = prev >> SEQUENCE_BITS;
            let next = if prev_ms >= now_ms {
                // Same millisecond (or borrowed ahead): count up, into the next when full.
                prev + 1
            } else {
                now_ms << SEQUENCE_BITS
            };
            match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    let ms = next >> SEQUENCE_BITS;
                    let sequence = next & SEQUENCE_MAX;
                    let raw = (ms << 16) | (node << SEQUENCE_BITS) | sequence;
                    return Id((raw & (i64::MAX as u64)) as i64);
                }
                Err(actual) => prev = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_their_time() {
        let g = IdGenerator::new();
        let mut prev = g.next_id();
        for _ in 0..10_000 {
            let next = g.next_id();
            assert!(next > prev, "{next} should follow {prev}");
            prev = next;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now.abs_diff(prev.unix_millis()) < 5_000);
    }

    #[test]
    fn generators_share_one_sequence_and_carry_the_node() {
        claim_node(1024 + 5);
        let a = IdGenerator::new();
        let b = IdGenerator::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5_000 {
            assert!(seen.insert(a.next_id()));
            let id = b.next_id();
            assert!(seen.insert(id));
            assert_eq!((id.as_i64() as u64 >> SEQUENCE_BITS) & 1023, 5);
        }
    }

    #[test]
    fn ids_are_strings_in_json() {
        let id = Id::from(110_000_000_000_000_000);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"110000000000000000\""
        );
        let back: Id = serde_json::from_str("\"110000000000000000\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<Id>("\"-4\"").is_err());
        assert!(serde_json::from_str::<Id>("\"abc\"").is_err());
    }

    #[test]
    fn floor_orders_before_ids_of_that_millisecond() {
        let id = Id::from((1_700_000_000_000_i64 << 16) | 42);
        assert!(Id::floor_at(1_700_000_000_000) < id);
        assert!(Id::floor_at(1_700_000_000_001) > id);
    }
}
