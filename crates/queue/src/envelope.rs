//! The versioned message envelope every queue carries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::QueueError;

/// The envelope format this build writes. Readers accept this version and refuse newer ones, so
/// a rolling upgrade must deploy readers before writers of a new version.
pub const ENVELOPE_VERSION: u8 = 1;

/// One unit of work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`ENVELOPE_VERSION`]).
    pub v: u8,
    /// Unique per message; consumers deduplicate on it.
    pub id: Uuid,
    /// What to do (`canary`, `distribute_status`, …); selects the handler.
    pub kind: String,
    /// 0 on first delivery, raised by each retry.
    pub attempt: u32,
    /// When the message was created (its outbox row written).
    pub created_at: DateTime<Utc>,
    /// W3C trace context of the span that created it.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub trace: HashMap<String, String>,
    /// The kind's own data.
    pub payload: serde_json::Value,
}

impl Envelope {
    /// A new message of `kind`, carrying the current span's trace context.
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: Uuid::new_v4(),
            kind: kind.to_string(),
            attempt: 0,
            created_at: Utc::now(),
            trace: stampede_telemetry::propagation::inject_current(),
            payload,
        }
    }

    /// Encodes for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        // An Envelope holds only JSON-safe types, so this cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes from the wire, refusing versions this build does not know.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, QueueError> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| QueueError::Malformed(e.to_string()))?;
        if envelope.v > ENVELOPE_VERSION {
            return Err(QueueError::Malformed(format!(
                "envelope version {} is newer than this build understands ({ENVELOPE_VERSION})",
                envelope.v
            )));
        }
        Ok(envelope)
    }

    /// The payload as the kind's own type.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, QueueError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            QueueError::Malformed(format!("{} payload does not match: {e}", self.kind))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_future_versions() {
        let envelope = Envelope::new("canary", serde_json::json!({"canary_id": 7}));
        let back = Envelope::from_bytes(&envelope.to_bytes()).unwrap();
        assert_eq!(back, envelope);

        let mut future = envelope.clone();
        future.v = ENVELOPE_VERSION + 1;
        assert!(matches!(
            Envelope::from_bytes(&future.to_bytes()),
            Err(QueueError::Malformed(_))
        ));
        assert!(Envelope::from_bytes(b"{not json").is_err());
    }
}
