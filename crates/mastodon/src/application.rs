//! OAuth applications and tokens.

use serde::Serialize;

/// An application as anyone may see it.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub website: Option<String>,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub redirect_uris: Vec<String>,
    /// The server's VAPID public key (base64url), for Web Push subscriptions.
    pub vapid_key: String,
}

/// An application with its credentials, returned once by `POST /api/v1/apps`.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialApplication {
    #[serde(flatten)]
    pub application: Application,
    pub client_id: String,
    pub client_secret: String,
    /// 0: the secret does not expire.
    pub client_secret_expires_at: i64,
}

/// An OAuth access token.
#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub access_token: String,
    pub token_type: String,
    pub scope: String,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl Token {
    /// A bearer token with its scopes (space-separated), issued at `created_at`.
    pub fn bearer(
        access_token: String,
        scope: String,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Token {
            access_token,
            token_type: "Bearer".into(),
            scope,
            created_at: created_at.timestamp(),
        }
    }
}
