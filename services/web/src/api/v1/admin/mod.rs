//! `/api/v1/admin/…`: needs an admin:* scope and a staff role.

pub mod accounts;
pub mod actions;
pub mod blocks;
pub mod metrics;
pub mod reports;

use axum::Router;
use axum::routing::{get, post};

use blocks as b;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/accounts", get(accounts::index_v1))
        .route(
            "/api/v1/admin/accounts/{id}",
            get(accounts::show).delete(actions::destroy),
        )
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
        .route("/api/v1/admin/measures", post(metrics::measures))
        .route("/api/v1/admin/dimensions", post(metrics::dimensions))
        .route("/api/v1/admin/retention", post(metrics::retention))
        .route(
            "/api/v1/admin/domain_blocks",
            get(b::domain_blocks).post(b::create_domain_block),
        )
        .route(
            "/api/v1/admin/domain_blocks/{id}",
            get(b::domain_block)
                .put(b::update_domain_block)
                .patch(b::update_domain_block)
                .delete(b::delete_domain_block),
        )
        .route(
            "/api/v1/admin/domain_allows",
            get(b::domain_allows).post(b::create_domain_allow),
        )
        .route(
            "/api/v1/admin/domain_allows/{id}",
            get(b::domain_allow).delete(b::delete_domain_allow),
        )
        .route(
            "/api/v1/admin/email_domain_blocks",
            get(b::email_domain_blocks).post(b::create_email_domain_block),
        )
        .route(
            "/api/v1/admin/email_domain_blocks/{id}",
            get(b::email_domain_block).delete(b::delete_email_domain_block),
        )
        .route(
            "/api/v1/admin/canonical_email_blocks",
            get(b::canonical_email_blocks).post(b::create_canonical_email_block),
        )
        .route(
            "/api/v1/admin/canonical_email_blocks/test",
            post(b::test_canonical_email),
        )
        .route(
            "/api/v1/admin/canonical_email_blocks/{id}",
            get(b::canonical_email_block).delete(b::delete_canonical_email_block),
        )
        .route(
            "/api/v1/admin/ip_blocks",
            get(b::ip_blocks).post(b::create_ip_block),
        )
        .route(
            "/api/v1/admin/ip_blocks/{id}",
            get(b::ip_block)
                .put(b::update_ip_block)
                .delete(b::delete_ip_block),
        )
}
