//! `GET /oauth/authorize` (the consent page, after logging in) and `POST /oauth/authorize`
//! (the person's decision). A granted code is good for ten minutes and one exchange.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use stampede_core::Scopes;

use super::{App, OOB, describe_scope, find_app};
use crate::pages::auth::session_account;
use crate::pages::{csrf, csrf_ok};
use crate::payload::Params;
use crate::{AppState, tokens};

#[derive(Debug, Deserialize, Clone, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub authenticity_token: Option<String>,
    pub decision: Option<String>,
}

/// A request that passed validation.
struct Valid {
    app: App,
    redirect_uri: String,
    scopes: Scopes,
}

fn error_page(state: &AppState, status: StatusCode, text: &str) -> Response {
    state.notice(status, "This authorization request is invalid", &[text])
}

fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = uri.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
        sep = '&';
    }
    url
}

async fn validate(state: &AppState, p: &AuthorizeParams) -> Result<Valid, Response> {
    let Some(app) = find_app(state, p.client_id.as_deref().unwrap_or(""))
        .await
        .map_err(IntoResponse::into_response)?
    else {
        return Err(error_page(
            state,
            StatusCode::BAD_REQUEST,
            "Client authentication failed due to unknown client.",
        ));
    };
    // Without a redirect_uri, an app with exactly one registered may use it.
    let redirect_uri = match p.redirect_uri.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
        None => {
            return Err(error_page(
                state,
                StatusCode::BAD_REQUEST,
                "The redirect URI is missing.",
            ));
        }
    };
    if !app.redirect_uris.contains(&redirect_uri) {
        return Err(error_page(
            state,
            StatusCode::BAD_REQUEST,
            "The redirect URI included is not valid.",
        ));
    }
    // From here on, errors go back to the client, as RFC 6749 §4.1.2.1 says.
    let client_error = |error: &str, description: &str| -> Response {
        if redirect_uri == OOB {
            return error_page(state, StatusCode::BAD_REQUEST, description);
        }
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = p.state.as_deref() {
            pairs.push(("state", s));
        }
        (
            StatusCode::FOUND,
            [(header::LOCATION, append_query(&redirect_uri, &pairs))],
        )
            .into_response()
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(client_error(
            "unsupported_response_type",
            "The authorization server does not support this response type.",
        ));
    }
    let scopes = match Scopes::parse(p.scope.as_deref().unwrap_or("")) {
        Ok(s) if app.scopes.covers(&s) => s,
        _ => {
            return Err(client_error(
                "invalid_scope",
                "The requested scope is invalid, unknown, or malformed.",
            ));
        }
    };
    match (
        p.code_challenge.as_deref().filter(|c| !c.is_empty()),
        p.code_challenge_method.as_deref(),
    ) {
        (None, _) => {}
        (Some(_), Some("S256")) => {}
        (Some(_), _) => {
            return Err(client_error(
                "invalid_request",
                "The code challenge method must be S256.",
            ));
        }
    }
    Ok(Valid {
        app,
        redirect_uri,
        scopes,
    })
}

/// Shows the consent page, sending a visitor who is not logged in to the log-in page first.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<AuthorizeParams>,
    uri: axum::http::Uri,
) -> Response {
    let valid = match validate(&state, &p).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let Some((_, username)) = session_account(&state, &headers).await else {
        let here = uri
            .path_and_query()
            .map_or("/oauth/authorize", |pq| pq.as_str());
        let target = append_query("/auth/sign_in", &[("return_to", here)]);
        return (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
    };
    let (token, set) = csrf(&state, &headers);
    let scopes: Vec<_> = valid
        .scopes
        .iter()
        .map(|s| json!({ "name": s, "description": describe_scope(s) }))
        .collect();
    state.page(
        StatusCode::OK,
        "authorize.html",
        json!({
            "csrf": token,
            "app_name": valid.app.name,
            "app_website": valid.app.website,
            "username": username,
            "scopes": scopes,
            "client_id": valid.app.client_id,
            "redirect_uri": valid.redirect_uri,
            "scope": valid.scopes.to_string(),
            "state": p.state.unwrap_or_default(),
            "code_challenge": p.code_challenge.unwrap_or_default(),
            "code_challenge_method": p.code_challenge_method.unwrap_or_default(),
        }),
        set.into_iter().collect(),
    )
}

/// Records the decision: a code sent back to the client (or shown, for out-of-band), or
/// `access_denied`.
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(mut p): Params<AuthorizeParams>,
) -> Response {
    if !csrf_ok(&headers, p.authenticity_token.as_deref()) {
        return state.notice(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This form has expired",
            &["Go back, reload the page and try again."],
        );
    }
    p.response_type = Some("code".into());
    let valid = match validate(&state, &p).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let Some((account_id, _)) = session_account(&state, &headers).await else {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "/auth/sign_in".to_string())],
        )
            .into_response();
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if p.decision.as_deref() != Some("approve") {
        pairs.push(("error", "access_denied".into()));
        pairs.push((
            "error_description",
            "The resource owner or authorization server denied the request.".into(),
        ));
    } else {
        let code = tokens::generate();
        let stored = sqlx::query(
            "INSERT INTO oauth_access_grants (code_hash, application_id, account_id, redirect_uri, \
             scopes, code_challenge, code_challenge_method, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, now() + interval '10 minutes')",
        )
        .bind(tokens::digest(&code))
        .bind(valid.app.id)
        .bind(account_id)
        .bind(&valid.redirect_uri)
        .bind(valid.scopes.to_string())
        .bind(p.code_challenge.as_deref().filter(|c| !c.is_empty()))
        .bind(
            p.code_challenge
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(|_| "S256"),
        )
        .execute(&state.ctx.db)
        .await;
        if let Err(e) = stored {
            return crate::error::ApiError::from(e).into_response();
        }
        if valid.redirect_uri == OOB {
            return state.page(
                StatusCode::OK,
                "oob.html",
                json!({ "code": code, "app_name": valid.app.name }),
                Vec::new(),
            );
        }
        pairs.push(("code", code));
    }
    if let Some(s) = p.state.as_deref().filter(|s| !s.is_empty()) {
        pairs.push(("state", s.to_string()));
    }
    if valid.redirect_uri == OOB {
        return state.notice(
            StatusCode::OK,
            "Authorization denied",
            &["You can close this page."],
        );
    }
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            append_query(&valid.redirect_uri, &borrowed),
        )],
    )
        .into_response()
}
