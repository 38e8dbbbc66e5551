//! `/api/v1/tags/:name` and followed hashtags (whose public statuses reach the follower's home
//! feed).

use axum::Json;
use axum::extract::{Path, State};
use stampede_mastodon::{Tag, TagHistory};

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::scopes;

impl AppState {
    /// A hashtag with seven days of use (public statuses per day) and whether `viewer` follows it.
    pub async fn render_tag(
        &self,
        tag_id: i64,
        name: &str,
        viewer: Option<i64>,
    ) -> Result<Tag, ApiError> {
        let days: Vec<(chrono::NaiveDate, i64, i64)> = sqlx::query_as(
            "SELECT d::date, count(s.id), count(DISTINCT s.account_id) \
             FROM generate_series(current_date - 6, current_date, interval '1 day') d \
             LEFT JOIN statuses_tags st ON st.tag_id = $1 \
             LEFT JOIN statuses s ON s.id = st.status_id AND s.visibility = 'public' \
                  AND s.created_at >= d AND s.created_at < d + interval '1 day' \
             GROUP BY d ORDER BY d DESC",
        )
        .bind(tag_id)
        .fetch_all(&self.ctx.db)
        .await?;
        let (following, featuring) = match viewer {
            None => (None, None),
            Some(v) => {
                let (following, featuring): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM tag_follows WHERE account_id = $1 AND tag_id = $2), \
                            EXISTS (SELECT 1 FROM featured_tags WHERE account_id = $1 AND tag_id = $2)",
                )
                .bind(v)
                .bind(tag_id)
                .fetch_one(&self.ctx.db)
                .await?;
                (Some(following), Some(featuring))
            }
        };
        let lower = name.to_lowercase();
        Ok(Tag {
            id: tag_id.to_string(),
            url: format!("{}/tags/{lower}", self.base_url()),
            name: lower,
            history: days
                .into_iter()
                .map(|(day, uses, accounts)| TagHistory {
                    day: day
                        .and_hms_opt(0, 0, 0)
                        .map_or(0, |d| d.and_utc().timestamp())
                        .to_string(),
                    uses: uses.to_string(),
                    accounts: accounts.to_string(),
                })
                .collect(),
            following,
            featuring,
        })
    }

    async fn find_tag(&self, name: &str) -> Result<(i64, String), ApiError> {
        sqlx::query_as("SELECT id, name FROM tags WHERE lower(name) = lower($1)")
            .bind(name.trim_start_matches('#'))
            .fetch_optional(&self.ctx.db)
            .await?
            .ok_or_else(ApiError::not_found)
    }
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let viewer = viewer.account(&["read", "read:follows"])?;
    let (id, name) = state.find_tag(&name).await?;
    Ok(Json(state.render_tag(id, &name, viewer).await?))
}

/// Following a tag that has never been used creates it (as Mastodon does).
pub async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let name = name.trim_start_matches('#').to_string();
    if stampede_social::text::parse(&format!("#{name}"))
        .tags
        .is_empty()
    {
        return Err(ApiError::unprocessable(
            "Validation failed: Name is invalid",
        ));
    }
    sqlx::query("INSERT INTO tags (name) VALUES ($1) ON CONFLICT (lower(name)) DO NOTHING")
        .bind(&name)
        .execute(&state.ctx.db)
        .await?;
    let (id, name) = state.find_tag(&name).await?;
    sqlx::query(
        "INSERT INTO tag_follows (account_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(id)
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(state.render_tag(id, &name, Some(account_id)).await?))
}

pub async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_WRITE)?;
    let (id, name) = state.find_tag(&name).await?;
    sqlx::query("DELETE FROM tag_follows WHERE account_id = $1 AND tag_id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&state.ctx.db)
        .await?;
    Ok(Json(state.render_tag(id, &name, Some(account_id)).await?))
}

pub async fn followed(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Tag>>, ApiError> {
    let account_id = auth.account(scopes::FOLLOWS_READ)?;
    let tags: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.id, t.name FROM tag_follows tf JOIN tags t ON t.id = tf.tag_id \
         WHERE tf.account_id = $1 ORDER BY t.name",
    )
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await?;
    let mut out = Vec::with_capacity(tags.len());
    for (id, name) in tags {
        out.push(state.render_tag(id, &name, Some(account_id)).await?);
    }
    Ok(Json(out))
}

/// `POST /api/v1/tags/:name/feature`: features the hashtag on the viewer's profile (as
/// `POST /api/v1/featured_tags` does; featuring it again changes nothing).
pub async fn feature(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let (tag_id, name) = super::featured_tags::feature(&state, account_id, &name, false).await?;
    Ok(Json(
        state.render_tag(tag_id, &name, Some(account_id)).await?,
    ))
}

/// `POST /api/v1/tags/:name/unfeature`.
pub async fn unfeature(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Tag>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let (id, name) = state.find_tag(name.trim_start_matches('#')).await?;
    sqlx::query("DELETE FROM featured_tags WHERE account_id = $1 AND tag_id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&state.ctx.db)
        .await?;
    Ok(Json(state.render_tag(id, &name, Some(account_id)).await?))
}
