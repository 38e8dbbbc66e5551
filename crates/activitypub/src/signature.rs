//! HTTP Signatures as the fediverse uses them (draft-cavage-http-signatures-12, `rsa-sha256`
//! and `hs2019`), with the `Digest` header (RFC 3230, SHA-256) over request bodies.
//!
//! Verification follows Mastodon's rules: the signature must cover `date` or `(created)`, and
//! `(request-target)` or `digest`; a POST must cover `digest`, a GET `host`; the time must lie
//! between 12 hours ago and 1 hour ahead. Whatever headers a signature lists are checked, in its
//! order, so a peer's choice of extra headers is honoured.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use sha2::{Digest as _, Sha256};

use crate::keys::{self, KeyError, PrivateKey};

/// How far in the past a signature's time may lie (Mastodon's window).
pub const MAX_AGE: chrono::Duration = chrono::Duration::hours(12);
/// How far in the future (clock skew).
pub const MAX_AHEAD: chrono::Duration = chrono::Duration::hours(1);

/// Why a signed request was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("request not signed")]
    Missing,
    #[error("malformed Signature header: {0}")]
    Malformed(String),
    #[error("unsupported signature algorithm {0}")]
    Algorithm(String),
    #[error("{0}")]
    Weak(&'static str),
    #[error("signed header {0} is missing from the request")]
    MissingHeader(String),
    #[error("signed date is outside the accepted window")]
    Stale,
    #[error("Digest does not match the body")]
    Digest,
    #[error("signature does not verify")]
    Invalid,
    #[error("the signing key is unusable: {0}")]
    Key(String),
}

impl From<KeyError> for SignatureError {
    fn from(error: KeyError) -> Self {
        SignatureError::Key(error.to_string())
    }
}

/// The parts of a `Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_id: String,
    pub algorithm: Option<String>,
    /// Lower-cased, in signing order.
    pub headers: Vec<String>,
    pub signature: Vec<u8>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
}

impl Signature {
    /// Finds and parses the request's signature: the `Signature` header, or
    /// `Authorization: Signature …`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Signature, SignatureError> {
        if let Some(value) = headers.get("signature") {
            return Signature::parse(value.to_str().map_err(|_| malformed("not text"))?);
        }
        if let Some(value) = headers.get(http::header::AUTHORIZATION)
            && let Ok(text) = value.to_str()
            && let Some(rest) = text.strip_prefix("Signature ")
        {
            return Signature::parse(rest);
        }
        Err(SignatureError::Missing)
    }

    /// Parses `keyId="…",algorithm="…",headers="…",signature="…"`.
    pub fn parse(value: &str) -> Result<Signature, SignatureError> {
        let mut key_id = None;
        let mut algorithm = None;
        let mut headers = None;
        let mut signature = None;
        let mut created = None;
        let mut expires = None;
        let mut rest = value.trim();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or_else(|| malformed("a parameter has no value"))?;
            let name = rest[..eq].trim().to_ascii_lowercase();
            let after = rest[eq + 1..].trim_start();
            let (val, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| malformed("unterminated quote"))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            };
            match name.as_str() {
                "keyid" => key_id = Some(val.to_string()),
                "algorithm" => algorithm = Some(val.to_ascii_lowercase()),
                "headers" => {
                    headers = Some(
                        val.split_ascii_whitespace()
                            .map(str::to_ascii_lowercase)
                            .collect::<Vec<_>>(),
                    )
                }
                "signature" => {
                    signature = Some(
                        STANDARD
                            .decode(val)
                            .map_err(|_| malformed("signature is not base64"))?,
                    )
                }
                "created" => created = val.parse().ok(),
                "expires" => expires = val.parse().ok(),
                _ => {}
            }
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Ok(Signature {
            key_id: key_id.ok_or_else(|| malformed("keyId is required"))?,
            algorithm,
            // The draft's default is `date` alone; Mastodon then refuses it as too weak.
            headers: headers.unwrap_or_else(|| vec!["date".to_string()]),
            signature: signature.ok_or_else(|| malformed("signature is required"))?,
            created,
            expires,
        })
    }

    /// Refuses signatures that cover too little (Mastodon's rules).
    pub fn check_strength(&self, method: &Method) -> Result<(), SignatureError> {
        match self.algorithm.as_deref() {
            None | Some("rsa-sha256") | Some("hs2019") => {}
            Some(other) => return Err(SignatureError::Algorithm(other.to_string())),
        }
        let covers = |h: &str| self.headers.iter().any(|x| x == h);
        if !covers("date") && !covers("(created)") {
            return Err(SignatureError::Weak(
                "the signature must cover the Date header or (created)",
            ));
        }
        if !covers("(request-target)") && !covers("digest") {
            return Err(SignatureError::Weak(
                "the signature must cover (request-target) or the Digest header",
            ));
        }
        if method == Method::GET && !covers("host") {
            return Err(SignatureError::Weak(
                "a GET's signature must cover the Host header",
            ));
        }
        if method == Method::POST && !covers("digest") {
            return Err(SignatureError::Weak(
                "a POST's signature must cover the Digest header",
            ));
        }
        Ok(())
    }

    /// Refuses a signature whose time (`(created)` or `Date`) is outside the window, or that
    /// has expired.
    pub fn check_time(
        &self,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let signed_at = if self.headers.iter().any(|h| h == "(created)") {
            self.created
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .ok_or_else(|| malformed("(created) is signed but not given"))?
        } else {
            let date = headers
                .get(http::header::DATE)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| SignatureError::MissingHeader("date".into()))?;
            let parsed = httpdate::parse_http_date(date)
                .map_err(|_| malformed("Date is not an HTTP date"))?;
            DateTime::<Utc>::from(parsed)
        };
        if signed_at < now - MAX_AGE || signed_at > now + MAX_AHEAD {
            return Err(SignatureError::Stale);
        }
        if let Some(expires) = self.expires
            && expires < now.timestamp()
        {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }

    /// The string the signature covers, for this request.
    pub fn signing_string(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<String, SignatureError> {
        let mut lines = Vec::with_capacity(self.headers.len());
        for name in &self.headers {
            let line = match name.as_str() {
                "(request-target)" => format!(
                    "(request-target): {} {path_and_query}",
                    method.as_str().to_ascii_lowercase()
                ),
                "(created)" => format!(
                    "(created): {}",
                    self.created
                        .ok_or_else(|| malformed("(created) is not given"))?
                ),
                "(expires)" => format!(
                    "(expires): {}",
                    self.expires
                        .ok_or_else(|| malformed("(expires) is not given"))?
                ),
                header => format!("{header}: {}", header_value(headers, header)?),
            };
            lines.push(line);
        }
        Ok(lines.join("\n"))
    }

    /// Checks the signature over this request against `public_pem`: strength, time, then the
    /// RSA signature itself. The body's Digest is checked separately ([`check_digest`]).
    pub fn verify(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        public_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        self.check_strength(method)?;
        self.check_time(headers, now)?;
        let text = self.signing_string(method, path_and_query, headers)?;
        if keys::verify(public_pem, text.as_bytes(), &self.signature)? {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// A signed header's value as both schemes sign it: every field line, trimmed, joined by ", ".
pub(crate) fn header_value(headers: &HeaderMap, name: &str) -> Result<String, SignatureError> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().map(str::trim))
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("a signed header is not text"))?;
    if values.is_empty() {
        return Err(SignatureError::MissingHeader(name.to_string()));
    }
    Ok(values.join(", "))
}

fn malformed(what: &str) -> SignatureError {
    SignatureError::Malformed(what.to_string())
}

/// `SHA-256=<base64>` for `body`.
pub fn digest(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// Checks a `Digest` header against `body`: it must carry a SHA-256 value, and that must match.
pub fn check_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let value = headers
        .get("digest")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SignatureError::MissingHeader("digest".into()))?;
    let expected = STANDARD.encode(Sha256::digest(body));
    let found = value.split(',').find_map(|part| {
        let (algorithm, encoded) = part.trim().split_once('=')?;
        algorithm
            .eq_ignore_ascii_case("sha-256")
            .then(|| encoded.trim().to_string())
    });
    match found {
        Some(encoded) if encoded == expected => Ok(()),
        Some(_) => Err(SignatureError::Digest),
        None => Err(SignatureError::Malformed(
            "Digest carries no SHA-256 value".into(),
        )),
    }
}

/// Signs a request as Mastodon does: for a POST `(request-target) host date digest
/// content-type`, for a GET `(request-target) host date accept`. Adds `Host`, `Date`, `Digest`
/// (POST) and `Signature` to `headers`; the caller sets `Content-Type` / `Accept` first.
pub fn sign(
    key: &PrivateKey,
    key_id: &str,
    method: &Method,
    url: &url::Url,
    headers: &mut HeaderMap,
    body: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    insert(headers, "host", &host)?;
    insert(headers, "date", &httpdate::fmt_http_date(now.into()))?;
    let mut covered = vec!["(request-target)", "host", "date"];
    if let Some(body) = body {
        insert(headers, "digest", &digest(body))?;
        covered.push("digest");
        if headers.contains_key(http::header::CONTENT_TYPE) {
            covered.push("content-type");
        }
    } else if headers.contains_key(http::header::ACCEPT) {
        covered.push("accept");
    }
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut signature = Signature {
        key_id: key_id.to_string(),
        algorithm: Some("rsa-sha256".into()),
        headers: covered.iter().map(|h| h.to_string()).collect(),
        signature: Vec::new(),
        created: None,
        expires: None,
    };
    let text = signature.signing_string(method, &path, headers)?;
    signature.signature = key.sign(text.as_bytes())?;
    let value = format!(
        "keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{}\"",
        key_id,
        covered.join(" "),
        STANDARD.encode(&signature.signature)
    );
    insert(headers, "signature", &value)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), SignatureError> {
    let value = http::HeaderValue::from_str(value).map_err(|_| malformed("header value"))?;
    headers.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn signed_post(now: DateTime<Utc>) -> (crate::keys::KeyPem, HeaderMap, Vec<u8>) {
        let pem = generate().expect("keygen");
        let key = PrivateKey::from_pem(&pem.private).expect("key");
        let body = br#"{"type":"Follow"}"#.to_vec();
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/activity+json".parse().expect("value"),
        );
        let url = url::Url::parse("http://127.0.0.1:3001/users/alice/inbox").expect("url");
        sign(
            &key,
            "http://a/users/bob#main-key",
            &Method::POST,
            &url,
            &mut headers,
            Some(&body),
            now,
        )
        .expect("sign");
        (pem, headers, body)
    }

    #[test]
    fn a_signed_post_verifies_and_any_change_breaks_it() {
        let now = Utc::now();
        let (pem, headers, body) = signed_post(now);
        assert_eq!(headers["host"], "127.0.0.1:3001");
        let sig = Signature::from_headers(&headers).expect("parse");
        assert_eq!(sig.key_id, "http://a/users/bob#main-key");
        assert_eq!(
            sig.headers,
            ["(request-target)", "host", "date", "digest", "content-type"]
        );
        sig.verify(
            &Method::POST,
            "/users/alice/inbox",
            &headers,
            &pem.public,
            now,
        )
        .expect("verifies");
        check_digest(&headers, &body).expect("digest");
        assert_eq!(check_digest(&headers, b"{}"), Err(SignatureError::Digest));
        // Another path, another key, a changed header: refused.
        assert_eq!(
            sig.verify(&Method::POST, "/inbox", &headers, &pem.public, now),
            Err(SignatureError::Invalid)
        );
        let other = generate().expect("keygen");
        assert_eq!(
            sig.verify(
                &Method::POST,
                "/users/alice/inbox",
                &headers,
                &other.public,
                now
            ),
            Err(SignatureError::Invalid)
        );
        let mut changed = headers.clone();
        changed.insert("content-type", "text/plain".parse().expect("value"));
        assert_eq!(
            sig.verify(
                &Method::POST,
                "/users/alice/inbox",
                &changed,
                &pem.public,
                now
            ),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn stale_and_future_dates_are_refused() {
        let now = Utc::now();
        let (pem, headers, _) = signed_post(now - chrono::Duration::hours(13));
        let sig = Signature::from_headers(&headers).expect("parse");
        assert_eq!(
            sig.verify(
                &Method::POST,
                "/users/alice/inbox",
                &headers,
                &pem.public,
                now
            ),
            Err(SignatureError::Stale)
        );
        let (pem, headers, _) = signed_post(now + chrono::Duration::minutes(90));
        let sig = Signature::from_headers(&headers).expect("parse");
        assert_eq!(
            sig.verify(
                &Method::POST,
                "/users/alice/inbox",
                &headers,
                &pem.public,
                now
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn weak_and_malformed_signatures_are_refused() {
        let weak = Signature::parse(r#"keyId="k",signature="AAAA""#).expect("parse");
        assert!(matches!(
            weak.check_strength(&Method::POST),
            Err(SignatureError::Weak(_))
        ));
        let no_digest =
            Signature::parse(r#"keyId="k",headers="(request-target) host date",signature="AAAA""#)
                .expect("parse");
        assert!(no_digest.check_strength(&Method::GET).is_ok());
        assert!(no_digest.check_strength(&Method::POST).is_err());
        let algorithm = Signature::parse(
            r#"keyId="k",algorithm="hmac-sha256",headers="(request-target) host date digest",signature="AAAA""#,
        )
        .expect("parse");
        assert_eq!(
            algorithm.check_strength(&Method::POST),
            Err(SignatureError::Algorithm("hmac-sha256".into()))
        );
        assert!(Signature::parse(r#"keyId="k""#).is_err());
        assert!(Signature::parse(r#"keyId="k,signature="AAAA""#).is_err());
        assert!(Signature::parse(r#"signature="AAAA""#).is_err());
        assert_eq!(
            Signature::from_headers(&HeaderMap::new()),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn hs2019_with_created_and_authorization_header() {
        let pem = generate().expect("keygen");
        let key = PrivateKey::from_pem(&pem.private).expect("key");
        let now = Utc::now();
        let created = now.timestamp() - 10;
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.com".parse().expect("value"));
        let text =
            format!("(request-target): get /users/alice\n(created): {created}\nhost: example.com");
        let sig = STANDARD.encode(key.sign(text.as_bytes()).expect("sign"));
        headers.insert(
            http::header::AUTHORIZATION,
            format!(
                r#"Signature keyId="k",algorithm="hs2019",created={created},headers="(request-target) (created) host",signature="{sig}""#
            )
            .parse()
            .expect("value"),
        );
        let parsed = Signature::from_headers(&headers).expect("parse");
        parsed
            .verify(&Method::GET, "/users/alice", &headers, &pem.public, now)
            .expect("verifies");
    }
}
