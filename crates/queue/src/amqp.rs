//! RabbitMQ through lapin.
//!
//! Topology (declared idempotently on every connect, so a fresh broker or a deleted queue heals
//! itself):
//! - work queues `<prefix>.<queue>`: durable, so messages survive a broker restart;
//! - retry tiers `<prefix>.<queue>.retry.<n>`: durable, no consumer, `x-message-ttl` = the tier's
//!   bound and dead-lettering through the default exchange back to the work queue — delayed retry
//!   without the delayed-message plugin Debian's RabbitMQ lacks;
//! - parking `<prefix>.<queue>.parked`: durable, no consumer, read by operators.
//!
//! Every queue is a quorum queue unless AMQP_QUEUE_TYPE=classic: replicated by Raft over the
//! cluster's nodes, it survives losing a minority of them. Retry tiers dead-letter
//! `at-least-once` (a message expiring from a tier is removed only once the work queue has it).
//! A queue that already exists with other arguments (a classic queue from before) is used as it
//! is, with a warning: converting it means draining and deleting it.
//!
//! AMQP_URL may list a cluster's nodes; the connection goes to the first that answers, starting
//! after the node whose connection dropped, so clients spread over survivors after a failure.
//!
//! Every message is persistent and published with `mandatory` on a confirm-mode channel: a
//! publish returns only once the broker has taken responsibility for the message, and an
//! unroutable message is an error instead of a silent drop. Consumers use manual acknowledgement
//! (sent after the work is done) and a prefetch limit, so a worker holds a bounded number of
//! messages and whatever it holds when it dies is redelivered to another.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::topology::{Names, RETRY_TIERS, tier_for};
use crate::{Delivery, Envelope, QueueError, Settle, WorkQueue};

/// A RabbitMQ-backed queue. Connects on first use and reconnects after the connection drops.
#[derive(Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// The nodes of the cluster (one URL for a single broker).
    urls: Vec<String>,
    /// Each node's `host:port`, as readiness names it.
    nodes: Vec<&'static str>,
    /// The node connected to (or to try first).
    current: std::sync::atomic::AtomicUsize,
    /// Declare quorum queues (else classic).
    quorum: bool,
    tls_ca: Option<String>,
    names: Names,
    connection_name: String,
    state: Mutex<Option<Connected>>,
}

#[derive(Clone)]
struct Connected {
    connection: Arc<Connection>,
    /// The confirm-mode channel every publish goes through.
    publisher: Channel,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("names", &self.inner.names)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(error.to_string())
}

impl AmqpQueue {
    /// A queue on the broker at `url` with classic queues (a single development broker), with
    /// every queue name under `prefix`. Nothing connects until first use.
    pub fn new(url: &str, prefix: &str, connection_name: &str) -> Self {
        Self::cluster(&[url.to_string()], prefix, connection_name, None, false)
    }

    /// A queue on the cluster whose nodes `urls` name (one URL: a single broker), declaring
    /// quorum queues when `quorum` (else classic), trusting the PEM certificates in `tls_ca`
    /// (besides the system's roots) for `amqps://` nodes.
    pub fn cluster(
        urls: &[String],
        prefix: &str,
        connection_name: &str,
        tls_ca: Option<&str>,
        quorum: bool,
    ) -> Self {
        let nodes = urls
            .iter()
            .map(|u| {
                let node = url::Url::parse(u)
                    .ok()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.host_str().unwrap_or("?"),
                            u.port_or_known_default().unwrap_or(5672)
                        )
                    })
                    .unwrap_or_else(|| "?".to_string());
                &*Box::leak(node.into_boxed_str())
            })
            .collect();
        AmqpQueue {
            inner: Arc::new(Inner {
                urls: urls.to_vec(),
                nodes,
                current: std::sync::atomic::AtomicUsize::new(0),
                quorum,
                tls_ca: tls_ca.map(str::to_string),
                names: Names::new(prefix),
                connection_name: connection_name.to_string(),
                state: Mutex::new(None),
            }),
        }
    }

    /// The queue names this queue uses.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// The node (`host:port`) connected to, or tried first.
    pub fn node(&self) -> &'static str {
        let at = self
            .inner
            .current
            .load(std::sync::atomic::Ordering::Relaxed);
        self.inner.nodes.get(at).copied().unwrap_or("?")
    }

    async fn connected(&self) -> Result<Connected, QueueError> {
        let mut state = self.inner.state.lock().await;
        if let Some(c) = state.as_ref()
            && c.connection.status().connected()
            && c.publisher.status().connected()
        {
            return Ok(c.clone());
        }
        use std::sync::atomic::Ordering;
        // A connection that dropped: start with the next node.
        let nodes = self.inner.urls.len();
        let mut start = self.inner.current.load(Ordering::Relaxed);
        if state.take().is_some() {
            start = (start + 1) % nodes;
        }
        let mut connection = None;
        let mut last_error = None;
        for step in 0..nodes {
            let at = (start + step) % nodes;
            match Connection::connect_with_config(
                &self.inner.urls[at],
                ConnectionProperties::default()
                    .with_connection_name(self.inner.connection_name.as_str().into()),
                OwnedTLSConfig {
                    identity: None,
                    cert_chain: self.inner.tls_ca.clone(),
                },
                lapin::runtime::default_runtime().map_err(unavailable)?,
            )
            .await
            {
                Ok(c) => {
                    self.inner.current.store(at, Ordering::Relaxed);
                    connection = Some(c);
                    break;
                }
                Err(error) => {
                    if nodes > 1 {
                        tracing::warn!(node = self.inner.nodes[at], %error, "RabbitMQ node unreachable");
                    }
                    last_error = Some(error);
                }
            }
        }
        let Some(connection) = connection else {
            return Err(unavailable(
                last_error.map_or_else(|| "no RabbitMQ node".to_string(), |e| e.to_string()),
            ));
        };
        declare_topology(&connection, &self.inner.names, self.inner.quorum).await?;
        let publisher = connection.create_channel().await.map_err(unavailable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        tracing::info!(
            node = self.node(),
            "connected to RabbitMQ; topology declared"
        );
        let connected = Connected {
            connection: Arc::new(connection),
            publisher,
        };
        *state = Some(connected.clone());
        Ok(connected)
    }

    pub(crate) async fn check(&self) -> Result<(), String> {
        self.connected()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn publish(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
    ) -> Result<(), QueueError> {
        let routing_key = self.inner.names.work(queue);
        self.publish_to(&routing_key, envelope, None, None).await
    }

    /// Publishes `envelope` to `queue` after `delay`, through the retry tier that fits it.
    pub(crate) async fn publish_after(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let tier = self.inner.names.retry(queue, tier_for(delay));
        self.publish_to(&tier, envelope, Some(delay), None).await
    }

    /// Moves `envelope` to `queue`'s parking queue with `reason`.
    pub(crate) async fn park(
        &self,
        queue: WorkQueue,
        envelope: &Envelope,
        reason: &str,
    ) -> Result<(), QueueError> {
        let parked = self.inner.names.parked(queue);
        self.publish_to(&parked, envelope, None, Some(reason)).await
    }

    async fn publish_to(
        &self,
        routing_key: &str,
        envelope: &Envelope,
        expiration: Option<Duration>,
        park_reason: Option<&str>,
    ) -> Result<(), QueueError> {
        let connected = self.connected().await?;
        let mut headers = FieldTable::default();
        for (key, value) in &envelope.trace {
            headers.insert(
                key.as_str().into(),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        headers.insert(
            "x-attempt".into(),
            AMQPValue::LongLongInt(i64::from(envelope.attempt)),
        );
        if let Some(reason) = park_reason {
            headers.insert(
                "x-park-reason".into(),
                AMQPValue::LongString(LongString::from(reason)),
            );
        }
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2) // persistent
            .with_content_type("application/json".into())
            .with_message_id(envelope.id.to_string().as_str().into())
            .with_type(envelope.kind.as_str().into())
            .with_headers(headers);
        if let Some(delay) = expiration {
            properties = properties.with_expiration(delay.as_millis().to_string().as_str().into());
        }
        let confirm = connected
            .publisher
            .basic_publish(
                "".into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &envelope.to_bytes(),
                properties,
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(QueueError::Rejected(format!(
                "no queue named {routing_key} to route to"
            ))),
            Confirmation::Nack(_) => Err(QueueError::Rejected(format!(
                "the broker did not accept the message for {routing_key}"
            ))),
        }
    }

    pub(crate) async fn consume(
        &self,
        queue: WorkQueue,
        prefetch: u16,
    ) -> Result<AmqpConsumer, QueueError> {
        let connected = self.connected().await?;
        let channel = connected
            .connection
            .create_channel()
            .await
            .map_err(unavailable)?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                self.inner.names.work(queue).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(AmqpConsumer {
            queue,
            consumer,
            _channel: channel,
            parent: self.clone(),
        })
    }

    async fn message_count(&self, name: String) -> Result<u32, QueueError> {
        let connected = self.connected().await?;
        // A passive declare of a missing queue closes its channel, so use a throwaway one.
        let channel = connected
            .connection
            .create_channel()
            .await
            .map_err(unavailable)?;
        let declared = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable);
        let _ = channel.close(200, "done".into()).await;
        Ok(declared?.message_count())
    }

    pub(crate) async fn depth(&self, queue: WorkQueue) -> Result<u32, QueueError> {
        self.message_count(self.inner.names.work(queue)).await
    }

    pub(crate) async fn parked_depth(&self, queue: WorkQueue) -> Result<u32, QueueError> {
        self.message_count(self.inner.names.parked(queue)).await
    }
}

/// Every queue of the topology with its arguments.
fn topology(names: &Names, quorum: bool) -> Vec<(String, FieldTable)> {
    let base = || {
        let mut args = FieldTable::default();
        if quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        args
    };
    let mut queues = Vec::new();
    for queue in WorkQueue::ALL {
        let work = names.work(queue);
        queues.push((work.clone(), base()));
        for (tier, bound) in RETRY_TIERS.iter().enumerate() {
            let mut args = base();
            if quorum {
                // Dead-lettered at least once: the expired message leaves the tier only after
                // the work queue confirmed it (needs reject-publish overflow).
                args.insert(
                    "x-dead-letter-strategy".into(),
                    AMQPValue::LongString(LongString::from("at-least-once")),
                );
                args.insert(
                    "x-overflow".into(),
                    AMQPValue::LongString(LongString::from("reject-publish")),
                );
            }
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongInt(bound.as_millis() as i32),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from("")),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(work.as_str())),
            );
            queues.push((names.retry(queue, tier), args));
        }
        queues.push((names.parked(queue), base()));
    }
    queues
}

async fn declare_topology(
    connection: &Connection,
    names: &Names,
    quorum: bool,
) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut channel = connection.create_channel().await.map_err(unavailable)?;
    for (name, args) in topology(names, quorum) {
        match channel
            .queue_declare(name.as_str().into(), durable, args)
            .await
        {
            Ok(_) => {}
            // The queue exists with other arguments (a classic queue declared before quorum
            // queues were the default): the broker closed the channel; the queue still works.
            Err(error) if error.to_string().contains("PRECONDITION_FAILED") => {
                tracing::warn!(queue = %name, %error,
                    "queue exists with other arguments; used as it is (drain and delete it to redeclare it)");
                channel = connection.create_channel().await.map_err(unavailable)?;
            }
            Err(error) => return Err(unavailable(error)),
        }
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Receives from one RabbitMQ work queue.
pub struct AmqpConsumer {
    queue: WorkQueue,
    consumer: lapin::Consumer,
    // Closing the channel hands every unacknowledged message back to the broker.
    _channel: Channel,
    parent: AmqpQueue,
}

impl AmqpConsumer {
    /// Moves bytes that are not an envelope to the parking queue, waiting for the confirm.
    async fn park_raw(&self, body: &[u8]) -> Result<(), QueueError> {
        let parked = self.parent.inner.names.parked(self.queue);
        let connected = self.parent.connected().await?;
        let confirm = connected
            .publisher
            .basic_publish(
                "".into(),
                parked.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        match confirm {
            Confirmation::Nack(_) => Err(QueueError::Rejected(format!("{parked} refused"))),
            _ => Ok(()),
        }
    }

    pub(crate) async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        loop {
            let delivery = match self.consumer.next().await? {
                Ok(d) => d,
                Err(e) => return Some(Err(unavailable(e))),
            };
            let mut envelope = match Envelope::from_bytes(&delivery.data) {
                Ok(envelope) => envelope,
                Err(error) => {
                    // Not ours to interpret: keep the bytes for an operator, take it off the queue.
                    tracing::error!(queue = %self.queue, %error, "malformed message parked");
                    if self.park_raw(&delivery.data).await.is_ok() {
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                    }
                    // Otherwise it stays unacknowledged and comes back after a reconnect.
                    continue;
                }
            };
            // The headers carry the trace context too; they win, as tools may rewrite them.
            if let Some(headers) = delivery.properties.headers().as_ref() {
                for key in ["traceparent", "tracestate"] {
                    if let Some(value) = headers.inner().get(key).and_then(|v| v.as_long_string()) {
                        envelope.trace.insert(key.to_string(), value.to_string());
                    }
                }
            }
            return Some(Ok(Delivery {
                envelope,
                queue: self.queue,
                redelivered: delivery.redelivered,
                settle: Settle::Amqp(AmqpSettle {
                    acker: delivery.acker,
                    parent: self.parent.clone(),
                }),
            }));
        }
    }
}

/// Settles one RabbitMQ delivery. Dropping it unsettled leaves the message unacknowledged; the
/// broker redelivers it when the channel closes.
pub(crate) struct AmqpSettle {
    acker: lapin::Acker,
    parent: AmqpQueue,
}

impl std::fmt::Debug for AmqpSettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AmqpSettle")
    }
}

impl AmqpSettle {
    pub(crate) async fn ack(self) -> Result<(), QueueError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    pub(crate) async fn retry(
        self,
        queue: WorkQueue,
        next: &Envelope,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.parent.publish_after(queue, next, delay).await?;
        self.ack().await
    }

    pub(crate) async fn park(
        self,
        queue: WorkQueue,
        envelope: &Envelope,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.parent.park(queue, envelope, reason).await?;
        self.ack().await
    }
}
