//! Filters: an account's keywords and statuses to warn about or hide. Statuses rendered for a
//! signed-in viewer carry `filtered`: the viewer's active filters that match them (Mastodon's
//! FilterResult), whatever the context; clients apply each filter in the contexts it names.

use regex::Regex;
use serde_json::{Value, json};
use sqlx::{FromRow, PgConnection};
use stampede_mastodon::time::iso;

/// A filter with its keywords and statuses.
#[derive(Debug, Clone)]
pub struct Filter {
    pub id: i64,
    pub title: String,
    pub context: Vec<String>,
    pub action: String,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub keywords: Vec<Keyword>,
    pub statuses: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Keyword {
    pub id: i64,
    pub filter_id: i64,
    pub keyword: String,
    pub whole_word: bool,
}

#[derive(Debug, FromRow)]
struct FilterRow {
    id: i64,
    title: String,
    context: Vec<String>,
    action: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The contexts a filter may name.
pub const CONTEXTS: [&str; 5] = ["home", "notifications", "public", "thread", "account"];

/// The filters of `account_id` (only one with `only`; only active ones with `active`), oldest
/// first, with their keywords and statuses.
pub async fn load(
    conn: &mut PgConnection,
    account_id: i64,
    only: Option<i64>,
    active: bool,
) -> Result<Vec<Filter>, sqlx::Error> {
    let rows: Vec<FilterRow> = sqlx::query_as(
        "SELECT id, title, context, action, expires_at FROM filters \
         WHERE account_id = $1 AND ($2::bigint IS NULL OR id = $2) \
           AND (NOT $3 OR expires_at IS NULL OR expires_at > now()) ORDER BY id",
    )
    .bind(account_id)
    .bind(only)
    .bind(active)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let keywords: Vec<Keyword> = sqlx::query_as(
        "SELECT id, filter_id, keyword, whole_word FROM filter_keywords \
         WHERE filter_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let statuses: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, filter_id, status_id FROM filter_statuses WHERE filter_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Filter {
            keywords: keywords
                .iter()
                .filter(|k| k.filter_id == row.id)
                .cloned()
                .collect(),
            statuses: statuses
                .iter()
                .filter(|(_, f, _)| *f == row.id)
                .map(|(id, _, status)| (*id, *status))
                .collect(),
            id: row.id,
            title: row.title,
            context: row.context,
            action: row.action,
            expires_at: row.expires_at,
        })
        .collect())
}

/// Mastodon's FilterKeyword entity.
pub fn render_keyword(keyword: &Keyword) -> Value {
    json!({
        "id": keyword.id.to_string(),
        "keyword": keyword.keyword,
        "whole_word": keyword.whole_word,
    })
}

/// Mastodon's FilterStatus entity.
pub fn render_status((id, status_id): (i64, i64)) -> Value {
    json!({ "id": id.to_string(), "status_id": status_id.to_string() })
}

/// Mastodon's Filter entity (v2).
pub fn render(filter: &Filter) -> Value {
    json!({
        "id": filter.id.to_string(),
        "title": filter.title,
        "context": filter.context,
        "expires_at": filter.expires_at.map(iso),
        "filter_action": filter.action,
        "keywords": filter.keywords.iter().map(render_keyword).collect::<Vec<_>>(),
        "statuses": filter.statuses.iter().copied().map(render_status).collect::<Vec<_>>(),
    })
}

/// A viewer's active filters, ready to match statuses.
#[derive(Debug, Default)]
pub struct Matcher {
    filters: Vec<(Filter, Vec<(String, Regex)>)>,
}

impl Matcher {
    /// Compiles `filters`' keywords (case-insensitive; `whole_word` ones at word boundaries).
    pub fn new(filters: Vec<Filter>) -> Matcher {
        let filters = filters
            .into_iter()
            .map(|filter| {
                let patterns = filter
                    .keywords
                    .iter()
                    .filter_map(|k| {
                        let escaped = regex::escape(&k.keyword);
                        let pattern = if k.whole_word {
                            format!(r"(?i)(?:^|\W){escaped}(?:$|\W)")
                        } else {
                            format!("(?i){escaped}")
                        };
                        Regex::new(&pattern).ok().map(|r| (k.keyword.clone(), r))
                    })
                    .collect();
                (filter, patterns)
            })
            .collect();
        Matcher { filters }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The FilterResults of a status with `id`, its text (HTML already stripped) and spoiler.
    pub fn results(&self, id: i64, text: &str, spoiler: &str) -> Vec<Value> {
        self.filters
            .iter()
            .filter_map(|(filter, patterns)| {
                let keywords: Vec<&str> = patterns
                    .iter()
                    .filter(|(_, r)| r.is_match(text) || r.is_match(spoiler))
                    .map(|(k, _)| k.as_str())
                    .collect();
                let statuses: Vec<String> = filter
                    .statuses
                    .iter()
                    .filter(|(_, status)| *status == id)
                    .map(|(_, status)| status.to_string())
                    .collect();
                (!keywords.is_empty() || !statuses.is_empty()).then(|| {
                    json!({
                        "filter": render(filter),
                        "keyword_matches": (!keywords.is_empty()).then_some(keywords),
                        "status_matches": (!statuses.is_empty()).then_some(statuses),
                    })
                })
            })
            .collect()
    }
}

/// The text of rendered HTML, for matching: tags dropped, entities left as they are.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(keyword: &str, whole_word: bool) -> Filter {
        Filter {
            id: 1,
            title: "t".into(),
            context: vec!["home".into()],
            action: "warn".into(),
            expires_at: None,
            keywords: vec![Keyword {
                id: 2,
                filter_id: 1,
                keyword: keyword.into(),
                whole_word,
            }],
            statuses: vec![(3, 99)],
        }
    }

    #[test]
    fn keywords_match_whole_words_or_anywhere() {
        let whole = Matcher::new(vec![filter("cat", true)]);
        assert_eq!(whole.results(1, "a Cat sat", "").len(), 1);
        assert!(whole.results(1, "concatenate", "").is_empty());
        let anywhere = Matcher::new(vec![filter("cat", false)]);
        assert_eq!(anywhere.results(1, "concatenate", "").len(), 1);
        let by_status = Matcher::new(vec![filter("zzz", true)]);
        let results = by_status.results(99, "nothing", "");
        assert_eq!(results[0]["status_matches"], json!(["99"]));
        assert_eq!(results[0]["keyword_matches"], Value::Null);
    }

    #[test]
    fn html_is_read_as_text() {
        assert_eq!(
            plain_text("<p>Tom &amp; <a href=\"x\">Jerry</a></p>").trim(),
            "Tom &  Jerry"
        );
    }
}
