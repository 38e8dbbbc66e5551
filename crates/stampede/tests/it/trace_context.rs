//! A trace crosses the queue: the consumer's span is a child of the publisher's.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use stampede_queue::memory::MemoryQueue;
use stampede_queue::{Envelope, Handler, JobError, Queue, WorkQueue, Worker};
use stampede_telemetry::Metrics;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt as _;

struct Done(mpsc::UnboundedSender<()>);

impl Handler for Done {
    fn handle<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            tracing::info_span!("work").in_scope(|| ());
            let _ = self.0.send(());
            Ok(())
        }
        .boxed()
    }
}

#[test]
fn the_consumer_span_is_a_child_of_the_publisher_span() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // Thread-local, and the runtime below runs every task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let queue = Queue::Memory(MemoryQueue::new());
        let envelope = tracing::info_span!("publish")
            .in_scope(|| Envelope::new("traced", serde_json::json!({})));
        assert!(
            envelope.trace.contains_key("traceparent"),
            "{:?}",
            envelope.trace
        );
        queue
            .publish(WorkQueue::Distribute, &envelope)
            .await
            .unwrap();

        let (tx, mut rx) = mpsc::unbounded_channel();
        let worker = Worker::new(queue, WorkQueue::Distribute, 1, Metrics::new())
            .handle("traced", Arc::new(Done(tx)));
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        stop.cancel();
        running.await.unwrap();
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:?}"))
    };
    let publish = find("publish");
    let job = find("job");
    assert_eq!(job.span_context.trace_id(), publish.span_context.trace_id());
    assert_eq!(job.parent_span_id, publish.span_context.span_id());
    assert_eq!(find("work").parent_span_id, job.span_context.span_id());
}
