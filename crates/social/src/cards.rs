//! Link previews (`card` on statuses): the first outside link of a status (not a mention, not
//! a hashtag, not this server) is fetched once by the fetch workers, through the outbound
//! guard, and its OpenGraph description kept as a card that every status sharing the link
//! shows. Link trends and the link timeline count those cards.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use stampede_activitypub::{Client, FetchError};
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use stampede_mastodon::time::iso;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue, outbox};
use url::Url;

/// The most of a page read for its description.
const MAX_PAGE: usize = 1024 * 1024;
/// A card is fetched again when a status shares its link after this long.
const REFRESH_DAYS: i64 = 14;
/// Attempts for a page that did not answer (then no card).
const MAX_ATTEMPTS: u32 = 3;

/// What travels on the `fetch` queue for link previews.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum CardJob {
    /// Fetch (or reuse) the card of status `status_id`'s first link.
    #[serde(rename = "card.fetch")]
    Fetch(CardRef),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CardRef {
    pub status_id: i64,
}

impl Message for CardJob {
    const QUEUE: WorkQueue = WorkQueue::Fetch;
    const KINDS: &'static [&'static str] = &["card.fetch"];
}

/// The first link of sanitized status HTML worth a preview: http(s), not a mention or a
/// hashtag, not on `own_host`.
pub fn first_link(content: &str, own_host: &str) -> Option<String> {
    static ANCHOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(?is)<a\s([^>]*)>"#).expect("a valid regex"));
    for anchor in ANCHOR.captures_iter(content) {
        let attributes = attributes(&anchor[1]);
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let class = get("class").unwrap_or_default();
        if class.contains("mention") || class.contains("hashtag") || get("rel") == Some("tag") {
            continue;
        }
        let Some(href) = get("href") else { continue };
        let Ok(url) = Url::parse(href) else { continue };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let host = crate::remote::authority(&url).unwrap_or_default();
        if host.eq_ignore_ascii_case(own_host) {
            continue;
        }
        return Some(url.to_string());
    }
    None
}

/// The attributes of a tag, names lower-cased and values with entities decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    static ATTRIBUTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?s)([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#)
            .expect("a valid regex")
    });
    ATTRIBUTE
        .captures_iter(tag)
        .map(|c| {
            let value = c
                .get(2)
                .or_else(|| c.get(3))
                .or_else(|| c.get(4))
                .map_or("", |m| m.as_str());
            (c[1].to_ascii_lowercase(), decode_entities(value))
        })
        .collect()
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    static ENTITY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);").expect("regex"));
    ENTITY
        .replace_all(text, |c: &regex::Captures<'_>| {
            let name = &c[1];
            let decoded = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok().and_then(char::from_u32)
            } else {
                match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some('\u{a0}'),
                    _ => None,
                }
            };
            decoded.map_or_else(|| c[0].to_string(), |ch| ch.to_string())
        })
        .into_owned()
}

/// A page's description, from its OpenGraph and plain meta tags.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Described {
    pub kind: &'static str,
    pub title: String,
    pub description: String,
    pub image: Option<String>,
    pub width: i32,
    pub height: i32,
    pub provider_name: String,
    pub author_name: String,
    pub language: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
}

/// Reads the description of the page at `url` from its bytes: an image is a photo card of
/// itself; an HTML page gives its `og:`/`twitter:`/`<title>` and description tags. `None` when
/// there is nothing to show.
pub fn describe(url: &Url, body: &[u8]) -> Option<Described> {
    let image_magic: [&[u8]; 4] = [b"\x89PNG", b"\xFF\xD8\xFF", b"GIF8", b"RIFF"];
    if image_magic.iter().any(|m| body.starts_with(m)) {
        return Some(Described {
            kind: "photo",
            title: url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string(),
            image: Some(url.to_string()),
            ..Described::default()
        });
    }
    let html = String::from_utf8_lossy(body);
    // The head is enough, and a huge body need not be scanned.
    let head = match html.find("</head>") {
        Some(end) => &html[..end],
        None => prefix(&html, 256 * 1024),
    };
    static META: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?is)<meta\s([^>]*)>").expect("a valid regex"));
    static TITLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?is)<title[^>]*>(.*?)</title>").expect("a valid regex"));
    static LANG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)<html[^>]*\blang\s*=\s*["']?([A-Za-z-]+)"#).expect("regex")
    });
    let mut meta: Vec<(String, String)> = Vec::new();
    for tag in META.captures_iter(head) {
        let attributes = attributes(&tag[1]);
        let key = attributes
            .iter()
            .find(|(k, _)| k == "property" || k == "name")
            .map(|(_, v)| v.to_ascii_lowercase());
        let content = attributes
            .iter()
            .find(|(k, _)| k == "content")
            .map(|(_, v)| v.trim().to_string());
        if let (Some(key), Some(content)) = (key, content) {
            meta.push((key, content));
        }
    }
    let get = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            meta.iter()
                .find(|(key, v)| key == k && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
    };
    let title = get(&["og:title", "twitter:title"]).or_else(|| {
        TITLE
            .captures(head)
            .map(|c| decode_entities(c[1].trim()))
            .filter(|t| !t.is_empty())
    })?;
    let image = get(&["og:image", "og:image:url", "twitter:image"])
        .and_then(|i| url.join(&i).ok())
        .filter(|i| matches!(i.scheme(), "http" | "https"))
        .map(|i| i.to_string());
    let number = |keys: &[&str]| get(keys).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
    Some(Described {
        kind: if get(&["og:video", "og:video:url"]).is_some() {
            "video"
        } else {
            "link"
        },
        title: clip(&title, 250),
        description: clip(
            &get(&["og:description", "twitter:description", "description"]).unwrap_or_default(),
            1000,
        ),
        width: if image.is_some() {
            number(&["og:image:width"])
        } else {
            0
        },
        height: if image.is_some() {
            number(&["og:image:height"])
        } else {
            0
        },
        image,
        provider_name: clip(&get(&["og:site_name"]).unwrap_or_default(), 250),
        author_name: clip(
            &get(&["author", "article:author"])
                .filter(|a| !a.starts_with("http"))
                .unwrap_or_default(),
            250,
        ),
        language: LANG
            .captures(prefix(&html, 4096))
            .map(|c| {
                c[1].split('-')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .filter(|l| l.len() == 2 || l.len() == 3),
        published_at: get(&["article:published_time", "og:published_time"])
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
    })
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The `host[:port]` of this server's base URL (`https://WEB_DOMAIN`).
pub fn own_host(base: &str) -> &str {
    base.split_once("://").map_or(base, |(_, rest)| rest)
}

/// Queues the card of status `status_id` (of `visibility`, with `content`, on the server at
/// `base`) when it has a link worth one; direct messages get none, so their links are never fetched. In the caller's
/// transaction.
pub async fn queue(
    conn: &mut PgConnection,
    status_id: i64,
    content: &str,
    visibility: &str,
    base: &str,
) -> Result<(), sqlx::Error> {
    if visibility == "direct" || first_link(content, own_host(base)).is_none() {
        return Ok(());
    }
    outbox::send(conn, &CardJob::Fetch(CardRef { status_id })).await
}

/// A card as statuses carry it (`preview_cards`' columns).
#[derive(Debug, Clone, Deserialize, sqlx::FromRow)]
pub struct CardRow {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub author_name: String,
    pub author_url: String,
    pub provider_name: String,
    pub provider_url: String,
    pub image_url: Option<String>,
    pub width: i32,
    pub height: i32,
    pub embed_url: String,
    pub language: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
}

/// The columns of [`CardRow`], from `preview_cards pc`.
pub const CARD_COLUMNS: &str = "pc.id, pc.url, pc.title, pc.description, pc.type, pc.author_name, \
     pc.author_url, pc.provider_name, pc.provider_url, pc.image_url, pc.width, pc.height, \
     pc.embed_url, pc.language, pc.published_at";

/// The card as the API shows it (Mastodon's PreviewCard).
pub fn render(card: &CardRow) -> serde_json::Value {
    serde_json::json!({
        "url": card.url,
        "title": card.title,
        "description": card.description,
        "type": card.kind,
        "author_name": card.author_name,
        "author_url": card.author_url,
        "provider_name": card.provider_name,
        "provider_url": card.provider_url,
        "html": "",
        "width": card.width,
        "height": card.height,
        "image": card.image_url,
        "image_description": "",
        "embed_url": card.embed_url,
        "blurhash": null,
        "language": card.language,
        "published_at": card.published_at.map(iso),
        "authors": [],
    })
}

/// Fetches cards.
pub struct CardFetcher {
    db: Db,
    client: Client,
    ids: IdGenerator,
    own_host: String,
}

impl CardFetcher {
    pub fn new(db: Db, client: Client, own_host: String) -> Self {
        CardFetcher {
            db,
            client,
            ids: IdGenerator::new(),
            own_host,
        }
    }

    async fn fetch(&self, status_id: i64, attempt: u32) -> Result<(), JobError> {
        let status: Option<(String, bool)> = sqlx::query_as(
            "SELECT s.content, EXISTS (SELECT 1 FROM media_attachments m \
                                       WHERE m.status_id = s.id AND m.position >= 0) \
             FROM statuses s WHERE s.id = $1",
        )
        .bind(status_id)
        .fetch_optional(&self.db)
        .await?;
        // Deleted since, or showing its own media instead (as Mastodon does).
        let Some((content, false)) = status else {
            return Ok(());
        };
        let Some(link) = first_link(&content, &self.own_host) else {
            return Ok(());
        };
        let known: Option<(i64, bool)> = sqlx::query_as(
            "SELECT id, fetched_at > now() - make_interval(days => $2::int) \
             FROM preview_cards WHERE url = $1",
        )
        .bind(&link)
        .bind(REFRESH_DAYS as i32)
        .fetch_optional(&self.db)
        .await?;
        let card_id = match known {
            Some((id, true)) => id,
            _ => {
                let url = Url::parse(&link).map_err(|e| JobError::Permanent(e.into()))?;
                let (described, failure) = match self.get(&url).await {
                    Ok(body) => match describe(&url, &body) {
                        Some(d) => (Some(d), None),
                        None => (None, Some("no title".to_string())),
                    },
                    // A page that does not answer now may later: try a few times.
                    Err(error @ (FetchError::Http(_) | FetchError::TooMany(..)))
                        if attempt < MAX_ATTEMPTS =>
                    {
                        return Err(JobError::Retry(error.into()));
                    }
                    Err(error) => (None, Some(error.to_string())),
                };
                self.store(&url, described, failure).await?
            }
        };
        sqlx::query(
            "INSERT INTO preview_cards_statuses (status_id, preview_card_id) \
             SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM statuses WHERE id = $1) \
             ON CONFLICT (status_id) DO UPDATE SET preview_card_id = EXCLUDED.preview_card_id",
        )
        .bind(status_id)
        .bind(card_id)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let request = self.client.request(reqwest::Method::GET, url)?.header(
            "Accept",
            "text/html,application/xhtml+xml;q=0.9,image/*;q=0.5",
        );
        Ok(self.client.send(request, MAX_PAGE).await?.1)
    }

    async fn store(
        &self,
        url: &Url,
        described: Option<Described>,
        failure: Option<String>,
    ) -> Result<i64, sqlx::Error> {
        let d = described.unwrap_or_default();
        let provider_url = format!(
            "{}://{}",
            url.scheme(),
            crate::remote::authority(url).unwrap_or_default()
        );
        sqlx::query_scalar(
            "INSERT INTO preview_cards (id, url, title, description, type, author_name, \
               provider_name, provider_url, image_url, width, height, language, published_at, \
               fetched_at, failure) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), $14) \
             ON CONFLICT (url) DO UPDATE SET title = EXCLUDED.title, \
               description = EXCLUDED.description, type = EXCLUDED.type, \
               author_name = EXCLUDED.author_name, provider_name = EXCLUDED.provider_name, \
               image_url = EXCLUDED.image_url, width = EXCLUDED.width, height = EXCLUDED.height, \
               language = EXCLUDED.language, published_at = EXCLUDED.published_at, \
               fetched_at = now(), failure = EXCLUDED.failure, updated_at = now() \
             RETURNING id",
        )
        .bind(self.ids.next_id().as_i64())
        .bind(url.as_str())
        .bind(&d.title)
        .bind(&d.description)
        .bind(if d.kind.is_empty() { "link" } else { d.kind })
        .bind(&d.author_name)
        .bind(&d.provider_name)
        .bind(&provider_url)
        .bind(&d.image)
        .bind(d.width)
        .bind(d.height)
        .bind(&d.language)
        .bind(d.published_at)
        .bind(failure)
        .fetch_one(&self.db)
        .await
    }
}

impl Consume<CardJob> for CardFetcher {
    fn consume<'a>(
        &'a self,
        message: CardJob,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        match message {
            CardJob::Fetch(r) => self.fetch(r.status_id, envelope.attempt).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_outside_link_is_chosen() {
        let content = r#"<p><span class="h-card"><a href="https://x.example/@bob" class="u-url mention">@bob</a></span> <a href="https://own.example/tags/rust" class="mention hashtag" rel="tag">#rust</a> see <a href="https://own.example/about">us</a> and <a href="https://news.example/story?id=1&amp;x=2" rel="nofollow noopener">news</a></p>"#;
        assert_eq!(
            first_link(content, "own.example").as_deref(),
            Some("https://news.example/story?id=1&x=2")
        );
        assert_eq!(first_link("<p>no links</p>", "own.example"), None);
    }

    #[test]
    fn a_page_cut_inside_a_character_is_still_read() {
        let url = Url::parse("https://x.example/").unwrap();
        // No </head>, and the 4 KiB and 256 KiB cuts fall inside two-byte characters.
        let mut page = String::from("<html lang=\"fr\"><title>Éte</title>");
        page.push_str(&"é".repeat(200_000));
        let d = describe(&url, page.as_bytes()).unwrap();
        assert_eq!(d.title, "Éte");
        assert_eq!(d.language.as_deref(), Some("fr"));
    }

    #[test]
    fn pages_are_described_from_their_meta_tags() {
        let url = Url::parse("https://news.example/story").unwrap();
        let page = br#"<!doctype html><html lang="en-GB"><head><title>Fallback</title>
            <meta property="og:title" content="Big &amp; important">
            <meta name="description" content="Plain description">
            <meta property="og:image" content="/img/cover.jpg">
            <meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">
            <meta property="og:site_name" content="The News">
            <meta property="article:published_time" content="2026-12-01T10:00:00Z">
            </head><body>...</body></html>"#;
        let d = describe(&url, page).unwrap();
        assert_eq!(d.title, "Big & important");
        assert_eq!(d.description, "Plain description");
        assert_eq!(
            d.image.as_deref(),
            Some("https://news.example/img/cover.jpg")
        );
        assert_eq!((d.width, d.height), (1200, 630));
        assert_eq!(d.provider_name, "The News");
        assert_eq!(d.language.as_deref(), Some("en"));
        assert_eq!(d.kind, "link");
        assert!(d.published_at.is_some());
        let bare = describe(
            &url,
            b"<html><head><title> Just a title </title></head></html>",
        )
        .unwrap();
        assert_eq!(bare.title, "Just a title");
        assert!(describe(&url, b"<html><body>nothing</body></html>").is_none());
        let photo = describe(
            &Url::parse("https://x.example/a/cat.png").unwrap(),
            b"\x89PNG....",
        )
        .unwrap();
        assert_eq!((photo.kind, photo.title.as_str()), ("photo", "cat.png"));
    }
}
