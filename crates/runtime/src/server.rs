//! Serving HTTP with the process's telemetry and a graceful stop.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use axum::{Router, ServiceExt};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::Context;

/// Binds `addr`, naming it in the error (a port in use is the usual cause).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves `app` plus `/health/*` and `/metrics` on `listener` until shutdown; requests in flight
/// then get until the deadline to finish.
pub async fn serve(ctx: &Context, listener: TcpListener, app: Router) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let router = app
        .merge(stampede_telemetry::http::ops_router(
            ctx.metrics.clone(),
            ctx.health.clone(),
        ))
        .fallback(stampede_telemetry::http::not_found)
        // A known path with another method is as unknown to Rails' router, hence Mastodon: 404
        // with its JSON body, not a bare 405.
        .method_not_allowed_fallback(stampede_telemetry::http::not_found)
        .layer(axum::middleware::from_fn(admitted))
        .layer(axum::middleware::from_fn_with_state(
            ctx.metrics.clone(),
            stampede_telemetry::http::track_requests,
        ));
    // Rails (and so Mastodon) ignores a trailing slash; clients such as Mastodon.py send one.
    let app = NormalizePathLayer::trim_trailing_slash().layer(router);
    tracing::info!(%addr, "listening");
    let shutdown = ctx.shutdown.clone();
    // Small writes (API answers, streaming frames) go out at once instead of waiting for the
    // previous segment's acknowledgement (Nagle), which could add up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .with_context(|| format!("serving on {addr}"))
}

/// Serves only `/health/*` and `/metrics`, for worker processes.
pub async fn serve_ops(ctx: &Context, listener: TcpListener) -> anyhow::Result<()> {
    serve(ctx, listener, Router::new()).await
}

/// Each request is admitted to the database pools once: only its first acquisition may be
/// refused (ADR 0016).
async fn admitted(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    stampede_db::admitted(next.run(request)).await
}
