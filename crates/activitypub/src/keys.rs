//! Account keys: RSA-2048, kept as PEM (PKCS#8 private, SubjectPublicKeyInfo public) as every
//! fediverse server publishes them, signing and verifying RSASSA-PKCS1-v1_5 with SHA-256.
//!
//! aws-lc-rs does the arithmetic (the `rsa` crate has an unfixed timing advisory for private-key
//! operations, RUSTSEC-2023-0071).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM block of the expected kind")]
    Pem,
    #[error("the key was rejected: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Sign,
}

/// A freshly generated key pair, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPem {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8).
    pub private: String,
    /// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    pub public: String,
}

/// Generates an RSA-2048 key pair: 50–150 ms of CPU, so never on a request's path.
pub fn generate() -> Result<KeyPem, KeyError> {
    let pair =
        KeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError::Rejected(e.to_string()))?;
    let private: Pkcs8V1Der<'_> = pair
        .as_der()
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
    let public: PublicKeyX509Der<'_> = pair
        .public_key()
        .as_der()
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
    Ok(KeyPem {
        private: pem("PRIVATE KEY", private.as_ref()),
        public: pem("PUBLIC KEY", public.as_ref()),
    })
}

/// A private key ready to sign.
#[derive(Debug)]
pub struct PrivateKey(KeyPair);

impl PrivateKey {
    /// Reads a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM block.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let (label, der) = unpem(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            _ => return Err(KeyError::Pem),
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(PrivateKey(pair))
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut out = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut out,
            )
            .map_err(|_| KeyError::Sign)?;
        Ok(out)
    }
}

/// Whether `signature` is `public_pem`'s RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
/// Accepts SubjectPublicKeyInfo (`PUBLIC KEY`) and PKCS#1 (`RSA PUBLIC KEY`) blocks, 2048 to
/// 8192 bits.
pub fn verify(public_pem: &str, message: &[u8], signature: &[u8]) -> Result<bool, KeyError> {
    let (label, der) = unpem(public_pem)?;
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(KeyError::Pem);
    }
    let key = UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der);
    Ok(key.verify(message, signature).is_ok())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and bytes of the first PEM block in `text` (whitespace and `\r` tolerated).
fn unpem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let start = text.find("-----BEGIN ").ok_or(KeyError::Pem)?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or(KeyError::Pem)?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body
        .find(&format!("-----END {label}-----"))
        .ok_or(KeyError::Pem)?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|_| KeyError::Pem)?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_and_its_public_half_verifies() {
        let pem = generate().expect("keygen");
        assert!(pem.private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = PrivateKey::from_pem(&pem.private).expect("parse");
        let sig = key.sign(b"hello").expect("sign");
        assert_eq!(sig.len(), 256);
        assert!(verify(&pem.public, b"hello", &sig).expect("verify"));
        assert!(!verify(&pem.public, b"hellO", &sig).expect("verify"));
        let other = generate().expect("keygen");
        assert!(!verify(&other.public, b"hello", &sig).expect("verify"));
    }

    #[test]
    fn pem_that_is_not_a_key_is_refused() {
        assert!(PrivateKey::from_pem("nonsense").is_err());
        assert!(
            verify(
                "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----",
                b"",
                b""
            )
            .is_err()
        );
        assert!(
            verify(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                b"",
                b""
            )
            .is_err()
        );
    }
}
