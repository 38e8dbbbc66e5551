//! Work between Stampede's services.
//!
//! ```text
//!   web / delivery                    RabbitMQ (or the in-process queue)          workers
//!  ┌──────────────┐  one tx  ┌────────┐  relay  ┌──────────────────┐  consume  ┌──────────┐
//!  │ change + row ├─────────►│ outbox ├────────►│ <prefix>.<queue> ├──────────►│ handler  │
//!  └──────────────┘          └────────┘ confirm └──────────────────┘  ack/     └────┬─────┘
//!                                        delete        ▲    dead-letter     retry   │ fail
//!                              ┌───────────────────────┘    after TTL  ┌────────────┘
//!                              │  <prefix>.<queue>.retry.<tier>  ◄─────┘  (attempts left)
//!                              └  <prefix>.<queue>.parked        ◄──────── (attempts spent)
//! ```
//!
//! - [`Envelope`] is the versioned message format: kind, id, attempt, trace context, payload.
//! - [`Queue`] fronts RabbitMQ ([`amqp`]) and the in-process queue ([`memory`]) used by `all`
//!   when AMQP_URL is unset.
//! - [`message`] types each queue's messages: one enum per queue, written and read in one place.
//! - [`outbox`] writes a message in the caller's PostgreSQL transaction and relays it.
//! - [`worker`] runs a consumer: bounded concurrency, manual acks after the work is done,
//!   retries with backoff, parking, and a graceful stop.
//! - [`dedupe`] makes handlers idempotent under at-least-once delivery.

pub mod amqp;
pub mod dedupe;
pub mod envelope;
pub mod memory;
pub mod message;
pub mod outbox;
pub mod retry;
pub mod topology;
pub mod worker;

use std::time::Duration;

pub use envelope::Envelope;
pub use message::{Consume, Message};
pub use topology::WorkQueue;
pub use worker::{Handler, JobError, Worker};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached right now; the caller may try again.
    #[error("the message broker is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (negative confirm or unroutable).
    #[error("the message broker refused the message: {0}")]
    Rejected(String),
    /// The message could not be encoded or decoded.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// A work queue backend: RabbitMQ in production, in-process for `all` without AMQP_URL.
#[derive(Clone, Debug)]
pub enum Queue {
    Amqp(amqp::AmqpQueue),
    Memory(memory::MemoryQueue),
}

impl Queue {
    /// Publishes `envelope` to `queue` and returns once the broker has confirmed it.
    pub async fn publish(&self, queue: WorkQueue, envelope: &Envelope) -> Result<(), QueueError> {
        match self {
            Queue::Amqp(q) => q.publish(queue, envelope).await,
            Queue::Memory(q) => q.publish(queue, envelope).await,
        }
    }

    /// Publishes `envelope` to `queue` once `delay` has passed (through the retry tiers, so the
    /// wait survives a restart of the broker's consumers).
    pub async fn publish_after(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), QueueError> {
        match self {
            Queue::Amqp(q) => q.publish_after(queue, envelope, delay).await,
            Queue::Memory(q) => {
                q.publish_after(queue, envelope.clone(), delay).await;
                Ok(())
            }
        }
    }

    /// Moves `envelope` to `queue`'s parking queue, for an operator to inspect or replay.
    pub async fn park(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
        reason: &str,
    ) -> Result<(), QueueError> {
        match self {
            Queue::Amqp(q) => q.park(queue, envelope, reason).await,
            Queue::Memory(q) => q.park(queue, envelope.clone(), reason),
        }
    }

    /// Starts consuming `queue`; at most `prefetch` messages are unacknowledged at once.
    pub async fn consume(&self, queue: WorkQueue, prefetch: u16) -> Result<Consumer, QueueError> {
        match self {
            Queue::Amqp(q) => q
                .consume(queue, prefetch)
                .await
                .map(|c| Consumer::Amqp(Box::new(c))),
            Queue::Memory(q) => Ok(Consumer::Memory(q.consume(queue))),
        }
    }

    /// Checks that the broker answers (for readiness).
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Queue::Amqp(q) => q.check().await,
            Queue::Memory(_) => Ok(()),
        }
    }

    /// The broker node this process talks to (`host:port`), or `in-process`.
    pub fn node(&self) -> &'static str {
        match self {
            Queue::Amqp(q) => q.node(),
            Queue::Memory(_) => "in-process",
        }
    }

    /// Messages ready in `queue`, when the backend can tell.
    pub async fn depth(&self, queue: WorkQueue) -> Option<u32> {
        match self {
            Queue::Amqp(q) => q.depth(queue).await.ok(),
            Queue::Memory(q) => Some(q.depth(queue)),
        }
    }

    /// Messages parked in `queue`'s parking queue, when the backend can tell.
    pub async fn parked(&self, queue: WorkQueue) -> Option<u32> {
        match self {
            Queue::Amqp(q) => q.parked_depth(queue).await.ok(),
            Queue::Memory(q) => Some(q.parked_len(queue)),
        }
    }
}

/// A stream of deliveries from one work queue.
pub enum Consumer {
    Amqp(Box<amqp::AmqpConsumer>),
    Memory(memory::MemoryConsumer),
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Consumer")
    }
}

impl Consumer {
    /// The next delivery; `None` when the consumer was cancelled or the connection closed.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match self {
            Consumer::Amqp(c) => c.next().await,
            Consumer::Memory(c) => c.next().await.map(Ok),
        }
    }
}

/// One received message and the means to settle it.
#[derive(Debug)]
pub struct Delivery {
    pub envelope: Envelope,
    pub queue: WorkQueue,
    /// The broker says it delivered this message before (a consumer died holding it).
    pub redelivered: bool,
    settle: Settle,
}

#[derive(Debug)]
enum Settle {
    Amqp(amqp::AmqpSettle),
    Memory(memory::MemorySettle),
}

impl Delivery {
    /// The work is done: remove the message.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.settle {
            Settle::Amqp(s) => s.ack().await,
            Settle::Memory(s) => {
                s.ack();
                Ok(())
            }
        }
    }

    /// Try again after `delay` with the attempt counter raised: the copy goes to a retry tier
    /// (and is confirmed) before the original is acknowledged, so a crash in between duplicates
    /// the message rather than losing it.
    pub async fn retry(self, delay: Duration) -> Result<(), QueueError> {
        let mut next = self.envelope.clone();
        next.attempt += 1;
        match self.settle {
            Settle::Amqp(s) => s.retry(self.queue, &next, delay).await,
            Settle::Memory(s) => {
                s.retry(self.queue, next, delay).await;
                Ok(())
            }
        }
    }

    /// Give up: move the message to the parking queue for an operator to inspect or replay.
    pub async fn park(self, reason: &str) -> Result<(), QueueError> {
        match self.settle {
            Settle::Amqp(s) => s.park(self.queue, &self.envelope, reason).await,
            Settle::Memory(s) => {
                s.park(self.queue, self.envelope, reason);
                Ok(())
            }
        }
    }
}
