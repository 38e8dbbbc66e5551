//! Mastodon's pagination: `max_id`, `since_id`, `min_id`, `limit`, and a `Link` header with
//! `rel="next"` (older: `max_id` = the last item) and `rel="prev"` (newer: `min_id` = the first).

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stampede_social::feeds::Bounds;

/// The paging parameters of a list endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub max_id: Option<String>,
    pub since_id: Option<String>,
    pub min_id: Option<String>,
    pub limit: Option<String>,
}

fn id(value: &Option<String>) -> Option<i64> {
    value.as_deref().and_then(|v| v.trim().parse().ok())
}

impl PageQuery {
    /// The bounds asked for; `limit` defaults to `default` and is capped at `max`.
    pub fn bounds(&self, default: usize, max: usize) -> Bounds {
        let min_id = id(&self.min_id);
        let limit = self
            .limit
            .as_deref()
            .and_then(|l| l.trim().parse::<usize>().ok())
            .unwrap_or(default)
            .clamp(1, max);
        Bounds {
            max: id(&self.max_id),
            min: min_id.or(id(&self.since_id)),
            ascending: min_id.is_some(),
            limit,
        }
    }
}

/// A page of items with the `Link` header pointing around it.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub link: Option<String>,
    pub status: StatusCode,
}

impl<T> Page<T> {
    /// `items` (newest first) with links built from `uri` and the ids that bound the page
    /// (`newest`, `oldest`): the paging ids of the items, which are not always their own ids
    /// (a follower list pages by follow id).
    pub fn new(
        items: Vec<T>,
        base_url: &str,
        uri: &Uri,
        newest: Option<i64>,
        oldest: Option<i64>,
    ) -> Self {
        let link = match (newest, oldest) {
            (Some(newest), Some(oldest)) => Some(link_header(base_url, uri, newest, oldest)),
            _ => None,
        };
        Page {
            items,
            link,
            status: StatusCode::OK,
        }
    }
}

/// `<…?max_id=OLDEST>; rel="next", <…?min_id=NEWEST>; rel="prev"`, keeping the request's other
/// parameters.
pub fn link_header(base_url: &str, uri: &Uri, newest: i64, oldest: i64) -> String {
    let kept: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .filter(|(k, _)| !matches!(k.as_str(), "max_id" | "min_id" | "since_id"))
                .collect()
        })
        .unwrap_or_default();
    let href = |key: &str, value: i64| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(key, &value.to_string());
        format!("{base_url}{}?{}", uri.path(), q.finish())
    };
    format!(
        "<{}>; rel=\"next\", <{}>; rel=\"prev\"",
        href("max_id", oldest),
        href("min_id", newest)
    )
}

/// Bytes reserved per item of a page before serializing it: a timeline's status is about 1.4 KiB
/// (a home page of 20 was 28,321 bytes in `loadtest/home.sh`), an account less.
const ITEM_BYTES: usize = 2048;

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        // Serialized into one buffer sized for the page. axum's `Json` starts from 128 bytes
        // and grows by copying, eight times for a home page, through a writer that checks
        // capacity on every token (ADR 0038).
        let mut body = Vec::with_capacity(ITEM_BYTES * self.items.len() + 2);
        if let Err(error) = serde_json::to_writer(&mut body, &self.items) {
            return crate::error::ApiError::internal(error).into_response();
        }
        let json = [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        let mut response = (self.status, json, body).into_response();
        if let Some(link) = self.link
            && let Ok(value) = HeaderValue::from_str(&link)
        {
            response.headers_mut().insert(header::LINK, value);
        }
        response
    }
}

/// Puts ids fetched oldest-first (for `min_id`) back newest-first.
pub fn newest_first(mut ids: Vec<i64>, bounds: &Bounds) -> Vec<i64> {
    if bounds.ascending {
        ids.reverse();
    }
    ids
}
