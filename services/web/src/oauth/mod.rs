//! OAuth 2 as Mastodon speaks it: the authorization code flow (with PKCE S256), client
//! credentials, and the password grant bots and load tests use; revocation; server metadata
//! (RFC 8414); and `userinfo`.

pub mod authorize;
pub mod token;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::Row;
use stampede_core::Scopes;
use stampede_core::scope::KNOWN_SCOPES;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::scopes;
use crate::tokens;

/// How Mastodon writes the out-of-band redirect.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::show).post(authorize::decide),
        )
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

/// An application, as stored.
#[derive(Debug, Clone)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub website: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Scopes,
    pub client_id: String,
    client_secret_hash: String,
}

impl App {
    /// Whether `secret` is this application's client secret.
    pub fn secret_matches(&self, secret: &str) -> bool {
        tokens::constant_time_eq(
            tokens::digest(secret).as_bytes(),
            self.client_secret_hash.as_bytes(),
        )
    }
}

/// Loads an application by its client id.
pub async fn find_app(state: &AppState, client_id: &str) -> Result<Option<App>, ApiError> {
    let row = sqlx::query(
        "SELECT id, name, website, redirect_uris, scopes, client_id, client_secret_hash \
         FROM oauth_applications WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(&state.ctx.db)
    .await?;
    row.map(|row| -> Result<App, ApiError> {
        Ok(App {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            website: row.try_get("website")?,
            redirect_uris: row.try_get("redirect_uris")?,
            scopes: Scopes::parse(&row.try_get::<String, _>("scopes")?)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("stored scopes: {e}")))?,
            client_id: row.try_get("client_id")?,
            client_secret_hash: row.try_get("client_secret_hash")?,
        })
    })
    .transpose()
}

/// A person-readable line for a scope on the consent page.
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "read" => "read all your account's data",
        "write" => "change all your account's data",
        "follow" => "see and change who you follow, block and mute",
        "push" => "receive push notifications",
        "profile" => "see your basic profile information",
        "admin:read" => "read all data on the server (moderators only)",
        "admin:write" => "moderate all data on the server (moderators only)",
        s if s.starts_with("read:") => "read part of your account's data",
        s if s.starts_with("write:") => "change part of your account's data",
        _ => "moderate part of the server (moderators only)",
    }
}

async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let base = state.base_url();
    Json(json!({
        "issuer": format!("{base}/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "app_registration_endpoint": format!("{base}/api/v1/apps"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "scopes_supported": KNOWN_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
}

async fn userinfo(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    // Mastodon's userinfo takes the `profile` scope alone.
    auth.require(scopes::PROFILE)?;
    let user = auth.user()?;
    let account = crate::accounts::find(&state.ctx.db, user.account_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let rendered = state.render_account(&account);
    Ok(Json(json!({
        "iss": format!("{}/", state.base_url()),
        "sub": rendered.uri,
        "name": if account.display_name.is_empty() { account.username.clone() } else { account.display_name.clone() },
        "preferred_username": account.username,
        "profile": rendered.url,
        "picture": rendered.avatar,
    })))
}
