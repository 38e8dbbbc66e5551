//! `/api/v1/admin/accounts` (and `/api/v2/admin/accounts`): review and approve sign-ups.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::admin::{self, Status};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::{AppState, accounts};

#[derive(Debug, Deserialize, Default)]
pub struct IndexQuery {
    /// v1 flags
    #[serde(default, deserialize_with = "flex::opt_bool")]
    local: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    remote: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pending: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    active: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    silenced: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    suspended: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitized: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    staff: Option<bool>,
    /// v2 (also accepted on v1)
    status: Option<String>,
    origin: Option<String>,
    permissions: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    role_ids: Option<Vec<String>>,
    username: Option<String>,
    display_name: Option<String>,
    by_domain: Option<String>,
    email: Option<String>,
    ip: Option<String>,
    max_id: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
}

impl IndexQuery {
    /// The filters asked for (400 for an unknown origin or status, as Mastodon answers).
    fn filter(&self) -> Result<admin::Filter, ApiError> {
        let bad = |what: &str, value: &str| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("Unknown {what}: {value}"),
            )
        };
        let origin = match self.origin.as_deref() {
            Some("local") => admin::Origin::Local,
            Some("remote") => admin::Origin::Remote,
            Some(other) => return Err(bad("origin", other)),
            None if self.local == Some(true) => admin::Origin::Local,
            None if self.remote == Some(true) => admin::Origin::Remote,
            None => admin::Origin::Any,
        };
        let flag = |set: Option<bool>, status: Status| (set == Some(true)).then_some(status);
        let status = match self.status.as_deref() {
            Some(s) => Some(Status::parse(s).ok_or_else(|| bad("status", s))?),
            None => flag(self.pending, Status::Pending)
                .or(flag(self.disabled, Status::Disabled))
                .or(flag(self.silenced, Status::Silenced))
                .or(flag(self.suspended, Status::Suspended))
                .or(flag(self.sensitized, Status::Sensitized))
                .or(flag(self.active, Status::Active)),
        };
        Ok(admin::Filter {
            origin,
            status,
            staff: self.staff == Some(true) || self.permissions.as_deref() == Some("staff"),
            role_ids: self.role_ids.clone().unwrap_or_default(),
            username: self.username.clone().filter(|s| !s.is_empty()),
            display_name: self.display_name.clone().filter(|s| !s.is_empty()),
            by_domain: self.by_domain.clone().filter(|s| !s.is_empty()),
            email: self.email.clone().filter(|s| !s.is_empty()),
            ip: self.ip.clone().filter(|s| !s.is_empty()),
        })
    }
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

async fn index(
    state: AppState,
    auth: Auth,
    q: IndexQuery,
    raw_query: Option<String>,
    path: &str,
) -> Result<Response, ApiError> {
    auth.require(&["admin:read", "admin:read:accounts"])?;
    auth.staff()?;
    let filter = q.filter()?;
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 200));
    let max_id = q.max_id.as_deref().map(parse_id).transpose()?;
    let rows = admin::list(&state.ctx.db, &filter, max_id, limit).await?;
    let body: Vec<Value> = rows
        .iter()
        .map(|(a, u, ip)| state.render_any_admin_account(a, u.as_ref(), ip.clone()))
        .collect();
    let mut response = Json(body).into_response();
    if rows.len() as i64 == limit
        && let Some((last, _, _)) = rows.last()
    {
        // The next page keeps every filter of this one; only the cursor moves.
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()) {
            if !matches!(k.as_ref(), "max_id" | "min_id" | "since_id") {
                next.append_pair(&k, &v);
            }
        }
        next.append_pair("max_id", &last.id.to_string());
        let link = format!(
            "<{}{path}?{}>; rel=\"next\"",
            state.base_url(),
            next.finish()
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

pub async fn index_v1(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
    Params(q): Params<IndexQuery>,
) -> Result<Response, ApiError> {
    index(state, auth, q, raw, "/api/v1/admin/accounts").await
}

pub async fn index_v2(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
    Params(q): Params<IndexQuery>,
) -> Result<Response, ApiError> {
    index(state, auth, q, raw, "/api/v2/admin/accounts").await
}

async fn render(state: &AppState, id: i64) -> Result<Value, ApiError> {
    let account = accounts::find(&state.ctx.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let user = accounts::user_of(&state.ctx.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(state.render_admin_account(&account, &user, None))
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&["admin:read", "admin:read:accounts"])?;
    auth.staff()?;
    // Remote accounts too: moderators act on them (and on whole domains).
    Ok(Json(
        super::reports::admin_account(&state, parse_id(&id)?).await?,
    ))
}

pub async fn approve(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&["admin:write", "admin:write:accounts"])?;
    auth.staff()?;
    let id = parse_id(&id)?;
    state.approve(id).await?;
    Ok(Json(render(&state, id).await?))
}

pub async fn reject(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&["admin:write", "admin:write:accounts"])?;
    auth.staff()?;
    let id = parse_id(&id)?;
    let before = render(&state, id).await?;
    state.reject(id).await?;
    Ok(Json(before))
}
