//! `/api/v1/admin/…`: needs an admin:* scope and a staff role.

pub mod accounts;
pub mod actions;
pub mod reports;

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
        .route("/api/v1/admin/accounts/{id}/action", post(actions::action))
        .route("/api/v1/admin/accounts/{id}/enable", post(actions::enable))
        .route(
            "/api/v1/admin/accounts/{id}/unsilence",
            post(actions::unsilence),
        )
        .route(
            "/api/v1/admin/accounts/{id}/unsensitive",
            post(actions::unsensitive),
        )
        .route(
            "/api/v1/admin/accounts/{id}/unsuspend",
            post(actions::unsuspend),
        )
        .route("/api/v1/admin/reports", get(reports::index))
        .route("/api/v1/admin/reports/{id}", get(reports::show))
        .route(
            "/api/v1/admin/reports/{id}/assign_to_self",
            post(reports::assign_to_self),
        )
        .route(
            "/api/v1/admin/reports/{id}/unassign",
            post(reports::unassign),
        )
        .route("/api/v1/admin/reports/{id}/resolve", post(reports::resolve))
        .route("/api/v1/admin/reports/{id}/reopen", post(reports::reopen))
}
