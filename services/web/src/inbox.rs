//! `POST /inbox` and `POST /users/:username/inbox`: activities from other servers.
//!
//! The body is bounded (1 MiB), its `Digest` checked, and the HTTP signature verified against
//! the signer's key (fetched and stored on first sight, fetched again once when it no longer
//! verifies — keys rotate). Then the activity is written to the outbox for the `ingress` queue
//! and the peer gets 202: durably queued, applied by `delivery`. An unsigned or forged request
//! gets 401, a malformed one 400, and nothing is written.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use chrono::Utc;
use serde_json::Value;
use stampede_activitypub::rfc9421::{MessageSignature, check_content_digest};
use stampede_activitypub::signature::{self, Signature, SignatureError};
use stampede_queue::outbox;
use stampede_social::inbox::{Ingress, Received};
use stampede_social::remote::RemoteAccount;

use crate::AppState;
use crate::error::ApiError;

/// The largest activity accepted.
pub const MAX_ACTIVITY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbox", post(inbox))
        .route("/users/{username}/inbox", post(inbox))
        .layer(DefaultBodyLimit::max(MAX_ACTIVITY))
}

fn refused(state: &AppState, error: impl std::fmt::Display) -> ApiError {
    state.ctx.metrics.inbox_activity("", "refused");
    tracing::debug!(%error, "inbound activity refused");
    ApiError::unauthorized(&error.to_string())
}

/// The remote account whose key signed this request (draft-cavage, Mastodon's strength and time
/// rules); its key is fetched and stored on first sight and fetched again once when it no longer
/// verifies (keys rotate). 401 otherwise.
pub async fn verified_signer(
    state: &AppState,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<RemoteAccount, ApiError> {
    let now = Utc::now();
    // RFC 9421 when the request carries it (Fedify tries it first), draft-cavage otherwise.
    let modern = MessageSignature::from_headers(headers).map_err(|e| refused(state, e))?;
    let cavage = match &modern {
        Some(_) => None,
        None => {
            let sig = Signature::from_headers(headers).map_err(|e| refused(state, e))?;
            sig.check_strength(method).map_err(|e| refused(state, e))?;
            sig.check_time(headers, now)
                .map_err(|e| refused(state, e))?;
            Some(sig)
        }
    };
    let key_id = match (&modern, &cavage) {
        (Some(m), _) => m.key_id.clone(),
        (_, Some(c)) => c.key_id.clone(),
        _ => String::new(),
    };
    let authority = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let scheme = if state.ctx.config.web.https {
        "https"
    } else {
        "http"
    };
    let target_uri = format!("{scheme}://{authority}{path_and_query}");
    let key_owner = key_id.split('#').next().unwrap_or_default().to_string();
    let fetch = |refresh: bool| {
        let key_owner = key_owner.clone();
        async move {
            state
                .resolver
                .by_uri(&key_owner, refresh)
                .await
                .map_err(|e| refused(state, format!("the signing key cannot be fetched: {e}")))
        }
    };
    let verify = |signer: &RemoteAccount| match (signer.public_key.as_deref(), &modern, &cavage) {
        (Some(pem), Some(m), _) => m.verify(method, &target_uri, &authority, headers, pem, now),
        (Some(pem), _, Some(c)) => c.verify(method, path_and_query, headers, pem, now),
        _ => Err(SignatureError::Invalid),
    };
    let signer = fetch(false).await?;
    if verify(&signer).is_ok() {
        return Ok(signer);
    }
    let signer = fetch(true).await?;
    verify(&signer).map_err(|e| refused(state, e))?;
    Ok(signer)
}

/// 403 for a request signed by a server this one exchanges nothing with (a suspended domain,
/// or one not allowed in limited federation mode), before its key is fetched: a blocked server
/// costs no outbound request.
async fn refuse_blocked_domain(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let key_id = MessageSignature::from_headers(headers)
        .ok()
        .flatten()
        .map(|m| m.key_id)
        .or_else(|| Signature::from_headers(headers).ok().map(|s| s.key_id));
    let Some(domain) = key_id
        .and_then(|k| url::Url::parse(&k).ok())
        .and_then(|u| stampede_social::remote::authority(&u))
    else {
        return Ok(());
    };
    if state.resolver.policy().get().await?.refuses(&domain) {
        state.ctx.metrics.inbox_activity("", "blocked");
        return Err(ApiError::forbidden("This server is blocked"));
    }
    Ok(())
}

async fn inbox(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let activity: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "The body is not a JSON object"))?;
    if headers.contains_key("signature-input") {
        check_content_digest(&headers, &body).map_err(|e| refused(&state, e))?;
    } else {
        signature::check_digest(&headers, &body).map_err(|e| refused(&state, e))?;
    }
    let path = uri.path_and_query().map_or("/inbox", |p| p.as_str());
    refuse_blocked_domain(&state, &headers).await?;
    let signer = verified_signer(&state, &Method::POST, path, &headers).await?;
    let mut conn = state.ctx.db.acquire().await?;
    outbox::send(
        &mut conn,
        &Ingress::Activity(Received {
            signer: signer.uri,
            activity,
            rfc9421: headers.contains_key("signature-input"),
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}
