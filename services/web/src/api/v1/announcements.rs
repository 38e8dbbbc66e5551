//! `/api/v1/announcements`: the operator's announcements, with the viewer's dismissals and
//! everyone's reactions (see `stampede_social::announcements`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stampede_mastodon::time::iso;
use stampede_mastodon::{Announcement, AnnouncementReaction};
use stampede_social::announcements::{MAX_REACTIONS, is_emoji};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::path_id;
use crate::payload::{Params, flex};
use crate::scopes;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "flex::opt_bool")]
    with_dismissed: Option<bool>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    content: String,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    all_day: bool,
    published_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    read: bool,
}

#[derive(Debug, sqlx::FromRow)]
struct ReactionRow {
    announcement_id: i64,
    name: String,
    count: i64,
    me: bool,
}

/// `GET /api/v1/announcements`: published announcements, oldest first; dismissed ones only
/// with `with_dismissed`.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<ListQuery>,
) -> Result<Json<Vec<Announcement>>, ApiError> {
    let viewer = auth.account(scopes::READ)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.id, a.content, a.starts_at, a.ends_at, a.all_day, a.published_at, a.updated_at, \
                EXISTS (SELECT 1 FROM announcement_dismissals d \
                        WHERE d.announcement_id = a.id AND d.account_id = $1) AS read \
         FROM announcements a WHERE a.published_at <= now() \
         ORDER BY coalesce(a.starts_at, a.published_at), a.id",
    )
    .bind(viewer)
    .fetch_all(&state.ctx.db)
    .await?;
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| q.with_dismissed == Some(true) || !r.read)
        .collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let reactions: Vec<ReactionRow> = sqlx::query_as(
        "SELECT announcement_id, name, count(*) AS count, bool_or(account_id = $2) AS me \
         FROM announcement_reactions WHERE announcement_id = ANY($1) \
         GROUP BY announcement_id, name ORDER BY min(created_at)",
    )
    .bind(&ids)
    .bind(viewer)
    .fetch_all(&state.ctx.db)
    .await?;
    let emojis = state.render.emojis().await?;
    let custom: HashMap<String, stampede_mastodon::CustomEmoji> = emojis
        .local()
        .into_iter()
        .map(|e| (e.shortcode.clone(), e))
        .collect();
    let mut by_announcement: HashMap<i64, Vec<AnnouncementReaction>> = HashMap::new();
    for r in reactions {
        let emoji = custom.get(&r.name);
        by_announcement
            .entry(r.announcement_id)
            .or_default()
            .push(AnnouncementReaction {
                url: emoji.map(|e| e.url.clone()),
                static_url: emoji.map(|e| e.static_url.clone()),
                name: r.name,
                count: r.count,
                me: r.me,
            });
    }
    Ok(Json(
        rows.into_iter()
            .map(|r| Announcement {
                id: r.id.to_string(),
                emojis: emojis.used_in(None, &[r.content.as_str()]),
                content: r.content,
                starts_at: r.starts_at.map(iso),
                ends_at: r.ends_at.map(iso),
                all_day: r.all_day,
                published_at: iso(r.published_at),
                updated_at: iso(r.updated_at),
                read: r.read,
                mentions: Vec::new(),
                statuses: Vec::new(),
                tags: Vec::new(),
                reactions: by_announcement.remove(&r.id).unwrap_or_default(),
            })
            .collect(),
    ))
}

/// The published announcement `id`, or 404.
async fn published(state: &AppState, id: &str) -> Result<i64, ApiError> {
    let id = path_id(id)?;
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM announcements WHERE id = $1 AND published_at <= now()")
            .bind(id)
            .fetch_optional(&state.ctx.db)
            .await?;
    found.ok_or_else(ApiError::not_found)
}

/// `POST /api/v1/announcements/:id/dismiss`.
pub async fn dismiss(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::ACCOUNTS_WRITE)?;
    let id = published(&state, &id).await?;
    sqlx::query(
        "INSERT INTO announcement_dismissals (announcement_id, account_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(viewer)
    .execute(&state.ctx.db)
    .await?;
    Ok(Json(serde_json::json!({})))
}

/// `PUT /api/v1/announcements/:id/reactions/:name`: an emoji, or a local custom emoji's
/// shortcode; at most eight different ones per announcement.
pub async fn react(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::FAVOURITES_WRITE)?;
    let id = published(&state, &id).await?;
    let custom = state
        .render
        .emojis()
        .await?
        .local()
        .iter()
        .any(|e| e.shortcode == name);
    if !custom && !is_emoji(&name) {
        return Err(ApiError::unprocessable(
            "Validation failed: Name is not a recognized emoji",
        ));
    }
    let mut tx = state.ctx.db.begin().await?;
    // The announcement's row serializes concurrent reactions, so the limit holds.
    sqlx::query("SELECT id FROM announcements WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let (distinct, known): (i64, bool) = sqlx::query_as(
        "SELECT count(DISTINCT name), coalesce(bool_or(name = $2), false) \
         FROM announcement_reactions WHERE announcement_id = $1",
    )
    .bind(id)
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    if !known && distinct >= MAX_REACTIONS {
        return Err(ApiError::unprocessable(
            "Validation failed: Name Maximum number of different reactions reached",
        ));
    }
    sqlx::query(
        "INSERT INTO announcement_reactions (announcement_id, account_id, name) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(viewer)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({})))
}

/// `DELETE /api/v1/announcements/:id/reactions/:name`: 404 when the viewer had not reacted so.
pub async fn unreact(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let viewer = auth.account(scopes::FAVOURITES_WRITE)?;
    let id = published(&state, &id).await?;
    let done = sqlx::query(
        "DELETE FROM announcement_reactions WHERE announcement_id = $1 AND account_id = $2 \
         AND name = $3",
    )
    .bind(id)
    .bind(viewer)
    .bind(&name)
    .execute(&state.ctx.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    Ok(Json(serde_json::json!({})))
}
