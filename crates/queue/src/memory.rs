//! The in-process queue used by `stampede all` when AMQP_URL is unset.
//!
//! Bounded per queue (a publisher waits when a queue is full, which is back-pressure, not loss).
//! A delivery dropped without being settled goes back to its queue, as an unacknowledged AMQP
//! message would. On a clean stop, `stampede all` writes whatever is still queued back to the
//! outbox ([`MemoryQueue::drain_all`]). What it cannot do is survive a crash: messages already
//! taken from the outbox and not yet handled are then lost. Servers that cannot accept that run
//! RabbitMQ; see docs/decisions/0003-in-process-backends.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use crate::{Delivery, Envelope, QueueError, Settle, WorkQueue};

/// Messages a queue holds before publishers wait.
const CAPACITY: usize = 10_000;

struct Lane {
    tx: mpsc::Sender<Envelope>,
    rx: Arc<Mutex<mpsc::Receiver<Envelope>>>,
    parked_tx: mpsc::Sender<(Envelope, String)>,
    // Kept so parked messages stay countable (and inspectable in tests).
    parked_rx: Arc<Mutex<mpsc::Receiver<(Envelope, String)>>>,
}

/// Messages waiting out a retry delay, by message id.
type Delayed = Arc<Mutex<HashMap<uuid::Uuid, (WorkQueue, Envelope)>>>;

/// The in-process queue; clones share the same queues.
#[derive(Clone)]
pub struct MemoryQueue {
    lanes: Arc<HashMap<WorkQueue, Lane>>,
    delayed: Delayed,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryQueue")
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    pub fn new() -> Self {
        let lanes = WorkQueue::ALL
            .into_iter()
            .map(|q| {
                let (tx, rx) = mpsc::channel(CAPACITY);
                let (parked_tx, parked_rx) = mpsc::channel(CAPACITY);
                (
                    q,
                    Lane {
                        tx,
                        rx: Arc::new(Mutex::new(rx)),
                        parked_tx,
                        parked_rx: Arc::new(Mutex::new(parked_rx)),
                    },
                )
            })
            .collect();
        MemoryQueue {
            lanes: Arc::new(lanes),
            delayed: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lane(&self, queue: WorkQueue) -> &Lane {
        // Every WorkQueue has a lane, made in new().
        &self.lanes[&queue]
    }

    pub(crate) async fn publish(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
    ) -> Result<(), QueueError> {
        self.lane(queue)
            .tx
            .send(envelope.clone())
            .await
            .map_err(|_| QueueError::Unavailable("the in-process queue is closed".into()))
    }

    /// Holds `envelope` for `delay`, then puts it on `queue`.
    pub(crate) async fn publish_after(
        &self,
        queue: WorkQueue,
        envelope: Envelope,
        delay: Duration,
    ) {
        schedule(
            &self.delayed,
            self.lane(queue).tx.clone(),
            queue,
            envelope,
            delay,
        )
        .await;
    }

    /// Moves `envelope` to `queue`'s parking queue.
    pub(crate) fn park(
        &self,
        queue: WorkQueue,
        envelope: Envelope,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.lane(queue)
            .parked_tx
            .try_send((envelope, reason.to_string()))
            .map_err(|_| QueueError::Unavailable("the in-process parking queue is full".into()))
    }

    pub(crate) fn consume(&self, queue: WorkQueue) -> MemoryConsumer {
        let lane = self.lane(queue);
        MemoryConsumer {
            queue,
            rx: lane.rx.clone(),
            requeue: lane.tx.clone(),
            parked: lane.parked_tx.clone(),
            delayed: self.delayed.clone(),
        }
    }

    pub(crate) fn depth(&self, queue: WorkQueue) -> u32 {
        let tx = &self.lane(queue).tx;
        (tx.max_capacity() - tx.capacity()) as u32
    }

    pub(crate) fn parked_len(&self, queue: WorkQueue) -> u32 {
        let tx = &self.lane(queue).parked_tx;
        (tx.max_capacity() - tx.capacity()) as u32
    }

    /// Takes every message still waiting in any queue, or waiting out a retry delay. `stampede
    /// all` calls this after its workers stop and writes them back to the outbox, so a clean stop
    /// loses nothing.
    pub async fn drain_all(&self) -> Vec<(WorkQueue, Envelope)> {
        let mut out: Vec<(WorkQueue, Envelope)> =
            self.delayed.lock().await.drain().map(|(_, v)| v).collect();
        for queue in WorkQueue::ALL {
            let mut rx = self.lane(queue).rx.lock().await;
            while let Ok(envelope) = rx.try_recv() {
                out.push((queue, envelope));
            }
        }
        out
    }

    /// Takes the parked messages of `queue` (for the operator CLI and tests).
    pub async fn drain_parked(&self, queue: WorkQueue) -> Vec<(Envelope, String)> {
        let mut rx = self.lane(queue).parked_rx.lock().await;
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            out.push(item);
        }
        out
    }
}

/// Receives from one in-process queue.
pub struct MemoryConsumer {
    queue: WorkQueue,
    rx: Arc<Mutex<mpsc::Receiver<Envelope>>>,
    requeue: mpsc::Sender<Envelope>,
    parked: mpsc::Sender<(Envelope, String)>,
    delayed: Delayed,
}

impl MemoryConsumer {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let envelope = self.rx.lock().await.recv().await?;
        Some(Delivery {
            envelope: envelope.clone(),
            queue: self.queue,
            redelivered: false,
            settle: Settle::Memory(MemorySettle {
                pending: Some(envelope),
                requeue: self.requeue.clone(),
                parked: self.parked.clone(),
                delayed: self.delayed.clone(),
            }),
        })
    }
}

/// Settles one in-process delivery; dropping it unsettled puts the message back.
#[derive(Debug)]
pub(crate) struct MemorySettle {
    pending: Option<Envelope>,
    requeue: mpsc::Sender<Envelope>,
    parked: mpsc::Sender<(Envelope, String)>,
    delayed: Delayed,
}

impl MemorySettle {
    pub(crate) fn ack(mut self) {
        self.pending = None;
    }

    /// Holds `next` for `delay`, where [`MemoryQueue::drain_all`] can still find it, then puts it
    /// back on its queue.
    pub(crate) async fn retry(mut self, queue: WorkQueue, next: Envelope, delay: Duration) {
        self.pending = None;
        schedule(&self.delayed, self.requeue.clone(), queue, next, delay).await;
    }

    pub(crate) fn park(mut self, _queue: WorkQueue, envelope: Envelope, reason: &str) {
        self.pending = None;
        if self
            .parked
            .try_send((envelope, reason.to_string()))
            .is_err()
        {
            tracing::error!(reason, "in-process parking queue is full; message dropped");
        }
    }
}

/// Holds `envelope` for `delay`, where [`MemoryQueue::drain_all`] can still find it, then sends
/// it to `requeue`.
async fn schedule(
    delayed: &Delayed,
    requeue: mpsc::Sender<Envelope>,
    queue: WorkQueue,
    envelope: Envelope,
    delay: Duration,
) {
    let id = envelope.id;
    delayed.lock().await.insert(id, (queue, envelope));
    let delayed = delayed.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // Gone if drained at shutdown meanwhile.
        let due = delayed.lock().await.remove(&id);
        if let Some((_, envelope)) = due {
            let _ = requeue.send(envelope).await;
        }
    });
}

impl Drop for MemorySettle {
    fn drop(&mut self) {
        if let Some(envelope) = self.pending.take() {
            let requeue = self.requeue.clone();
            if let Err(mpsc::error::TrySendError::Full(envelope)) = requeue.try_send(envelope)
                && let Ok(handle) = tokio::runtime::Handle::try_current()
            {
                handle.spawn(async move {
                    let _ = requeue.send(envelope).await;
                });
            }
        }
    }
}
