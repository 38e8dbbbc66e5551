//! The HTTP side of telemetry: `/health/*` and `/metrics` routes every process serves, and the
//! middleware that times each request by its route template.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::Instrument;

use crate::health::Health;
use crate::metrics::{HttpLabels, Metrics};

#[derive(Clone)]
struct OpsState {
    metrics: Arc<Metrics>,
    health: Health,
}

/// `/health/live`, `/health/ready`, `/health/workers` and `/metrics`.
pub fn ops_router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        // Mastodon's own liveness path.
        .route("/health", get(|| async { "OK" }))
        .route("/health/live", get(|| async { "OK" }))
        .route("/health/ready", get(ready))
        .route("/health/workers", get(workers))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { metrics, health })
}

/// The body Mastodon answers unknown paths with.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": "Record not found" })),
    )
        .into_response()
}

/// The process's background loops and what each last did.
async fn workers(State(state): State<OpsState>) -> Response {
    let list: Vec<serde_json::Value> = state
        .health
        .workers()
        .list()
        .await
        .iter()
        .map(|w| w.to_json())
        .collect();
    axum::Json(json!({ "workers": list })).into_response()
}

async fn ready(State(state): State<OpsState>) -> Response {
    let readiness = state.health.check(&state.metrics).await;
    let deps: serde_json::Map<String, serde_json::Value> = readiness
        .dependencies
        .into_iter()
        .map(|(name, problem)| {
            let value = match problem {
                None => json!("ok"),
                Some(reason) => json!(reason),
            };
            (name, value)
        })
        .collect();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": readiness.ready,
            "dependencies": deps,
            "load": readiness.load.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })),
    )
        .into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Records every request in `stampede_http_request_duration_seconds` and wraps it in a span.
/// Requests that matched no route are counted under the route `unmatched`, so scanners cannot
/// create unbounded series.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!("request", %method, %route, status = tracing::field::Empty);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    metrics
        .http_request_duration
        .get_or_create(&HttpLabels {
            method,
            route,
            status,
        })
        .observe(started.elapsed().as_secs_f64());
    response
}
