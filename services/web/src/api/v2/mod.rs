//! `/api/v2/…`

use axum::Router;
use axum::routing::{get, post};

pub mod filters;
pub mod notifications;
pub mod search;

use crate::AppState;
use crate::api::v1::{admin, instance, media, notification_requests};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/instance", get(instance::v2))
        .route("/api/v2/admin/accounts", get(admin::accounts::index_v2))
        .route("/api/v2/search", get(search::search))
        .route("/api/v2/media", post(media::create_v2))
        .route("/api/v2/filters", get(filters::index).post(filters::create))
        .route(
            "/api/v2/filters/keywords/{id}",
            get(filters::show_keyword)
                .put(filters::update_keyword)
                .delete(filters::delete_keyword),
        )
        .route(
            "/api/v2/filters/statuses/{id}",
            get(filters::show_status).delete(filters::delete_status),
        )
        .route(
            "/api/v2/filters/{id}",
            get(filters::show)
                .put(filters::update)
                .delete(filters::delete),
        )
        .route(
            "/api/v2/filters/{id}/keywords",
            get(filters::keywords).post(filters::add_keyword),
        )
        .route(
            "/api/v2/filters/{id}/statuses",
            get(filters::statuses).post(filters::add_status),
        )
        .route("/api/v2/suggestions", get(crate::api::v1::suggestions::v2))
        .route("/api/v2/notifications", get(notifications::index))
        .route(
            "/api/v2/notifications/unread_count",
            get(notifications::unread_count),
        )
        .route(
            "/api/v2/notifications/policy",
            // Rails routes `update` for PUT as well as PATCH (masto.js sends PUT).
            get(notification_requests::policy)
                .patch(notification_requests::update_policy)
                .put(notification_requests::update_policy),
        )
        .route(
            "/api/v2/notifications/{group_key}",
            get(notifications::show),
        )
        .route(
            "/api/v2/notifications/{group_key}/accounts",
            get(notifications::accounts),
        )
        .route(
            "/api/v2/notifications/{group_key}/dismiss",
            post(notifications::dismiss),
        )
}
