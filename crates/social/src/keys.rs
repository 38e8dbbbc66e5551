//! Account keys for federation, kept off the sign-up path.
//!
//! An RSA-2048 key costs 50–150 ms of CPU to generate — inside a sign-up that would cap a
//! two-core server at about a dozen sign-ups a second. So a background loop ([`refill`]) keeps
//! `key_pool` topped up while the request pool is not saturated, and an account takes a key
//! from the pool the first time federation needs one ([`account_key`]); only when the pool is
//! empty is a key generated then, on a blocking thread.

use std::time::Duration;

use sqlx::Row;
use stampede_activitypub::keys::{self, KeyPem};
use stampede_db::Db;
use tokio_util::sync::CancellationToken;

/// An account's (or the instance actor's) key pair, as PEM.
#[derive(Clone, Debug)]
pub struct AccountKey {
    pub private_key: String,
    pub public_key: String,
}

/// Generates a key pair on a blocking thread.
pub async fn generate() -> anyhow::Result<KeyPem> {
    Ok(tokio::task::spawn_blocking(keys::generate).await??)
}

/// The key pair of local account `account_id`, assigned from the pool (or generated) the first
/// time it is asked for. `None` for an account that does not exist or is not local.
pub async fn account_key(db: &Db, account_id: i64) -> anyhow::Result<Option<AccountKey>> {
    let current = sqlx::query(
        "SELECT private_key, public_key FROM accounts WHERE id = $1 AND domain IS NULL",
    )
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    let Some(row) = current else {
        return Ok(None);
    };
    if let Some(key) = key_of(&row)? {
        return Ok(Some(key));
    }
    // From the pool, in one statement: the pool row goes only if the account takes it.
    let taken = sqlx::query(
        "WITH k AS (DELETE FROM key_pool WHERE id = \
                      (SELECT id FROM key_pool ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                    RETURNING private_key, public_key) \
         UPDATE accounts a SET private_key = k.private_key, public_key = k.public_key \
         FROM k WHERE a.id = $1 AND a.private_key IS NULL \
         RETURNING a.private_key, a.public_key",
    )
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    if let Some(row) = taken {
        return key_of(&row);
    }
    // The pool was empty, or another request assigned one meanwhile.
    let pem = generate().await?;
    sqlx::query(
        "UPDATE accounts SET private_key = $2, public_key = $3 \
         WHERE id = $1 AND private_key IS NULL",
    )
    .bind(account_id)
    .bind(&pem.private)
    .bind(&pem.public)
    .execute(db)
    .await?;
    let row = sqlx::query("SELECT private_key, public_key FROM accounts WHERE id = $1")
        .bind(account_id)
        .fetch_one(db)
        .await?;
    key_of(&row)
}

/// The instance actor's key pair, made the first time it is asked for.
pub async fn instance_key(db: &Db) -> anyhow::Result<AccountKey> {
    let select = "SELECT private_key, public_key FROM instance_actor";
    if let Some(row) = sqlx::query(select).fetch_optional(db).await?
        && let Some(key) = key_of(&row)?
    {
        return Ok(key);
    }
    let pem = generate().await?;
    sqlx::query(
        "INSERT INTO instance_actor (private_key, public_key) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&pem.private)
    .bind(&pem.public)
    .execute(db)
    .await?;
    let row = sqlx::query(select).fetch_one(db).await?;
    key_of(&row)?.ok_or_else(|| anyhow::anyhow!("the instance actor has no key"))
}

fn key_of(row: &sqlx::postgres::PgRow) -> anyhow::Result<Option<AccountKey>> {
    let private_key: Option<String> = row.try_get("private_key")?;
    let public_key: Option<String> = row.try_get("public_key")?;
    Ok(private_key
        .zip(public_key)
        .map(|(private_key, public_key)| AccountKey {
            private_key,
            public_key,
        }))
}

/// Adds one key to the pool if it holds fewer than `target`; whether it did.
pub async fn refill_once(db: &Db, target: i64) -> anyhow::Result<bool> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM key_pool")
        .fetch_one(db)
        .await?;
    if have >= target {
        return Ok(false);
    }
    let pem = generate().await?;
    sqlx::query("INSERT INTO key_pool (private_key, public_key) VALUES ($1, $2)")
        .bind(&pem.private)
        .bind(&pem.public)
        .execute(db)
        .await?;
    Ok(true)
}

/// Keeps the pool at `target` keys: one key at a time, pausing while `busy` (the request pool
/// is saturated) and resting a while once the pool is full.
pub async fn refill(
    db: Db,
    target: i64,
    busy: impl Fn() -> bool + Send,
    shutdown: CancellationToken,
) {
    loop {
        let pause = if busy() {
            Duration::from_secs(5)
        } else {
            match refill_once(&db, target).await {
                // Half a core at most: rest as long as the key took.
                Ok(true) => Duration::from_millis(200),
                Ok(false) => Duration::from_secs(30),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "key pool refill failed");
                    Duration::from_secs(30)
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
