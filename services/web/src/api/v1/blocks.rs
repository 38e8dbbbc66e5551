//! `/api/v1/blocks`: the accounts the viewer blocks.

use axum::extract::State;
use axum::http::Uri;
use stampede_mastodon::Account;

use super::accounts::own_list;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::Params;
use crate::scopes;

pub async fn blocks(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        scopes::BLOCKS_READ,
        &uri,
        &query,
        "SELECT id, target_account_id FROM blocks WHERE account_id = $1",
    )
    .await
}
