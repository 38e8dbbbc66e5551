//! Mastodon's error bodies.

use std::collections::BTreeMap;

use serde::Serialize;

/// `{"error": "…"}`, optionally with an OAuth `error_description`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// One problem with one field: `{"error": "ERR_TAKEN", "description": "has already been taken"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub error: String,
    pub description: String,
}

/// A 422 body: `{"error": "Validation failed: …", "details": {"field": [FieldError, …]}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationBody {
    pub error: String,
    pub details: BTreeMap<String, Vec<FieldError>>,
}
