//! HTTP Message Signatures (RFC 9421) as fediverse servers send them (Fedify tries it first):
//! `Signature-Input: sig1=("@method" "@target-uri" …);alg="rsa-v1_5-sha256";keyid="…";created=…`
//! and `Signature: sig1=:…:`, with `Content-Digest` (RFC 9530) over the body. Stampede verifies
//! both schemes, and signs with this one ([`sign`]) to servers that have shown they speak it by
//! signing to us with it; to everyone else with draft-cavage, which every peer accepts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use sha2::{Digest as _, Sha256};

use crate::keys;
use crate::signature::{MAX_AGE, MAX_AHEAD, SignatureError, header_value};

/// One signature of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSignature {
    /// Covered components, lower-cased, in order.
    pub components: Vec<String>,
    /// The member's value as sent (`(…);alg=…`): the `@signature-params` line signs it.
    raw_params: String,
    pub key_id: String,
    pub alg: Option<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub signature: Vec<u8>,
}

fn malformed(what: &str) -> SignatureError {
    SignatureError::Malformed(what.to_string())
}

/// A quoted string parameter (`keyid="…"`) or a bare one (`created=123`) of `params`.
fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

impl MessageSignature {
    /// The request's first RFC 9421 signature; `None` without a `Signature-Input` header.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<MessageSignature>, SignatureError> {
        let Some(input) = headers.get("signature-input") else {
            return Ok(None);
        };
        let input = input
            .to_str()
            .map_err(|_| malformed("Signature-Input is not text"))?;
        let (label, rest) = input
            .split_once('=')
            .ok_or_else(|| malformed("Signature-Input has no label"))?;
        let label = label.trim();
        let open = rest
            .find('(')
            .ok_or_else(|| malformed("no component list"))?;
        let close = rest[open..]
            .find(')')
            .map(|at| open + at)
            .ok_or_else(|| malformed("no component list"))?;
        let list = &rest[open + 1..close];
        // The member ends at the next top-level comma (another signature), if any.
        let after = &rest[close + 1..];
        let end = after.find(", ").map_or(after.len(), |i| i);
        let params = &after[..end];
        let raw_params = format!("({list}){params}");
        let mut components = Vec::new();
        for item in list.split_whitespace() {
            let name = item
                .strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .ok_or_else(|| malformed("a component with parameters is not supported"))?;
            components.push(name.to_ascii_lowercase());
        }
        let key_id = param(params, "keyid")
            .ok_or_else(|| malformed("keyid is required"))?
            .to_string();
        let signatures = headers
            .get("signature")
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::Missing)?;
        let encoded = signatures
            .split(',')
            .find_map(|m| {
                let (l, v) = m.trim().split_once('=')?;
                (l.trim() == label).then(|| v.trim().trim_matches(':').to_string())
            })
            .ok_or_else(|| malformed("no Signature for the Signature-Input's label"))?;
        Ok(Some(MessageSignature {
            components,
            key_id,
            alg: param(params, "alg").map(str::to_string),
            created: param(params, "created").and_then(|c| c.parse().ok()),
            expires: param(params, "expires").and_then(|c| c.parse().ok()),
            signature: STANDARD
                .decode(encoded)
                .map_err(|_| malformed("the signature is not base64"))?,
            raw_params,
        }))
    }

    /// The signature base for this request: `target_uri` as the client addressed it
    /// (`http://host/inbox`), `authority` its `host[:port]`.
    pub fn base(
        &self,
        method: &Method,
        target_uri: &str,
        authority: &str,
        headers: &HeaderMap,
    ) -> Result<String, SignatureError> {
        let url = url::Url::parse(target_uri).map_err(|_| malformed("target URI"))?;
        let mut lines = Vec::with_capacity(self.components.len() + 1);
        for c in &self.components {
            let value = match c.as_str() {
                "@method" => method.as_str().to_ascii_uppercase(),
                "@target-uri" => target_uri.to_string(),
                "@authority" => authority.to_ascii_lowercase(),
                "@scheme" => url.scheme().to_string(),
                "@path" => url.path().to_string(),
                "@query" => format!("?{}", url.query().unwrap_or_default()),
                "@request-target" => match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                },
                derived if derived.starts_with('@') => {
                    return Err(malformed("an unsupported derived component"));
                }
                header => header_value(headers, header)?,
            };
            lines.push(format!("\"{c}\": {value}"));
        }
        lines.push(format!("\"@signature-params\": {}", self.raw_params));
        Ok(lines.join("\n"))
    }

    /// Checks strength (the method, the target and, on a POST, the body's digest covered),
    /// time, then the RSA signature against `public_pem`.
    pub fn verify(
        &self,
        method: &Method,
        target_uri: &str,
        authority: &str,
        headers: &HeaderMap,
        public_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        match self.alg.as_deref() {
            None | Some("rsa-v1_5-sha256") => {}
            Some(other) => return Err(SignatureError::Algorithm(other.to_string())),
        }
        let covers = |c: &str| self.components.iter().any(|x| x == c);
        if !covers("@method")
            || !(covers("@target-uri") || covers("@path") || covers("@request-target"))
        {
            return Err(SignatureError::Weak(
                "the signature must cover the method and the target",
            ));
        }
        if method == Method::POST && !covers("content-digest") {
            return Err(SignatureError::Weak(
                "a POST's signature must cover Content-Digest",
            ));
        }
        let created = self
            .created
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| malformed("created is required"))?;
        if created < now - MAX_AGE || created > now + MAX_AHEAD {
            return Err(SignatureError::Stale);
        }
        if self.expires.is_some_and(|e| e < now.timestamp()) {
            return Err(SignatureError::Stale);
        }
        let base = self.base(method, target_uri, authority, headers)?;
        if keys::verify(public_pem, base.as_bytes(), &self.signature)? {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// Signs a POST of `body` to `url` as Fedify does, covering `"@method" "@target-uri"
/// "@authority" "content-digest"`: adds `Content-Digest`, `Signature-Input` and `Signature` to
/// `headers`.
pub fn sign(
    key: &keys::PrivateKey,
    key_id: &str,
    url: &url::Url,
    headers: &mut HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let value = |v: &str| {
        http::HeaderValue::from_str(v).map_err(|_| malformed("a header value is not text"))
    };
    let digest = format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)));
    headers.insert("content-digest", value(&digest)?);
    let key_id = key_id.replace('"', "%22");
    let signature = MessageSignature {
        components: ["@method", "@target-uri", "@authority", "content-digest"]
            .map(str::to_string)
            .to_vec(),
        raw_params: format!(
            "(\"@method\" \"@target-uri\" \"@authority\" \"content-digest\");alg=\"rsa-v1_5-sha256\";keyid=\"{key_id}\";created={}",
            now.timestamp()
        ),
        key_id: key_id.clone(),
        alg: Some("rsa-v1_5-sha256".into()),
        created: Some(now.timestamp()),
        expires: None,
        signature: Vec::new(),
    };
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let base = signature.base(&Method::POST, url.as_str(), &authority, headers)?;
    let signed = key.sign(base.as_bytes())?;
    headers.insert(
        "signature-input",
        value(&format!("sig1={}", signature.raw_params))?,
    );
    headers.insert(
        "signature",
        value(&format!("sig1=:{}:", STANDARD.encode(signed)))?,
    );
    Ok(())
}

/// Checks a `Content-Digest` header (`sha-256=:…:`) against `body`.
pub fn check_content_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let value = headers
        .get("content-digest")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SignatureError::MissingHeader("content-digest".into()))?;
    let expected = STANDARD.encode(Sha256::digest(body));
    let found = value.split(',').find_map(|m| {
        let (alg, v) = m.trim().split_once('=')?;
        alg.trim()
            .eq_ignore_ascii_case("sha-256")
            .then(|| v.trim().trim_matches(':').to_string())
    });
    match found {
        Some(v) if v == expected => Ok(()),
        Some(_) => Err(SignatureError::Digest),
        None => Err(malformed("Content-Digest carries no sha-256 value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{PrivateKey, generate};

    /// Signs as Fedify does: `"@method" "@target-uri" "@authority" "host" "date" "content-digest"`.
    fn signed(key: &PrivateKey, body: &[u8], created: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:3001".parse().expect("v"));
        headers.insert("date", "Sat, 05 Dec 2026 21:00:00 GMT".parse().expect("v"));
        let digest = format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)));
        headers.insert("content-digest", digest.parse().expect("v"));
        let params = format!(
            "(\"@method\" \"@target-uri\" \"@authority\" \"host\" \"date\" \"content-digest\");alg=\"rsa-v1_5-sha256\";keyid=\"http://a/users/z#main-key\";created={created}"
        );
        let base = format!(
            "\"@method\": POST\n\"@target-uri\": http://127.0.0.1:3001/inbox\n\"@authority\": 127.0.0.1:3001\n\"host\": 127.0.0.1:3001\n\"date\": Sat, 05 Dec 2026 21:00:00 GMT\n\"content-digest\": {digest}\n\"@signature-params\": {params}"
        );
        let sig = STANDARD.encode(key.sign(base.as_bytes()).expect("sign"));
        headers.insert(
            "signature-input",
            format!("sig1={params}").parse().expect("v"),
        );
        headers.insert("signature", format!("sig1=:{sig}:").parse().expect("v"));
        headers
    }

    #[test]
    fn what_we_sign_verifies_and_a_changed_body_does_not() {
        let pem = generate().expect("keygen");
        let key = PrivateKey::from_pem(&pem.private).expect("key");
        let now = Utc::now();
        let body = br#"{"type":"Like"}"#;
        let url = url::Url::parse("http://127.0.0.1:3001/users/bob/inbox").expect("url");
        let mut headers = HeaderMap::new();
        sign(
            &key,
            "http://a/users/z#main-key",
            &url,
            &mut headers,
            body,
            now,
        )
        .expect("sign");
        let sig = MessageSignature::from_headers(&headers)
            .expect("parse")
            .expect("present");
        assert_eq!(sig.key_id, "http://a/users/z#main-key");
        check_content_digest(&headers, body).expect("digest");
        let verify = |headers: &HeaderMap| {
            sig.verify(
                &Method::POST,
                url.as_str(),
                "127.0.0.1:3001",
                headers,
                &pem.public,
                now,
            )
        };
        verify(&headers).expect("verifies");
        assert_eq!(
            check_content_digest(&headers, br#"{"type":"Undo"}"#),
            Err(SignatureError::Digest)
        );
        let mut changed = headers.clone();
        changed.insert("content-digest", "sha-256=:AAAA:".parse().expect("v"));
        assert_eq!(verify(&changed), Err(SignatureError::Invalid));
    }

    /// Found by fuzzing (fuzz/signature_headers): a `)` before the first `(` sliced backwards
    /// and panicked.
    #[test]
    fn a_signature_input_closing_before_it_opens_is_malformed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "signature-input",
            "sig1)=\"@method\" (x".parse().expect("v"),
        );
        headers.insert("signature", "sig1=:AAAA:".parse().expect("v"));
        assert!(MessageSignature::from_headers(&headers).is_err());
        headers.insert(
            "signature-input",
            "sig1=\"@method\");created=1 (\"x\"".parse().expect("v"),
        );
        assert!(MessageSignature::from_headers(&headers).is_err());
    }

    #[test]
    fn a_fedify_style_signature_verifies_and_a_changed_one_does_not() {
        let pem = generate().expect("keygen");
        let key = PrivateKey::from_pem(&pem.private).expect("key");
        let now = Utc::now();
        let body = br#"{"type":"Create"}"#;
        let headers = signed(&key, body, now.timestamp());
        let sig = MessageSignature::from_headers(&headers)
            .expect("parse")
            .expect("present");
        assert_eq!(sig.key_id, "http://a/users/z#main-key");
        check_content_digest(&headers, body).expect("digest");
        let target = "http://127.0.0.1:3001/inbox";
        sig.verify(
            &Method::POST,
            target,
            "127.0.0.1:3001",
            &headers,
            &pem.public,
            now,
        )
        .expect("verifies");
        assert_eq!(
            sig.verify(
                &Method::POST,
                "http://127.0.0.1:3001/users/x/inbox",
                "127.0.0.1:3001",
                &headers,
                &pem.public,
                now
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check_content_digest(&headers, b"{}"),
            Err(SignatureError::Digest)
        );
        let old = signed(&key, body, now.timestamp() - 13 * 3600);
        let sig = MessageSignature::from_headers(&old)
            .expect("parse")
            .expect("present");
        assert_eq!(
            sig.verify(
                &Method::POST,
                target,
                "127.0.0.1:3001",
                &old,
                &pem.public,
                now
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(MessageSignature::from_headers(&HeaderMap::new()), Ok(None));
    }
}
