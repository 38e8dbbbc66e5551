//! Who is connecting and which stream they ask for: the token (from `Authorization`,
//! `Sec-WebSocket-Protocol` or `access_token`), its scopes, and the validation of stream names,
//! hashtags and lists — with Mastodon's errors.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stampede_core::Scopes;
use stampede_social::tokens;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::State;
use crate::hub::{Client, JoinError, Outgoing, Scope, StreamKey};

/// A refusal: the HTTP status and Mastodon's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The error frame a WebSocket client gets: `{"error": …, "status": …}`.
    pub fn frame(&self) -> String {
        serde_json::json!({ "error": self.message, "status": self.status.as_u16() }).to_string()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        // A saturated pool is counted in stampede_db_pool_timeouts_total, not logged per client.
        if matches!(error, sqlx::Error::PoolTimedOut) {
            tracing::debug!("streaming: database pool saturated");
        } else {
            tracing::error!(%error, "streaming: database error");
        }
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
    }
}

/// The connecting client: anonymous, or a token acting for an account.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub account: Option<i64>,
    pub token_id: Option<i64>,
    scopes: Option<Scopes>,
}

/// The token as given: `Authorization: Bearer …`, then `Sec-WebSocket-Protocol`, then
/// `?access_token=`.
pub fn token(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    if let Some(value) = headers.get(header::SEC_WEBSOCKET_PROTOCOL)
        && let Ok(value) = value.to_str()
        && !value.trim().is_empty()
    {
        return Some(value.split(',').next().unwrap_or("").trim().to_string());
    }
    query
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.clone())
}

/// Checks the token; no token reads as anonymous (public streams only).
pub async fn viewer(state: &State, token: Option<&str>) -> Result<Viewer, Refusal> {
    let Some(token) = token else {
        return Ok(Viewer::default());
    };
    let invalid = || Refusal::new(StatusCode::UNAUTHORIZED, "Invalid access token");
    let grant = tokens::grant(&state.ctx.leases, None, token)
        .await?
        .ok_or_else(invalid)?;
    if grant.revoked_at.is_some() {
        return Err(invalid());
    }
    if grant.account_id.is_some() && !grant.user_may_act() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "Your login is currently disabled",
        ));
    }
    let scopes = Scopes::parse(&grant.scopes).map_err(|_| invalid())?;
    Ok(Viewer {
        account: grant.account_id,
        token_id: Some(grant.id),
        scopes: Some(scopes),
    })
}

/// A stream as asked for: its name and, for some, a tag or list.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub stream: String,
    pub tag: Option<String>,
    pub list: Option<String>,
    pub only_media: bool,
}

const USER_STREAMS: [&str; 3] = ["user", "user:notification", "direct"];

/// The stream `ask` names, if `viewer` may listen to it.
pub async fn resolve(state: &State, viewer: &Viewer, ask: &Ask) -> Result<StreamKey, Refusal> {
    let name = ask.stream.as_str();
    let (base, media) = match name.strip_suffix(":media") {
        Some(base) if base.starts_with("public") => (base, true),
        _ => (name, ask.only_media && name.starts_with("public")),
    };
    let scopes: &[&str] = match base {
        "user:notification" => &["read", "read:notifications"],
        "list" => &["read", "read:lists", "read:statuses"],
        _ => &["read", "read:statuses"],
    };
    let known = matches!(
        base,
        "user"
            | "user:notification"
            | "direct"
            | "public"
            | "public:local"
            | "public:remote"
            | "hashtag"
            | "hashtag:local"
            | "list"
    );
    if !known {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("Unknown stream type: {name:?}"),
        ));
    }
    if let Some(granted) = &viewer.scopes
        && !granted.grants_any(scopes)
    {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "Access token does not have the required scopes",
        ));
    }
    let signed_in = || {
        viewer.account.ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                format!("The {name} stream needs an access token acting for an account"),
            )
        })
    };
    if USER_STREAMS.contains(&base) || base == "list" {
        signed_in()?;
    }
    Ok(match base {
        "user" => StreamKey::User(signed_in()?),
        "user:notification" => StreamKey::Notification(signed_in()?),
        "direct" => StreamKey::Direct(signed_in()?),
        "public" => StreamKey::Public {
            scope: Scope::All,
            media,
        },
        "public:local" => StreamKey::Public {
            scope: Scope::Local,
            media,
        },
        "public:remote" => StreamKey::Public {
            scope: Scope::Remote,
            media,
        },
        "hashtag" | "hashtag:local" => {
            let tag = ask
                .tag
                .as_deref()
                .map(|t| t.trim().trim_start_matches('#').to_lowercase())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Refusal::new(StatusCode::BAD_REQUEST, "No tag for stream provided")
                })?;
            StreamKey::Hashtag {
                tag,
                local: base == "hashtag:local",
            }
        }
        _ => {
            let account = signed_in()?;
            let list: i64 = ask
                .list
                .as_deref()
                .and_then(|l| l.trim().parse().ok())
                .ok_or_else(|| {
                    Refusal::new(StatusCode::BAD_REQUEST, "No list for stream provided")
                })?;
            let owned: Option<i64> =
                sqlx::query_scalar("SELECT id FROM lists WHERE id = $1 AND account_id = $2")
                    .bind(list)
                    .bind(account)
                    .fetch_optional(&state.ctx.db)
                    .await?;
            owned.ok_or_else(|| {
                Refusal::new(StatusCode::NOT_FOUND, "Not authorized to stream this list")
            })?;
            StreamKey::List(list)
        }
    })
}

/// Registers `viewer`'s new connection with the hub: 429 when the account already holds as many
/// as it may, 503 when its filters cannot be loaded.
pub async fn admit(
    state: &State,
    viewer: &Viewer,
) -> Result<(Arc<Client>, mpsc::Receiver<Outgoing>), Refusal> {
    let limit = state.ctx.config.streaming.max_connections_per_account;
    match state.hub.join(viewer.account, viewer.token_id, limit).await {
        Ok(joined) => {
            // Before the client hears anything, so that no notification meant for it is skipped.
            if let Some(account) = viewer.account {
                stampede_social::stream::mark_listening(&state.ctx.cache, account).await;
            }
            Ok(joined)
        }
        Err(JoinError::TooManyConnections) => Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many streaming connections for this account",
        )),
        Err(JoinError::Database(error)) => Err(Refusal::from(error)),
    }
}
