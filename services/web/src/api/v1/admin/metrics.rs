//! The admin dashboard's numbers, with Mastodon's paths and shapes: `POST
//! /api/v1/admin/measures` (daily counts and their totals), `/dimensions` (breakdowns) and
//! `/retention` (sign-up cohorts). Each is counted from the tables (sign-ups, reports,
//! interactions) or from `user_activity_days` (active users), for the range asked.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::{Params, flex};

/// Mastodon's scope for the dashboard (no finer one exists).
const READ: &[&str] = &["admin:read"];

#[derive(Debug, Deserialize)]
pub struct MetricsParams {
    #[serde(default, deserialize_with = "flex::opt_list")]
    keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    start_at: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    end_at: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_scalar")]
    frequency: Option<String>,
    /// The per-key parameters (`instance_accounts[domain]`, `tag_uses[id]`), by key.
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

/// A date parameter (`2026-12-01` or a full timestamp, whose time is ignored), or 422.
fn date(value: Option<&str>, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    let day = value.get(..10).unwrap_or(value);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ApiError::unprocessable("Invalid date supplied"))
}

impl MetricsParams {
    /// The range asked for (the last 30 days by default), at most a year.
    fn range(&self) -> Result<(NaiveDate, NaiveDate), ApiError> {
        let today = Utc::now().date_naive();
        let end = date(self.end_at.as_deref(), today)?;
        let start = date(self.start_at.as_deref(), end - Duration::days(29))?;
        if start > end || end - start > Duration::days(366) {
            return Err(ApiError::unprocessable("Invalid date supplied"));
        }
        Ok((start, end))
    }

    /// A per-key parameter (`instance_accounts[domain]`).
    fn nested(&self, key: &str, field: &str) -> Option<String> {
        self.rest
            .get(key)?
            .get(field)?
            .as_str()
            .map(str::to_string)
            .or_else(|| self.rest.get(key)?.get(field).map(|v| v.to_string()))
    }
}

fn staff(auth: &Auth) -> Result<(), ApiError> {
    auth.require(READ)?;
    auth.staff()?;
    Ok(())
}

/// What a measure counts: `SELECT ts, who …` rows (a timestamp, and who for distinct counts)
/// within `$1` (first day) and `$2` (last day), with `$3` the key's own parameter.
struct Measure {
    events: &'static str,
    distinct: bool,
    /// The total is all time (Mastodon's `instance_*` measures), not the range's.
    all_time: bool,
    unit: Option<&'static str>,
}

/// In a day range, UTC.
const IN_RANGE: &str =
    "ts >= $1::date AT TIME ZONE 'UTC' AND ts < ($2::date + 1) AT TIME ZONE 'UTC'";

fn measure(key: &str) -> Option<Measure> {
    let m = |events, distinct| Measure {
        events,
        distinct,
        all_time: false,
        unit: None,
    };
    let instance = |events| Measure {
        events,
        distinct: false,
        all_time: true,
        unit: None,
    };
    Some(match key {
        "new_users" => m(
            "SELECT created_at AS ts, NULL::bigint AS who FROM users",
            false,
        ),
        "active_users" => m(
            "SELECT day::timestamp AT TIME ZONE 'UTC' AS ts, account_id AS who FROM user_activity_days",
            true,
        ),
        "opened_reports" => m(
            "SELECT created_at AS ts, NULL::bigint AS who FROM reports",
            false,
        ),
        "resolved_reports" => m(
            "SELECT action_taken_at AS ts, NULL::bigint AS who FROM reports WHERE action_taken_at IS NOT NULL",
            false,
        ),
        // Local people's favourites, boosts, replies to others, follows and votes.
        "interactions" => m(
            "SELECT f.created_at AS ts, NULL::bigint AS who FROM favourites f \
               JOIN accounts a ON a.id = f.account_id AND a.domain IS NULL \
             UNION ALL SELECT s.created_at, NULL FROM statuses s \
               JOIN accounts a ON a.id = s.account_id AND a.domain IS NULL \
               WHERE s.reblog_of_id IS NOT NULL \
                  OR (s.in_reply_to_account_id IS NOT NULL AND s.in_reply_to_account_id <> s.account_id) \
             UNION ALL SELECT f.created_at, NULL FROM follows f \
               JOIN accounts a ON a.id = f.account_id AND a.domain IS NULL \
             UNION ALL SELECT v.created_at, NULL FROM poll_votes v \
               JOIN accounts a ON a.id = v.account_id AND a.domain IS NULL",
            false,
        ),
        "tag_uses" => m(
            "SELECT s.created_at AS ts, NULL::bigint AS who FROM statuses_tags st \
               JOIN statuses s ON s.id = st.status_id WHERE st.tag_id::text = $3",
            false,
        ),
        "tag_accounts" => m(
            "SELECT s.created_at AS ts, s.account_id AS who FROM statuses_tags st \
               JOIN statuses s ON s.id = st.status_id WHERE st.tag_id::text = $3",
            true,
        ),
        "instance_accounts" => instance(
            "SELECT created_at AS ts, NULL::bigint AS who FROM accounts \
             WHERE domain IS NOT NULL AND domain_covered(domain, $3)",
        ),
        "instance_statuses" => instance(
            "SELECT s.created_at AS ts, NULL::bigint AS who FROM statuses s \
               JOIN accounts a ON a.id = s.account_id \
             WHERE a.domain IS NOT NULL AND domain_covered(a.domain, $3)",
        ),
        "instance_follows" => instance(
            "SELECT f.created_at AS ts, NULL::bigint AS who FROM follows f \
               JOIN accounts a ON a.id = f.account_id JOIN accounts t ON t.id = f.target_account_id \
             WHERE a.domain IS NOT NULL AND domain_covered(a.domain, $3) AND t.domain IS NULL",
        ),
        "instance_followers" => instance(
            "SELECT f.created_at AS ts, NULL::bigint AS who FROM follows f \
               JOIN accounts a ON a.id = f.account_id JOIN accounts t ON t.id = f.target_account_id \
             WHERE t.domain IS NOT NULL AND domain_covered(t.domain, $3) AND a.domain IS NULL",
        ),
        "instance_reports" => instance(
            "SELECT r.created_at AS ts, NULL::bigint AS who FROM reports r \
               JOIN accounts t ON t.id = r.target_account_id \
             WHERE t.domain IS NOT NULL AND domain_covered(t.domain, $3)",
        ),
        _ => return None,
    })
}

/// The parameter a key needs (`tag_uses[id]`, `instance_accounts[domain]`), or none.
fn parameter_of(key: &str) -> Option<&'static str> {
    if key.starts_with("tag_") {
        Some("id")
    } else if key.starts_with("instance_") {
        Some("domain")
    } else {
        None
    }
}

/// A day as Mastodon's SQL measures write it.
fn midnight(day: NaiveDate) -> String {
    format!("{day}T00:00:00.000+00:00")
}

async fn count(
    state: &AppState,
    m: &Measure,
    from: NaiveDate,
    to: NaiveDate,
    param: Option<&str>,
) -> Result<i64, ApiError> {
    let agg = if m.distinct {
        "count(DISTINCT who)"
    } else {
        "count(*)"
    };
    let range = if m.all_time { "true" } else { IN_RANGE };
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT {agg} FROM ({}) e WHERE {range}", m.events))
            .bind(from)
            .bind(to)
            .bind(param)
            .fetch_one(&state.ctx.db)
            .await?;
    Ok(total)
}

/// `POST /api/v1/admin/measures`.
pub async fn measures(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    staff(&auth)?;
    let (start, end) = p.range()?;
    let length = end - start + Duration::days(1);
    let mut out = Vec::new();
    for key in p.keys.clone().unwrap_or_default() {
        let Some(m) = measure(&key) else {
            continue; // unknown keys are left out, as Mastodon does
        };
        let param = match parameter_of(&key) {
            Some(field) => Some(p.nested(&key, field).ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("param is missing or the value is empty: {key}"),
                )
            })?),
            None => None,
        };
        let agg = if m.distinct {
            "count(DISTINCT e.who)"
        } else {
            "count(e.ts)"
        };
        let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(&format!(
            "SELECT d.day, {agg} FROM \
               (SELECT generate_series($1::date, $2::date, interval '1 day')::date AS day) d \
             LEFT JOIN (SELECT * FROM ({events}) x WHERE {IN_RANGE}) e \
               ON (e.ts AT TIME ZONE 'UTC')::date = d.day \
             GROUP BY d.day ORDER BY d.day",
            events = m.events
        ))
        .bind(start)
        .bind(end)
        .bind(param.as_deref())
        .fetch_all(&state.ctx.db)
        .await?;
        let total = count(&state, &m, start, end, param.as_deref()).await?;
        let mut entry = json!({
            "key": key,
            "unit": m.unit,
            "total": total.to_string(),
            "data": rows.iter().map(|(day, n)| json!({ "date": midnight(*day), "value": n.to_string() })).collect::<Vec<_>>(),
        });
        if !m.all_time {
            let previous =
                count(&state, &m, start - length, end - length, param.as_deref()).await?;
            entry["previous_total"] = json!(previous.to_string());
        }
        out.push(entry);
    }
    Ok(Json(Value::Array(out)))
}

/// `POST /api/v1/admin/dimensions`: `languages` (of the people active in the range),
/// `sources` (the apps people signed up with), `servers` (where the range's statuses came
/// from), `space_usage` and `software_versions`.
pub async fn dimensions(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    staff(&auth)?;
    let (start, end) = p.range()?;
    let limit = i64::from(p.limit.unwrap_or(10).clamp(1, 1000));
    let local = state.ctx.config.local_domain.clone();
    let mut out = Vec::new();
    for key in p.keys.clone().unwrap_or_default() {
        let sql = match key.as_str() {
            "languages" => {
                "SELECT coalesce(u.locale, 'en') AS k, count(DISTINCT u.account_id) AS n \
                 FROM users u JOIN user_activity_days d ON d.account_id = u.account_id \
                 WHERE d.day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"
            }
            "sources" => {
                "SELECT coalesce(a.name, 'web') AS k, count(*) AS n FROM users u \
                 LEFT JOIN oauth_applications a ON a.id = u.created_by_application_id \
                 WHERE u.created_at >= $1::date AT TIME ZONE 'UTC' \
                   AND u.created_at < ($2::date + 1) AT TIME ZONE 'UTC' \
                 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"
            }
            "servers" => {
                "SELECT coalesce(a.domain, $4) AS k, count(*) AS n FROM statuses s \
                 JOIN accounts a ON a.id = s.account_id \
                 WHERE s.created_at >= $1::date AT TIME ZONE 'UTC' \
                   AND s.created_at < ($2::date + 1) AT TIME ZONE 'UTC' \
                 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"
            }
            "space_usage" => {
                let (database, media): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT pg_database_size(current_database()), \
                            (SELECT sum(file_size)::bigint FROM media_attachments WHERE remote_url IS NULL)",
                )
                .fetch_one(&state.ctx.db)
                .await?;
                let item = |k: &str, human: &str, bytes: i64| {
                    json!({ "key": k, "human_key": human, "value": bytes.to_string(),
                            "unit": "bytes", "human_value": human_size(bytes) })
                };
                out.push(json!({ "key": key, "data": [
                    item("postgresql", "PostgreSQL", database),
                    item("media", "Media storage", media.unwrap_or(0)),
                ]}));
                continue;
            }
            "software_versions" => {
                let postgres: String = sqlx::query_scalar("SHOW server_version")
                    .fetch_one(&state.ctx.db)
                    .await?;
                out.push(json!({ "key": key, "data": [
                    { "key": "stampede", "human_key": "Stampede", "value": env!("CARGO_PKG_VERSION"),
                      "human_value": env!("CARGO_PKG_VERSION") },
                    { "key": "mastodon", "human_key": "Mastodon API", "value": super::super::instance::MASTODON_VERSION,
                      "human_value": super::super::instance::MASTODON_VERSION },
                    { "key": "postgresql", "human_key": "PostgreSQL", "value": postgres, "human_value": postgres },
                ]}));
                continue;
            }
            _ => continue,
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(sql)
            .bind(start)
            .bind(end)
            .bind(limit)
            .bind(&local)
            .fetch_all(&state.ctx.db)
            .await?;
        let human = |k: &str| match (key.as_str(), k) {
            ("sources", "web") => "Website".to_string(),
            _ => k.to_string(),
        };
        out.push(json!({
            "key": key,
            "data": rows.iter().map(|(k, n)| json!({ "key": k, "human_key": human(k), "value": n.to_string() })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// Bytes as people read them (`14.2 MB`).
fn human_size(bytes: i64) -> String {
    let units = ["Bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} Bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// `POST /api/v1/admin/retention`: for each sign-up cohort (a day or a month), how many of its
/// people were active in each later period, and what share of the cohort that is.
pub async fn retention(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    staff(&auth)?;
    let (start, end) = p.range()?;
    let frequency = match p.frequency.as_deref() {
        Some("month") => "month",
        _ => "day",
    };
    let rows: Vec<(NaiveDate, NaiveDate, i64, i64)> = sqlx::query_as(&format!(
        "WITH periods AS ( \
           SELECT generate_series(date_trunc('{frequency}', $1::date), date_trunc('{frequency}', $2::date), \
                                  interval '1 {frequency}')::date AS p), \
         cohort AS ( \
           SELECT date_trunc('{frequency}', u.created_at AT TIME ZONE 'UTC')::date AS c, u.account_id \
           FROM users u WHERE u.created_at >= $1::date AT TIME ZONE 'UTC' \
             AND u.created_at < ($2::date + 1) AT TIME ZONE 'UTC') \
         SELECT c.p, r.p, \
                (SELECT count(*) FROM cohort x WHERE x.c = c.p), \
                (SELECT count(DISTINCT x.account_id) FROM cohort x JOIN user_activity_days d \
                   ON d.account_id = x.account_id \
                  WHERE x.c = c.p AND date_trunc('{frequency}', d.day)::date = r.p) \
         FROM periods c JOIN periods r ON r.p >= c.p ORDER BY c.p, r.p"
    ))
    .bind(start)
    .bind(end)
    .fetch_all(&state.ctx.db)
    .await?;
    let mut cohorts: Vec<Value> = Vec::new();
    for (cohort, period, size, retained) in rows {
        let entry = json!({
            "date": midnight(period),
            "rate": retained as f64 / size.max(1) as f64,
            "value": retained.to_string(),
        });
        match cohorts.last_mut() {
            Some(last) if last["period"] == midnight(cohort) => {
                if let Some(data) = last["data"].as_array_mut() {
                    data.push(entry);
                }
            }
            _ => cohorts.push(json!({
                "period": midnight(cohort),
                "frequency": frequency,
                "data": [entry],
            })),
        }
    }
    Ok(Json(Value::Array(cohorts)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_mastodon_writes_them() {
        assert_eq!(super::human_size(512), "512 Bytes");
        assert_eq!(super::human_size(14_200_000), "14.2 MB");
    }
}
