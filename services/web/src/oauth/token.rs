//! `POST /oauth/token` and `POST /oauth/revoke`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgExecutor, Row};
use stampede_core::Scopes;
use stampede_core::id::IdGenerator;
use stampede_mastodon::Token;
use stampede_social::stream;

use super::{App, find_app};
use crate::auth::ClientIp;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::sign_in::check_password;
use crate::{AppState, ratelimit, tokens};

#[derive(Debug, Deserialize, Default)]
pub struct TokenParams {
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    grant_type: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    client_secret: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    code: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    redirect_uri: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    code_verifier: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    scope: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    username: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    password: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    token: Option<String>,
}

fn invalid_client() -> ApiError {
    ApiError::oauth(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

fn invalid_grant() -> ApiError {
    ApiError::oauth(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

fn invalid_scope() -> ApiError {
    ApiError::oauth(
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "The requested scope is invalid, unknown, or malformed.",
    )
}

/// Client credentials from HTTP Basic auth, or else from the parameters.
fn client_credentials(headers: &HeaderMap, p: &TokenParams) -> (Option<String>, Option<String>) {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(encoded) = value.strip_prefix("Basic ")
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim())
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((id, secret)) = text.split_once(':')
    {
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return (Some(unescape(id)), Some(unescape(secret)));
    }
    (p.client_id.clone(), p.client_secret.clone())
}

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    /// With its client secret: a confidential client.
    Secret,
    /// With its client id only: a public client, which must use PKCE.
    Public,
}

async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    p: &TokenParams,
    secret_required: bool,
) -> Result<(App, ClientAuth), ApiError> {
    let (id, secret) = client_credentials(headers, p);
    let app = find_app(state, id.as_deref().unwrap_or(""))
        .await?
        .ok_or_else(invalid_client)?;
    match secret.as_deref().filter(|s| !s.is_empty()) {
        Some(secret) if app.secret_matches(secret) => Ok((app, ClientAuth::Secret)),
        Some(_) => Err(invalid_client()),
        None if secret_required => Err(invalid_client()),
        None => Ok((app, ClientAuth::Public)),
    }
}

fn requested_scopes(app: &App, scope: Option<&str>) -> Result<Scopes, ApiError> {
    let scopes = Scopes::parse(scope.unwrap_or("")).map_err(|_| invalid_scope())?;
    if app.scopes.covers(&scopes) {
        Ok(scopes)
    } else {
        Err(invalid_scope())
    }
}

/// Issues a token on `db` (the pool, or the caller's transaction); only its digest is stored.
pub async fn issue(
    db: impl PgExecutor<'_>,
    ids: &IdGenerator,
    app_id: Option<i64>,
    account_id: Option<i64>,
    scopes: &Scopes,
) -> Result<Token, sqlx::Error> {
    let token = tokens::generate();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO oauth_access_tokens (id, token_hash, application_id, account_id, scopes) \
         VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
    )
    .bind(ids.next_id().as_i64())
    .bind(tokens::digest(&token))
    .bind(app_id)
    .bind(account_id)
    .bind(scopes.to_string())
    .fetch_one(db)
    .await?;
    Ok(Token::bearer(token, scopes.to_string(), created_at))
}

pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Params(p): Params<TokenParams>,
) -> Result<Json<Token>, ApiError> {
    match p.grant_type.as_deref() {
        Some("authorization_code") => {
            let (app, client_auth) = authenticate_client(&state, &headers, &p, false).await?;
            let code = p.code.as_deref().unwrap_or("");
            let mut tx = state.ctx.db.begin().await?;
            // Claim the code: one exchange only, within its ten minutes.
            let row = sqlx::query(
                "UPDATE oauth_access_grants SET used_at = now() \
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now() \
                 RETURNING application_id, account_id, redirect_uri, scopes, code_challenge",
            )
            .bind(tokens::digest(code))
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(invalid_grant)?;
            let grant_app: i64 = row.try_get("application_id")?;
            let redirect_uri: String = row.try_get("redirect_uri")?;
            let challenge: Option<String> = row.try_get("code_challenge")?;
            // The redirect URI of the authorization must be repeated (RFC 6749 §4.1.3).
            if grant_app != app.id || p.redirect_uri.as_deref() != Some(redirect_uri.as_str()) {
                return Err(invalid_grant());
            }
            match (&challenge, p.code_verifier.as_deref()) {
                (Some(challenge), Some(verifier))
                    if tokens::pkce_s256_matches(verifier, challenge) => {}
                (Some(_), _) => return Err(invalid_grant()),
                // A public client (no secret) must use PKCE.
                (None, _) if client_auth == ClientAuth::Public => {
                    return Err(invalid_client());
                }
                (None, _) => {}
            }
            let scopes =
                Scopes::parse(&row.try_get::<String, _>("scopes")?).map_err(|_| invalid_scope())?;
            let account_id: i64 = row.try_get("account_id")?;
            // In the transaction that spends the code: both happen, or neither.
            let token = issue(
                &mut *tx,
                &state.ids,
                Some(app.id),
                Some(account_id),
                &scopes,
            )
            .await?;
            tx.commit().await?;
            Ok(Json(token))
        }
        Some("client_credentials") => {
            let (app, _) = authenticate_client(&state, &headers, &p, true).await?;
            let scopes = requested_scopes(&app, p.scope.as_deref())?;
            Ok(Json(
                issue(&state.ctx.db, &state.ids, Some(app.id), None, &scopes).await?,
            ))
        }
        Some("password") => {
            let (app, _) = authenticate_client(&state, &headers, &p, true).await?;
            let scopes = requested_scopes(&app, p.scope.as_deref())?;
            ratelimit::check(&state, ratelimit::SIGN_IN, ip).await?;
            let signed_in = check_password(
                &state,
                p.username.as_deref().unwrap_or(""),
                p.password.as_deref().unwrap_or(""),
            )
            .await?
            .ok_or_else(invalid_grant)?;
            Ok(Json(
                issue(
                    &state.ctx.db,
                    &state.ids,
                    Some(app.id),
                    Some(signed_in.account_id),
                    &scopes,
                )
                .await?,
            ))
        }
        _ => Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        )),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(p): Params<TokenParams>,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = authenticate_client(&state, &headers, &p, true).await?;
    let token = p.token.as_deref().unwrap_or("");
    let owner: Option<Option<i64>> =
        sqlx::query_scalar("SELECT application_id FROM oauth_access_tokens WHERE token_hash = $1")
            .bind(tokens::digest(token))
            .fetch_optional(&state.ctx.db)
            .await?;
    match owner {
        // Unknown tokens are "revoked" successfully (RFC 7009 §2.2).
        None => Ok(Json(json!({}))),
        Some(owner) if owner != Some(app.id) => Err(ApiError::oauth(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        )),
        Some(_) => {
            let revoked: Option<i64> = sqlx::query_scalar(
                "UPDATE oauth_access_tokens SET revoked_at = now() \
                 WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(tokens::digest(token))
            .fetch_optional(&state.ctx.db)
            .await?;
            if let Some(token_id) = revoked {
                state.grants.forget_token(&tokens::digest(token));
                // Streaming connections made with it close at once.
                stream::publish(
                    &state.ctx.cache,
                    stream::CONTROL_CHANNEL,
                    &stream::Control::Revoke { token_id },
                )
                .await;
            }
            Ok(Json(json!({})))
        }
    }
}
