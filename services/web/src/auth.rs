//! Who is calling: the bearer token, its scopes, and the user behind it.
//!
//! Tokens are looked up by their SHA-256, through the process's token cache, which PostgreSQL
//! notifications keep current (ADR 0030): revoking one (or suspending its account) takes effect
//! on the next request on the replica that did it, and within about a millisecond on the others.
//! The answers match Mastodon's: 401 for a missing, unknown or revoked token; 403 for a scope the
//! token lacks or a user who may not act yet (unconfirmed e-mail, pending approval, disabled).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use stampede_core::Scopes;

use crate::AppState;
use crate::error::ApiError;

/// A verified bearer token.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token_id: i64,
    pub application_id: Option<i64>,
    pub scopes: Scopes,
    user: Option<TokenUser>,
}

/// The user a token acts for.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub account_id: i64,
    pub user_id: i64,
    pub role: String,
    confirmed: bool,
    approved: bool,
    disabled: bool,
    suspended: bool,
}

pub(crate) fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    })
}

/// Looks up a bearer token; `None` when it does not exist.
pub async fn lookup(state: &AppState, token: &str) -> Result<Option<Auth>, ApiError> {
    let Some(grant) =
        stampede_social::tokens::grant(&state.ctx.leases, Some(&state.grants), token).await?
    else {
        return Ok(None);
    };
    if grant.revoked_at.is_some() {
        return Err(ApiError::unauthorized("The access token was revoked"));
    }
    let scopes = Scopes::parse(&grant.scopes)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored scopes: {e}")))?;
    let user = match (grant.account_id, grant.user_id) {
        (Some(account_id), Some(user_id)) => Some(TokenUser {
            account_id,
            user_id,
            role: grant.role.clone().unwrap_or_default(),
            confirmed: grant.confirmed_at.is_some(),
            approved: grant.approved == Some(true),
            disabled: grant.disabled == Some(true),
            suspended: grant.suspended_at.is_some(),
        }),
        _ => None,
    };
    Ok(Some(Auth {
        token_id: grant.id,
        application_id: grant.application_id,
        scopes,
        user,
    }))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthorized("The access token is invalid"));
        };
        lookup(state, &token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("The access token is invalid"))
    }
}

/// An optional bearer token: public endpoints answer anyone, but a token that is given must be
/// valid (401 otherwise).
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<Auth>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if bearer(parts).is_none() {
            return Ok(Viewer(None));
        }
        Auth::from_request_parts(parts, state)
            .await
            .map(|a| Viewer(Some(a)))
    }
}

impl Viewer {
    /// The signed-in account, after checking that the token (if any) holds one of `scopes`.
    pub fn account(&self, scopes: &[&str]) -> Result<Option<i64>, ApiError> {
        match &self.0 {
            None => Ok(None),
            Some(auth) => {
                auth.require(scopes)?;
                if auth.user.is_none() {
                    return Ok(None); // an app token reads as nobody
                }
                Ok(Some(auth.user()?.account_id))
            }
        }
    }
}

impl Auth {
    /// The acting account: the token must hold one of `scopes` and belong to a user who may act.
    pub fn account(&self, scopes: &[&str]) -> Result<i64, ApiError> {
        self.require(scopes)?;
        Ok(self.user()?.account_id)
    }

    /// 403 unless the token holds one of `scopes`.
    pub fn require(&self, scopes: &[&str]) -> Result<(), ApiError> {
        if self.scopes.grants_any(scopes) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "This action is outside the authorized scopes",
            ))
        }
    }

    /// The user behind the token whatever the state of their login (for the few methods an
    /// unconfirmed user may call); 422 for an app-only token.
    pub fn any_user(&self) -> Result<&TokenUser, ApiError> {
        self.user
            .as_ref()
            .ok_or_else(|| ApiError::unprocessable("This method requires an authenticated user"))
    }

    /// The user behind the token, who must be allowed to act: 422 for an app-only token, 403 for
    /// an unconfirmed, pending, disabled or suspended login — Mastodon's answers.
    pub fn user(&self) -> Result<&TokenUser, ApiError> {
        let Some(user) = &self.user else {
            return Err(ApiError::unprocessable(
                "This method requires an authenticated user",
            ));
        };
        if !user.confirmed {
            return Err(ApiError::forbidden(
                "Your login is missing a confirmed e-mail address",
            ));
        }
        if !user.approved {
            return Err(ApiError::forbidden(
                "Your login is currently pending approval",
            ));
        }
        if user.disabled || user.suspended {
            return Err(ApiError::forbidden("Your login is currently disabled"));
        }
        Ok(user)
    }

    /// The user behind the token, who must be staff (`admin` or `moderator`).
    pub fn staff(&self) -> Result<&TokenUser, ApiError> {
        let user = self.user()?;
        if user.role == "admin" || user.role == "moderator" {
            Ok(user)
        } else {
            Err(ApiError::forbidden("This action is not allowed"))
        }
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy (TRUSTED_PROXY_IP) —
/// the last address in X-Forwarded-For that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "No peer address"))?;
        let trusted = &state.ctx.config.web.trusted_proxies;
        if !trusted.contains(&peer) {
            return Ok(ClientIp(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Ok(ClientIp(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted.contains(ip))
                .unwrap_or(peer),
        ))
    }
}
