//! `/api/v1/admin/…`: needs an admin:* scope and a staff role.

pub mod accounts;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/accounts", get(accounts::index_v1))
        .route("/api/v1/admin/accounts/{id}", get(accounts::show))
        .route(
            "/api/v1/admin/accounts/{id}/approve",
            post(accounts::approve),
        )
        .route("/api/v1/admin/accounts/{id}/reject", post(accounts::reject))
}
