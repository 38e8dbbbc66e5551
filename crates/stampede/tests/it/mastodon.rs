//! A small Mastodon client for the tests: what a client library does, over plain HTTP.

use std::collections::BTreeMap;

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use stampede_test_support::TestApp;

/// A client that follows no redirects and keeps cookies, like a careful browser.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", app.addr),
            cookies: BTreeMap::new(),
        }
    }

    fn remember(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let raw = value.to_str().unwrap();
            let pair = raw.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || raw.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let response = self
            .http
            .get(self.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        (status, response.text().await.unwrap(), location)
    }

    /// A browser signed in as a seeded `user`, who is given a password first (seeded users
    /// have none).
    pub async fn signed_in(app: &TestApp, user: &crate::social::User) -> Browser {
        crate::deletion::set_password(app, user, "a long enough secret").await;
        let mut browser = Browser::new(app);
        let (_, page, _) = browser.get("/auth/sign_in").await;
        let csrf = hidden(&page, "authenticity_token").unwrap();
        let email = format!("{}@mail.example", user.username);
        let (status, _, _) = browser
            .post_form(
                "/auth/sign_in",
                &[
                    ("authenticity_token", &csrf),
                    ("email", &email),
                    ("password", "a long enough secret"),
                ],
            )
            .await;
        assert_eq!(status, 303);
        browser
    }

    /// The body of a 200 answer, as bytes (a download).
    pub async fn get_bytes(&mut self, path: &str) -> Vec<u8> {
        let response = self
            .http
            .get(self.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap().to_vec()
    }

    pub async fn post_form(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let response = self
            .http
            .post(self.url(path))
            .header(COOKIE, self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap();
        self.remember(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        (status, response.text().await.unwrap(), location)
    }
}

/// The `value` of the hidden input named `name` in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(
        html[start..start + end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x3d;", "="),
    )
}

/// A registered application.
#[derive(Debug, Clone)]
pub struct AppCreds {
    pub client_id: String,
    pub client_secret: String,
}

pub async fn post_form(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    pairs: &[(&str, &str)],
) -> Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub async fn post_json(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Response {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub async fn register_app(app: &TestApp, scopes: &str) -> AppCreds {
    let response = post_form(
        app,
        "/api/v1/apps",
        None,
        &[
            ("client_name", "Test Client"),
            ("redirect_uris", "http://127.0.0.1/callback"),
            ("scopes", scopes),
            ("website", "https://client.example"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    AppCreds {
        client_id: body["client_id"].as_str().unwrap().to_string(),
        client_secret: body["client_secret"].as_str().unwrap().to_string(),
    }
}

/// A client-credentials token of `creds`' app.
pub async fn app_token(app: &TestApp, creds: &AppCreds, scope: &str) -> String {
    let response = post_form(
        app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// `POST /api/v1/accounts` as JSON.
pub async fn sign_up(app: &TestApp, app_token: &str, username: &str, extra: Value) -> Response {
    let mut body = serde_json::json!({
        "username": username,
        "email": format!("{username}@mail.example"),
        "password": "correct horse battery",
        "agreement": true,
        "locale": "en",
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    post_json(app, "/api/v1/accounts", Some(app_token), body).await
}

/// A user's token through the password grant.
pub async fn password_token(
    app: &TestApp,
    creds: &AppCreds,
    email: &str,
    password: &str,
    scope: &str,
) -> Response {
    post_form(
        app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "password"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("username", email),
            ("password", password),
            ("scope", scope),
        ],
    )
    .await
}
