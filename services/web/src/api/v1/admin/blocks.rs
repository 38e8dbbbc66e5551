//! The instance's block lists in the admin API, with Mastodon's paths and shapes:
//! `/api/v1/admin/domain_blocks` (defederation), `domain_allows` (limited federation mode),
//! `email_domain_blocks`, `canonical_email_blocks` and `ip_blocks`. Each change is in the audit
//! log; domain blocks, allows and IP blocks reach every process within a second
//! (`stampede_social::domain_policy`). They manage the federation and the blocks, so only an
//! admin may use them (Mastodon's `manage_federation` and `manage_blocks`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use stampede_mastodon::time::iso;
use stampede_social::domain_policy::{IpSeverity, Severity};
use stampede_social::feeds::keyset;
use stampede_social::moderation::{self, DomainBlockSettings};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, flex};

/// SHA-256 of `text`, lower-case hex (a domain block's `digest`, a canonical e-mail's hash).
pub fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Mastodon's canonical form of an e-mail address: lower-cased, the dots of the local part
/// dropped and everything from its first `+` on.
pub fn canonical_email(email: &str) -> String {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@').unwrap_or((email.as_str(), ""));
    let local: String = local.split('+').next().unwrap_or("").replace('.', "");
    format!("{local}@{domain}")
}

/// `domain` normalized as Mastodon stores it (lower case, IDN as punycode; a port kept for
/// servers named with one), or 422.
fn normalize_domain(domain: Option<&str>) -> Result<String, ApiError> {
    let raw = domain.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(ApiError::unprocessable(
            "Validation failed: Domain can't be blank",
        ));
    }
    let invalid = || ApiError::unprocessable("Validation failed: Domain is invalid");
    if raw.contains(['/', '@', '?', '#', ' ']) {
        return Err(invalid());
    }
    let url = url::Url::parse(&format!("http://{}/", raw.trim_end_matches('.')))
        .map_err(|_| invalid())?;
    let host = url.host_str().ok_or_else(invalid)?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

fn id_of(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

/// The caller may manage federation and blocks: an admin with an admin scope.
fn admin(auth: &Auth, scopes: &[&str]) -> Result<i64, ApiError> {
    auth.require(scopes)?;
    let user = auth.staff()?;
    if user.role != "admin" {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    Ok(user.account_id)
}

/// One page (newest id first) of `sql`'s rows — a `SELECT … FROM table` whose id column is
/// `id` — rendered by `render`, with Mastodon's `Link` header.
async fn page<T>(
    state: &AppState,
    uri: &Uri,
    q: &PageQuery,
    sql: &str,
    render: impl Fn(T) -> (i64, Value),
) -> Result<Page<Value>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let bounds = q.bounds(100, 200);
    let mut rows: Vec<T> = sqlx::query_as(&format!(
        "{sql} WHERE {} ORDER BY id {} LIMIT $3",
        keyset("id", 1, 2),
        bounds.order()
    ))
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    if bounds.ascending {
        rows.reverse();
    }
    let items: Vec<(i64, Value)> = rows.into_iter().map(render).collect();
    let newest = items.first().map(|i| i.0);
    let oldest = items.last().map(|i| i.0);
    let items = items.into_iter().map(|i| i.1).collect();
    Ok(Page::new(items, &state.base_url(), uri, newest, oldest))
}

/// Deletes the row `id` with `delete` (`DELETE … WHERE id = $1 RETURNING <its name>`), logs it
/// as `target_type`, and answers `{}`; 404 when there is no such row.
async fn remove(
    state: &AppState,
    moderator: i64,
    delete: &str,
    target_type: &str,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let id = id_of(id)?;
    let mut tx = state.ctx.db.begin().await?;
    let name: String = sqlx::query_scalar(delete)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(ApiError::not_found)?;
    moderation::log_named(
        &mut tx,
        &state.ids,
        moderator,
        "destroy",
        (target_type, id, Some(&name)),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}

/// One row of `sql` (… `WHERE id = $1`) rendered, or 404.
async fn one<T>(
    state: &AppState,
    sql: &str,
    id: &str,
    render: impl Fn(T) -> (i64, Value),
) -> Result<Json<Value>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let row: T = sqlx::query_as(&format!("{sql} WHERE id = $1"))
        .bind(id_of(id)?)
        .fetch_optional(&state.ctx.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(row).1))
}

// ---- domain blocks ----

const DOMAIN_BLOCKS_READ: &[&str] = &["admin:read", "admin:read:domain_blocks"];
const DOMAIN_BLOCKS_WRITE: &[&str] = &["admin:write", "admin:write:domain_blocks"];

#[derive(Debug, sqlx::FromRow)]
pub struct DomainBlockRow {
    id: i64,
    domain: String,
    severity: String,
    reject_media: bool,
    reject_reports: bool,
    private_comment: Option<String>,
    public_comment: Option<String>,
    obfuscate: bool,
    created_at: DateTime<Utc>,
}

const DOMAIN_BLOCKS: &str = "SELECT id, domain, severity, reject_media, reject_reports, \
     private_comment, public_comment, obfuscate, created_at FROM domain_blocks";

fn render_domain_block(row: DomainBlockRow) -> (i64, Value) {
    (
        row.id,
        json!({
            "id": row.id.to_string(),
            "domain": row.domain,
            "digest": sha256_hex(&row.domain),
            "created_at": iso(row.created_at),
            "severity": row.severity,
            "reject_media": row.reject_media,
            "reject_reports": row.reject_reports,
            "private_comment": row.private_comment,
            "public_comment": row.public_comment,
            "obfuscate": row.obfuscate,
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct DomainBlockParams {
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    domain: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    severity: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    reject_media: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    reject_reports: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    private_comment: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    public_comment: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    obfuscate: Option<bool>,
}

impl DomainBlockParams {
    /// The settings asked for, over `current` ones (an update changes only what it names).
    fn settings(
        &self,
        current: Option<DomainBlockSettings>,
    ) -> Result<DomainBlockSettings, ApiError> {
        let current = current.unwrap_or(DomainBlockSettings {
            severity: Severity::Silence,
            reject_media: false,
            reject_reports: false,
            private_comment: None,
            public_comment: None,
            obfuscate: false,
        });
        let severity = match self.severity.as_deref() {
            None | Some("") => current.severity,
            Some(name) => Severity::parse(name).ok_or_else(|| {
                ApiError::unprocessable("Validation failed: Severity is not included in the list")
            })?,
        };
        Ok(DomainBlockSettings {
            severity,
            reject_media: self.reject_media.unwrap_or(current.reject_media),
            reject_reports: self.reject_reports.unwrap_or(current.reject_reports),
            private_comment: self.private_comment.clone().or(current.private_comment),
            public_comment: self.public_comment.clone().or(current.public_comment),
            obfuscate: self.obfuscate.unwrap_or(current.obfuscate),
        })
    }
}

/// Whether a block with `new` settings limits more than `existing` (Mastodon's rule: a stricter
/// block of a subdomain may sit under a parent domain's block).
fn stricter(new: &DomainBlockSettings, existing: &DomainBlockRow) -> bool {
    let rank = |s: Severity| match s {
        Severity::Noop => 0,
        Severity::Silence => 1,
        Severity::Suspend => 2,
    };
    let old = Severity::parse(&existing.severity).unwrap_or(Severity::Noop);
    if new.severity == Severity::Suspend {
        return true;
    }
    if rank(new.severity) < rank(old) {
        return false;
    }
    (new.reject_media || !existing.reject_media) && (new.reject_reports || !existing.reject_reports)
}

pub async fn domain_blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Value>, ApiError> {
    admin(&auth, DOMAIN_BLOCKS_READ)?;
    page(&state, &uri, &q, DOMAIN_BLOCKS, render_domain_block).await
}

pub async fn domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, DOMAIN_BLOCKS_READ)?;
    one(&state, DOMAIN_BLOCKS, &id, render_domain_block).await
}

/// Reloads this process's copy of the lists now (other processes follow within a second).
async fn policy_changed(state: &AppState) {
    if let Err(error) = state.resolver.policy().load().await {
        tracing::warn!(%error, "could not reload the domain and IP blocks");
    }
}

/// `POST /api/v1/admin/domain_blocks`: 422 with `existing_domain_block` when the domain (or a
/// parent domain) is blocked already at least as strictly.
pub async fn create_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<DomainBlockParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, DOMAIN_BLOCKS_WRITE)?;
    let domain = normalize_domain(p.domain.as_deref())?;
    let settings = p.settings(None)?;
    let mut tx = state.ctx.db.begin().await?;
    let existing: Option<DomainBlockRow> = sqlx::query_as(&format!(
        "{DOMAIN_BLOCKS} WHERE domain_covered($1, domain) ORDER BY length(domain) DESC LIMIT 1"
    ))
    .bind(&domain)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = existing
        && (existing.domain.eq_ignore_ascii_case(&domain) || !stricter(&settings, &existing))
    {
        let name = existing.domain.clone();
        return Err(ApiError::with_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "error": format!("You have already imposed stricter limits on {name}."),
                "existing_domain_block": render_domain_block(existing).1,
            }),
        ));
    }
    let id =
        match moderation::block_domain(&mut tx, &state.ids, moderator, &domain, &settings).await {
            Ok(id) => id,
            // Two identical requests at once: the second finds the first's block.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiError::unprocessable(format!(
                    "You have already imposed stricter limits on {domain}."
                )));
            }
            Err(e) => return Err(e.into()),
        };
    let row: DomainBlockRow = sqlx::query_as(&format!("{DOMAIN_BLOCKS} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(render_domain_block(row).1))
}

/// `PUT /api/v1/admin/domain_blocks/:id`: the domain stays; the rest changes as given.
pub async fn update_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<DomainBlockParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, DOMAIN_BLOCKS_WRITE)?;
    let id = id_of(&id)?;
    let mut tx = state.ctx.db.begin().await?;
    let current: DomainBlockRow = sqlx::query_as(&format!("{DOMAIN_BLOCKS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = p.settings(Some(DomainBlockSettings {
        severity: Severity::parse(&current.severity).unwrap_or(Severity::Noop),
        reject_media: current.reject_media,
        reject_reports: current.reject_reports,
        private_comment: current.private_comment,
        public_comment: current.public_comment,
        obfuscate: current.obfuscate,
    }))?;
    moderation::update_domain_block(&mut tx, &state.ids, moderator, id, &settings).await?;
    let row: DomainBlockRow = sqlx::query_as(&format!("{DOMAIN_BLOCKS} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(render_domain_block(row).1))
}

/// `DELETE /api/v1/admin/domain_blocks/:id`: the block and the limits it stamped are lifted
/// (purged content stays purged). Answers `{}`.
pub async fn delete_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, DOMAIN_BLOCKS_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    if !moderation::unblock_domain(&mut tx, &state.ids, moderator, id_of(&id)?).await? {
        return Err(ApiError::not_found());
    }
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(json!({})))
}

// ---- domain allows ----

const DOMAIN_ALLOWS_READ: &[&str] = &["admin:read", "admin:read:domain_allows"];
const DOMAIN_ALLOWS_WRITE: &[&str] = &["admin:write", "admin:write:domain_allows"];
const DOMAIN_ALLOWS: &str = "SELECT id, domain, created_at FROM domain_allows";

fn render_domain_allow((id, domain, created_at): (i64, String, DateTime<Utc>)) -> (i64, Value) {
    (
        id,
        json!({ "id": id.to_string(), "domain": domain, "created_at": iso(created_at) }),
    )
}

#[derive(Debug, Deserialize)]
pub struct DomainParams {
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    domain: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    allow_with_approval: Option<bool>,
}

pub async fn domain_allows(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Value>, ApiError> {
    admin(&auth, DOMAIN_ALLOWS_READ)?;
    page(&state, &uri, &q, DOMAIN_ALLOWS, render_domain_allow).await
}

pub async fn domain_allow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, DOMAIN_ALLOWS_READ)?;
    one(&state, DOMAIN_ALLOWS, &id, render_domain_allow).await
}

/// `POST /api/v1/admin/domain_allows`: the domain's allow (the existing one when it has one).
pub async fn create_domain_allow(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<DomainParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, DOMAIN_ALLOWS_WRITE)?;
    let domain = normalize_domain(p.domain.as_deref())?;
    let mut tx = state.ctx.db.begin().await?;
    let fresh: Option<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO domain_allows (id, domain) VALUES ($1, $2) \
         ON CONFLICT (lower(domain)) DO NOTHING RETURNING id, domain, created_at",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(&domain)
    .fetch_optional(&mut *tx)
    .await?;
    let row = match fresh {
        Some(row) => {
            moderation::log_named(
                &mut tx,
                &state.ids,
                moderator,
                "create",
                ("DomainAllow", row.0, Some(&domain)),
            )
            .await?;
            row
        }
        None => {
            sqlx::query_as(&format!("{DOMAIN_ALLOWS} WHERE lower(domain) = lower($1)"))
                .bind(&domain)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(render_domain_allow(row).1))
}

/// `DELETE /api/v1/admin/domain_allows/:id`. Answers `{}`.
pub async fn delete_domain_allow(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, DOMAIN_ALLOWS_WRITE)?;
    let delete = "DELETE FROM domain_allows WHERE id = $1 RETURNING domain";
    let answer = remove(&state, moderator, delete, "DomainAllow", &id).await?;
    policy_changed(&state).await;
    Ok(answer)
}

// ---- e-mail domain blocks ----

const EMAIL_DOMAINS_READ: &[&str] = &["admin:read", "admin:read:email_domain_blocks"];
const EMAIL_DOMAINS_WRITE: &[&str] = &["admin:write", "admin:write:email_domain_blocks"];

/// The `history` of the last 7 days (today first): sign-up attempts the block stopped, and
/// from how many addresses.
const EMAIL_DOMAINS: &str = "SELECT id, domain, created_at, allow_with_approval, \
       (SELECT coalesce(jsonb_agg(jsonb_build_object( \
                  'day', extract(epoch FROM d)::bigint::text, \
                  'uses', (SELECT count(*) FROM email_domain_block_attempts a \
                           WHERE a.block_id = b.id AND a.created_at >= d \
                             AND a.created_at < d + interval '1 day')::text, \
                  'accounts', (SELECT count(DISTINCT a.ip) FROM email_domain_block_attempts a \
                               WHERE a.block_id = b.id AND a.created_at >= d \
                                 AND a.created_at < d + interval '1 day')::text) \
                ORDER BY d DESC), '[]'::jsonb) \
        FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
                             - interval '6 days', \
                             date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', \
                             interval '1 day') d) AS history \
     FROM email_domain_blocks b";

type EmailDomainRow = (i64, String, DateTime<Utc>, bool, Value);

fn render_email_domain(
    (id, domain, created_at, allow_with_approval, history): EmailDomainRow,
) -> (i64, Value) {
    (
        id,
        json!({
            "id": id.to_string(),
            "domain": domain,
            "created_at": iso(created_at),
            "history": history,
            "allow_with_approval": allow_with_approval,
        }),
    )
}

pub async fn email_domain_blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Value>, ApiError> {
    admin(&auth, EMAIL_DOMAINS_READ)?;
    page(&state, &uri, &q, EMAIL_DOMAINS, render_email_domain).await
}

pub async fn email_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, EMAIL_DOMAINS_READ)?;
    one(&state, EMAIL_DOMAINS, &id, render_email_domain).await
}

/// `POST /api/v1/admin/email_domain_blocks`: `domain`, and `allow_with_approval` (sign-ups
/// from it wait for a moderator instead of being refused).
pub async fn create_email_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<DomainParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, EMAIL_DOMAINS_WRITE)?;
    let domain = normalize_domain(p.domain.as_deref())?;
    let mut tx = state.ctx.db.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO email_domain_blocks (domain, allow_with_approval) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&domain)
    .bind(p.allow_with_approval.unwrap_or(false))
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| {
        ApiError::unprocessable("Validation failed: Domain has already been taken")
    })?;
    moderation::log_named(
        &mut tx,
        &state.ids,
        moderator,
        "create",
        ("EmailDomainBlock", id, Some(&domain)),
    )
    .await?;
    let row: EmailDomainRow = sqlx::query_as(&format!("{EMAIL_DOMAINS} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(render_email_domain(row).1))
}

/// `DELETE /api/v1/admin/email_domain_blocks/:id`. Answers `{}`.
pub async fn delete_email_domain_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, EMAIL_DOMAINS_WRITE)?;
    let delete = "DELETE FROM email_domain_blocks WHERE id = $1 RETURNING domain";
    remove(&state, moderator, delete, "EmailDomainBlock", &id).await
}

// ---- canonical e-mail blocks ----

const CANONICAL_READ: &[&str] = &["admin:read", "admin:read:canonical_email_blocks"];
const CANONICAL_WRITE: &[&str] = &["admin:write", "admin:write:canonical_email_blocks"];
const CANONICAL: &str = "SELECT id, canonical_email_hash FROM canonical_email_blocks";

fn render_canonical((id, hash): (i64, String)) -> (i64, Value) {
    (
        id,
        json!({ "id": id.to_string(), "canonical_email_hash": hash }),
    )
}

#[derive(Debug, Deserialize)]
pub struct CanonicalParams {
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    email: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    canonical_email_hash: Option<String>,
}

pub async fn canonical_email_blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Value>, ApiError> {
    admin(&auth, CANONICAL_READ)?;
    page(&state, &uri, &q, CANONICAL, render_canonical).await
}

pub async fn canonical_email_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, CANONICAL_READ)?;
    one(&state, CANONICAL, &id, render_canonical).await
}

/// `POST /api/v1/admin/canonical_email_blocks/test`: the blocks `email` falls under.
pub async fn test_canonical_email(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<CanonicalParams>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, CANONICAL_READ)?;
    let email = p.email.filter(|e| !e.trim().is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "param is missing or the value is empty: email",
        )
    })?;
    let rows: Vec<(i64, String)> =
        sqlx::query_as(&format!("{CANONICAL} WHERE canonical_email_hash = $1"))
            .bind(sha256_hex(&canonical_email(&email)))
            .fetch_all(&state.ctx.db)
            .await?;
    Ok(Json(Value::Array(
        rows.into_iter().map(|r| render_canonical(r).1).collect(),
    )))
}

/// `POST /api/v1/admin/canonical_email_blocks`: by `email` (canonicalized and hashed here) or
/// by `canonical_email_hash`.
pub async fn create_canonical_email_block(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<CanonicalParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, CANONICAL_WRITE)?;
    let hash = match (
        p.email.filter(|e| !e.trim().is_empty()),
        p.canonical_email_hash,
    ) {
        (Some(email), _) => sha256_hex(&canonical_email(&email)),
        (None, Some(hash)) if !hash.trim().is_empty() => hash.trim().to_ascii_lowercase(),
        _ => {
            return Err(ApiError::unprocessable(
                "Validation failed: Canonical email hash can't be blank",
            ));
        }
    };
    let mut tx = state.ctx.db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO canonical_email_blocks (id, canonical_email_hash) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::unprocessable("Validation failed: Canonical email hash has already been taken")
    })?;
    moderation::log_named(
        &mut tx,
        &state.ids,
        moderator,
        "create",
        ("CanonicalEmailBlock", id, Some(&hash)),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(render_canonical((id, hash)).1))
}

/// `DELETE /api/v1/admin/canonical_email_blocks/:id`. Answers `{}`.
pub async fn delete_canonical_email_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, CANONICAL_WRITE)?;
    let delete = "DELETE FROM canonical_email_blocks WHERE id = $1 RETURNING canonical_email_hash";
    remove(&state, moderator, delete, "CanonicalEmailBlock", &id).await
}

// ---- IP blocks ----

const IP_READ: &[&str] = &["admin:read", "admin:read:ip_blocks"];
const IP_WRITE: &[&str] = &["admin:write", "admin:write:ip_blocks"];
/// `ip` as Mastodon shows it: always with its prefix (`192.0.2.7/32`).
const IP_BLOCKS: &str = "SELECT id, host(network(ip)) || '/' || masklen(ip) AS ip, severity, \
     comment, created_at, expires_at FROM ip_blocks";

type IpRow = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn render_ip((id, ip, severity, comment, created_at, expires_at): IpRow) -> (i64, Value) {
    (
        id,
        json!({
            "id": id.to_string(),
            "ip": ip,
            "severity": severity,
            "comment": comment,
            "created_at": iso(created_at),
            "expires_at": expires_at.map(iso),
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct IpParams {
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    ip: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    severity: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    comment: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    expires_in: Option<String>,
}

impl IpParams {
    /// The range (`ip` or `ip/prefix`), checked here so PostgreSQL never sees a bad one.
    fn range(&self) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let (addr, prefix) = raw.split_once('/').unwrap_or((raw, ""));
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| ApiError::unprocessable("Validation failed: Ip is invalid"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match prefix {
            "" => max,
            p => p
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| ApiError::unprocessable("Validation failed: Ip is invalid"))?,
        };
        Ok(Some(format!("{addr}/{prefix}")))
    }

    fn severity(&self) -> Result<Option<&'static str>, ApiError> {
        match self.severity.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => match IpSeverity::parse(name) {
                Some(IpSeverity::SignUpRequiresApproval) => Ok(Some("sign_up_requires_approval")),
                Some(IpSeverity::SignUpBlock) => Ok(Some("sign_up_block")),
                Some(IpSeverity::NoAccess) => Ok(Some("no_access")),
                None => Err(ApiError::unprocessable(
                    "Validation failed: Severity is not included in the list",
                )),
            },
        }
    }

    /// `expires_in` seconds (blank: never).
    fn expires_in(&self) -> Result<Option<i64>, ApiError> {
        match self
            .expires_in
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(secs) => secs
                .parse::<i64>()
                .ok()
                .filter(|s| *s > 0 && *s <= 10 * 365 * 86_400)
                .map(Some)
                .ok_or_else(|| ApiError::unprocessable("Validation failed: Expires in is invalid")),
        }
    }
}

pub async fn ip_blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Value>, ApiError> {
    admin(&auth, IP_READ)?;
    page(&state, &uri, &q, IP_BLOCKS, render_ip).await
}

pub async fn ip_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&auth, IP_READ)?;
    one(&state, IP_BLOCKS, &id, render_ip).await
}

/// `POST /api/v1/admin/ip_blocks`: `ip`, `severity`, `comment`, `expires_in`.
pub async fn create_ip_block(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<IpParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, IP_WRITE)?;
    let range = p.range()?.unwrap_or_else(|| "0.0.0.0/32".to_string());
    let severity = p
        .severity()?
        .ok_or_else(|| ApiError::unprocessable("Validation failed: Severity can't be blank"))?;
    let expires_in = p.expires_in()?;
    let mut tx = state.ctx.db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ip_blocks (id, ip, severity, comment, expires_at) \
         VALUES ($1, $2::inet, $3, $4, now() + make_interval(secs => $5)) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(&range)
    .bind(severity)
    .bind(p.comment.as_deref().unwrap_or(""))
    .bind(expires_in.map(|s| s as f64))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::unprocessable("Validation failed: Ip has already been taken"))?;
    moderation::log_named(
        &mut tx,
        &state.ids,
        moderator,
        "create",
        ("IpBlock", id, Some(&range)),
    )
    .await?;
    let row: IpRow = sqlx::query_as(&format!("{IP_BLOCKS} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(render_ip(row).1))
}

/// `PUT /api/v1/admin/ip_blocks/:id`: what is given changes.
pub async fn update_ip_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<IpParams>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, IP_WRITE)?;
    let id = id_of(&id)?;
    let (range, severity, expires_in) = (p.range()?, p.severity()?, p.expires_in()?);
    let mut tx = state.ctx.db.begin().await?;
    let updated = sqlx::query(
        "UPDATE ip_blocks SET ip = coalesce($2::inet, ip), severity = coalesce($3, severity), \
           comment = coalesce($4, comment), \
           expires_at = CASE WHEN $5::float8 IS NULL THEN expires_at \
                             ELSE now() + make_interval(secs => $5) END, \
           updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&range)
    .bind(severity)
    .bind(&p.comment)
    .bind(expires_in.map(|s| s as f64))
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(done) if done.rows_affected() == 0 => return Err(ApiError::not_found()),
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::unprocessable(
                "Validation failed: Ip has already been taken",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let row: IpRow = sqlx::query_as(&format!("{IP_BLOCKS} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    moderation::log_named(
        &mut tx,
        &state.ids,
        moderator,
        "update",
        ("IpBlock", id, Some(&row.1)),
    )
    .await?;
    tx.commit().await?;
    policy_changed(&state).await;
    Ok(Json(render_ip(row).1))
}

/// `DELETE /api/v1/admin/ip_blocks/:id`. Answers `{}`.
pub async fn delete_ip_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moderator = admin(&auth, IP_WRITE)?;
    let delete =
        "DELETE FROM ip_blocks WHERE id = $1 RETURNING host(network(ip)) || '/' || masklen(ip)";
    let answer = remove(&state, moderator, delete, "IpBlock", &id).await?;
    policy_changed(&state).await;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_emails_and_domains() {
        assert_eq!(
            canonical_email("Foo.Bar+x@Example.COM"),
            "foobar@example.com"
        );
        assert_eq!(canonical_email("a@b.org"), "a@b.org");
        assert_eq!(
            sha256_hex("example.com"),
            "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
        );
        assert_eq!(
            normalize_domain(Some(" Example.COM. ")).unwrap(),
            "example.com"
        );
        assert_eq!(
            normalize_domain(Some("127.0.0.1:4000")).unwrap(),
            "127.0.0.1:4000"
        );
        assert_eq!(
            normalize_domain(Some("bücher.example")).unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(normalize_domain(Some("")).is_err());
        assert!(normalize_domain(Some("a/b")).is_err());
    }
}
