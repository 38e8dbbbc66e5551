//! The same queue behaviour, against RabbitMQ and against the in-process queue.

use std::time::Duration;

use stampede_queue::amqp::AmqpQueue;
use stampede_queue::memory::MemoryQueue;
use stampede_queue::{Envelope, Queue, WorkQueue};
use stampede_test_support::{amqp_url, unique};

async fn next(consumer: &mut stampede_queue::Consumer) -> stampede_queue::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message within 10 s")
        .expect("consumer open")
        .expect("delivery")
}

async fn publish_consume_retry_park(queue: Queue) {
    let mut consumer = queue.consume(WorkQueue::Fetch, 4).await.unwrap();

    let first = Envelope::new("test", serde_json::json!({ "n": 1 }));
    queue.publish(WorkQueue::Fetch, &first).await.unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.envelope, first);
    assert_eq!(delivery.queue, WorkQueue::Fetch);
    delivery.ack().await.unwrap();

    // A retry comes back after its delay with the attempt counter raised.
    let second = Envelope::new("test", serde_json::json!({ "n": 2 }));
    queue.publish(WorkQueue::Fetch, &second).await.unwrap();
    let delivery = next(&mut consumer).await;
    delivery.retry(Duration::from_millis(300)).await.unwrap();
    let retried = next(&mut consumer).await;
    assert_eq!(retried.envelope.id, second.id);
    assert_eq!(retried.envelope.attempt, 1);

    // Parking takes it off the work queue and keeps it for an operator.
    retried.park("gave up").await.unwrap();
    let mut parked = 0;
    for _ in 0..50 {
        parked = queue.parked(WorkQueue::Fetch).await.unwrap();
        if parked == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(parked, 1);
    assert_eq!(queue.depth(WorkQueue::Fetch).await, Some(0));
}

#[tokio::test]
async fn rabbitmq_publishes_consumes_retries_and_parks() {
    let queue = Queue::Amqp(AmqpQueue::new(&amqp_url(), &unique("t"), "test"));
    queue.check().await.unwrap();
    publish_consume_retry_park(queue).await;
}

#[tokio::test]
async fn in_process_queue_publishes_consumes_retries_and_parks() {
    publish_consume_retry_park(Queue::Memory(MemoryQueue::new())).await;
}

#[tokio::test]
async fn an_unsettled_delivery_is_redelivered() {
    for queue in [
        Queue::Amqp(AmqpQueue::new(&amqp_url(), &unique("t"), "test")),
        Queue::Memory(MemoryQueue::new()),
    ] {
        let envelope = Envelope::new("test", serde_json::json!({}));
        queue.publish(WorkQueue::Mail, &envelope).await.unwrap();
        {
            let mut consumer = queue.consume(WorkQueue::Mail, 1).await.unwrap();
            let delivery = next(&mut consumer).await;
            assert!(!delivery.redelivered);
            drop(delivery); // the worker died holding it
        }
        let mut consumer = queue.consume(WorkQueue::Mail, 1).await.unwrap();
        let again = next(&mut consumer).await;
        assert_eq!(again.envelope.id, envelope.id);
        again.ack().await.unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let queue = Queue::Amqp(AmqpQueue::new(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "t",
        "test",
    ));
    let started = std::time::Instant::now();
    assert!(queue.check().await.is_err());
    assert!(
        queue
            .publish(
                WorkQueue::Deliver,
                &Envelope::new("test", serde_json::json!({}))
            )
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_in_process_queue_hands_back_what_it_still_holds() {
    let queue = MemoryQueue::new();
    let a = Envelope::new("test", serde_json::json!({ "n": 1 }));
    let b = Envelope::new("test", serde_json::json!({ "n": 2 }));
    let q = Queue::Memory(queue.clone());
    q.publish(WorkQueue::Deliver, &a).await.unwrap();
    q.publish(WorkQueue::Media, &b).await.unwrap();
    // And one waiting out a retry delay.
    let c = Envelope::new("test", serde_json::json!({ "n": 3 }));
    q.publish(WorkQueue::Mail, &c).await.unwrap();
    let mut consumer = q.consume(WorkQueue::Mail, 1).await.unwrap();
    let delivery = consumer.next().await.unwrap().unwrap();
    delivery.retry(Duration::from_secs(3600)).await.unwrap();
    let mut retried = c.clone();
    retried.attempt = 1;

    let mut drained = queue.drain_all().await;
    drained.sort_by_key(|(_, e)| e.payload["n"].as_i64());
    assert_eq!(
        drained,
        vec![
            (WorkQueue::Deliver, a),
            (WorkQueue::Media, b),
            (WorkQueue::Mail, retried)
        ],
        "every waiting message, with its queue"
    );
    assert_eq!(q.depth(WorkQueue::Deliver).await, Some(0));
}

struct Panics;

impl stampede_queue::Handler for Panics {
    fn handle<'a>(
        &'a self,
        _: &'a Envelope,
    ) -> futures_util::future::BoxFuture<'a, Result<(), stampede_queue::JobError>> {
        Box::pin(async { panic!("a bug in a handler") })
    }
}

#[tokio::test]
async fn a_panicking_handler_parks_its_message_and_the_worker_carries_on() {
    let memory = MemoryQueue::new();
    let queue = Queue::Memory(memory.clone());
    let worker = stampede_queue::Worker::new(
        queue.clone(),
        WorkQueue::Ingress,
        1,
        stampede_telemetry::Metrics::new(),
    )
    .handle("boom", std::sync::Arc::new(Panics));
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
    for _ in 0..2 {
        queue
            .publish(
                WorkQueue::Ingress,
                &Envelope::new("boom", serde_json::json!({})),
            )
            .await
            .unwrap();
    }
    let mut parked = Vec::new();
    for _ in 0..100 {
        parked.extend(memory.drain_parked(WorkQueue::Ingress).await);
        if parked.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        parked.len(),
        2,
        "both messages parked, the second after the first panicked"
    );
    assert!(parked[0].1.contains("panicked"), "{}", parked[0].1);
    stop.cancel();
    running.await.unwrap();
}
