//! The web service: Mastodon's REST API, OAuth 2, the HTML pages, discovery (WebFinger,
//! NodeInfo) and the ActivityPub documents. Stateless: every replica serves any request. It also runs an outbox relay, since it
//! writes most outbox rows (relays coordinate through `SKIP LOCKED`).
//!
//! Handlers are laid out like the URLs they serve (`api/v1/accounts.rs` serves
//! `/api/v1/accounts/…`); each is thin — extract, call the domain code, map to the entity.

pub mod accounts;
pub mod activitypub;
pub mod admin;
pub mod api;
pub mod auth;
pub mod error;
pub mod inbox;
pub mod mail;
pub mod oauth;
pub mod pages;
pub mod paging;
/// Password hashing lives in the domain crate (the CLI and the load generator use it too).
pub use stampede_social::passwords;
pub mod payload;
pub mod ratelimit;
pub mod registration;
pub mod scopes;
pub mod sign_in;
pub mod statuses;
/// Secrets and their digests live in the domain crate.
pub use stampede_social::tokens;
pub mod well_known;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use stampede_core::id::IdGenerator;
use stampede_queue::outbox::Relay;
use stampede_runtime::{Context, Dependency, server};
use tokio::net::TcpListener;

/// The port `stampede web` listens on unless PORT says otherwise.
pub const DEFAULT_PORT: u16 = 3000;

/// What every handler can reach: one allocation shared by every request, so that the clone each
/// extractor and middleware takes is a reference count, not a copy of every field (the field
/// copies and drops were 3 % of the machine on a timeline benchmark).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub ctx: Context,
    pub passwords: Arc<passwords::PasswordPool>,
    pub ids: Arc<IdGenerator>,
    pub templates: Arc<pages::Templates>,
    pub big_accounts: Arc<stampede_social::feeds::BigAccounts>,
    pub render: stampede_social::render::Renderer,
    pub documents: stampede_social::activitypub::Documents,
    pub resolver: stampede_social::remote::Resolver,
    pub uploads: Arc<api::v1::media::Uploads>,
    pub push_keys: stampede_social::push::PushKeys,
    /// Token look-ups kept in this process, invalidated by PostgreSQL (ADR 0030).
    pub grants: Arc<stampede_social::grant_cache::GrantCache>,
    /// The instance statistics and when they were counted.
    pub instance_counts:
        Arc<parking_lot::Mutex<Option<(std::time::Instant, api::v1::instance::Counts)>>>,
}

impl AppState {
    pub fn new(ctx: Context) -> Self {
        let registrations = &ctx.config.registrations;
        let render = stampede_social::render::Renderer::for_config(ctx.db.clone(), &ctx.config)
            .with_reads(ctx.reads.clone())
            .with_metrics(&ctx.metrics);
        AppState(Arc::new(Shared {
            passwords: Arc::new(passwords::PasswordPool::new(
                registrations.hash_threads,
                registrations.max_hash_wait,
                ctx.metrics.clone(),
            )),
            ids: Arc::new(IdGenerator::new()),
            grants: Arc::new(stampede_social::grant_cache::GrantCache::new(
                ctx.config.web.token_cache,
            )),
            templates: Arc::new(pages::Templates::new()),
            big_accounts: Arc::new(stampede_social::feeds::BigAccounts::new(
                ctx.config.statuses.fanout_threshold,
            )),
            documents: stampede_social::activitypub::Documents::new(
                render.clone(),
                ctx.config.local_domain.clone(),
            ),
            render,
            uploads: api::v1::media::Uploads::new(&ctx.config),
            push_keys: stampede_social::push::PushKeys::from_config(&ctx.config),
            instance_counts: Arc::default(),
            resolver: stampede_social::remote::Resolver::from_config(ctx.db.clone(), &ctx.config)
                // Building the client fails only if TLS cannot be set up at all.
                .expect("the outbound HTTP client builds"),
            ctx,
        }))
    }

    /// `https://WEB_DOMAIN` (or http:// when LOCAL_HTTPS=false).
    pub fn base_url(&self) -> String {
        stampede_social::post::base_url(&self.ctx.config)
    }

    /// Tells `account`'s streams that its filters changed: the streaming service reloads them,
    /// and clients get Mastodon's `filters_changed` event.
    pub async fn filters_changed(&self, account: i64) {
        stampede_social::stream::filters_changed(&self.ctx.cache, account).await;
    }

    /// The server's VAPID public key (base64url), as Web Push clients are given it.
    pub async fn vapid_key(&self) -> Result<String, error::ApiError> {
        self.push_keys
            .public_key(&self.ctx.db)
            .await
            .map_err(error::ApiError::internal)
    }
}

/// The application routes (without `/health/*` and `/metrics`, which every process serves, and
/// the JSON 404 every process answers unknown paths with).
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .merge(api::router(&state))
        .merge(oauth::router())
        .merge(pages::router())
        .merge(well_known::router())
        .merge(activitypub::router(&state))
        .merge(inbox::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_your_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_blocked_addresses,
        ))
        .with_state(state);
    catch_panics(router)
}

/// `router` with its handlers' panics caught: a handler that panics answers 500 with Mastodon's
/// error body (and is logged), instead of the connection being dropped; whatever transaction it
/// held is rolled back as it unwinds.
pub fn catch_panics(router: Router) -> Router {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// The answer to a handler's panic (see [`catch_panics`]).
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    axum::response::IntoResponse::into_response(error::ApiError::internal(anyhow::anyhow!(
        "handler panicked: {message}"
    )))
}

/// With a read replica: a request that writes runs every read on the primary (what it returns
/// shows its own change), and marks its bearer token in Redis for the lag bound; the token's
/// reads stay on the primary until the mark expires, by when the replica holds the write
/// (reads use the replica only while it trails by less). Keyed by the token's hash, so every web
/// replica sees the mark. Without a replica: nothing.
async fn read_your_writes(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use sha2::Digest;
    use stampede_db::Reads;
    let Some(max_lag) = state.ctx.reads.max_lag() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let mark = auth::bearer(&parts).map(|token| {
        let digest = sha2::Sha256::digest(token.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("wrote:{hex}")
    });
    let request = axum::extract::Request::from_parts(parts, body);
    let writes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if writes {
        let response = Reads::on_primary(next.run(request)).await;
        if let Some(mark) = mark
            && !response.status().is_client_error()
            && let Err(error) = state.ctx.cache.set_ex(&mark, "1", max_lag).await
        {
            tracing::warn!(%error, "could not mark a client's write; its next reads may lag");
        }
        return response;
    }
    let fresh = match &mark {
        Some(mark) => state.ctx.cache.get(mark).await.ok().flatten().is_some(),
        None => false,
    };
    if fresh {
        Reads::on_primary(next.run(request)).await
    } else {
        next.run(request).await
    }
}

/// An IP block with `no_access` refuses every request from its range with 403 (the client's
/// address as [`auth::ClientIp`] finds it, so behind a trusted proxy the forwarded one). The
/// blocks are in memory; with none, a request costs one look at an empty list.
async fn refuse_blocked_addresses(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let policy = match state.resolver.policy().get().await {
        Ok(policy) => policy,
        Err(error) => {
            tracing::warn!(%error, "could not read the IP blocks");
            return next.run(request).await;
        }
    };
    if !policy.has_ip_blocks() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(auth::ClientIp(ip)) = auth::ClientIp::from_request_parts(&mut parts, &state).await
        && policy.ip_block(ip) == Some(stampede_social::domain_policy::IpSeverity::NoAccess)
    {
        return error::ApiError::forbidden("Forbidden").into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// Serves on `listener` and relays the outbox until shutdown.
pub async fn serve(ctx: Context, listener: TcpListener) -> anyhow::Result<()> {
    serve_with(ctx, listener, Router::new()).await
}

/// [`serve`], with `extra` routes on the same listener (`stampede all` adds the streaming API,
/// so that one port serves everything).
pub async fn serve_with(ctx: Context, listener: TcpListener, extra: Router) -> anyhow::Result<()> {
    ctx.require(Dependency::Postgres).await;
    ctx.require(Dependency::Redis).await;
    ctx.require(Dependency::Amqp).await;
    let relay = tokio::spawn(stampede_runtime::workers::track(
        ctx.clone(),
        "web/outbox-relay",
        Relay::new(ctx.leases.clone(), ctx.queue.clone(), ctx.metrics.clone())
            .gathering(ctx.config.database.outbox_gather)
            .run(ctx.shutdown.clone()),
    ));
    let state = AppState::new(ctx.clone());
    let grants = tokio::spawn(stampede_runtime::workers::track(
        ctx.clone(),
        "web/token-cache",
        stampede_social::grant_cache::listen(
            stampede_social::grant_cache::listener_pool(ctx.db.pool()),
            state.grants.clone(),
            ctx.shutdown.clone(),
        ),
    ));
    let served = server::serve(&ctx, listener, router(state).merge(extra)).await;
    ctx.shutdown.cancel();
    let _ = relay.await;
    let _ = grants.await;
    served
}

/// `stampede web`: binds `addr`, then [`serve`]s.
pub async fn run(ctx: Context, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = server::bind(addr).await?;
    serve(ctx, listener).await
}
