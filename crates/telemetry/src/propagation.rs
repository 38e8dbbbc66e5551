//! Carrying a trace across the queue: the publisher writes its span's W3C trace context
//! (`traceparent`, `tracestate`) into the message; the consumer makes its span a child of it.

use std::collections::HashMap;

use opentelemetry::global;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current span's trace context, as message headers.
pub fn inject_current() -> HashMap<String, String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier
}

/// Makes `span` a child of the trace context found in `carrier` (no-op when there is none).
pub fn set_parent(span: &tracing::Span, carrier: &HashMap<String, String>) {
    if carrier.is_empty() {
        return;
    }
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    let _ = span.set_parent(parent);
}
