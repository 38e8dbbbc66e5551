//! `POST /api/v1/reports`: a user reports an account (and some of its statuses) to the
//! moderators; a remote account's server can be told too, with a `Flag` from the instance
//! actor so the reporter stays anonymous.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_mastodon::time::iso;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Validation};
use crate::payload::{Params, flex};
use crate::scopes;

/// Mastodon's limit on a report's comment.
const MAX_COMMENT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct CreateReport {
    #[serde(default, deserialize_with = "flex::opt_id")]
    account_id: Option<i64>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    status_ids: Option<Vec<String>>,
    comment: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    forward: Option<bool>,
    category: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    rule_ids: Option<Vec<String>>,
}

fn ids(list: &Option<Vec<String>>) -> Result<Vec<i64>, ApiError> {
    list.iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| ApiError::not_found()))
        .collect()
}

/// `POST /api/v1/reports`.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<CreateReport>,
) -> Result<Json<Value>, ApiError> {
    let reporter = auth.account(scopes::REPORTS_WRITE)?;
    let target = state
        .target_account(&p.account_id.map(|i| i.to_string()).unwrap_or_default())
        .await?;
    let status_ids = ids(&p.status_ids)?;
    let rule_ids = ids(&p.rule_ids)?;
    let comment = p.comment.unwrap_or_default();
    let mut v = Validation::default();
    if comment.chars().count() > MAX_COMMENT {
        v.add(
            "comment",
            "ERR_TOO_LONG",
            "is too long (maximum is 1000 characters)",
        );
    }
    // Naming rules makes the report a violation of them, whatever category was given.
    let category = if rule_ids.is_empty() {
        p.category.unwrap_or_else(|| "other".to_string())
    } else {
        "violation".to_string()
    };
    if !matches!(category.as_str(), "spam" | "legal" | "violation" | "other") {
        v.add("category", "ERR_INCLUSION", "is not included in the list");
    }
    let known_rules: i64 =
        sqlx::query_scalar("SELECT count(*) FROM server_rules WHERE id = ANY($1)")
            .bind(&rule_ids)
            .fetch_one(&state.ctx.db)
            .await?;
    if known_rules != rule_ids.len() as i64 {
        v.add("rule_ids", "ERR_INVALID", "are not this server's rules");
    }
    v.finish()?;

    let mut tx = state.ctx.db.begin().await?;
    // The statuses must be the reported account's (Mastodon answers 404 otherwise).
    let uris: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, uri FROM statuses WHERE id = ANY($1) AND account_id = $2")
            .bind(&status_ids)
            .bind(target.id)
            .fetch_all(&mut *tx)
            .await?;
    if uris.len() != status_ids.len() {
        return Err(ApiError::not_found());
    }
    let id = state.ids.next_id().as_i64();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO reports (id, account_id, target_account_id, status_ids, rule_ids, category, comment) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
    )
    .bind(id)
    .bind(reporter)
    .bind(target.id)
    .bind(&status_ids)
    .bind(&rule_ids)
    .bind(&category)
    .bind(&comment)
    .fetch_one(&mut *tx)
    .await?;
    let forwarded = if p.forward == Some(true) && target.domain.is_some() {
        let status_uris: Vec<String> = uris.into_iter().filter_map(|(_, uri)| uri).collect();
        stampede_social::outbound::flag(
            &mut tx,
            &state.base_url(),
            id,
            target.id,
            &status_uris,
            &comment,
        )
        .await?
    } else {
        false
    };
    if forwarded {
        sqlx::query("UPDATE reports SET forwarded = true WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "action_taken": false,
        "action_taken_at": null,
        "category": category,
        "comment": comment,
        "forwarded": forwarded,
        "created_at": iso(created_at),
        "status_ids": status_ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "rule_ids": rule_ids.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "target_account": state.render_account(&target),
    })))
}
