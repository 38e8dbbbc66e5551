//! Secrets handed to clients (access tokens, client secrets, authorization codes, confirmation
//! links, session ids): 32 random bytes, URL-safe base64 (43 characters, like Mastodon's). Only
//! their SHA-256 is stored, so a database leak yields no usable secret. Bearer tokens are looked
//! up by that digest on each use, so a revoked token or a suspended account stops working at
//! once on every replica.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use stampede_db::Leases;

use crate::grant_cache::GrantCache;

/// A fresh random secret.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE S256: BASE64URL(SHA256(verifier)) compared with the stored challenge.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// What is stored for a secret: its SHA-256, in hex.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored access token with the user it acts for (if any).
#[derive(Debug, Clone, FromRow)]
pub struct Grant {
    pub id: i64,
    pub application_id: Option<i64>,
    pub scopes: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub role: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub approved: Option<bool>,
    pub disabled: Option<bool>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether the token's user may act: confirmed, approved, neither disabled nor suspended.
    pub fn user_may_act(&self) -> bool {
        self.user_id.is_some()
            && self.confirmed_at.is_some()
            && self.approved == Some(true)
            && self.disabled != Some(true)
            && self.suspended_at.is_none()
    }
}

/// The token `secret`, revoked or not; `None` when no such token was ever issued. Every
/// authenticated request asks: through `cache` when given (see [`crate::grant_cache`]), else on a
/// leased connection (no release ping).
pub async fn grant(
    db: &Leases,
    cache: Option<&GrantCache>,
    secret: &str,
) -> Result<Option<Grant>, sqlx::Error> {
    let digest = digest(secret);
    if let Some(cache) = cache
        && let Some(grant) = cache.get(&digest)
    {
        note_activity(db, Some((cache, &digest)), &grant);
        return Ok(Some(grant));
    }
    let epoch = cache.map(GrantCache::epoch);
    let mut conn = db.take().await?;
    let grant: Option<Grant> = sqlx::query_as(
        "SELECT t.id, t.application_id, t.scopes, t.revoked_at, t.account_id, \
                u.id AS user_id, u.role, u.confirmed_at, u.approved, u.disabled, a.suspended_at, \
                u.last_active_at \
         FROM oauth_access_tokens t \
         LEFT JOIN users u ON u.account_id = t.account_id \
         LEFT JOIN accounts a ON a.id = t.account_id \
         WHERE t.token_hash = $1",
    )
    .bind(&digest)
    .fetch_optional(&mut *conn)
    .await?;
    conn.finish();
    if let Some(grant) = &grant {
        if let (Some(cache), Some(epoch)) = (cache, epoch) {
            cache.put(&digest, grant, epoch);
        }
        note_activity(db, cache.map(|c| (c, digest.as_str())), grant);
    }
    Ok(grant)
}

/// Home-feed fan-out reaches only recently active users: notes this one's return, at most
/// hourly and off the request's path.
fn note_activity(db: &Leases, cached: Option<(&GrantCache, &str)>, grant: &Grant) {
    let (Some(account_id), Some(last_active)) = (grant.account_id, grant.last_active_at) else {
        return;
    };
    if Utc::now() - last_active <= chrono::Duration::hours(1) {
        return;
    }
    if let Some((cache, digest)) = cached {
        cache.touch_active(digest);
    }
    let db = db.pool().clone();
    tokio::spawn(async move {
        let result = sqlx::query("UPDATE users SET last_active_at = now() WHERE account_id = $1")
            .bind(account_id)
            .execute(&db)
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "could not record activity");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_pkce() {
        let a = generate();
        assert_eq!(a.len(), 43);
        assert_ne!(a, generate());
        assert_eq!(digest("abc").len(), 64);
        // RFC 7636 appendix B.
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "wrong",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
