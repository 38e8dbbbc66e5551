//! Where media originals and variants live: an S3-compatible bucket ([`s3`]) in production, a
//! directory ([`local`]) for `stampede all` without S3 settings. One type fronts both, and the
//! same tests run against both (the S3 one against a real S3-protocol server on loopback).
//!
//! Keys are relative paths such as `media_attachments/files/110/original.png`; [`validate_key`]
//! refuses anything that could escape the bucket or directory.

pub mod local;
pub mod s3;

use bytes::Bytes;
use stampede_config::StorageConfig;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Object storage.
#[derive(Clone, Debug)]
pub enum Storage {
    S3(s3::S3Storage),
    Local(local::LocalStorage),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Storage::S3($s) => $e,
            Storage::Local($s) => $e,
        }
    };
}

impl Storage {
    /// The storage the configuration names.
    pub fn from_config(config: &StorageConfig) -> Self {
        match config {
            StorageConfig::Local { root } => Storage::Local(local::LocalStorage::new(root)),
            StorageConfig::S3(s3) => Storage::S3(s3::S3Storage::new(s3)),
        }
    }

    /// Stores `body` under `key`, replacing what was there.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        validate_key(key)?;
        dispatch!(self, s => s.put(key, body, content_type).await)
    }

    /// The object under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        validate_key(key)?;
        dispatch!(self, s => s.get(key).await)
    }

    /// Removes the object under `key`; removing a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        dispatch!(self, s => s.delete(key).await)
    }

    /// Checks that the bucket or directory can be used (for readiness).
    pub async fn check(&self) -> Result<(), StorageError> {
        dispatch!(self, s => s.check().await)
    }
}

/// Accepts relative keys of letters, digits, `-`, `_`, `.` and `/`, with no empty, `.` or `..`
/// segment, at most 1,024 bytes.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn keys_cannot_escape() {
        for good in ["a", "media/files/110/original.png", "x-y_z.9"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/abs", "a/../b", "..", "a//b", "a/", "sp ace", "ümlaut", "a\\b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }
}
