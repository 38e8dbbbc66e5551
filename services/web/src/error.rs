//! Errors at the HTTP boundary.
//!
//! Policy: handlers return `Result<_, ApiError>`. Expected failures (not found, not allowed,
//! invalid input, too many requests) carry Mastodon's status and body; anything unexpected
//! (a database error, a bug) is logged with its cause and answered 500 with a body that reveals
//! nothing; the log says where (`at`, the line of the `?` that raised it) and, through
//! [`Context::context`], which operation. A saturated server — the database pool refusing a request that would queue (too
//! many waiting, or a standing queue), or a wait for a connection timed out — is not a bug: it
//! answers 503 with Retry-After, so clients back off instead of piling on. Validation failures collect every problem with every field before answering, in
//! Mastodon's shape: `{"error": "Validation failed: …", "details": {"field": [{"error": "ERR_…",
//! "description": "…"}]}}`.

use std::collections::BTreeMap;
use std::panic::Location;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stampede_mastodon::{ErrorBody, FieldError, ValidationBody};

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: serde_json::json!(ErrorBody {
                error: message.into(),
                error_description: None
            }),
            retry_after: None,
        }
    }

    /// An OAuth error (`invalid_grant`, …) with its human description.
    pub fn oauth(status: StatusCode, error: &str, description: &str) -> Self {
        ApiError {
            status,
            body: serde_json::json!(ErrorBody {
                error: error.to_string(),
                error_description: Some(description.to_string()),
            }),
            retry_after: None,
        }
    }

    /// An error with a body beyond `error` (e.g. the conflicting record), which must hold an
    /// `error` string itself.
    pub fn with_body(status: StatusCode, body: serde_json::Value) -> Self {
        ApiError {
            status,
            body,
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Record not found")
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 429 with Retry-After, in whole seconds rounded up.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
        }
    }

    /// 503 with Retry-After: the server is saturated now and will not be in a moment.
    pub fn unavailable() -> Self {
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment",
            )
        }
    }

    /// Something that should not happen: logged here, with where it was raised, and answered
    /// without detail.
    #[track_caller]
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::internal_at(error.into(), Location::caller())
    }

    /// A database error raised at `at`, while doing `operation` when the caller named it.
    fn database(
        error: sqlx::Error,
        at: &'static Location<'static>,
        operation: Option<&'static str>,
    ) -> Self {
        // Text PostgreSQL cannot hold (a NUL byte in a path segment): the request's fault.
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some("22021")
        {
            return Self::unprocessable("Invalid byte sequence in the request");
        }
        // A row referred to went away between the check and the write (a status deleted while
        // someone bookmarks it): what it names no longer exists.
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some("23503")
        {
            tracing::info!(error = %db, %at, operation, "a referenced record vanished during the write");
            return Self::not_found();
        }
        let error = anyhow::Error::new(error);
        match operation {
            Some(operation) => Self::internal_at(error.context(operation), at),
            None => Self::internal_at(error, at),
        }
    }

    fn internal_at(error: anyhow::Error, at: &'static Location<'static>) -> Self {
        if error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::PoolTimedOut)
            )
        }) {
            // Counted in stampede_db_pool_timeouts_total; a line per refusal would flood the
            // log exactly when the server has the least to spare.
            tracing::debug!("database pool saturated; answered 503");
            return Self::unavailable();
        }
        if let Some(db) = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .find(|e| stampede_db::is_unavailable(e))
        {
            // PostgreSQL restarting or failing over: this request's connection broke. The
            // pools drop every connection as old as this one, and the client is told to retry.
            stampede_db::primary_outage().now();
            tracing::warn!(error = %db, %at, "database unavailable; answered 503");
            let mut unavailable = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again in a moment",
            );
            unavailable.retry_after = Some(std::time::Duration::from_secs(2));
            return unavailable;
        }
        tracing::error!(error = %format!("{error:#}"), %at, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<sqlx::Error> for ApiError {
    /// `?` on a database call: the log names the line of the `?` (`at`).
    #[track_caller]
    fn from(error: sqlx::Error) -> Self {
        Self::database(error, Location::caller(), None)
    }
}

impl From<anyhow::Error> for ApiError {
    #[track_caller]
    fn from(error: anyhow::Error) -> Self {
        Self::internal_at(error, Location::caller())
    }
}

/// Names the operation a database error interrupted, for the log; the client still gets
/// Mastodon's body for the status the error maps to.
pub trait Context<T> {
    fn context(self, operation: &'static str) -> Result<T, ApiError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    #[track_caller]
    fn context(self, operation: &'static str) -> Result<T, ApiError> {
        let at = Location::caller();
        self.map_err(|error| ApiError::database(error, at, Some(operation)))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Problems found with a request's fields, gathered before answering.
#[derive(Debug, Default)]
pub struct Validation {
    details: BTreeMap<String, Vec<FieldError>>,
}

impl Validation {
    /// Records that `field` fails with Mastodon's `code` (`ERR_TAKEN`, …).
    pub fn add(&mut self, field: &str, code: &str, description: &str) {
        self.details
            .entry(field.to_string())
            .or_default()
            .push(FieldError {
                error: code.to_string(),
                description: description.to_string(),
            });
    }

    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.details.contains_key(field)
    }

    /// `Ok` when nothing was recorded, else the 422.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// The 422 answer: `Validation failed: Username has already been taken, …`.
    pub fn into_error(self) -> ApiError {
        let summary = self.messages();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: serde_json::json!(ValidationBody {
                error: format!("Validation failed: {}", summary.join(", ")),
                details: self.details,
            }),
            retry_after: None,
        }
    }

    /// The messages, one per problem, for HTML forms.
    pub fn messages(&self) -> Vec<String> {
        self.details
            .iter()
            .flat_map(|(field, errors)| {
                let name = humanize(field);
                errors
                    .iter()
                    .map(move |e| format!("{name} {}", e.description))
            })
            .collect()
    }
}

fn humanize(field: &str) -> String {
    let spaced = field.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
