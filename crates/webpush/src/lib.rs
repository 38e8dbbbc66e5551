//! Web Push crypto for Stampede: VAPID authorization (RFC 8292) and payload
//! encryption, both the standard `aes128gcm` content coding (RFC 8291 over
//! RFC 8188) and the legacy `aesgcm` coding (draft-ietf-webpush-encryption-04
//! over draft-ietf-httpbis-encryption-encoding-03) that Mastodon still uses for
//! subscriptions created without `standard: true`.
//!
//! Sending side: [`Vapid`], [`encrypt`], [`encrypt_legacy`].
//!
//! Receiving side, for tests that play the browser and the push service:
//! [`UaKeys`], [`decrypt`], [`decrypt_legacy`], [`verify_authorization`],
//! [`verify_legacy_authorization`]. ring only offers single-use ECDH private
//! keys, so a [`UaKeys`] can decrypt exactly one message.
//!
//! Every message is a single record: push services only promise to carry
//! bodies of 4096 bytes, so a notification never needs more.
//!
//! ```
//! # fn main() -> Result<(), stampede_webpush::Error> {
//! use stampede_webpush::{UaKeys, Vapid, decrypt, encrypt, verify_authorization};
//!
//! let (vapid, _pkcs8) = Vapid::generate()?;
//! let browser = UaKeys::generate()?;
//! let endpoint = "https://push.example.net/send/abc";
//!
//! // What the server sends: POST endpoint with these headers and body.
//! let authorization = vapid.authorization(endpoint, "mailto:admin@example.com", 1_700_000_000)?;
//! let body = encrypt(&browser.public, &browser.auth, b"{\"title\":\"hi\"}")?;
//!
//! // What the push service and then the browser check.
//! let verified = verify_authorization(&authorization, endpoint)?;
//! assert_eq!(verified.public_key, vapid.public_key_base64());
//! assert_eq!(verified.claims["aud"], "https://push.example.net");
//! let plaintext = decrypt(browser.private, &browser.public, &browser.auth, &body)?;
//! assert_eq!(plaintext, b"{\"title\":\"hi\"}");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::agreement::{self, EphemeralPrivateKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use ring::{aead, hkdf};
use serde_json::Value;

/// Everything that can go wrong; inputs from outside never panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value that should be base64 is not.
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    /// A key has the wrong size or is not on P-256, or a key pair does not match.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A push endpoint (or a JWT audience) is not an absolute http(s) URL.
    #[error("invalid push endpoint URL: {0}")]
    InvalidEndpoint(&'static str),
    /// The plaintext does not fit in the single record a message is made of.
    #[error("plaintext of {len} bytes does not fit in one record (at most {max})")]
    PlaintextTooLarge {
        /// The plaintext's length.
        len: usize,
        /// The most the coding can carry.
        max: usize,
    },
    /// An encrypted message is not laid out as its coding requires.
    #[error("malformed encrypted message: {0}")]
    MalformedMessage(&'static str),
    /// Authentication failed: wrong key or auth secret, or a tampered message.
    #[error("decryption failed")]
    DecryptionFailed,
    /// A VAPID header or its JWT is not laid out as RFC 8292 requires.
    #[error("malformed VAPID authorization: {0}")]
    MalformedAuthorization(&'static str),
    /// The JWT's signature does not verify with the key sent along with it.
    #[error("VAPID signature does not verify")]
    BadSignature,
    /// The JWT was made for another push service.
    #[error("VAPID audience {aud:?} does not match the endpoint's origin {origin:?}")]
    AudienceMismatch {
        /// The `aud` claim.
        aud: String,
        /// The origin of the endpoint the request went to.
        origin: String,
    },
    /// The system's random source or another primitive failed.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

/// Record size: written in every `aes128gcm` header, and the default `aesgcm`
/// assumes when (as with Mastodon) the `Encryption` header gives no `rs`.
const RECORD_SIZE: usize = 4096;
const RECORD_SIZE_U32: u32 = 4096;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
/// An uncompressed SEC 1 P-256 point: 0x04 || X || Y.
const PUBLIC_KEY_LEN: usize = 65;
const PUBLIC_KEY_LEN_U8: u8 = 65;
const AUTH_LEN: usize = 16;

/// The largest plaintext [`encrypt`] takes: one 4096-byte record holds it, the
/// 0x02 padding delimiter and the 16-byte tag.
///
/// RFC 8291 §4 only obliges push services to accept 4096-byte *bodies*, which
/// after the 86-byte header leaves 3993 bytes of plaintext; keep notifications
/// under that to be safe with every service.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE - TAG_LEN - 1;

/// The largest plaintext [`encrypt_legacy`] takes: the record is a 2-byte
/// padding length plus the plaintext, and must be shorter than the record size,
/// because a full record tells the receiver that another one follows.
pub const MAX_PLAINTEXT_LEGACY: usize = RECORD_SIZE - 2 - 1;

// ---------------------------------------------------------------------------
// VAPID (sending side)
// ---------------------------------------------------------------------------

const VAPID_ALG: &signature::EcdsaSigningAlgorithm = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;

/// The JOSE header of every VAPID token.
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// The server's VAPID key pair (ECDSA P-256), which signs a token for every push.
///
/// Its `Debug` shows only the public key.
pub struct Vapid {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

/// The VAPID headers of the pre-RFC scheme (draft-ietf-webpush-vapid-01), sent
/// with `aesgcm` messages the way Mastodon does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyVapid {
    /// The whole `Authorization` value: `WebPush <JWT>`.
    pub authorization: String,
    /// The `p256ecdsa=<key>` parameter, to join to `dh=…` with `;` in `Crypto-Key`.
    pub crypto_key: String,
}

impl Vapid {
    /// Makes a new key pair, returning it with its PKCS#8 (DER) encoding to store.
    pub fn generate() -> Result<(Self, Vec<u8>), Error> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(VAPID_ALG, &rng)
            .map_err(|_| Error::Crypto("generating a VAPID key"))?;
        let vapid = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((vapid, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key pair from PKCS#8 (DER), such as [`Vapid::generate`] returns.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(VAPID_ALG, der, &rng)
            .map_err(|_| Error::InvalidKey("not a P-256 PKCS#8 key with its public key"))?;
        Ok(Self { key, rng })
    }

    /// Loads Mastodon's `VAPID_PRIVATE_KEY` / `VAPID_PUBLIC_KEY`: base64 (url-safe
    /// or standard, padded or not) of the raw private scalar and of the 65-byte
    /// uncompressed public point. The two must belong together.
    pub fn from_base64(private_b64: &str, public_b64: &str) -> Result<Self, Error> {
        let private = decode_base64("VAPID private key", private_b64)?;
        let public = decode_base64("VAPID public key", public_b64)?;
        // Mastodon's keys come from Ruby's OpenSSL, which writes the scalar
        // without its leading zero bytes: about one key in 256 is 31 bytes
        // long. ring wants exactly 32, so pad it back.
        if private.is_empty() || private.len() > 32 {
            return Err(Error::InvalidKey(
                "VAPID private key must be a 32-byte P-256 scalar",
            ));
        }
        let mut scalar = [0u8; 32];
        scalar[32 - private.len()..].copy_from_slice(&private);
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_private_key_and_public_key(VAPID_ALG, &scalar, &public, &rng)
            .map_err(|_| Error::InvalidKey("VAPID keys are not a matching P-256 key pair"))?;
        Ok(Self { key, rng })
    }

    /// The 65-byte uncompressed public point.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The public key as the API shows it (`vapid_key`, `server_key`):
    /// base64url without padding.
    pub fn public_key_base64(&self) -> String {
        encode_base64(self.public_key())
    }

    /// The RFC 8292 `Authorization` value, `vapid t=<JWT>, k=<public key>`,
    /// for a push to `endpoint`. `subject` is a contact URI (`mailto:…` or
    /// `https://…`; Apple's service rejects anything else); `expires_unix` must
    /// be within 24 hours from now.
    pub fn authorization(
        &self,
        endpoint: &str,
        subject: &str,
        expires_unix: u64,
    ) -> Result<String, Error> {
        let jwt = self.jwt(endpoint, subject, expires_unix)?;
        Ok(format!("vapid t={jwt}, k={}", self.public_key_base64()))
    }

    /// The same token for the legacy scheme that goes with `aesgcm` messages:
    /// `Authorization: WebPush <JWT>` and `Crypto-Key: dh=…;p256ecdsa=<key>`.
    pub fn legacy_headers(
        &self,
        endpoint: &str,
        subject: &str,
        expires_unix: u64,
    ) -> Result<LegacyVapid, Error> {
        let jwt = self.jwt(endpoint, subject, expires_unix)?;
        Ok(LegacyVapid {
            authorization: format!("WebPush {jwt}"),
            crypto_key: format!("p256ecdsa={}", self.public_key_base64()),
        })
    }

    /// An ES256 JWT whose audience is the origin of `endpoint`.
    fn jwt(&self, endpoint: &str, subject: &str, expires_unix: u64) -> Result<String, Error> {
        let (aud, _) = parse_origin(endpoint)?;
        // Written in sorted key order, whether or not serde_json's
        // `preserve_order` is on: Chrome's push service has been reported to
        // reject tokens whose claims are not sorted.
        let claims = serde_json::json!({ "aud": aud, "exp": expires_unix, "sub": subject });
        let mut token = format!(
            "{}.{}",
            encode_base64(JWT_HEADER.as_bytes()),
            encode_base64(claims.to_string().as_bytes())
        );
        // ECDSA_P256_SHA256_FIXED_SIGNING gives r || s, which is JWS's ES256 form.
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| Error::Crypto("signing the VAPID token"))?;
        token.push('.');
        token.push_str(&encode_base64(sig.as_ref()));
        Ok(token)
    }
}

impl fmt::Debug for Vapid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// VAPID (push service side)
// ---------------------------------------------------------------------------

/// A VAPID token whose signature and audience checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedVapid {
    /// The JWT claims: `aud` (checked), `exp` (checked to be a non-negative
    /// integer, not against the clock) and whatever else was sent, e.g. `sub`.
    pub claims: Value,
    /// The key that signed it, base64url without padding: compare it with the
    /// server's advertised `vapid_key`.
    pub public_key: String,
}

/// Checks an RFC 8292 `Authorization: vapid t=…, k=…` value as a push service
/// would: the ES256 signature with the key `k`, and that `aud` is the origin
/// of `endpoint`. It does not compare `exp` with the clock.
pub fn verify_authorization(header: &str, endpoint: &str) -> Result<VerifiedVapid, Error> {
    let (scheme, params) = split_scheme(header)?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(Error::MalformedAuthorization("scheme is not vapid"));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = param
            .split_once('=')
            .ok_or(Error::MalformedAuthorization("parameter without a value"))?;
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "t" => &mut token,
            "k" => &mut key,
            // RFC 8292 leaves room for more parameters.
            _ => continue,
        };
        if slot.replace(unquote(value.trim())).is_some() {
            return Err(Error::MalformedAuthorization("repeated parameter"));
        }
    }
    let token = token.ok_or(Error::MalformedAuthorization("no t parameter"))?;
    let key = key.ok_or(Error::MalformedAuthorization("no k parameter"))?;
    verify_jwt(token, &decode_base64("VAPID key", key)?, endpoint)
}

/// Checks the legacy scheme: `Authorization: WebPush <JWT>` with the key in the
/// `p256ecdsa` parameter of `Crypto-Key`; otherwise as [`verify_authorization`].
pub fn verify_legacy_authorization(
    authorization: &str,
    crypto_key: &str,
    endpoint: &str,
) -> Result<VerifiedVapid, Error> {
    let (scheme, token) = split_scheme(authorization)?;
    if !scheme.eq_ignore_ascii_case("webpush") {
        return Err(Error::MalformedAuthorization("scheme is not WebPush"));
    }
    // Crypto-Key holds comma-separated entries of `;`-separated parameters.
    let key = crypto_key
        .split([',', ';'])
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("p256ecdsa"))
        .map(|(_, value)| unquote(value.trim()))
        .ok_or(Error::MalformedAuthorization("Crypto-Key has no p256ecdsa"))?;
    verify_jwt(token, &decode_base64("VAPID key", key)?, endpoint)
}

fn verify_jwt(token: &str, key: &[u8], endpoint: &str) -> Result<VerifiedVapid, Error> {
    if key.len() != PUBLIC_KEY_LEN {
        return Err(Error::InvalidKey(
            "VAPID key must be a 65-byte uncompressed P-256 point",
        ));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::MalformedAuthorization(
            "JWT does not have three parts",
        ));
    };
    let header: Value = serde_json::from_slice(&decode_jwt_part(header_b64)?)
        .map_err(|_| Error::MalformedAuthorization("JWT header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(Error::MalformedAuthorization("JWT alg is not ES256"));
    }
    // The signature covers the first two parts exactly as sent.
    let signed = token.get(..header_b64.len() + 1 + claims_b64.len()).ok_or(
        Error::MalformedAuthorization("JWT does not have three parts"),
    )?;
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key)
        .verify(signed.as_bytes(), &decode_jwt_part(sig_b64)?)
        .map_err(|_| Error::BadSignature)?;

    let claims: Value = serde_json::from_slice(&decode_jwt_part(claims_b64)?)
        .map_err(|_| Error::MalformedAuthorization("JWT claims are not JSON"))?;
    let aud = claims
        .get("aud")
        .and_then(Value::as_str)
        .ok_or(Error::MalformedAuthorization("no aud claim"))?;
    if claims.get("exp").and_then(Value::as_u64).is_none() {
        return Err(Error::MalformedAuthorization(
            "exp claim is not a non-negative integer",
        ));
    }
    let (origin, _) = parse_origin(endpoint)?;
    // Compare parsed origins, so case and an explicit default port don't
    // matter; but an audience with a path is not an origin at all.
    match parse_origin(aud) {
        Ok((aud_origin, "")) if aud_origin == origin => {}
        _ => {
            return Err(Error::AudienceMismatch {
                aud: aud.to_owned(),
                origin,
            });
        }
    }
    Ok(VerifiedVapid {
        claims,
        public_key: encode_base64(key),
    })
}

/// Splits `Scheme rest` at the first space or tab.
fn split_scheme(header: &str) -> Result<(&str, &str), Error> {
    header
        .trim()
        .split_once([' ', '\t'])
        .map(|(scheme, rest)| (scheme, rest.trim()))
        .ok_or(Error::MalformedAuthorization("no scheme and credentials"))
}

/// Auth parameters may be quoted-strings; base64url never needs escapes.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// JWS parts are base64url without padding, and nothing else.
fn decode_jwt_part(part: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::MalformedAuthorization("JWT part is not base64url"))
}

/// Splits an http(s) URL into its ASCII-serialized origin (RFC 6454: lowercase
/// scheme and host, default port left out) and whatever follows the authority.
///
/// Deliberately narrower than a general URL parser: push endpoints are plain
/// `https://host[:port]/path` URLs, so anything odd (user info, bad ports,
/// stray characters in the host) is refused rather than guessed at.
fn parse_origin(url: &str) -> Result<(String, &str), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or(Error::InvalidEndpoint("not an absolute URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(Error::InvalidEndpoint("scheme is not http or https")),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(Error::InvalidEndpoint("user info is not allowed"));
    }

    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, after) = bracketed
            .split_once(']')
            .ok_or(Error::InvalidEndpoint("unterminated IPv6 address"))?;
        if literal.is_empty()
            || !literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(Error::InvalidEndpoint("bad IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(Error::InvalidEndpoint("junk after IPv6 address"))?,
            ),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(Error::InvalidEndpoint("bad host"));
        }
        (host.to_ascii_lowercase(), port)
    };

    // An empty port ("host:") means the default, as in WHATWG URL parsing.
    let port = match port {
        None | Some("") => default_port,
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => port
            .parse::<u16>()
            .map_err(|_| Error::InvalidEndpoint("port out of range"))?,
        Some(_) => return Err(Error::InvalidEndpoint("bad port")),
    };
    let origin = if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    Ok((origin, tail))
}

// ---------------------------------------------------------------------------
// Message encryption
// ---------------------------------------------------------------------------

/// Encrypts `plaintext` for a subscription with the standard `aes128gcm`
/// content coding (RFC 8291): the returned body carries its own salt and the
/// sender's ephemeral key, so the request needs only `Content-Encoding:
/// aes128gcm`. `ua_public` and `auth_secret` are the subscription's decoded
/// `p256dh` (65 bytes) and `auth` (16 bytes).
pub fn encrypt(ua_public: &[u8], auth_secret: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    check_ua_keys(ua_public, auth_secret)?;
    check_size(plaintext.len(), MAX_PLAINTEXT)?;
    let rng = SystemRandom::new();
    let (as_public, ecdh_secret) = agree_with_new_key(&rng, ua_public)?;
    let salt = random_salt(&rng)?;
    seal_aes128gcm(
        &ecdh_secret,
        auth_secret,
        ua_public,
        &as_public,
        &salt,
        plaintext,
    )
}

/// A message in the legacy `aesgcm` coding. Send `body` with the headers
/// `Content-Encoding: aesgcm`, `Encryption: salt=<salt_b64>` and
/// `Crypto-Key: dh=<dh_b64>;p256ecdsa=<VAPID key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    /// The single encrypted record.
    pub body: Vec<u8>,
    /// The salt, base64url without padding.
    pub salt_b64: String,
    /// The sender's ephemeral public key, base64url without padding.
    pub dh_b64: String,
}

/// Encrypts `plaintext` with the legacy `aesgcm` coding
/// (draft-ietf-webpush-encryption-04), which Mastodon uses for subscriptions
/// created without `standard: true`. Arguments as for [`encrypt`].
pub fn encrypt_legacy(
    ua_public: &[u8],
    auth_secret: &[u8],
    plaintext: &[u8],
) -> Result<Legacy, Error> {
    check_ua_keys(ua_public, auth_secret)?;
    check_size(plaintext.len(), MAX_PLAINTEXT_LEGACY)?;
    let rng = SystemRandom::new();
    let (as_public, ecdh_secret) = agree_with_new_key(&rng, ua_public)?;
    let salt = random_salt(&rng)?;
    let body = seal_aesgcm(
        &ecdh_secret,
        auth_secret,
        ua_public,
        &as_public,
        &salt,
        plaintext,
    )?;
    Ok(Legacy {
        body,
        salt_b64: encode_base64(&salt),
        dh_b64: encode_base64(&as_public),
    })
}

/// A browser's subscription keys, for tests that play the user agent: send
/// [`UaKeys::p256dh_base64`] and [`UaKeys::auth_base64`] as the subscription's
/// `keys`, then [`decrypt`] what arrives. The private key is single-use (ring
/// has no other kind), so these decrypt one message.
pub struct UaKeys {
    /// The private key, consumed by [`decrypt`] or [`decrypt_legacy`].
    pub private: EphemeralPrivateKey,
    /// The 65-byte uncompressed public point (`p256dh`).
    pub public: Vec<u8>,
    /// The authentication secret (`auth`).
    pub auth: [u8; AUTH_LEN],
}

impl UaKeys {
    /// Makes a fresh key pair and auth secret.
    pub fn generate() -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let private = EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
            .map_err(|_| Error::Crypto("generating an ECDH key"))?;
        let public = private
            .compute_public_key()
            .map_err(|_| Error::Crypto("computing an ECDH public key"))?
            .as_ref()
            .to_vec();
        let mut auth = [0u8; AUTH_LEN];
        rng.fill(&mut auth)
            .map_err(|_| Error::Crypto("the system random source failed"))?;
        Ok(Self {
            private,
            public,
            auth,
        })
    }

    /// `keys.p256dh` as a browser sends it: base64url without padding.
    pub fn p256dh_base64(&self) -> String {
        encode_base64(&self.public)
    }

    /// `keys.auth` as a browser sends it: base64url without padding.
    pub fn auth_base64(&self) -> String {
        encode_base64(&self.auth)
    }
}

impl fmt::Debug for UaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaKeys")
            .field("public", &self.p256dh_base64())
            .finish_non_exhaustive()
    }
}

/// Decrypts an `aes128gcm` body as the browser would. `ua_public` must be the
/// public half of `ua_private`. Only single-record messages (all that
/// [`encrypt`] and real senders produce for push) are accepted.
pub fn decrypt(
    ua_private: EphemeralPrivateKey,
    ua_public: &[u8],
    auth_secret: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    check_ua_keys(ua_public, auth_secret)?;
    check_key_pair(&ua_private, ua_public)?;
    let message = parse_aes128gcm(body)?;
    let ecdh_secret = agree(ua_private, message.as_public)?;
    open_aes128gcm(&ecdh_secret, auth_secret, ua_public, &message)
}

/// Decrypts an `aesgcm` body as the browser would, given the `salt` of the
/// `Encryption` header and the `dh` of `Crypto-Key` (base64, any variant).
pub fn decrypt_legacy(
    ua_private: EphemeralPrivateKey,
    ua_public: &[u8],
    auth_secret: &[u8],
    salt_b64: &str,
    dh_b64: &str,
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    check_ua_keys(ua_public, auth_secret)?;
    check_key_pair(&ua_private, ua_public)?;
    let salt: [u8; SALT_LEN] = decode_base64("salt", salt_b64)?
        .try_into()
        .map_err(|_| Error::MalformedMessage("salt is not 16 bytes"))?;
    let as_public = decode_base64("dh", dh_b64)?;
    check_point(&as_public, "dh must be a 65-byte uncompressed P-256 point")?;
    let ecdh_secret = agree(ua_private, &as_public)?;
    open_aesgcm(
        &ecdh_secret,
        auth_secret,
        ua_public,
        &as_public,
        &salt,
        body,
    )
}

/// The key and nonce of the one record; with sequence number 0 the nonce is
/// used exactly as derived.
struct RecordKeys {
    cek: [u8; 16],
    nonce: [u8; 12],
}

/// RFC 8291 §3.3–3.4 feeding RFC 8188 §2.2–2.3.
fn aes128gcm_keys(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<RecordKeys, Error> {
    let prk_key = hkdf_extract(auth_secret, ecdh_secret);
    let ikm: [u8; 32] = hkdf_expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public])?;
    let prk = hkdf_extract(salt, &ikm);
    Ok(RecordKeys {
        cek: hkdf_expand(&prk, &[b"Content-Encoding: aes128gcm\0"])?,
        nonce: hkdf_expand(&prk, &[b"Content-Encoding: nonce\0"])?,
    })
}

/// draft-ietf-webpush-encryption-04 §3 feeding
/// draft-ietf-httpbis-encryption-encoding-03 §3.
fn aesgcm_keys(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<RecordKeys, Error> {
    let prk_auth = hkdf_extract(auth_secret, ecdh_secret);
    let ikm: [u8; 32] = hkdf_expand(&prk_auth, &[b"Content-Encoding: auth\0"])?;
    let prk = hkdf_extract(salt, &ikm);
    // Both infos end with a context binding the two keys, receiver first,
    // each length-prefixed: "P-256\0" || len || ua_public || len || as_public.
    let ua_len = length_prefix(ua_public)?;
    let as_len = length_prefix(as_public)?;
    Ok(RecordKeys {
        cek: hkdf_expand(
            &prk,
            &[
                b"Content-Encoding: aesgcm\0",
                b"P-256\0",
                &ua_len,
                ua_public,
                &as_len,
                as_public,
            ],
        )?,
        nonce: hkdf_expand(
            &prk,
            &[
                b"Content-Encoding: nonce\0",
                b"P-256\0",
                &ua_len,
                ua_public,
                &as_len,
                as_public,
            ],
        )?,
    })
}

/// The deterministic part of [`encrypt`], apart so that RFC 8291's test vector,
/// which fixes the ECDH secret and the salt, can check it.
fn seal_aes128gcm(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8; SALT_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let keys = aes128gcm_keys(ecdh_secret, auth_secret, ua_public, as_public, salt)?;
    // The last (here, only) record ends with the delimiter 0x02. More zero
    // padding would hide the length, but Mastodon adds none and push services
    // see the length of the body anyway.
    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let record = seal(&keys, record)?;

    let mut body = Vec::with_capacity(SALT_LEN + 4 + 1 + as_public.len() + record.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE_U32.to_be_bytes());
    body.push(PUBLIC_KEY_LEN_U8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The deterministic part of [`encrypt_legacy`].
fn seal_aesgcm(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8; SALT_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let keys = aesgcm_keys(ecdh_secret, auth_secret, ua_public, as_public, salt)?;
    // A record opens with a 2-byte padding length; we pad with nothing.
    let mut record = Vec::with_capacity(2 + plaintext.len() + TAG_LEN);
    record.extend_from_slice(&[0, 0]);
    record.extend_from_slice(plaintext);
    seal(&keys, record)
}

/// The fields of an `aes128gcm` body (RFC 8188 §2.1).
struct Aes128gcmMessage<'a> {
    salt: &'a [u8; SALT_LEN],
    as_public: &'a [u8],
    record: &'a [u8],
}

fn parse_aes128gcm(body: &[u8]) -> Result<Aes128gcmMessage<'_>, Error> {
    const SHORT: Error = Error::MalformedMessage("shorter than its header");
    let (salt, rest) = body.split_first_chunk::<SALT_LEN>().ok_or(SHORT)?;
    let (rs, rest) = rest.split_first_chunk::<4>().ok_or(SHORT)?;
    let (&idlen, rest) = rest.split_first().ok_or(SHORT)?;
    // Web Push puts the sender's public key in the key id (RFC 8291 §4).
    if usize::from(idlen) != PUBLIC_KEY_LEN {
        return Err(Error::MalformedMessage("key id is not a P-256 public key"));
    }
    if rest.len() < PUBLIC_KEY_LEN {
        return Err(SHORT);
    }
    let (as_public, record) = rest.split_at(PUBLIC_KEY_LEN);
    let rs = u32::from_be_bytes(*rs);
    if rs < 18 {
        return Err(Error::MalformedMessage("record size below 18"));
    }
    if record.len() < 1 + TAG_LEN {
        return Err(Error::MalformedMessage("record too short"));
    }
    // Widening u32 to u64 is lossless everywhere, unlike u32 to usize.
    if record.len() as u64 > u64::from(rs) {
        return Err(Error::MalformedMessage("more than one record"));
    }
    Ok(Aes128gcmMessage {
        salt,
        as_public,
        record,
    })
}

fn open_aes128gcm(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    message: &Aes128gcmMessage<'_>,
) -> Result<Vec<u8>, Error> {
    let keys = aes128gcm_keys(
        ecdh_secret,
        auth_secret,
        ua_public,
        message.as_public,
        message.salt,
    )?;
    let mut record = open(&keys, message.record)?;
    // Padding is zeros after the delimiter; a last record's delimiter is 0x02.
    let delimiter = record
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(Error::MalformedMessage("no padding delimiter"))?;
    if record[delimiter] != 0x02 {
        return Err(Error::MalformedMessage(
            "the only record is not marked last",
        ));
    }
    record.truncate(delimiter);
    Ok(record)
}

fn open_aesgcm(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8; SALT_LEN],
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    if body.len() < 2 + TAG_LEN {
        return Err(Error::MalformedMessage("record too short"));
    }
    // A record that fills the record size promises another one after it.
    if body.len() >= RECORD_SIZE + TAG_LEN {
        return Err(Error::MalformedMessage("more than one record"));
    }
    let keys = aesgcm_keys(ecdh_secret, auth_secret, ua_public, as_public, salt)?;
    let record = open(&keys, body)?;
    let (pad_len, rest) = record
        .split_first_chunk::<2>()
        .ok_or(Error::MalformedMessage("record too short"))?;
    let pad_len = usize::from(u16::from_be_bytes(*pad_len));
    if pad_len > rest.len() {
        return Err(Error::MalformedMessage("padding longer than the record"));
    }
    let (padding, plaintext) = rest.split_at(pad_len);
    if padding.iter().any(|&b| b != 0) {
        return Err(Error::MalformedMessage("padding is not zeros"));
    }
    Ok(plaintext.to_vec())
}

fn seal(keys: &RecordKeys, mut record: Vec<u8>) -> Result<Vec<u8>, Error> {
    // The key comes from a fresh ECDH key and salt, so its one nonce is unique.
    aead_key(&keys.cek)?
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(keys.nonce),
            aead::Aad::empty(),
            &mut record,
        )
        .map_err(|_| Error::Crypto("AES-GCM encryption"))?;
    Ok(record)
}

fn open(keys: &RecordKeys, ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buffer = ciphertext.to_vec();
    let len = aead_key(&keys.cek)?
        .open_in_place(
            aead::Nonce::assume_unique_for_key(keys.nonce),
            aead::Aad::empty(),
            &mut buffer,
        )
        .map_err(|_| Error::DecryptionFailed)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

fn aead_key(cek: &[u8; 16]) -> Result<aead::LessSafeKey, Error> {
    aead::UnboundKey::new(&aead::AES_128_GCM, cek)
        .map(aead::LessSafeKey::new)
        .map_err(|_| Error::Crypto("AES-128-GCM key"))
}

/// ring's HKDF wants the output length as a type.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> hkdf::Prk {
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm)
}

fn hkdf_expand<const N: usize>(prk: &hkdf::Prk, info: &[&[u8]]) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    prk.expand(info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| Error::Crypto("HKDF expand"))?;
    Ok(out)
}

fn length_prefix(key: &[u8]) -> Result<[u8; 2], Error> {
    u16::try_from(key.len())
        .map(u16::to_be_bytes)
        .map_err(|_| Error::InvalidKey("key too long"))
}

/// A fresh sender key, agreed with the receiver: (its public key, the secret).
fn agree_with_new_key(rng: &SystemRandom, ua_public: &[u8]) -> Result<(Vec<u8>, [u8; 32]), Error> {
    let private = EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng)
        .map_err(|_| Error::Crypto("generating an ECDH key"))?;
    let public = private
        .compute_public_key()
        .map_err(|_| Error::Crypto("computing an ECDH public key"))?
        .as_ref()
        .to_vec();
    Ok((public, agree(private, ua_public)?))
}

/// ECDH; ring checks that the peer's point is on the curve.
fn agree(private: EphemeralPrivateKey, peer_public: &[u8]) -> Result<[u8; 32], Error> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer_public);
    agreement::agree_ephemeral(private, &peer, |secret: &[u8]| <[u8; 32]>::try_from(secret))
        .map_err(|_| Error::InvalidKey("public key is not a point on P-256"))?
        .map_err(|_| Error::Crypto("ECDH secret is not 32 bytes"))
}

fn random_salt(rng: &SystemRandom) -> Result<[u8; SALT_LEN], Error> {
    let mut salt = [0u8; SALT_LEN];
    rng.fill(&mut salt)
        .map_err(|_| Error::Crypto("the system random source failed"))?;
    Ok(salt)
}

fn check_point(key: &[u8], problem: &'static str) -> Result<(), Error> {
    if key.len() == PUBLIC_KEY_LEN && key.first() == Some(&0x04) {
        Ok(())
    } else {
        Err(Error::InvalidKey(problem))
    }
}

fn check_ua_keys(ua_public: &[u8], auth_secret: &[u8]) -> Result<(), Error> {
    check_point(
        ua_public,
        "p256dh must be a 65-byte uncompressed P-256 point",
    )?;
    if auth_secret.len() != AUTH_LEN {
        return Err(Error::InvalidKey("auth secret must be 16 bytes"));
    }
    Ok(())
}

/// A mismatch would otherwise surface as a baffling decryption failure.
fn check_key_pair(private: &EphemeralPrivateKey, public: &[u8]) -> Result<(), Error> {
    let computed = private
        .compute_public_key()
        .map_err(|_| Error::Crypto("computing an ECDH public key"))?;
    if computed.as_ref() == public {
        Ok(())
    } else {
        Err(Error::InvalidKey(
            "the public key does not belong to the private key",
        ))
    }
}

fn check_size(len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        Err(Error::PlaintextTooLarge { len, max })
    } else {
        Ok(())
    }
}

/// A subscription's key (`p256dh` or `auth`) as clients send it, in any base64 flavour.
pub fn decode_key(text: &str) -> Result<Vec<u8>, Error> {
    decode_base64("subscription key", text)
}

fn encode_base64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Keys arrive in every base64 flavour: browsers send unpadded base64url,
/// Mastodon's Ruby tooling writes padded base64url, and some clients use the
/// standard alphabet. All mean the same bytes.
fn decode_base64(what: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    let normalized: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD
        .decode(normalized)
        .map_err(|_| Error::Base64(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8291 Appendix A. ring cannot import a fixed ECDH private key, so the
    // vector is checked from the ECDH secret on (computed from the RFC's keys
    // with Python's `cryptography`; the RFC's own intermediate values agree).
    const RFC_PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const RFC_AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const RFC_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const RFC_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const RFC_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const RFC_ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const RFC_CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const RFC_NONCE: &str = "4h_95klXJ5E_qnoN";
    const RFC_BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    /// The same inputs in the `aesgcm` coding, as Python's http_ece 1.2.1 encrypts them.
    const HTTP_ECE_AESGCM_BODY: &str =
        "4qwOLFm_mNy0vf1A8f3Bm6B5UD15y3aV_xZy14pixUhcPTIoZKHzq5i3dZ6PzqSMxBI_-VDUZ4jW04M";

    const ENDPOINT: &str = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk?x=1#frag";
    const ENDPOINT_ORIGIN: &str = "https://updates.push.services.mozilla.com";
    const SUBJECT: &str = "mailto:admin@example.com";
    const EXP: u64 = 1_700_000_000;

    fn b64(s: &str) -> Vec<u8> {
        decode_base64("test", s).unwrap()
    }

    fn rfc_salt() -> [u8; SALT_LEN] {
        b64(RFC_SALT).try_into().unwrap()
    }

    #[test]
    fn rfc8291_vector_key_derivation() {
        let keys = aes128gcm_keys(
            &b64(RFC_ECDH_SECRET),
            &b64(RFC_AUTH),
            &b64(RFC_UA_PUBLIC),
            &b64(RFC_AS_PUBLIC),
            &rfc_salt(),
        )
        .unwrap();
        assert_eq!(encode_base64(&keys.cek), RFC_CEK);
        assert_eq!(encode_base64(&keys.nonce), RFC_NONCE);
    }

    #[test]
    fn rfc8291_vector_encrypts_byte_for_byte() {
        let body = seal_aes128gcm(
            &b64(RFC_ECDH_SECRET),
            &b64(RFC_AUTH),
            &b64(RFC_UA_PUBLIC),
            &b64(RFC_AS_PUBLIC),
            &rfc_salt(),
            RFC_PLAINTEXT,
        )
        .unwrap();
        assert_eq!(encode_base64(&body), RFC_BODY);
    }

    #[test]
    fn rfc8291_vector_decrypts() {
        let body = b64(RFC_BODY);
        let message = parse_aes128gcm(&body).unwrap();
        assert_eq!(message.as_public, b64(RFC_AS_PUBLIC).as_slice());
        assert_eq!(message.salt, &rfc_salt());
        let plaintext = open_aes128gcm(
            &b64(RFC_ECDH_SECRET),
            &b64(RFC_AUTH),
            &b64(RFC_UA_PUBLIC),
            &message,
        )
        .unwrap();
        assert_eq!(plaintext, RFC_PLAINTEXT);
    }

    #[test]
    fn aesgcm_matches_http_ece() {
        let (secret, auth, ua, sender) = (
            b64(RFC_ECDH_SECRET),
            b64(RFC_AUTH),
            b64(RFC_UA_PUBLIC),
            b64(RFC_AS_PUBLIC),
        );
        let body = seal_aesgcm(&secret, &auth, &ua, &sender, &rfc_salt(), RFC_PLAINTEXT).unwrap();
        assert_eq!(encode_base64(&body), HTTP_ECE_AESGCM_BODY);
        let plaintext = open_aesgcm(&secret, &auth, &ua, &sender, &rfc_salt(), &body).unwrap();
        assert_eq!(plaintext, RFC_PLAINTEXT);
    }

    #[test]
    fn aes128gcm_round_trip() {
        for len in [0, 1, 41, 1000, MAX_PLAINTEXT] {
            let ua = UaKeys::generate().unwrap();
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let body = encrypt(&ua.public, &ua.auth, &plaintext).unwrap();
            // salt || rs || idlen || key, then plaintext || 0x02 || tag.
            assert_eq!(body.len(), 86 + len + 1 + TAG_LEN);
            assert_eq!(&body[16..20], &4096u32.to_be_bytes());
            assert_eq!(body[20], 65);
            assert_eq!(body[21], 0x04);
            assert_eq!(
                decrypt(ua.private, &ua.public, &ua.auth, &body).unwrap(),
                plaintext
            );
        }
    }

    #[test]
    fn aesgcm_round_trip() {
        for len in [0, 1, 41, 1000, MAX_PLAINTEXT_LEGACY] {
            let ua = UaKeys::generate().unwrap();
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let msg = encrypt_legacy(&ua.public, &ua.auth, &plaintext).unwrap();
            assert_eq!(msg.body.len(), 2 + len + TAG_LEN);
            assert_eq!(b64(&msg.salt_b64).len(), 16);
            assert_eq!(b64(&msg.dh_b64).len(), 65);
            let out = decrypt_legacy(
                ua.private,
                &ua.public,
                &ua.auth,
                &msg.salt_b64,
                &msg.dh_b64,
                &msg.body,
            )
            .unwrap();
            assert_eq!(out, plaintext);
        }
    }

    #[test]
    fn each_message_gets_a_fresh_key_and_salt() {
        let ua = UaKeys::generate().unwrap();
        let a = encrypt(&ua.public, &ua.auth, b"same").unwrap();
        let b = encrypt(&ua.public, &ua.auth, b"same").unwrap();
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a[21..86], b[21..86]);
    }

    #[test]
    fn plaintext_too_large_is_refused() {
        let ua = UaKeys::generate().unwrap();
        let big = vec![0u8; MAX_PLAINTEXT + 1];
        assert!(matches!(
            encrypt(&ua.public, &ua.auth, &big),
            Err(Error::PlaintextTooLarge {
                len: 4080,
                max: 4079
            })
        ));
        let big = vec![0u8; MAX_PLAINTEXT_LEGACY + 1];
        assert!(matches!(
            encrypt_legacy(&ua.public, &ua.auth, &big),
            Err(Error::PlaintextTooLarge {
                len: 4094,
                max: 4093
            })
        ));
    }

    #[test]
    fn wrong_auth_secret_fails() {
        let ua = UaKeys::generate().unwrap();
        let body = encrypt(&ua.public, &ua.auth, b"hello").unwrap();
        let wrong = [7u8; 16];
        assert!(matches!(
            decrypt(ua.private, &ua.public, &wrong, &body),
            Err(Error::DecryptionFailed)
        ));

        let ua = UaKeys::generate().unwrap();
        let msg = encrypt_legacy(&ua.public, &ua.auth, b"hello").unwrap();
        assert!(matches!(
            decrypt_legacy(
                ua.private,
                &ua.public,
                &wrong,
                &msg.salt_b64,
                &msg.dh_b64,
                &msg.body
            ),
            Err(Error::DecryptionFailed)
        ));
    }

    #[test]
    fn another_subscriptions_key_fails() {
        let ua = UaKeys::generate().unwrap();
        let other = UaKeys::generate().unwrap();
        let body = encrypt(&ua.public, &ua.auth, b"hello").unwrap();
        assert!(matches!(
            decrypt(other.private, &other.public, &ua.auth, &body),
            Err(Error::DecryptionFailed)
        ));
    }

    #[test]
    fn mismatched_ua_key_pair_is_refused() {
        let ua = UaKeys::generate().unwrap();
        let other = UaKeys::generate().unwrap();
        let body = encrypt(&ua.public, &ua.auth, b"hello").unwrap();
        assert!(matches!(
            decrypt(other.private, &ua.public, &ua.auth, &body),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn tampered_aes128gcm_body_fails() {
        let plain = b"hello";
        // Every byte of the salt, the record and the tag is authenticated.
        for index in [0, 15, 86, 86 + 5, 86 + 5 + 16] {
            let ua = UaKeys::generate().unwrap();
            let mut body = encrypt(&ua.public, &ua.auth, plain).unwrap();
            body[index] ^= 0x01;
            assert!(
                matches!(
                    decrypt(ua.private, &ua.public, &ua.auth, &body),
                    Err(Error::DecryptionFailed)
                ),
                "byte {index}"
            );
        }
        // A different sender key: off the curve, or the wrong key.
        let ua = UaKeys::generate().unwrap();
        let mut body = encrypt(&ua.public, &ua.auth, plain).unwrap();
        body[60] ^= 0x01;
        assert!(decrypt(ua.private, &ua.public, &ua.auth, &body).is_err());
        // A truncated body.
        let ua = UaKeys::generate().unwrap();
        let body = encrypt(&ua.public, &ua.auth, plain).unwrap();
        assert!(decrypt(ua.private, &ua.public, &ua.auth, &body[..body.len() - 1]).is_err());
    }

    #[test]
    fn tampered_aesgcm_body_fails() {
        for index in [0, 3, 2 + 5 + 15] {
            let ua = UaKeys::generate().unwrap();
            let mut msg = encrypt_legacy(&ua.public, &ua.auth, b"hello").unwrap();
            msg.body[index] ^= 0x80;
            let result = decrypt_legacy(
                ua.private,
                &ua.public,
                &ua.auth,
                &msg.salt_b64,
                &msg.dh_b64,
                &msg.body,
            );
            assert!(
                matches!(result, Err(Error::DecryptionFailed)),
                "byte {index}"
            );
        }
        // The salt travels in a header but still feeds the key.
        let ua = UaKeys::generate().unwrap();
        let msg = encrypt_legacy(&ua.public, &ua.auth, b"hello").unwrap();
        let mut salt = b64(&msg.salt_b64);
        salt[0] ^= 1;
        let result = decrypt_legacy(
            ua.private,
            &ua.public,
            &ua.auth,
            &encode_base64(&salt),
            &msg.dh_b64,
            &msg.body,
        );
        assert!(matches!(result, Err(Error::DecryptionFailed)));
    }

    #[test]
    fn malformed_aes128gcm_bodies_are_refused() {
        let ua = UaKeys::generate().unwrap();
        let body = encrypt(&ua.public, &ua.auth, b"hello").unwrap();
        for len in [0, 10, 20, 21, 85, 86, 86 + 16] {
            assert!(
                matches!(
                    parse_aes128gcm(&body[..len]),
                    Err(Error::MalformedMessage(_))
                ),
                "length {len}"
            );
        }
        let mut other_idlen = body.clone();
        other_idlen[20] = 64;
        assert!(matches!(
            parse_aes128gcm(&other_idlen),
            Err(Error::MalformedMessage(_))
        ));
        // A record longer than rs means several records, which we don't do.
        let mut small_rs = body.clone();
        small_rs[16..20].copy_from_slice(&18u32.to_be_bytes());
        assert!(matches!(
            parse_aes128gcm(&small_rs),
            Err(Error::MalformedMessage(_))
        ));
        small_rs[16..20].copy_from_slice(&17u32.to_be_bytes());
        assert!(matches!(
            parse_aes128gcm(&small_rs),
            Err(Error::MalformedMessage(_))
        ));
        assert!(parse_aes128gcm(&body).is_ok());
    }

    #[test]
    fn non_final_or_unpadded_record_is_refused() {
        // Seal records by hand with the RFC keys to get valid tags over bad padding.
        let (secret, auth, ua, sender) = (
            b64(RFC_ECDH_SECRET),
            b64(RFC_AUTH),
            b64(RFC_UA_PUBLIC),
            b64(RFC_AS_PUBLIC),
        );
        let keys = aes128gcm_keys(&secret, &auth, &ua, &sender, &rfc_salt()).unwrap();
        for record in [b"hi\x01".to_vec(), b"hi\x01\0\0".to_vec(), vec![0, 0, 0]] {
            let sealed = seal(&keys, record).unwrap();
            let mut body = b64(RFC_BODY)[..86].to_vec();
            body.extend_from_slice(&sealed);
            let message = parse_aes128gcm(&body).unwrap();
            assert!(matches!(
                open_aes128gcm(&secret, &auth, &ua, &message),
                Err(Error::MalformedMessage(_))
            ));
        }
        // Zero padding after the 0x02 delimiter is fine.
        let sealed = seal(&keys, b"hi\x02\0\0\0".to_vec()).unwrap();
        let mut body = b64(RFC_BODY)[..86].to_vec();
        body.extend_from_slice(&sealed);
        let message = parse_aes128gcm(&body).unwrap();
        assert_eq!(
            open_aes128gcm(&secret, &auth, &ua, &message).unwrap(),
            b"hi"
        );
    }

    #[test]
    fn aesgcm_padding_is_checked() {
        let (secret, auth, ua, sender) = (
            b64(RFC_ECDH_SECRET),
            b64(RFC_AUTH),
            b64(RFC_UA_PUBLIC),
            b64(RFC_AS_PUBLIC),
        );
        let keys = aesgcm_keys(&secret, &auth, &ua, &sender, &rfc_salt()).unwrap();
        let open_record = |record: &[u8]| {
            let body = seal(&keys, record.to_vec()).unwrap();
            open_aesgcm(&secret, &auth, &ua, &sender, &rfc_salt(), &body)
        };
        assert_eq!(open_record(b"\0\x03\0\0\0hi").unwrap(), b"hi");
        assert!(matches!(
            open_record(b"\0\x03\0\x01\0hi"),
            Err(Error::MalformedMessage(_))
        ));
        assert!(matches!(
            open_record(b"\0\x09hi"),
            Err(Error::MalformedMessage(_))
        ));
        // A full record promises another one.
        let full = vec![0u8; RECORD_SIZE];
        assert!(matches!(
            open_record(&full),
            Err(Error::MalformedMessage(_))
        ));
    }

    #[test]
    fn bad_subscription_keys_are_refused() {
        let ua = UaKeys::generate().unwrap();
        let cases: [(&[u8], &[u8]); 4] = [
            (&ua.public[..64], &ua.auth),
            (&ua.public, &ua.auth[..15]),
            // Compressed-form prefix on an uncompressed-length key.
            (&[&[0x02], &ua.public[1..]].concat(), &ua.auth),
            // Right shape, but not a point on the curve.
            (&[&[0x04][..], &[0xff; 64][..]].concat(), &ua.auth),
        ];
        for (public, auth) in cases {
            assert!(matches!(
                encrypt(public, auth, b"x"),
                Err(Error::InvalidKey(_))
            ));
            assert!(matches!(
                encrypt_legacy(public, auth, b"x"),
                Err(Error::InvalidKey(_))
            ));
        }
        let ua = UaKeys::generate().unwrap();
        assert!(matches!(
            decrypt_legacy(
                ua.private,
                &ua.public,
                &ua.auth,
                "AAAA",
                RFC_AS_PUBLIC,
                &[0; 40]
            ),
            Err(Error::MalformedMessage(_))
        ));
        let ua = UaKeys::generate().unwrap();
        assert!(matches!(
            decrypt_legacy(ua.private, &ua.public, &ua.auth, RFC_SALT, "!!", &[0; 40]),
            Err(Error::Base64(_))
        ));
    }

    fn claims_of(header: &str) -> Value {
        let token = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let claims = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
    }

    #[test]
    fn vapid_authorization_verifies_with_the_right_claims() {
        let (vapid, _) = Vapid::generate().unwrap();
        let header = vapid.authorization(ENDPOINT, SUBJECT, EXP).unwrap();
        assert_eq!(header, header.trim());
        assert!(header.ends_with(&format!(", k={}", vapid.public_key_base64())));

        let token = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[0]).unwrap(),
            JWT_HEADER.as_bytes()
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);

        let verified = verify_authorization(&header, ENDPOINT).unwrap();
        let expected = serde_json::json!({ "aud": ENDPOINT_ORIGIN, "exp": EXP, "sub": SUBJECT });
        assert_eq!(verified.claims, expected);
        assert_eq!(claims_of(&header), expected);
        assert_eq!(verified.public_key, vapid.public_key_base64());
        // Any URL on the same push service will do.
        verify_authorization(
            &header,
            "https://UPDATES.push.services.mozilla.com:443/other",
        )
        .unwrap();
    }

    #[test]
    fn vapid_key_shape() {
        let (vapid, pkcs8) = Vapid::generate().unwrap();
        assert_eq!(vapid.public_key().len(), 65);
        assert_eq!(vapid.public_key()[0], 0x04);
        assert_eq!(vapid.public_key_base64().len(), 87);
        assert!(!vapid.public_key_base64().contains(['=', '+', '/']));
        let again = Vapid::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(again.public_key(), vapid.public_key());
        assert!(matches!(
            Vapid::from_pkcs8(&pkcs8[..pkcs8.len() - 1]),
            Err(Error::InvalidKey(_))
        ));
        assert!(format!("{vapid:?}").contains(&vapid.public_key_base64()));
    }

    #[test]
    fn tampered_vapid_token_fails() {
        let (vapid, _) = Vapid::generate().unwrap();
        let header = vapid.authorization(ENDPOINT, SUBJECT, EXP).unwrap();
        let (token, key) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // Claims changed after signing.
        let forged = encode_base64(
            serde_json::json!({ "aud": ENDPOINT_ORIGIN, "exp": EXP + 1, "sub": SUBJECT })
                .to_string()
                .as_bytes(),
        );
        let tampered = format!("vapid t={}.{}.{}, k={key}", parts[0], forged, parts[2]);
        assert!(matches!(
            verify_authorization(&tampered, ENDPOINT),
            Err(Error::BadSignature)
        ));

        // Signature changed.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let tampered = format!(
            "vapid t={}.{}.{}, k={key}",
            parts[0],
            parts[1],
            encode_base64(&sig)
        );
        assert!(matches!(
            verify_authorization(&tampered, ENDPOINT),
            Err(Error::BadSignature)
        ));

        // Someone else's key.
        let (other, _) = Vapid::generate().unwrap();
        let tampered = format!("vapid t={token}, k={}", other.public_key_base64());
        assert!(matches!(
            verify_authorization(&tampered, ENDPOINT),
            Err(Error::BadSignature)
        ));

        // Sent to another push service.
        assert!(matches!(
            verify_authorization(&header, "https://fcm.googleapis.com/fcm/send/x"),
            Err(Error::AudienceMismatch { .. })
        ));
        assert!(matches!(
            verify_authorization(&header, "https://updates.push.services.mozilla.com:8443/x"),
            Err(Error::AudienceMismatch { .. })
        ));
    }

    #[test]
    fn vapid_audience_must_be_an_origin() {
        let (vapid, _) = Vapid::generate().unwrap();
        // Sign a token whose aud carries a path, as a sloppy sender might.
        let claims =
            serde_json::json!({ "aud": "https://push.example/x", "exp": EXP, "sub": SUBJECT });
        let input = format!(
            "{}.{}",
            encode_base64(JWT_HEADER.as_bytes()),
            encode_base64(claims.to_string().as_bytes())
        );
        let sig = vapid.key.sign(&vapid.rng, input.as_bytes()).unwrap();
        let header = format!(
            "vapid t={input}.{}, k={}",
            encode_base64(sig.as_ref()),
            vapid.public_key_base64()
        );
        assert!(matches!(
            verify_authorization(&header, "https://push.example/x"),
            Err(Error::AudienceMismatch { .. })
        ));
        // And exp must be there.
        let claims = serde_json::json!({ "aud": "https://push.example", "sub": SUBJECT });
        let input = format!(
            "{}.{}",
            encode_base64(JWT_HEADER.as_bytes()),
            encode_base64(claims.to_string().as_bytes())
        );
        let sig = vapid.key.sign(&vapid.rng, input.as_bytes()).unwrap();
        let header = format!(
            "vapid t={input}.{}, k={}",
            encode_base64(sig.as_ref()),
            vapid.public_key_base64()
        );
        assert!(matches!(
            verify_authorization(&header, "https://push.example/x"),
            Err(Error::MalformedAuthorization(_))
        ));
    }

    #[test]
    fn vapid_header_syntax() {
        let (vapid, _) = Vapid::generate().unwrap();
        let header = vapid.authorization(ENDPOINT, SUBJECT, EXP).unwrap();
        let (token, key) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        for ok in [
            format!("Vapid t={token},k={key}"),
            format!("vapid  k={key}, t={token}"),
            format!("vapid t=\"{token}\", k=\"{key}\", x=y"),
            format!("vapid t={token}, k={key}="),
        ] {
            verify_authorization(&ok, ENDPOINT).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            String::new(),
            format!("Bearer {token}"),
            format!("vapid t={token}"),
            format!("vapid k={key}"),
            format!("vapid t={token}, t={token}, k={key}"),
            format!("vapid t={token}, k"),
            format!("vapid t={token}.x, k={key}"),
            format!("vapid t={}, k={key}", &token[1..]),
            format!("vapid t={token}, k={}", &key[..80]),
        ] {
            assert!(verify_authorization(&bad, ENDPOINT).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_vapid_headers_verify() {
        let (vapid, _) = Vapid::generate().unwrap();
        let legacy = vapid.legacy_headers(ENDPOINT, SUBJECT, EXP).unwrap();
        assert!(legacy.authorization.starts_with("WebPush "));
        assert_eq!(
            legacy.crypto_key,
            format!("p256ecdsa={}", vapid.public_key_base64())
        );
        let crypto_key = format!("dh=BAAA;{}", legacy.crypto_key);
        let verified =
            verify_legacy_authorization(&legacy.authorization, &crypto_key, ENDPOINT).unwrap();
        assert_eq!(verified.claims["aud"], ENDPOINT_ORIGIN);
        assert_eq!(verified.claims["exp"], EXP);
        assert_eq!(verified.claims["sub"], SUBJECT);
        assert_eq!(verified.public_key, vapid.public_key_base64());

        assert!(matches!(
            verify_legacy_authorization(&legacy.authorization, "dh=BAAA", ENDPOINT),
            Err(Error::MalformedAuthorization(_))
        ));
        let (other, _) = Vapid::generate().unwrap();
        let wrong_key = format!("p256ecdsa={}", other.public_key_base64());
        assert!(matches!(
            verify_legacy_authorization(&legacy.authorization, &wrong_key, ENDPOINT),
            Err(Error::BadSignature)
        ));
        assert!(
            verify_legacy_authorization(
                &legacy.authorization.replace("WebPush", "vapid"),
                &crypto_key,
                ENDPOINT
            )
            .is_err()
        );
    }

    #[test]
    fn vapid_from_base64_known_key() {
        // RFC 8291's sender key pair stands in for a Mastodon VAPID key pair.
        let vapid = Vapid::from_base64(RFC_AS_PRIVATE, RFC_AS_PUBLIC).unwrap();
        assert_eq!(vapid.public_key_base64(), RFC_AS_PUBLIC);
        let header = vapid.authorization(ENDPOINT, SUBJECT, EXP).unwrap();
        assert_eq!(
            verify_authorization(&header, ENDPOINT).unwrap().public_key,
            RFC_AS_PUBLIC
        );

        // Ruby writes padded base64url; other tools standard base64.
        let private = b64(RFC_AS_PRIVATE);
        let public = b64(RFC_AS_PUBLIC);
        let padded = base64::engine::general_purpose::URL_SAFE;
        let standard = base64::engine::general_purpose::STANDARD;
        for (private, public) in [
            (padded.encode(&private), padded.encode(&public)),
            (standard.encode(&private), standard.encode(&public)),
            (
                format!(" {}\n", padded.encode(&private)),
                padded.encode(&public),
            ),
        ] {
            let vapid = Vapid::from_base64(&private, &public).unwrap();
            assert_eq!(vapid.public_key_base64(), RFC_AS_PUBLIC);
        }
    }

    #[test]
    fn vapid_from_base64_short_scalar() {
        // The private key 1, whose public key is the generator G: Ruby writes
        // such a scalar without its 31 leading zero bytes.
        const G: &str = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
        let vapid = Vapid::from_base64("AQ", G).unwrap();
        assert_eq!(vapid.public_key_base64(), G);
        let padded = encode_base64(&[[0u8; 31].as_slice(), &[1]].concat());
        assert_eq!(
            Vapid::from_base64(&padded, G).unwrap().public_key_base64(),
            G
        );
    }

    #[test]
    fn vapid_from_base64_rejects_bad_keys() {
        for (private, public) in [
            // A private key with someone else's public key.
            (RFC_AS_PRIVATE, RFC_UA_PUBLIC),
            ("", RFC_AS_PUBLIC),
            (&encode_base64(&[1u8; 33]), RFC_AS_PUBLIC),
            (RFC_AS_PRIVATE, &RFC_AS_PUBLIC[..80]),
        ] {
            assert!(matches!(
                Vapid::from_base64(private, public),
                Err(Error::InvalidKey(_))
            ));
        }
        assert!(matches!(
            Vapid::from_base64("a*b", RFC_AS_PUBLIC),
            Err(Error::Base64(_))
        ));
        assert!(matches!(
            Vapid::from_base64(RFC_AS_PRIVATE, "é"),
            Err(Error::Base64(_))
        ));
    }

    /// The raw scalar inside ring's PKCS#8: ECPrivateKey { version 1, privateKey OCTET STRING (32) }.
    fn scalar_from_ring_pkcs8(der: &[u8]) -> Vec<u8> {
        let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
        let at = der.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len();
        der[at..at + 32].to_vec()
    }

    #[test]
    fn vapid_from_base64_round_trips_a_generated_key() {
        let (vapid, pkcs8) = Vapid::generate().unwrap();
        let private = encode_base64(&scalar_from_ring_pkcs8(&pkcs8));
        let loaded = Vapid::from_base64(&private, &vapid.public_key_base64()).unwrap();
        assert_eq!(loaded.public_key(), vapid.public_key());
        // Tokens from the reloaded key verify under the original public key.
        let header = loaded.authorization(ENDPOINT, SUBJECT, EXP).unwrap();
        assert_eq!(
            verify_authorization(&header, ENDPOINT).unwrap().public_key,
            vapid.public_key_base64()
        );
    }

    #[test]
    fn origins() {
        for (url, origin, rest) in [
            (
                "https://fcm.googleapis.com/fcm/send/abc",
                "https://fcm.googleapis.com",
                "/fcm/send/abc",
            ),
            (
                "HTTPS://Push.Example.COM/a",
                "https://push.example.com",
                "/a",
            ),
            ("https://push.example:443/a", "https://push.example", "/a"),
            ("https://push.example:0443/a", "https://push.example", "/a"),
            ("https://push.example:/a", "https://push.example", "/a"),
            ("https://push.example:8443", "https://push.example:8443", ""),
            ("https://push.example?x=1", "https://push.example", "?x=1"),
            ("https://push.example#f", "https://push.example", "#f"),
            (
                "http://127.0.0.1:8080/push/1",
                "http://127.0.0.1:8080",
                "/push/1",
            ),
            ("http://localhost:80/", "http://localhost", "/"),
            ("http://[::1]:3000/p", "http://[::1]:3000", "/p"),
            ("https://[2001:DB8::1]/p", "https://[2001:db8::1]", "/p"),
            (
                "https://web.push.apple.com/QGuQ",
                "https://web.push.apple.com",
                "/QGuQ",
            ),
        ] {
            assert_eq!(
                parse_origin(url).unwrap(),
                (origin.to_owned(), rest),
                "{url}"
            );
        }
        for bad in [
            "",
            "push.example/a",
            "//push.example/a",
            "ftp://push.example/a",
            "https://",
            "https:///a",
            "https://user@push.example/a",
            "https://a@b@push.example/a",
            "https://push.example:65536/a",
            "https://push.example:8a/a",
            "https://push.example:-1/a",
            "https://push.example:1:2/a",
            "https://push example/a",
            "https://push.example\\@evil/a",
            "https://[::1/a",
            "https://[]/a",
            "https://[::1]x/a",
            " https://push.example/a",
        ] {
            assert!(
                matches!(parse_origin(bad), Err(Error::InvalidEndpoint(_))),
                "{bad:?}"
            );
        }
        let (vapid, _) = Vapid::generate().unwrap();
        assert!(matches!(
            vapid.authorization("ftp://x/y", SUBJECT, EXP),
            Err(Error::InvalidEndpoint(_))
        ));
    }

    #[test]
    fn lenient_base64() {
        for text in ["-_8", "+/8", "-_8=", "+/8=", " -_8 "] {
            assert_eq!(decode_base64("t", text).unwrap(), [0xfb, 0xff], "{text:?}");
        }
        assert!(decode_base64("t", "a").is_err());
        assert!(decode_base64("t", "a b").is_err());
    }

    #[test]
    fn ua_keys() {
        let ua = UaKeys::generate().unwrap();
        assert_eq!(b64(&ua.p256dh_base64()), ua.public);
        assert_eq!(b64(&ua.auth_base64()), ua.auth);
        assert_eq!(ua.auth_base64().len(), 22);
        assert!(!format!("{ua:?}").contains(&ua.auth_base64()));
    }

    #[test]
    fn error_is_thread_safe() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<Error>();
        fn check_send<T: Send + Sync>() {}
        check_send::<Vapid>();
    }
}
