//! Request parameters the way Mastodon takes them.
//!
//! Mastodon accepts the same parameters as JSON, as a form (`application/x-www-form-urlencoded`),
//! as `multipart/form-data`, or in the query string, with Rails' bracket nesting
//! (`source[privacy]=public`, `fields_attributes[0][name]=…`). [`Params`] turns any of these into
//! one JSON value and deserialises the handler's type from it; [`flex`] lets fields accept `"true"`
//! and `"1"` where a form can only send strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest parameter body accepted (media uploads have their own endpoint).
const MAX_BODY: usize = 1024 * 1024;

/// Parameters from the body (JSON, form or multipart) merged over those in the query string.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (params, _) = read(request, MAX_BODY as u64, false).await?;
        Ok(Params(params))
    }
}

/// A file sent in a multipart body.
#[derive(Debug, Clone)]
pub struct File {
    pub bytes: Bytes,
}

/// [`Params`] and the files of a multipart body, by field name (uploads, avatars).
#[derive(Debug)]
pub struct WithFiles<T> {
    pub params: T,
    pub files: Vec<(String, File)>,
}

impl<T> WithFiles<T> {
    /// The file sent as `name`, taken out.
    pub fn take(&mut self, name: &str) -> Option<File> {
        let at = self.files.iter().position(|(n, _)| n == name)?;
        Some(self.files.remove(at).1)
    }
}

impl<T: DeserializeOwned> FromRequest<crate::AppState> for WithFiles<T> {
    type Rejection = ApiError;

    /// The body may be as large as the largest upload the configuration allows (MAX_IMAGE_SIZE,
    /// MAX_VIDEO_SIZE) and its parameters; each type's own limit is checked once it is known.
    async fn from_request(
        request: Request,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let media = &state.ctx.config.media;
        let limit = media.image_bytes.max(media.video_bytes) + MAX_BODY as u64;
        let (params, files) = read(request, limit, true).await?;
        Ok(WithFiles { params, files })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "Request body too large",
    )
}

/// Reads the parameters (and, with `files`, the files) of a request of at most `limit` bytes.
async fn read<T: DeserializeOwned>(
    request: Request,
    limit: u64,
    keep_files: bool,
) -> Result<(T, Vec<(String, File)>), ApiError> {
    let mut files = Vec::new();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut value = pairs_to_value(query)?;
    let body_value = if content_type.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| ApiError::unprocessable("Malformed multipart body"))?;
        let stream = request.into_body().into_data_stream();
        let mut multipart = multer::Multipart::with_constraints(
            stream,
            boundary,
            multer::Constraints::new().size_limit(
                multer::SizeLimit::new()
                    .whole_stream(limit)
                    .per_field(if keep_files { limit } else { MAX_BODY as u64 }),
            ),
        );
        let malformed = |e: multer::Error| match e {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
                too_large()
            }
            _ => ApiError::unprocessable("Malformed multipart body"),
        };
        let mut pairs = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            if field.file_name().is_some() {
                // Files are not parameters; only routes that take files keep them.
                let bytes = field.bytes().await.map_err(malformed)?;
                if keep_files {
                    files.push((name, File { bytes }));
                }
                continue;
            }
            let text = field.text().await.map_err(malformed)?;
            pairs.push((name, text));
        }
        Some(pairs_to_value(pairs)?)
    } else {
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|_| too_large())?;
        parse_body(&content_type, &body)?
    };
    if let (Some(Value::Object(body)), Value::Object(map)) = (body_value, &mut value) {
        map.extend(body);
    }
    strip_nul(&mut value);
    let params = serde_json::from_value(value)
        .map_err(|e| ApiError::unprocessable(format!("Invalid parameters: {e}")))?;
    Ok((params, files))
}

/// Removes NUL characters from every string: no parameter means one, and PostgreSQL refuses
/// them in text.
fn strip_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let cleaned: Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', ""), v))
                    .collect();
                *map = cleaned;
            }
            map.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}

fn parse_body(content_type: &str, body: &Bytes) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if content_type.starts_with("application/json") {
        // Rails refuses a body that does not parse before any controller sees it: 400.
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("Error occurred while parsing request parameters: {e}"),
            )
        })?;
        return Ok(Some(value));
    }
    // Forms, and bodies without a content type, as Rails reads them.
    let pairs = url::form_urlencoded::parse(body).into_owned().collect();
    Ok(Some(pairs_to_value(pairs)?))
}

/// Nesting deeper than this is refused: no real parameter comes close, and unbounded nesting
/// would let one request exhaust the stack (Rack draws the same line).
pub const MAX_DEPTH: usize = 16;

/// More parameters than this are refused.
pub const MAX_PARAMS: usize = 1000;

/// Rails-style nesting: `a[b]=1&a[c][]=2&d=3` → `{"a": {"b": "1", "c": ["2"]}, "d": "3"}`.
pub fn pairs_to_value(pairs: Vec<(String, String)>) -> Result<Value, ApiError> {
    if pairs.len() > MAX_PARAMS {
        return Err(ApiError::unprocessable("Too many parameters"));
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        // A parameter without a name (`?=x`, `?[a]=x`) is ignored, as Rails ignores it.
        if key.is_empty() || key.starts_with('[') {
            continue;
        }
        let mut path: Vec<String> = Vec::new();
        match key.split_once('[') {
            Some((head, rest)) => {
                path.push(head.to_string());
                for part in rest.split('[') {
                    path.push(part.trim_end_matches(']').to_string());
                    if path.len() > MAX_DEPTH {
                        return Err(ApiError::unprocessable("Parameters nested too deeply"));
                    }
                }
            }
            None => path.push(key),
        }
        insert(&mut root, &path, Value::String(value));
    }
    Ok(root)
}

fn insert(node: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if first.is_empty() {
        // `a[]`: append to an array.
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(items) = node {
            if rest.is_empty() {
                items.push(value);
            } else {
                let mut child = Value::Object(Map::new());
                insert(&mut child, rest, value);
                items.push(child);
            }
        }
        return;
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        if rest.is_empty() {
            map.insert(first.clone(), value);
        } else {
            let child = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            insert(child, rest, value);
        }
    }
}

/// Deserialisers that accept what forms send (`"true"`, `"1"`, `"on"`) as well as JSON values.
pub mod flex {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn to_bool(value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_i64() != Some(0)),
            // Rails' casting, which Mastodon's parameters go through: a few words are false,
            // any other text is true.
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "false" | "0" | "off" | "f" | "no" | "" => Some(false),
                _ => Some(true),
            },
            Value::Null => None,
            _ => None,
        }
    }

    /// An optional boolean.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(v) => to_bool(&v)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("expected a boolean, got {v}"))),
        }
    }

    /// An optional boolean that is never an error: what cannot be read as one (a list, an
    /// object) counts as not given, as Rails' strong parameters drop it.
    pub fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        Ok(value.as_ref().and_then(to_bool))
    }

    /// An optional whole number.
    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected a whole number")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            // Text that is no number counts as not given (Mastodon reads it as 0 and falls back
            // to the default).
            Some(Value::String(s)) => Ok(s.trim().parse().ok()),
            Some(v) => Err(serde::de::Error::custom(format!(
                "expected a whole number, got {v}"
            ))),
        }
    }

    /// An optional id (Mastodon sends ids as strings; numbers are accepted too). An empty
    /// string is no id; anything else that is not a whole number is an error.
    pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected an id")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("expected an id, got {s:?}"))),
            Some(v) => Err(serde::de::Error::custom(format!("expected an id, got {v}"))),
        }
    }

    /// An optional text parameter: a string, or a number or boolean written out; a list or
    /// an object is dropped (as Rails' strong parameters drop them), so the validation that
    /// follows can say what is missing.
    pub fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        Ok(match value {
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        })
    }

    /// [`opt_scalar`] with nothing as the empty string.
    pub fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(opt_scalar(d)?.unwrap_or_default())
    }

    /// A list given as an array, or as one space/comma-separated string.
    pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        Ok(match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                s.split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            Some(Value::Array(items)) => Some(
                items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            Some(other) => {
                return Err(serde::de::Error::custom(format!(
                    "expected a list, got {other}"
                )));
            }
        })
    }
}

/// A path id: anything that is not a number names a record that does not exist (404).
pub fn path_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rails_nesting() {
        let deep = format!("a{}", "[".repeat(100_000));
        assert!(
            pairs_to_value(vec![(deep, "x".into())]).is_err(),
            "bounded depth"
        );
        let v = pairs_to_value(vec![
            ("display_name".into(), "Al".into()),
            ("source[privacy]".into(), "unlisted".into()),
            ("fields_attributes[0][name]".into(), "web".into()),
            ("fields_attributes[0][value]".into(), "x".into()),
            ("scopes[]".into(), "read".into()),
            ("scopes[]".into(), "write".into()),
        ])
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "display_name": "Al",
                "source": {"privacy": "unlisted"},
                "fields_attributes": {"0": {"name": "web", "value": "x"}},
                "scopes": ["read", "write"],
            })
        );
    }
}
