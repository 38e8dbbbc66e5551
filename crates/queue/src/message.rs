//! Typed messages: what a queue carries is one Rust type, written and read in one place.
//!
//! Each queue's messages are an enum tagged the way the envelope is laid out —
//! `#[serde(tag = "kind", content = "payload")]` — so a variant's serde name is the envelope's
//! `kind` and its fields are the `payload`. The producer writes `outbox::send(tx, &message)`
//! (the queue comes from the type), and the consumer registers `worker.consume(handler)` and
//! receives the same type, decoded; a payload that does not match is parked, never guessed at.

use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Envelope, Handler, JobError, QueueError, WorkQueue, Worker};

/// The messages of one queue.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The queue they travel on.
    const QUEUE: WorkQueue;
    /// Every variant's kind (its serde name); a test per type checks the list is whole.
    const KINDS: &'static [&'static str];
}

impl Envelope {
    /// A new envelope carrying `message`: its kind and payload, the current trace context.
    pub fn of<M: Message>(message: &M) -> Envelope {
        // A message is plain data (integers, strings, lists): serializing cannot fail.
        let mut value = serde_json::to_value(message).unwrap_or_default();
        let kind = value
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let payload = value
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null);
        Envelope::new(&kind, payload)
    }

    /// The message this envelope carries, as the queue's type.
    pub fn message<M: Message>(&self) -> Result<M, QueueError> {
        let value = serde_json::json!({ "kind": self.kind, "payload": self.payload });
        serde_json::from_value(value)
            .map_err(|e| QueueError::Malformed(format!("{}: {e}", self.kind)))
    }
}

/// Does the work of one queue's messages. Like [`Handler`], it must be idempotent.
pub trait Consume<M: Message>: Send + Sync + 'static {
    fn consume<'a>(
        &'a self,
        message: M,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Decodes the envelope, then hands the message to the typed handler.
struct Decode<M, H> {
    handler: Arc<H>,
    message: PhantomData<fn() -> M>,
}

impl<M: Message, H: Consume<M>> Handler for Decode<M, H> {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            let message = envelope.message::<M>()?;
            self.handler.consume(message, envelope).await
        }
        .boxed()
    }
}

impl Worker {
    /// Routes every kind of `M` to `handler` (normally on `M::QUEUE`'s worker; another queue's
    /// worker may take them too, for messages an older version queued there).
    pub fn consume<M: Message, H: Consume<M>>(self, handler: Arc<H>) -> Self {
        let decode: Arc<dyn Handler> = Arc::new(Decode::<M, H> {
            handler,
            message: PhantomData,
        });
        M::KINDS
            .iter()
            .fold(self, |worker, kind| worker.handle(kind, decode.clone()))
    }
}

/// Checks that `M::KINDS` names exactly the kinds of `samples` (one value per variant): for each
/// message type's unit test.
pub fn assert_kinds<M: Message>(samples: &[M]) {
    let mut seen: Vec<String> = samples.iter().map(|m| Envelope::of(m).kind).collect();
    seen.sort();
    seen.dedup();
    let mut listed: Vec<String> = M::KINDS.iter().map(|k| k.to_string()).collect();
    listed.sort();
    assert_eq!(seen, listed, "KINDS must list every variant once");
    for sample in samples {
        let envelope = Envelope::of(sample);
        let back: M = envelope
            .message()
            .expect("a message decodes from its own envelope");
        assert_eq!(Envelope::of(&back).payload, envelope.payload);
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "kind", content = "payload")]
    enum Sample {
        #[serde(rename = "thing.made")]
        Made { id: i64 },
        #[serde(rename = "thing.gone")]
        Gone,
    }

    impl Message for Sample {
        const QUEUE: WorkQueue = WorkQueue::Distribute;
        const KINDS: &'static [&'static str] = &["thing.made", "thing.gone"];
    }

    #[test]
    fn kind_and_payload_are_the_envelopes() {
        let envelope = Envelope::of(&Sample::Made { id: 7 });
        assert_eq!(envelope.kind, "thing.made");
        assert_eq!(envelope.payload, serde_json::json!({ "id": 7 }));
        assert_kinds(&[Sample::Made { id: 1 }, Sample::Gone]);
    }

    #[test]
    fn a_payload_that_does_not_match_is_malformed() {
        let mut envelope = Envelope::of(&Sample::Made { id: 7 });
        envelope.payload = serde_json::json!({ "id": "seven" });
        assert!(matches!(
            envelope.message::<Sample>(),
            Err(QueueError::Malformed(_))
        ));
        envelope.kind = "thing.unknown".into();
        assert!(envelope.message::<Sample>().is_err());
    }
}
