//! The Mastodon REST API, one module per URL path.

pub mod v1;
pub mod v2;

use axum::Router;

use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().merge(v1::router(state)).merge(v2::router())
}
