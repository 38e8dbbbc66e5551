//! ActivityPub plumbing shared by `web` (documents, the inbox) and `delivery` (outbound
//! deliveries, fetches): account keys, HTTP signatures, and the one guarded outbound client.
//!
//! - [`keys`]: RSA-2048 key pairs as PEM; signing and verifying RSASSA-PKCS1-v1_5 SHA-256.
//! - [`signature`]: draft-cavage HTTP signatures and the `Digest` header, with Mastodon's rules.
//! - [`guard`]: which addresses outbound requests may reach (ALLOWED_PRIVATE_ADDRESSES).
//! - [`client`]: timeouts, body caps, bounded redirects, every address checked by the guard.

pub mod client;
pub mod guard;
pub mod keys;
pub mod rfc9421;
pub mod signature;

pub use client::{Client, FetchError};
pub use guard::Guard;
