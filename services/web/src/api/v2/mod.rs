//! `/api/v2/…`

use axum::Router;
use axum::routing::{get, post};

pub mod search;

use crate::AppState;
use crate::api::v1::{admin, instance, media};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/instance", get(instance::v2))
        .route("/api/v2/admin/accounts", get(admin::accounts::index_v2))
        .route("/api/v2/search", get(search::search))
        .route("/api/v2/media", post(media::create_v2))
        .route("/api/v2/suggestions", get(crate::api::v1::suggestions::v2))
}
