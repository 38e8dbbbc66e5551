//! `/api/v1/trends/tags` and `/api/v1/trends/statuses`: what is being talked about, computed
//! from recent public activity with an exponential decay (half-weight after HALF_LIFE_HOURS),
//! so that a burst ranks above steady chatter and fades within a day or two.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use stampede_mastodon::{Status, Tag};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::payload::{Params, flex};
use crate::scopes;
use crate::statuses::Filter;

/// Activity loses half its weight every this many hours.
const HALF_LIFE_HOURS: f64 = 12.0;
/// Only activity this recent counts.
const WINDOW_HOURS: i32 = 48;

#[derive(Debug, Deserialize)]
pub struct TrendsQuery {
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    offset: Option<u32>,
}

/// `GET /api/v1/trends/tags`: hashtags used by the most distinct accounts lately, each
/// account's latest use weighted by its age; at least two accounts. `limit` 10 (≤ 20).
pub async fn tags(
    State(state): State<AppState>,
    viewer: Viewer,
    Params(q): Params<TrendsQuery>,
) -> Result<Json<Vec<Tag>>, ApiError> {
    let viewer = viewer.account(scopes::READ)?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.id, t.name FROM ( \
           SELECT tag_id, sum(exp(ln(0.5) * extract(epoch FROM now() - last_use) / 3600 / $1)) AS score, \
                  count(*) AS accounts \
           FROM (SELECT st.tag_id, s.account_id, max(s.created_at) AS last_use \
                 FROM statuses s JOIN statuses_tags st ON st.status_id = s.id \
                 JOIN accounts a ON a.id = s.account_id \
                 WHERE s.visibility = 'public' AND s.reblog_of_id IS NULL \
                   AND s.created_at > now() - make_interval(hours => $2) \
                   AND a.suspended_at IS NULL \
                 GROUP BY st.tag_id, s.account_id) uses \
           GROUP BY tag_id HAVING count(*) >= 2) trend \
         JOIN tags t ON t.id = trend.tag_id \
         ORDER BY trend.score DESC, t.id LIMIT $3 OFFSET $4",
    )
    .bind(HALF_LIFE_HOURS)
    .bind(WINDOW_HOURS)
    .bind(i64::from(q.limit.unwrap_or(10).clamp(1, 20)))
    .bind(i64::from(q.offset.unwrap_or(0)))
    .fetch_all(&state.ctx.db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, name) in rows {
        out.push(state.render_tag(id, &name, viewer).await?);
    }
    Ok(Json(out))
}

/// `GET /api/v1/trends/statuses`: recent public statuses with the most favourites and boosts,
/// weighted by age; at least one of either. `limit` 20 (≤ 40).
pub async fn statuses(
    State(state): State<AppState>,
    viewer: Viewer,
    Params(q): Params<TrendsQuery>,
) -> Result<Json<Vec<Status>>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT s.id FROM statuses s JOIN accounts a ON a.id = s.account_id \
         WHERE s.visibility = 'public' AND s.reblog_of_id IS NULL \
           AND s.created_at > now() - make_interval(hours => $2) \
           AND s.favourites_count + s.reblogs_count > 0 AND a.suspended_at IS NULL \
         ORDER BY (s.favourites_count + 2 * s.reblogs_count) \
                  * exp(ln(0.5) * extract(epoch FROM now() - s.created_at) / 3600 / $1) DESC, \
                  s.id DESC \
         LIMIT $3 OFFSET $4",
    )
    .bind(HALF_LIFE_HOURS)
    .bind(WINDOW_HOURS)
    .bind(i64::from(q.limit.unwrap_or(20).clamp(1, 40)))
    .bind(i64::from(q.offset.unwrap_or(0)))
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(
        state
            .load_statuses(viewer, &ids, Filter::HIDE_MUTED)
            .await?,
    ))
}

#[derive(Debug, sqlx::FromRow)]
struct LinkTrend {
    #[sqlx(flatten)]
    card: stampede_social::cards::CardRow,
    history: sqlx::types::Json<Vec<(String, i64, i64)>>,
}

/// `GET /api/v1/trends/links`: links shared in public statuses by the most distinct accounts
/// lately (each account's latest share weighted by its age, as for tags; at least two
/// accounts), with a week of daily history. `limit` 10 (≤ 20).
pub async fn links(
    State(state): State<AppState>,
    viewer: Viewer,
    Params(q): Params<TrendsQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    viewer.account(scopes::READ)?;
    let rows: Vec<LinkTrend> = sqlx::query_as(&format!(
        "SELECT {columns}, \
           (SELECT coalesce(json_agg(json_build_array(extract(epoch FROM d.day)::bigint::text, \
                                                      d.uses, d.accounts) ORDER BY d.day DESC), '[]') \
            FROM (SELECT day, \
                         (SELECT count(*) FROM preview_cards_statuses x JOIN statuses y ON y.id = x.status_id \
                          WHERE x.preview_card_id = pc.id AND y.visibility = 'public' \
                            AND y.created_at >= day AND y.created_at < day + interval '1 day') AS uses, \
                         (SELECT count(DISTINCT y.account_id) FROM preview_cards_statuses x \
                          JOIN statuses y ON y.id = x.status_id \
                          WHERE x.preview_card_id = pc.id AND y.visibility = 'public' \
                            AND y.created_at >= day AND y.created_at < day + interval '1 day') AS accounts \
                  FROM generate_series(date_trunc('day', now()) - interval '6 days', \
                                       date_trunc('day', now()), interval '1 day') AS day) d) AS history \
         FROM ( \
           SELECT card_id, sum(exp(ln(0.5) * extract(epoch FROM now() - last_use) / 3600 / $1)) AS score \
           FROM (SELECT pcs.preview_card_id AS card_id, s.account_id, max(s.created_at) AS last_use \
                 FROM statuses s JOIN preview_cards_statuses pcs ON pcs.status_id = s.id \
                 JOIN accounts a ON a.id = s.account_id \
                 WHERE s.visibility = 'public' AND s.reblog_of_id IS NULL \
                   AND s.created_at > now() - make_interval(hours => $2) \
                   AND a.suspended_at IS NULL \
                 GROUP BY pcs.preview_card_id, s.account_id) shares \
           GROUP BY card_id HAVING count(*) >= 2) trend \
         JOIN preview_cards pc ON pc.id = trend.card_id \
         WHERE pc.title <> '' \
         ORDER BY trend.score DESC, pc.id LIMIT $3 OFFSET $4",
        columns = stampede_social::cards::CARD_COLUMNS,
    ))
    .bind(HALF_LIFE_HOURS)
    .bind(WINDOW_HOURS)
    .bind(i64::from(q.limit.unwrap_or(10).clamp(1, 20)))
    .bind(i64::from(q.offset.unwrap_or(0)))
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| {
                let mut link = stampede_social::cards::render(&row.card);
                link["history"] = serde_json::Value::Array(
                    row.history
                        .0
                        .into_iter()
                        .map(|(day, uses, accounts)| {
                            serde_json::json!({
                                "day": day,
                                "uses": uses.to_string(),
                                "accounts": accounts.to_string(),
                            })
                        })
                        .collect(),
                );
                link
            })
            .collect(),
    ))
}
