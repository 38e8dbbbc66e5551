//! `POST /api/v1/apps`, `GET /api/v1/apps/verify_credentials`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::Row;
use stampede_core::Scopes;
use stampede_mastodon::{Application, CredentialApplication};

use crate::auth::Auth;
use crate::error::{ApiError, Validation};
use crate::oauth::OOB;
use crate::payload::Params;
use crate::{AppState, tokens};

#[derive(Debug, Deserialize)]
pub struct CreateApp {
    #[serde(default)]
    client_name: Option<String>,
    /// One string with URIs separated by newlines (or spaces), or an array.
    #[serde(default)]
    redirect_uris: Option<serde_json::Value>,
    #[serde(default)]
    scopes: Option<String>,
    #[serde(default)]
    website: Option<String>,
}

fn valid_redirect(uri: &str) -> bool {
    // Absolute, with a scheme, no fragment (RFC 6749 §3.1.2); custom schemes are how apps
    // receive the code, so they are allowed.
    uri == OOB
        || url::Url::parse(uri).is_ok_and(|u| {
            u.fragment().is_none() && !matches!(u.scheme(), "javascript" | "data" | "vbscript")
        })
}

fn render(
    id: i64,
    name: &str,
    website: Option<String>,
    redirect_uris: &[String],
    scopes: &Scopes,
    vapid_key: String,
) -> Application {
    Application {
        id: id.to_string(),
        name: name.to_string(),
        website,
        scopes: scopes.iter().map(str::to_string).collect(),
        redirect_uri: redirect_uris.join("\n"),
        redirect_uris: redirect_uris.to_vec(),
        vapid_key,
    }
}

pub async fn create(
    State(state): State<AppState>,
    Params(p): Params<CreateApp>,
) -> Result<Json<CredentialApplication>, ApiError> {
    let mut v = Validation::default();
    let name = p.client_name.unwrap_or_default().trim().to_string();
    if name.is_empty() {
        v.add("name", "ERR_BLANK", "can't be blank");
    } else if name.chars().count() > 60 {
        v.add(
            "name",
            "ERR_TOO_LONG",
            "is too long (maximum is 60 characters)",
        );
    }
    let given: Vec<String> = match p.redirect_uris {
        Some(serde_json::Value::String(s)) => vec![s],
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    // URIs never contain whitespace, so it separates them; commas may appear inside one.
    let redirect_uris: Vec<String> = given
        .iter()
        .flat_map(|u| u.split_whitespace().map(str::to_string))
        .collect();
    if redirect_uris.is_empty() {
        v.add("redirect_uri", "ERR_BLANK", "can't be blank");
    } else if !redirect_uris.iter().all(|u| valid_redirect(u)) {
        v.add("redirect_uri", "ERR_INVALID", "must be an absolute URI.");
    }
    let scopes = match Scopes::parse(p.scopes.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(e) => {
            v.add("scopes", "ERR_INVALID", &e.to_string());
            Scopes::default()
        }
    };
    let website = p.website.filter(|w| !w.trim().is_empty());
    if let Some(w) = &website
        && !url::Url::parse(w).is_ok_and(|u| u.scheme() == "http" || u.scheme() == "https")
    {
        v.add("website", "ERR_INVALID", "is invalid");
    }
    v.finish()?;

    let id = state.ids.next_id().as_i64();
    let client_id = tokens::generate();
    let client_secret = tokens::generate();
    sqlx::query(
        "INSERT INTO oauth_applications (id, name, website, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&name)
    .bind(&website)
    .bind(&redirect_uris)
    .bind(scopes.to_string())
    .bind(&client_id)
    .bind(tokens::digest(&client_secret))
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(CredentialApplication {
        application: render(
            id,
            &name,
            website,
            &redirect_uris,
            &scopes,
            state.vapid_key().await?,
        ),
        client_id,
        client_secret,
        client_secret_expires_at: 0,
    }))
}

pub async fn verify_credentials(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Application>, ApiError> {
    let app_id = auth
        .application_id
        .ok_or_else(|| ApiError::unauthorized("The access token is invalid"))?;
    let row = sqlx::query(
        "SELECT id, name, website, redirect_uris, scopes FROM oauth_applications WHERE id = $1",
    )
    .bind(app_id)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    let scopes = Scopes::parse(&row.try_get::<String, _>("scopes")?).unwrap_or_default();
    let redirect_uris: Vec<String> = row.try_get("redirect_uris")?;
    Ok(Json(render(
        row.try_get("id")?,
        &row.try_get::<String, _>("name")?,
        row.try_get("website")?,
        &redirect_uris,
        &scopes,
        state.vapid_key().await?,
    )))
}
