//! `GET /api/v1/instance`, `GET /api/v2/instance`, `GET /api/v1/instance/rules`.
//!
//! `version` reads `4.5.0 (compatible; Stampede 0.1.0)`: client libraries parse the leading
//! Mastodon version to decide which features the server has.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sqlx::Row;
use stampede_mastodon::instance::Rule;
use stampede_runtime::config::{Audience, RegistrationsMode};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;

/// The Mastodon API version Stampede answers as.
pub const MASTODON_VERSION: &str = "4.5.0";

pub fn version() -> String {
    format!(
        "{MASTODON_VERSION} (compatible; Stampede {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The account SITE_CONTACT_USERNAME names (`user`, `@user`; a local one), if any.
async fn contact_account(state: &AppState) -> Result<Option<stampede_mastodon::Account>, ApiError> {
    let Some(name) = state.ctx.config.web.contact_username.as_deref() else {
        return Ok(None);
    };
    let name = name.trim().trim_start_matches('@');
    let name = match name.split_once('@') {
        Some((user, domain)) if domain.eq_ignore_ascii_case(&state.ctx.config.local_domain) => user,
        Some(_) => return Ok(None),
        None => name,
    };
    let row = crate::accounts::find_local(&state.ctx.db, name).await?;
    Ok(row
        .filter(|r| r.suspended_at.is_none())
        .map(|r| state.render_account(&r)))
}

/// Mastodon's obfuscation of a blocked domain: the middle half of its characters (not the
/// dots) become `*`.
fn obfuscated(domain: &str) -> String {
    let chars: Vec<char> = domain.chars().collect();
    let length = chars.len();
    let visible = length / 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i > visible && i < length - visible && *c != '.' {
                '*'
            } else {
                *c
            }
        })
        .collect()
}

/// `GET /api/v1/instance/domain_blocks`: the servers this one limits or suspends, when the
/// operator publishes them (SHOW_DOMAIN_BLOCKS `all`, or `users` for signed-in people; 404
/// otherwise, as Mastodon answers), with the public comment when
/// SHOW_DOMAIN_BLOCKS_RATIONALE allows.
pub async fn domain_blocks(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
) -> Result<Json<Value>, ApiError> {
    let federation = &state.ctx.config.federation;
    let signed_in = viewer.as_ref().is_some_and(|v| v.user().is_ok());
    let shown = |audience: Audience| match audience {
        Audience::All => true,
        Audience::Users => signed_in,
        Audience::Disabled => false,
    };
    if !shown(federation.show_domain_blocks) {
        return Err(ApiError::not_found());
    }
    let with_rationale = shown(federation.show_domain_blocks_rationale);
    let rows: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
        "SELECT domain, severity, public_comment, obfuscate FROM domain_blocks \
         WHERE severity IN ('silence', 'suspend') \
         ORDER BY CASE severity WHEN 'silence' THEN 1 ELSE 2 END, domain",
    )
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(domain, severity, comment, obfuscate)| {
                json!({
                    "domain": if obfuscate { obfuscated(&domain) } else { domain.clone() },
                    "digest": crate::api::v1::admin::blocks::sha256_hex(&domain),
                    "severity": severity,
                    "comment": if with_rationale { comment } else { None },
                })
            })
            .collect(),
    )))
}

async fn load_rules(state: &AppState) -> Result<Vec<Rule>, ApiError> {
    let rows = sqlx::query("SELECT id, text, hint FROM server_rules ORDER BY position, id")
        .fetch_all(&state.ctx.db)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Rule {
                id: r.try_get::<i64, _>("id")?.to_string(),
                text: r.try_get("text")?,
                hint: r.try_get("hint")?,
            })
        })
        .collect()
}

pub async fn rules(State(state): State<AppState>) -> Result<Json<Vec<Rule>>, ApiError> {
    Ok(Json(load_rules(&state).await?))
}

fn streaming_url(state: &AppState) -> String {
    match &state.ctx.config.web.streaming_api_base_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let scheme = if state.ctx.config.web.https {
                "wss"
            } else {
                "ws"
            };
            format!("{scheme}://{}", state.ctx.config.web_domain)
        }
    }
}

async fn configuration(state: &AppState) -> Value {
    let media = &state.ctx.config.media;
    json!({
        "urls": { "streaming": streaming_url(state), "status": null },
        "vapid": { "public_key": state.vapid_key().await.unwrap_or_default() },
        "accounts": { "max_featured_tags": 10, "max_pinned_statuses": 5 },
        "statuses": {
            "max_characters": state.ctx.config.statuses.max_chars,
            "max_media_attachments": 4,
            "characters_reserved_per_url": stampede_social::text::URL_LENGTH,
        },
        "media_attachments": {
            "supported_mime_types": state.uploads.supported_mime_types().await,
            "image_size_limit": media.image_bytes,
            "image_matrix_limit": state.uploads.limits.max_decode_pixels,
            "video_size_limit": media.video_bytes,
            "video_frame_rate_limit": 120,
            "video_matrix_limit": 8_294_400,
            "description_limit": 1500,
        },
        "polls": {
            "max_options": stampede_social::post::MAX_POLL_OPTIONS,
            "max_characters_per_option": stampede_social::post::MAX_POLL_OPTION_CHARS,
            "min_expiration": stampede_social::post::MIN_POLL_EXPIRY,
            "max_expiration": stampede_social::post::MAX_POLL_EXPIRY,
        },
        "translation": { "enabled": false },
    })
}

/// The instance's statistics: users who may sign in, those active in the last 30 days, local
/// statuses and the domains accounts are known from.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Counts {
    users: i64,
    active_month: i64,
    statuses: i64,
    domains: i64,
}

/// How long the statistics are reused: every client asks for the instance at start, and in a
/// surge that is thousands of times a minute for figures nobody needs to the second.
const COUNTS_FOR: std::time::Duration = std::time::Duration::from_secs(60);

async fn counts(state: &AppState) -> Result<Counts, ApiError> {
    if let Some((at, counts)) = *state.instance_counts.lock()
        && at.elapsed() < COUNTS_FOR
    {
        return Ok(counts);
    }
    let counts: Counts = sqlx::query_as(
        "SELECT \
           (SELECT count(*) FROM users \
            WHERE approved AND confirmed_at IS NOT NULL AND NOT disabled) AS users, \
           (SELECT count(*) FROM users WHERE approved AND confirmed_at IS NOT NULL AND NOT disabled \
              AND last_active_at > now() - interval '30 days') AS active_month, \
           (SELECT coalesce(sum(st.statuses_count), 0)::bigint FROM account_stats st \
              JOIN accounts a ON a.id = st.account_id WHERE a.domain IS NULL) AS statuses, \
           (SELECT count(DISTINCT domain) FROM accounts WHERE domain IS NOT NULL) AS domains",
    )
    .fetch_one(&state.ctx.db)
    .await?;
    *state.instance_counts.lock() = Some((std::time::Instant::now(), counts));
    Ok(counts)
}

pub async fn v2(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let config = &state.ctx.config;
    let registrations = &config.registrations;
    let counts = counts(&state).await?;
    Ok(Json(json!({
        "domain": config.local_domain,
        "title": config.web.site_title,
        "version": version(),
        "source_url": config.web.source_url,
        "description": config.web.description,
        "usage": { "users": { "active_month": counts.active_month } },
        "thumbnail": { "url": format!("{}/headers/original/missing.png", state.base_url()) },
        "icon": [],
        "languages": [config.web.default_locale],
        "configuration": configuration(&state).await,
        "registrations": {
            "enabled": registrations.mode != RegistrationsMode::None,
            "approval_required": registrations.mode == RegistrationsMode::Approved,
            "reason_required": registrations.mode == RegistrationsMode::Approved,
            "min_age": registrations.min_age,
            "message": null,
            "url": null,
        },
        "api_versions": { "mastodon": 6 },
        "contact": { "email": config.web.contact_email, "account": contact_account(&state).await? },
        "rules": load_rules(&state).await?,
    })))
}

pub async fn v1(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let config = &state.ctx.config;
    let registrations = &config.registrations;
    let counts = counts(&state).await?;
    Ok(Json(json!({
        "uri": config.local_domain,
        "title": config.web.site_title,
        "short_description": config.web.description,
        "description": config.web.description,
        "email": config.web.contact_email,
        "version": version(),
        "urls": { "streaming_api": streaming_url(&state) },
        "stats": {
            "user_count": counts.users,
            "status_count": counts.statuses,
            "domain_count": counts.domains,
        },
        "thumbnail": format!("{}/headers/original/missing.png", state.base_url()),
        "languages": [config.web.default_locale],
        "registrations": registrations.mode != RegistrationsMode::None,
        "approval_required": registrations.mode == RegistrationsMode::Approved,
        // Invites are made by the operator (`stampede admin invites`), not by users.
        "invites_enabled": false,
        "configuration": configuration(&state).await,
        "contact_account": contact_account(&state).await?,
        "rules": load_rules(&state).await?,
    })))
}

/// `GET /api/v1/instance/peers`: the domains this server knows accounts of.
pub async fn peers(State(state): State<AppState>) -> Result<Json<Vec<String>>, ApiError> {
    let domains: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT domain FROM accounts WHERE domain IS NOT NULL AND suspended_at IS NULL \
         ORDER BY domain",
    )
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(domains))
}

/// `GET /api/v1/instance/activity`: the last twelve weeks, newest first: local statuses posted,
/// users active (by their last API use) and sign-ups, per week starting on Monday.
pub async fn activity(
    State(state): State<AppState>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "WITH weeks AS (SELECT generate_series(date_trunc('week', now()) - interval '11 weeks', \
                                               date_trunc('week', now()), interval '1 week') AS w) \
         SELECT extract(epoch FROM w)::bigint, \
           (SELECT count(*) FROM statuses s JOIN accounts a ON a.id = s.account_id \
            WHERE a.domain IS NULL AND s.created_at >= w AND s.created_at < w + interval '1 week'), \
           (SELECT count(*) FROM users u \
            WHERE u.last_active_at >= w AND u.last_active_at < w + interval '1 week'), \
           (SELECT count(*) FROM users u \
            WHERE u.created_at >= w AND u.created_at < w + interval '1 week') \
         FROM weeks ORDER BY w DESC",
    )
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(week, statuses, logins, registrations)| {
                json!({
                    "week": week.to_string(),
                    "statuses": statuses.to_string(),
                    "logins": logins.to_string(),
                    "registrations": registrations.to_string(),
                })
            })
            .collect(),
    ))
}

/// `GET /api/v1/instance/extended_description`: the server's longer description. None can be
/// configured yet, so it is empty, as Mastodon answers before an admin writes one (with the
/// current time as `updated_at`).
pub async fn extended_description() -> Json<Value> {
    Json(json!({
        "updated_at": stampede_mastodon::time::iso(chrono::Utc::now()),
        "content": "",
    }))
}

/// `GET /api/v1/instance/translation_languages`: none (no translation service configured).
pub async fn translation_languages() -> Json<Value> {
    Json(json!({}))
}

/// `GET /api/v1/custom_emojis`: this server's custom emojis (those added by the operator),
/// by shortcode. Public, like Mastodon's.
pub async fn custom_emojis(
    State(state): State<AppState>,
) -> Result<Json<Vec<stampede_mastodon::CustomEmoji>>, ApiError> {
    Ok(Json(state.render.emojis().await?.local()))
}

/// `GET /api/v1/instance/privacy_policy`: the operator's policy, or the built-in one.
pub async fn privacy_policy(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (content, updated_at) =
        stampede_social::legal::privacy_policy(&state.ctx.db, &state.ctx.config.local_domain)
            .await?;
    Ok(Json(json!({
        "updated_at": stampede_mastodon::time::iso(updated_at),
        "content": content,
    })))
}

fn render_terms(terms: stampede_social::legal::Terms, today: chrono::NaiveDate) -> Value {
    json!({
        "effective_date": terms.effective_date.to_string(),
        "effective": terms.effective_date <= today,
        "content": stampede_social::legal::markdown(&terms.text),
        "succeeded_by": terms.succeeded_by.map(|d| d.to_string()),
    })
}

/// `GET /api/v1/instance/terms_of_service`: the terms in force (or the first coming ones);
/// 404 when the operator published none.
pub async fn terms_of_service(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let terms = stampede_social::legal::current_terms(&state.ctx.db, today)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render_terms(terms, today)))
}

/// `GET /api/v1/instance/terms_of_service/:date` (`YYYY-MM-DD`): that version.
pub async fn terms_of_service_on(
    State(state): State<AppState>,
    axum::extract::Path(date): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let date =
        chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| ApiError::not_found())?;
    let terms = stampede_social::legal::terms_of(&state.ctx.db, date)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render_terms(terms, chrono::Utc::now().date_naive())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn obfuscation_as_mastodon_does_it() {
        assert_eq!(super::obfuscated("example.com"), "exa****.*om");
        assert_eq!(super::obfuscated("a.b"), "a.*");
    }
}
