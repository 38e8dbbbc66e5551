//! `/api/v1/…`

pub mod accounts;
pub mod admin;
pub mod apps;
pub mod instance;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", post(apps::create))
        .route(
            "/api/v1/apps/verify_credentials",
            get(apps::verify_credentials),
        )
        .route(
            "/api/v1/accounts",
            post(accounts::create).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                accounts::admission,
            )),
        )
        .route(
            "/api/v1/accounts/verify_credentials",
            get(accounts::verify_credentials),
        )
        .route(
            "/api/v1/accounts/update_credentials",
            axum::routing::patch(accounts::update_credentials),
        )
        .route("/api/v1/accounts/lookup", get(accounts::lookup))
        .route("/api/v1/accounts/{id}", get(accounts::show))
        .route("/api/v1/instance", get(instance::v1))
        .route("/api/v1/instance/rules", get(instance::rules))
        .merge(admin::router())
}
