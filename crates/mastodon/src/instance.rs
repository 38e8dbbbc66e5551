//! Server rules (the instance entities are assembled as JSON by the web service).

use serde::Serialize;

/// A rule of the server, shown at sign-up.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub text: String,
    pub hint: String,
}
