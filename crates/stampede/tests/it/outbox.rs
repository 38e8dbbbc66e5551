//! The transactional outbox: committed messages are published (even if the relay was not
//! running at commit), rolled-back ones never are, a batch the broker does not confirm stays,
//! an unreadable row is set aside, and a message delivered twice is applied once.

use std::time::Duration;

use sqlx::PgPool;
use stampede_db::Leases;
use stampede_queue::amqp::AmqpQueue;
use stampede_queue::outbox::{self, Relay};
use stampede_queue::{Envelope, Handler, Queue, WorkQueue};
use stampede_runtime::canary::{self, CanaryHandler};
use stampede_telemetry::Metrics;
use stampede_test_support::{TestDb, amqp_url, unique};

async fn setup() -> (PgPool, Queue, Relay) {
    let db = TestDb::new().await.unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    let queue = Queue::Amqp(AmqpQueue::new(&amqp_url(), &unique("t"), "test"));
    queue.check().await.unwrap();
    let relay = Relay::new(
        Leases::new(crate::saturation::ungated(&pool)),
        queue.clone(),
        Metrics::new(),
    );
    (pool, queue, relay)
}

async fn outbox_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_committed_message_is_published_even_if_the_relay_was_down_at_commit() {
    let (pool, queue, relay) = setup().await;
    // Committed while no relay runs: the relay "died between commit and publish".
    let id = canary::send(&pool, WorkQueue::Distribute, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(outbox_rows(&pool).await, 1);

    // A relay starting later publishes it, and deletes the row only after the confirm.
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(outbox_rows(&pool).await, 0);
    let mut consumer = queue.consume(WorkQueue::Distribute, 1).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(delivery.envelope.kind, canary::KIND);
    assert_eq!(delivery.envelope.payload["canary_id"], id);
    delivery.ack().await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let (pool, queue, relay) = setup().await;
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        WorkQueue::Distribute,
        &Envelope::new("test", serde_json::json!({})),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    assert_eq!(relay.relay_once().await.unwrap(), 0);
    assert_eq!(queue.depth(WorkQueue::Distribute).await, Some(0));
}

#[tokio::test]
async fn a_batch_the_broker_does_not_confirm_stays_in_the_outbox() {
    let (pool, _queue, _relay) = setup().await;
    canary::send(&pool, WorkQueue::Distribute, Duration::ZERO)
        .await
        .unwrap();
    // Nothing listens on port 1 of the loopback: every publish fails.
    let dead = Queue::Amqp(AmqpQueue::new(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        &unique("t"),
        "test",
    ));
    let relay = Relay::new(
        Leases::new(crate::saturation::ungated(&pool)),
        dead,
        Metrics::new(),
    );
    assert!(relay.relay_once().await.is_err());
    assert_eq!(outbox_rows(&pool).await, 1);
}

#[tokio::test]
async fn an_unreadable_row_is_set_aside_and_the_rest_published() {
    let (pool, queue, relay) = setup().await;
    sqlx::query("INSERT INTO outbox (queue, envelope) VALUES ('distribute', '{\"v\": 999}')")
        .execute(&pool)
        .await
        .unwrap();
    canary::send(&pool, WorkQueue::Distribute, Duration::ZERO)
        .await
        .unwrap();

    assert_eq!(relay.relay_once().await.unwrap(), 1);
    let left: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT queue, envelope FROM outbox")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        vec![(
            "unreadable:distribute".to_string(),
            serde_json::json!({"v": 999})
        )]
    );
    assert_eq!(queue.depth(WorkQueue::Distribute).await, Some(1));
    // Set aside, it no longer comes back.
    assert_eq!(relay.relay_once().await.unwrap(), 0);
}

#[tokio::test]
async fn the_relay_wakes_on_commit() {
    let (pool, queue, relay) = setup().await;
    let mut relay = relay;
    relay.poll_interval = Duration::from_secs(3600); // only NOTIFY can wake it
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await; // let it LISTEN

    let mut consumer = queue.consume(WorkQueue::Deliver, 1).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let envelope = Envelope::new("test", serde_json::json!({}));
    outbox::enqueue(&mut tx, WorkQueue::Deliver, &envelope)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("published within 5 s of commit")
        .unwrap()
        .unwrap();
    assert_eq!(delivery.envelope.id, envelope.id);
    delivery.ack().await.unwrap();
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_message_delivered_twice_is_applied_once() {
    let (pool, _queue, relay) = setup().await;
    let id = canary::send(&pool, WorkQueue::Distribute, Duration::ZERO)
        .await
        .unwrap();
    let envelope: Envelope =
        sqlx::query_scalar::<_, sqlx::types::Json<Envelope>>("SELECT envelope FROM outbox")
            .fetch_one(&pool)
            .await
            .unwrap()
            .0;
    drop(relay);

    let handler = CanaryHandler::new(pool.clone());
    handler.handle(&envelope).await.unwrap();
    handler.handle(&envelope).await.unwrap(); // redelivered
    let status = canary::status(&pool, &[id]).await.unwrap();
    assert_eq!(status[0].applied_count, 1);
    assert!(status[0].latency_s.is_some());
}

#[tokio::test]
async fn one_relay_leads_and_another_takes_over_when_it_stops() {
    let (pool, queue, _) = setup().await;
    let relay = |poll: Duration| {
        let mut r = Relay::new(
            Leases::new(crate::saturation::ungated(&pool)),
            queue.clone(),
            Metrics::new(),
        );
        r.poll_interval = poll;
        r
    };
    let first_stop = tokio_util::sync::CancellationToken::new();
    let second_stop = tokio_util::sync::CancellationToken::new();
    let first = tokio::spawn(relay(Duration::from_millis(300)).run(first_stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::spawn(relay(Duration::from_millis(300)).run(second_stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let leaders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaders, 1, "exactly one relay leads");

    let mut consumer = queue.consume(WorkQueue::Deliver, 10).await.unwrap();
    let send = || async {
        let mut tx = pool.begin().await.unwrap();
        let envelope = Envelope::new("test", serde_json::json!({}));
        outbox::enqueue(&mut tx, WorkQueue::Deliver, &envelope)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        envelope.id
    };
    let id = send().await;
    let got = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.envelope.id, id);
    got.ack().await.unwrap();

    // The leader stops; the standby picks up the next commit within its poll.
    first_stop.cancel();
    first.await.unwrap();
    let id = send().await;
    // Delivery is at-least-once: skip any duplicate of the first message.
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let done = got.envelope.id == id;
        got.ack().await.unwrap();
        if done {
            break;
        }
    }
    second_stop.cancel();
    second.await.unwrap();
}
