//! The documented fast path for seeding: confirmed, approved users with working access tokens,
//! written straight into the tables of `migrations/20261122000002_accounts.sql` (accounts,
//! users, oauth_access_tokens) in batches, instead of thousands of sign-ups that would each cost
//! an argon2 hash and an e-mail confirmation. Tokens are stored as the server stores them (their
//! SHA-256, `stampede_social::tokens`), so the server cannot tell them from tokens it issued.
//!
//! Everything else (follows, statuses) is seeded through the API, as the tables behind it
//! belong to code still being written.
//!
//! Needs `DATABASE_URL` of the target server, and refuses one that is not on loopback unless
//! `--allow-remote` is given.

use anyhow::Context as _;
use sqlx::PgPool;
use stampede_core::id::IdGenerator;

/// A user the seeding made, with a token that works at once.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub account_id: String,
    pub token: String,
}

/// Connects to the target's database (checked to be migrated).
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
        .context(
            "cannot reach DATABASE_URL (the target server's database, for the seeding fast path)",
        )?;
    sqlx::query("SELECT 1 FROM oauth_access_tokens LIMIT 1")
        .execute(&pool)
        .await
        .context(
            "DATABASE_URL has no accounts tables: is it the target server's (migrated) database?",
        )?;
    Ok(pool)
}

/// Marks a user who signed up through the API as having confirmed their e-mail: what clicking
/// the link in the confirmation mail does.
pub async fn confirm(pool: &PgPool, username: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE users SET confirmed_at = now(), approved = true \
         WHERE account_id = (SELECT id FROM accounts WHERE lower(username) = lower($1) AND domain IS NULL)",
    )
    .bind(username)
    .execute(pool)
    .await?;
    Ok(())
}

/// Creates `n` users named `{prefix}{i}` with tokens of `client_id`'s application, 1,000 a
/// transaction.
pub async fn users(
    pool: &PgPool,
    client_id: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<Seeded>> {
    let app_id: i64 = sqlx::query_scalar("SELECT id FROM oauth_applications WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(pool)
        .await
        .context(
            "the app registered for this run is not in DATABASE_URL: is it the target's database?",
        )?;
    // One real hash for all: nobody signs in with a password during the run.
    let password_hash = stampede_social::passwords::Scratch::new().hash("loadtest password")?;
    let ids = IdGenerator::new();
    let mut out = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(1000) {
        let chunk = chunk_start..(chunk_start + 1000).min(n);
        let mut account_ids = Vec::new();
        let mut user_ids = Vec::new();
        let mut token_ids = Vec::new();
        let mut names = Vec::new();
        let mut emails = Vec::new();
        let mut hashes = Vec::new();
        let mut batch = Vec::new();
        for i in chunk {
            let username = format!("{prefix}{i}");
            let token = stampede_social::tokens::generate();
            account_ids.push(ids.next_id().as_i64());
            user_ids.push(ids.next_id().as_i64());
            token_ids.push(ids.next_id().as_i64());
            emails.push(format!("{username}@loadtest.invalid"));
            hashes.push(stampede_social::tokens::digest(&token));
            names.push(username);
            batch.push(token);
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, username) SELECT * FROM unnest($1::bigint[], $2::text[])",
        )
        .bind(&account_ids)
        .bind(&names)
        .execute(&mut *tx)
        .await
        .context("seeding accounts")?;
        sqlx::query(
            "INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at, created_by_application_id) \
             SELECT u, a, e, $4, true, now(), $5 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(u, a, e)",
        )
        .bind(&user_ids)
        .bind(&account_ids)
        .bind(&emails)
        .bind(&password_hash)
        .bind(app_id)
        .execute(&mut *tx)
        .await
        .context("seeding users")?;
        sqlx::query(
            "INSERT INTO oauth_access_tokens (id, token_hash, application_id, account_id, scopes) \
             SELECT i, h, $4, a, 'read write follow' FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS t(i, h, a)",
        )
        .bind(&token_ids)
        .bind(&hashes)
        .bind(&account_ids)
        .bind(app_id)
        .execute(&mut *tx)
        .await
        .context("seeding tokens")?;
        tx.commit().await?;
        out.extend(
            batch
                .into_iter()
                .zip(&account_ids)
                .map(|(token, id)| Seeded {
                    account_id: id.to_string(),
                    token,
                }),
        );
    }
    Ok(out)
}
