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

/// Makes ids in one process. Ids from different processes made in the same millisecond are told
/// apart by a random starting sequence.
#[derive(Debug)]
pub struct IdGenerator {
    last: AtomicU64,
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGenerator {
    /// A generator whose sequence starts at a random point.
    pub fn new() -> Self {
        IdGenerator {
            last: AtomicU64::new(u64::from(rand::random::<u16>())),
        }
    }

    /// The next id: never smaller than the previous one from this generator, and never equal.
    pub fn next_id(&self) -> Id {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let floor = now_ms << 16;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            // Within one millisecond, count up; a new millisecond starts from its floor plus the
            // low bits of the previous value so concurrent processes are unlikely to collide.
            let candidate = if prev >> 16 >= now_ms {
                prev + 1
            } else {
                floor | (prev & 0xff)
            };
            match self.last.compare_exchange_weak(
                prev,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Id((candidate & (i64::MAX as u64)) as i64),
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
