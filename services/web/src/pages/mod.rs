//! The HTML pages a person sees: sign-up, log-in, log-out, e-mail confirmation, password reset and
//! OAuth consent. Server-rendered (minijinja, auto-escaped), usable without JavaScript, with labels
//! on every field and errors announced to screen readers.
//!
//! Forms are protected against cross-site request forgery with a double-submit token: each page
//! sets a random `_stampede_csrf` cookie (HttpOnly, SameSite=Lax) and repeats it in a hidden field;
//! a POST whose field does not match its cookie is refused with 422.

pub mod auth;
pub mod profile;
pub mod settings;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use serde_json::json;

use crate::AppState;
use crate::mail::Mail;
use crate::tokens;

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! template {
    ($env:ident, $name:literal) => {
        // The templates ship with the binary; a syntax error is caught by the tests.
        if let Err(error) = $env.add_template($name, include_str!(concat!("../../templates/", $name))) {
            tracing::error!(%error, template = $name, "template does not compile");
        }
    };
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        template!(env, "layout.html");
        template!(env, "sign_up.html");
        template!(env, "sign_in.html");
        template!(env, "notice.html");
        template!(env, "authorize.html");
        template!(env, "oob.html");
        template!(env, "profile.html");
        template!(env, "password_new.html");
        template!(env, "password_edit.html");
        template!(env, "delete_account.html");
        template!(env, "aliases.html");
        template!(env, "migration.html");
        template!(env, "export.html");
        template!(env, "import.html");
        template!(env, "mail_confirmation.txt");
        template!(env, "mail_reset.txt");
        template!(env, "mail_approved.txt");
        Templates { env }
    }

    /// Renders `name` with `context`.
    pub fn render(&self, name: &str, context: serde_json::Value) -> anyhow::Result<String> {
        Ok(self.env.get_template(name)?.render(context)?)
    }

    pub fn confirmation_mail(
        &self,
        to: &str,
        username: &str,
        link: &str,
        site_title: &str,
        approved: bool,
    ) -> anyhow::Result<Mail> {
        Ok(Mail {
            to: to.to_string(),
            subject: format!("{site_title}: confirm your e-mail address"),
            text: self.render(
                "mail_confirmation.txt",
                json!({ "username": username, "link": link, "site_title": site_title, "approved": approved }),
            )?,
        })
    }

    pub fn reset_mail(&self, to: &str, link: &str, site_title: &str) -> anyhow::Result<Mail> {
        Ok(Mail {
            to: to.to_string(),
            subject: format!("{site_title}: reset your password"),
            text: self.render(
                "mail_reset.txt",
                json!({ "link": link, "site_title": site_title }),
            )?,
        })
    }

    pub fn approved_mail(
        &self,
        to: &str,
        username: &str,
        link: &str,
        site_title: &str,
    ) -> anyhow::Result<Mail> {
        Ok(Mail {
            to: to.to_string(),
            subject: format!("{site_title}: your account was approved"),
            text: self.render(
                "mail_approved.txt",
                json!({ "username": username, "link": link, "site_title": site_title }),
            )?,
        })
    }
}

pub const CSRF_COOKIE: &str = "_stampede_csrf";
pub const SESSION_COOKIE: &str = "_stampede_session";

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over HTTPS. `max_age` 0 deletes it.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if state.ctx.config.web.https {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The page's CSRF token: the cookie's, or a new one (with the cookie to set).
pub fn csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE).filter(|t| t.len() == 43) {
        Some(token) => (token, None),
        None => {
            let token = tokens::generate();
            let set = set_cookie(state, CSRF_COOKIE, &token, None);
            (token, Some(set))
        }
    }
}

/// Whether a submitted form carries the token of its cookie.
pub fn csrf_ok(headers: &HeaderMap, submitted: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), submitted) {
        // An empty pair (an injected empty cookie and an empty field) is no token.
        (Some(cookie), Some(form)) if !cookie.is_empty() => {
            tokens::constant_time_eq(cookie.as_bytes(), form.as_bytes())
        }
        _ => false,
    }
}

/// An HTML page.
pub struct Page {
    pub status: StatusCode,
    pub body: String,
    pub cookies: Vec<HeaderValue>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                // No page may be framed (the consent page least of all: clickjacking).
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
            ],
            self.body,
        )
            .into_response();
        for cookie in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

impl AppState {
    /// Renders a page with the site-wide values every template uses.
    pub fn page(
        &self,
        status: StatusCode,
        template: &str,
        mut context: serde_json::Value,
        cookies: Vec<HeaderValue>,
    ) -> Response {
        if let Some(map) = context.as_object_mut() {
            map.insert("site_title".into(), json!(self.ctx.config.web.site_title));
            map.insert("domain".into(), json!(self.ctx.config.local_domain));
        }
        match self.templates.render(template, context) {
            Ok(body) => Page {
                status,
                body,
                cookies,
            }
            .into_response(),
            Err(error) => crate::error::ApiError::internal(error).into_response(),
        }
    }

    /// A page with a heading and a few paragraphs.
    pub fn notice(&self, status: StatusCode, heading: &str, paragraphs: &[&str]) -> Response {
        self.page(
            status,
            "notice.html",
            json!({ "heading": heading, "paragraphs": paragraphs }),
            Vec::new(),
        )
    }
}

// 1×1 grey PNGs: the default avatar and header (Mastodon clients expect an image URL).
const MISSING_PNG: &[u8] = include_bytes!("../../static/missing.png");

async fn missing_image() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        MISSING_PNG,
    )
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/avatars/original/missing.png", get(missing_image))
        .route("/headers/original/missing.png", get(missing_image))
        .merge(auth::router())
        .merge(profile::router())
        .merge(settings::router())
}
