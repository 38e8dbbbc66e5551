//! `/api/v1/push/subscription`: the Web Push subscription of the access token in use (one per
//! token, as in Mastodon). The deliver workers send notifications to it (see
//! `stampede_social::push`).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use stampede_mastodon::WebPushSubscription;
use stampede_social::push::{ALERTS, POLICIES};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Validation};
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Default, Deserialize)]
pub struct Keys {
    p256dh: Option<String>,
    auth: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubscriptionParams {
    endpoint: Option<String>,
    #[serde(default)]
    keys: Keys,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    standard: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DataParams {
    alerts: Option<HashMap<String, Value>>,
    policy: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateParams {
    #[serde(default)]
    subscription: SubscriptionParams,
    #[serde(default)]
    data: DataParams,
    /// Mastodon also takes `policy` outside `data` (Mastodon.py sends it there).
    policy: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateParams {
    #[serde(default)]
    data: DataParams,
    /// Mastodon also takes `policy` outside `data`.
    policy: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    endpoint: String,
    standard: bool,
    alerts: sqlx::types::Json<BTreeMap<String, bool>>,
    policy: String,
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.as_str(), "true" | "1" | "on" | "t"),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// Every known alert, on where `given` says so.
fn alerts(given: &Option<HashMap<String, Value>>) -> BTreeMap<String, bool> {
    ALERTS
        .iter()
        .map(|kind| {
            let on = given
                .as_ref()
                .and_then(|g| g.get(*kind))
                .is_some_and(truthy);
            (kind.to_string(), on)
        })
        .collect()
}

fn key_length(value: &str) -> Option<usize> {
    stampede_webpush::decode_key(value).ok().map(|k| k.len())
}

fn check_policy(policy: &Option<String>, v: &mut Validation) {
    if let Some(policy) = policy
        && !POLICIES.contains(&policy.as_str())
    {
        v.add("policy", "ERR_INCLUSION", "is not included in the list");
    }
}

async fn render(state: &AppState, row: Row) -> Result<WebPushSubscription, ApiError> {
    Ok(WebPushSubscription {
        id: row.id.to_string(),
        endpoint: row.endpoint,
        standard: row.standard,
        alerts: row.alerts.0,
        server_key: state.vapid_key().await?,
        policy: row.policy,
    })
}

async fn current(state: &AppState, token_id: i64) -> Result<Option<Row>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, endpoint, standard, alerts, policy FROM web_push_subscriptions \
         WHERE access_token_id = $1",
    )
    .bind(token_id)
    .fetch_optional(&state.ctx.db)
    .await?)
}

/// `POST /api/v1/push/subscription`: subscribes this token, replacing its subscription.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<CreateParams>,
) -> Result<Json<WebPushSubscription>, ApiError> {
    auth.require(scopes::PUSH)?;
    let account_id = auth.user()?.account_id;
    let s = p.subscription;
    let mut v = Validation::default();
    let endpoint = s.endpoint.as_deref().map(str::trim).unwrap_or_default();
    if endpoint.is_empty() {
        v.add("endpoint", "ERR_BLANK", "can't be blank");
    } else if !url::Url::parse(endpoint)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
    {
        v.add("endpoint", "ERR_INVALID", "is not a valid URL");
    }
    let p256dh = s.keys.p256dh.unwrap_or_default();
    if key_length(&p256dh) != Some(65) {
        v.add(
            "keys.p256dh",
            "ERR_INVALID",
            "is not a valid uncompressed P-256 public key",
        );
    }
    let auth_secret = s.keys.auth.unwrap_or_default();
    if key_length(&auth_secret) != Some(16) {
        v.add("keys.auth", "ERR_INVALID", "is not a 16-byte secret");
    }
    let policy = p.data.policy.or(p.policy);
    check_policy(&policy, &mut v);
    v.finish()?;
    let mut tx = state.ctx.db.begin().await?;
    sqlx::query("DELETE FROM web_push_subscriptions WHERE access_token_id = $1")
        .bind(auth.token_id)
        .execute(&mut *tx)
        .await?;
    let row: Row = sqlx::query_as(
        "INSERT INTO web_push_subscriptions \
           (id, access_token_id, account_id, endpoint, key_p256dh, key_auth, standard, alerts, policy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING id, endpoint, standard, alerts, policy",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(auth.token_id)
    .bind(account_id)
    .bind(endpoint)
    .bind(p256dh.trim())
    .bind(auth_secret.trim())
    .bind(s.standard.unwrap_or(false))
    .bind(sqlx::types::Json(alerts(&p.data.alerts)))
    .bind(policy.as_deref().unwrap_or("all"))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(render(&state, row).await?))
}

/// `GET /api/v1/push/subscription`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<WebPushSubscription>, ApiError> {
    auth.require(scopes::PUSH)?;
    auth.user()?;
    let row = current(&state, auth.token_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(&state, row).await?))
}

/// `PUT /api/v1/push/subscription`: changes the alerts (those not given are turned off) and
/// the policy.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<UpdateParams>,
) -> Result<Json<WebPushSubscription>, ApiError> {
    auth.require(scopes::PUSH)?;
    auth.user()?;
    let policy = p.data.policy.or(p.policy);
    let mut v = Validation::default();
    check_policy(&policy, &mut v);
    v.finish()?;
    let row: Row = sqlx::query_as(
        "UPDATE web_push_subscriptions \
         SET alerts = coalesce($2, alerts), policy = coalesce($3, policy), updated_at = now() \
         WHERE access_token_id = $1 RETURNING id, endpoint, standard, alerts, policy",
    )
    .bind(auth.token_id)
    .bind(
        p.data
            .alerts
            .is_some()
            .then(|| sqlx::types::Json(alerts(&p.data.alerts))),
    )
    .bind(policy)
    .fetch_optional(&state.ctx.db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    Ok(Json(render(&state, row).await?))
}

/// `DELETE /api/v1/push/subscription`: `{}`, whether there was one or not.
pub async fn delete(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(scopes::PUSH)?;
    auth.user()?;
    sqlx::query("DELETE FROM web_push_subscriptions WHERE access_token_id = $1")
        .bind(auth.token_id)
        .execute(&state.ctx.db)
        .await?;
    Ok(Json(serde_json::json!({})))
}
