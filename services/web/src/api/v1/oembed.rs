//! `GET /api/oembed?url=`: an oEmbed description of one of this server's public statuses, so
//! other sites can embed it. The HTML is a self-contained quote of the status with a link to it
//! (no iframe, no script to load from here).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::payload::{Params, flex};

#[derive(Debug, Deserialize)]
pub struct OEmbedQuery {
    url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    maxwidth: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    maxheight: Option<u32>,
}

/// The status id in one of this server's status URLs (`/@alice/ID` or
/// `/users/alice/statuses/ID`).
fn status_id(base: &str, url: &str) -> Option<i64> {
    let path = url.strip_prefix(base)?;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [user, id] if user.starts_with('@') => id.parse().ok(),
        ["users", _, "statuses", id] => id.parse().ok(),
        _ => None,
    }
}

fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub async fn oembed(
    State(state): State<AppState>,
    Params(q): Params<OEmbedQuery>,
) -> Result<Json<Value>, ApiError> {
    let base = state.base_url();
    let id = q
        .url
        .as_deref()
        .and_then(|u| status_id(&base, u.trim()))
        .ok_or_else(ApiError::not_found)?;
    // Only what anyone may see, and only this server's own statuses.
    let status = state
        .render
        .load_status(None, id)
        .await?
        .filter(|s| matches!(s.visibility.as_str(), "public" | "unlisted"))
        .filter(|s| !s.account.acct.contains('@'))
        .ok_or_else(ApiError::not_found)?;
    let url = status.url.clone().unwrap_or_else(|| status.uri.clone());
    let handle = format!(
        "@{}@{}",
        status.account.username, state.ctx.config.local_domain
    );
    let width = q.maxwidth.unwrap_or(400).clamp(250, 1200);
    let body = if status.spoiler_text.is_empty() {
        status.content.clone()
    } else {
        format!("<p>{}</p>", escape_attribute(&status.spoiler_text))
    };
    let html = format!(
        "<blockquote class=\"mastodon-embed\" data-embed-url=\"{url}\" \
         style=\"max-width: {width}px; border: 1px solid #ccc; border-radius: 8px; padding: 1em;\">\
         {body}<p>&mdash; <a href=\"{url}\" target=\"_blank\" rel=\"noopener\">{name} ({handle})</a> \
         <time datetime=\"{at}\">{at}</time></p></blockquote>",
        url = escape_attribute(&url),
        name = escape_attribute(&status.account.display_name),
        handle = escape_attribute(&handle),
        at = escape_attribute(&status.created_at),
    );
    Ok(Json(json!({
        "type": "rich",
        "version": "1.0",
        "title": format!("New status by {}", status.account.username),
        "author_name": status.account.display_name,
        "author_url": status.account.url,
        "provider_name": state.ctx.config.local_domain,
        "provider_url": format!("{base}/"),
        "cache_age": 86_400,
        "html": html,
        "width": width,
        "height": q.maxheight,
    })))
}

#[cfg(test)]
mod tests {
    use super::status_id;

    #[test]
    fn status_urls_name_their_status() {
        let base = "https://social.example";
        assert_eq!(
            status_id(base, "https://social.example/@alice/123"),
            Some(123)
        );
        assert_eq!(
            status_id(base, "https://social.example/users/alice/statuses/9"),
            Some(9)
        );
        assert_eq!(status_id(base, "https://other.example/@alice/123"), None);
        assert_eq!(status_id(base, "https://social.example/@alice"), None);
    }
}
