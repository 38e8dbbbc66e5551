//! Media attachments.

use serde::Serialize;

/// Mastodon's MediaAttachment entity.
#[derive(Debug, Clone, Serialize)]
pub struct MediaAttachment {
    pub id: String,
    /// `image`, `gifv`, `video`, `audio` or `unknown`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file; `null` while it is being processed.
    pub url: Option<String>,
    pub preview_url: Option<String>,
    /// Remote media: where the original lives.
    pub remote_url: Option<String>,
    pub preview_remote_url: Option<String>,
    pub text_url: Option<String>,
    /// Sizes, aspect, duration, focus: whatever is known.
    pub meta: serde_json::Value,
    /// Alt text; `null` when none was given.
    pub description: Option<String>,
    pub blurhash: Option<String>,
}
