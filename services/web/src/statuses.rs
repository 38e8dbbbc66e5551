//! Statuses as the API shows them: the web service's side of [`stampede_social::render`], which
//! loads them in batches through [`stampede_social::visibility`] and renders Mastodon's entity.

use stampede_mastodon::{Account, Poll, Status};

pub use stampede_social::render::Filter;

use crate::AppState;
use crate::accounts::AccountRow;
use crate::error::ApiError;

impl AppState {
    /// The statuses `ids` as `viewer` may see them, in the order given; the others are left out.
    pub async fn load_statuses(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
        filter: Filter,
    ) -> Result<Vec<Status>, ApiError> {
        Ok(self.render.load_statuses(viewer, ids, filter).await?)
    }

    /// One status as `viewer` may see it, or 404.
    pub async fn load_status(&self, viewer: Option<i64>, id: i64) -> Result<Status, ApiError> {
        self.render
            .load_status(viewer, id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// The public view of an account.
    pub fn render_account(&self, row: &AccountRow) -> Account {
        self.render.render_account(row)
    }
}

/// A single poll by its id, as `viewer` sees it (through its status's visibility), or 404.
pub async fn poll(state: &AppState, viewer: Option<i64>, poll_id: i64) -> Result<Poll, ApiError> {
    state
        .render
        .poll(viewer, poll_id)
        .await?
        .ok_or_else(ApiError::not_found)
}
