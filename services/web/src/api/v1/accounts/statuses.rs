//! `/api/v1/accounts/:id/statuses`.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use stampede_mastodon::Status;
use stampede_social::feeds::keyset;
use stampede_social::visibility::visible;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery, newest_first};
use crate::payload::{Params, flex};
use crate::scopes;
use crate::statuses::Filter;

#[derive(Debug, Deserialize)]
pub struct AccountStatusesQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pinned: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    only_media: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclude_replies: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    exclude_reblogs: Option<bool>,
    #[serde(default)]
    tagged: Option<String>,
}

/// `GET /api/v1/accounts/:id/statuses`: what the viewer may see of an account's statuses
/// (direct messages never show on a profile).
pub async fn statuses(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(q): Params<AccountStatusesQuery>,
) -> Result<Page<Status>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let target = state.target_account(&id).await?;
    let bounds = q.page.bounds(20, 40);
    let pinned = q.pinned == Some(true);
    let sql = format!(
        "SELECT s.id FROM statuses s \
         WHERE s.account_id = $1 AND s.visibility <> 'direct' \
           AND {keyset} \
           AND (NOT $5 OR s.in_reply_to_id IS NULL OR s.in_reply_to_account_id = s.account_id) \
           AND (NOT $6 OR s.reblog_of_id IS NULL) \
           AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                                            WHERE st.status_id = s.id AND lower(t.name) = lower($7))) \
           AND (NOT $8 OR EXISTS (SELECT 1 FROM status_pins p WHERE p.status_id = s.id AND p.account_id = s.account_id)) \
           AND (NOT $10 OR {}) \
           AND {} \
         ORDER BY s.id {} LIMIT $9",
        crate::api::v1::timelines::with_media("s"),
        visible("s", "$4"),
        bounds.order(),
        keyset = keyset("s.id", 2, 3),
    );
    let ids: Vec<i64> = state
        .ctx
        .reads
        .read(|db| {
            let query = sqlx::query_scalar(&sql)
                .bind(target.id)
                .bind(bounds.max)
                .bind(bounds.min)
                .bind(viewer)
                .bind(q.exclude_replies == Some(true))
                .bind(q.exclude_reblogs == Some(true))
                .bind(q.tagged.as_deref().filter(|t| !t.is_empty()))
                .bind(pinned)
                .bind(bounds.limit as i64)
                .bind(q.only_media == Some(true));
            async move { query.fetch_all(&db).await }
        })
        .await?;
    let ids = newest_first(ids, &bounds);
    let items = state.load_statuses(viewer, &ids, Filter::default()).await?;
    Ok(Page::new(
        items,
        &state.base_url(),
        &uri,
        ids.first().copied(),
        ids.last().copied(),
    ))
}
