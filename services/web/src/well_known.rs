//! Discovery: `/.well-known/webfinger` (who `alice@example.com` is), `/.well-known/host-meta`
//! (where WebFinger lives, for older software), `/.well-known/nodeinfo` and `/nodeinfo/2.0`,
//! `/nodeinfo/2.1` (what this server is, with its real counts).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::accounts;
use crate::error::ApiError;
use stampede_social::activitypub::actor_uri;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/webfinger", get(webfinger))
        .route("/.well-known/host-meta", get(host_meta))
        .route("/.well-known/nodeinfo", get(nodeinfo_links))
        .route("/nodeinfo/2.0", get(nodeinfo_20))
        .route("/nodeinfo/2.1", get(nodeinfo_21))
}

#[derive(Debug, Deserialize)]
struct WebfingerQuery {
    resource: Option<String>,
}

/// Which local username a WebFinger resource names: `acct:alice@DOMAIN` (the `acct:` optional,
/// a leading `@` tolerated), or the actor or profile URL. `None` when it names another server.
fn username_of(resource: &str, local_domain: &str, web_domain: &str, base: &str) -> Option<String> {
    let resource = resource.trim();
    if let Some(rest) = resource
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix("/users/").or_else(|| r.strip_prefix("/@")))
    {
        return (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
    }
    if resource == format!("{base}/actor") {
        return Some(local_domain.to_string());
    }
    let handle = resource.strip_prefix("acct:").unwrap_or(resource);
    let handle = handle.strip_prefix('@').unwrap_or(handle);
    let (user, domain) = handle.rsplit_once('@')?;
    let here = domain.eq_ignore_ascii_case(local_domain) || domain.eq_ignore_ascii_case(web_domain);
    (here && !user.is_empty()).then(|| user.to_string())
}

/// `GET /.well-known/webfinger?resource=…`: the JRD of a local account (or the instance actor,
/// whose username is the domain); 400 without a resource, 404 for anyone else.
async fn webfinger(
    State(state): State<AppState>,
    Query(query): Query<WebfingerQuery>,
) -> Result<Response, ApiError> {
    let resource = query
        .resource
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "The resource parameter is required",
            )
        })?;
    let config = &state.ctx.config;
    let base = state.base_url();
    let username = username_of(&resource, &config.local_domain, &config.web_domain, &base)
        .ok_or_else(ApiError::not_found)?;
    let domain = &config.local_domain;
    let jrd = if username.eq_ignore_ascii_case(domain) {
        let actor = format!("{base}/actor");
        json!({
            "subject": format!("acct:{domain}@{domain}"),
            "aliases": [actor],
            "links": [
                { "rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
                  "href": format!("{base}/about/more?instance_actor=true") },
                { "rel": "self", "type": "application/activity+json", "href": actor },
            ],
        })
    } else {
        let row = accounts::find_local(&state.ctx.db, &username)
            .await?
            .filter(|r| r.suspended_at.is_none())
            .ok_or_else(ApiError::not_found)?;
        let actor = actor_uri(&base, &row.username);
        let profile = format!("{base}/@{}", row.username);
        json!({
            "subject": format!("acct:{}@{domain}", row.username),
            "aliases": [profile, actor],
            "links": [
                { "rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": profile },
                { "rel": "self", "type": "application/activity+json", "href": actor },
                { "rel": "http://ostatus.org/schema/1.0/subscribe",
                  "template": format!("{base}/authorize_interaction?uri={{uri}}") },
            ],
        })
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/jrd+json; charset=utf-8"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(jrd),
    )
        .into_response())
}

/// `GET /.well-known/host-meta`: the XRD pointing at WebFinger.
async fn host_meta(State(state): State<AppState>) -> Response {
    let base = state.base_url();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <XRD xmlns=\"http://docs.oasis-open.org/ns/xri/xrd-1.0\">\n  \
         <Link rel=\"lrdd\" template=\"{base}/.well-known/webfinger?resource={{uri}}\"/>\n\
         </XRD>\n"
    );
    (
        [(header::CONTENT_TYPE, "application/xrd+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /.well-known/nodeinfo`: where the NodeInfo documents are.
async fn nodeinfo_links(State(state): State<AppState>) -> Json<serde_json::Value> {
    let base = state.base_url();
    Json(json!({
        "links": [
            { "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": format!("{base}/nodeinfo/2.0") },
            { "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": format!("{base}/nodeinfo/2.1") },
        ]
    }))
}

async fn nodeinfo_20(State(state): State<AppState>) -> Result<Response, ApiError> {
    nodeinfo(&state, "2.0").await
}

async fn nodeinfo_21(State(state): State<AppState>) -> Result<Response, ApiError> {
    nodeinfo(&state, "2.1").await
}

/// NodeInfo `version`, with the real user and post counts.
async fn nodeinfo(state: &AppState, version: &str) -> Result<Response, ApiError> {
    let (total, month, halfyear, posts): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), \
                count(*) FILTER (WHERE u.last_active_at > now() - interval '30 days'), \
                count(*) FILTER (WHERE u.last_active_at > now() - interval '180 days'), \
                (SELECT count(*) FROM statuses s JOIN accounts a ON a.id = s.account_id \
                 WHERE a.domain IS NULL AND s.reblog_of_id IS NULL) \
         FROM users u JOIN accounts a ON a.id = u.account_id \
         WHERE u.approved AND u.confirmed_at IS NOT NULL AND NOT u.disabled \
           AND a.suspended_at IS NULL",
    )
    .fetch_one(&state.ctx.db)
    .await?;
    let config = &state.ctx.config;
    let mut software = json!({ "name": "stampede", "version": env!("CARGO_PKG_VERSION") });
    // 2.1's optional links, only when the build names a repository (an empty URL would not
    // validate).
    let repository = env!("CARGO_PKG_REPOSITORY");
    if version == "2.1" && !repository.is_empty() {
        software["repository"] = json!(repository);
        software["homepage"] = json!(repository);
    }
    let body = json!({
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": { "outbound": [], "inbound": [] },
        "usage": {
            "users": { "total": total, "activeMonth": month, "activeHalfyear": halfyear },
            "localPosts": posts,
        },
        "openRegistrations": config.registrations.mode == stampede_runtime::config::RegistrationsMode::Open,
        "metadata": { "nodeName": config.web.site_title },
    });
    let content_type = format!(
        "application/json; profile=\"http://nodeinfo.diaspora.software/ns/schema/{version}#\""
    );
    Ok(([(header::CONTENT_TYPE, content_type)], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::username_of;

    #[test]
    fn resources_that_name_a_local_account() {
        let base = "http://127.0.0.1:3001";
        let here = |r: &str| username_of(r, "127.0.0.1:3001", "127.0.0.1:3001", base);
        assert_eq!(here("acct:alice@127.0.0.1:3001").as_deref(), Some("alice"));
        assert_eq!(here("alice@127.0.0.1:3001").as_deref(), Some("alice"));
        assert_eq!(here("@alice@127.0.0.1:3001").as_deref(), Some("alice"));
        assert_eq!(
            here("http://127.0.0.1:3001/users/alice").as_deref(),
            Some("alice")
        );
        assert_eq!(
            here("http://127.0.0.1:3001/@alice").as_deref(),
            Some("alice")
        );
        assert_eq!(
            here("http://127.0.0.1:3001/actor").as_deref(),
            Some("127.0.0.1:3001")
        );
        assert_eq!(here("acct:alice@elsewhere.example"), None);
        assert_eq!(here("http://elsewhere.example/users/alice"), None);
        assert_eq!(here("acct:@127.0.0.1:3001"), None);
        assert_eq!(here("alice"), None);
    }
}
