//! The Mastodon API as the scenarios use it for set-up and preflight: apps, tokens, sign-up,
//! and probes that tell an endpoint that is missing (404 from the router) from one that is
//! there. The load itself goes through goose or the scenario's own bounded tasks.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use reqwest::StatusCode;
use serde_json::Value;

/// A plain client for set-up and preflight requests.
pub fn client(timeout: Duration, pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(pool)
        .build()?)
}

/// `/health/ready` answers 200, or the run does not start.
pub async fn check_ready(base: &str) -> anyhow::Result<()> {
    let c = client(Duration::from_secs(5), 1)?;
    let url = format!("{base}/health/ready");
    let response = c.get(&url).send().await.map_err(|e| {
        anyhow::anyhow!(
            "{base} is not reachable ({e}); start the server (deploy/local/run.sh or deploy/local/cluster.sh start) or fix --base-url"
        )
    })?;
    ensure!(
        response.status().is_success(),
        "{url} answered {}: the server is up but not ready (see its /health/ready body and logs)",
        response.status()
    );
    Ok(())
}

/// Sends a form; returns the status and the JSON body (Null when it is not JSON).
pub async fn form(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    pairs: &[(&str, &str)],
) -> anyhow::Result<(StatusCode, Value)> {
    // The serializer is not Send: finish it before the first await.
    let body = {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            body.append_pair(k, v);
        }
        body.finish()
    };
    let mut request = c
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Like [`form`], but anything other than 2xx is an error naming the endpoint.
pub async fn form_ok(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    pairs: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let (status, body) = form(c, url, token, pairs).await?;
    ensure!(status.is_success(), "POST {url}: {status} {body}");
    Ok(body)
}

/// GET with a bearer token; status and JSON body.
pub async fn get(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = c.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// An app registered through `POST /api/v1/apps` and its client-credentials token.
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    pub token: String,
}

/// Registers an app and takes a client-credentials token, as a Mastodon client does before
/// `POST /api/v1/accounts`.
pub async fn register_app(c: &reqwest::Client, base: &str) -> anyhow::Result<App> {
    let app = form_ok(
        c,
        &format!("{base}/api/v1/apps"),
        None,
        &[
            ("client_name", "stampede-loadtest"),
            ("redirect_uris", "urn:ietf:wg:oauth:2.0:oob"),
            ("scopes", "read write follow"),
        ],
    )
    .await?;
    let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
    let client_secret = app["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let token = form_ok(
        c,
        &format!("{base}/oauth/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("scope", "read write follow"),
        ],
    )
    .await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        !token.is_empty(),
        "POST {base}/oauth/token gave no access_token"
    );
    Ok(App { client_id, token })
}

/// The form of one sign-up through `POST /api/v1/accounts`.
pub fn signup_form(username: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("email", &format!("{username}@loadtest.invalid"))
        .append_pair("password", "loadtest password")
        .append_pair("agreement", "true")
        .append_pair("date_of_birth", "1990-01-01")
        .append_pair("locale", "en")
        .finish()
}

/// Checks that `method path` is served: anything but 404 (the router's answer to a path it does
/// not know) and 405 counts as served. `why` says which issue brings it.
pub async fn require_endpoint(
    c: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    why: &str,
) -> anyhow::Result<Value> {
    let url = format!("{base}{path}");
    let response = c
        .request(method.clone(), &url)
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        bail!("{method} {path} answered {status}: this server does not serve it yet ({why})");
    }
    if status.is_server_error() {
        bail!("{method} {path} answered {status} {body}: fix the server before loading it");
    }
    Ok(body)
}
