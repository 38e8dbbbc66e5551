//! Custom emojis: `:shortcode:` in a status, a display name or a bio shows an image. This
//! server's emojis are added by the operator (`stampede admin emoji`) and stored in media
//! storage; other servers' arrive as `Emoji` tags on their statuses and profiles and are linked
//! where they live. Each renderer keeps every emoji in memory and reloads them when the
//! `custom_emojis_version` sequence has moved (checked at most once a second).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;
use stampede_mastodon::CustomEmoji;
use stampede_mediaproc::Limits;
use stampede_storage::Storage;

use crate::media::Files;

/// Mastodon's limit for a custom emoji's file.
pub const MAX_BYTES: usize = 256 * 1024;
/// The still version's longest side.
const STILL_SIDE: u32 = 128;
/// How often a renderer looks whether the emojis changed.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shortcodes written as `:shortcode:` in `text`, each once, in order. As in Mastodon, the
/// colons may not touch a letter, a digit or another colon (`a:b:c` and `::x::` are not
/// emojis).
pub fn shortcodes(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut found: Vec<&str> = Vec::new();
    let word = |c: char| c.is_alphanumeric() || c == ':';
    let mut i = 0;
    while let Some(start) = text[i..].find(':').map(|p| p + i) {
        let before_ok = text[..start].chars().next_back().is_none_or(|c| !word(c));
        let name_len = bytes[start + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let end = start + 1 + name_len;
        if before_ok
            && name_len >= 2
            && bytes.get(end) == Some(&b':')
            && text[end + 1..].chars().next().is_none_or(|c| !word(c))
        {
            let code = &text[start + 1..end];
            if !found.contains(&code) {
                found.push(code);
            }
            i = end + 1;
        } else {
            i = start + 1;
        }
    }
    found
}

/// Whether `code` may be a shortcode.
pub fn valid_shortcode(code: &str) -> bool {
    code.len() >= 2 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, sqlx::FromRow)]
struct EmojiRow {
    shortcode: String,
    domain: Option<String>,
    image_key: Option<String>,
    static_key: Option<String>,
    image_remote_url: Option<String>,
    visible_in_picker: bool,
    category: Option<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    version: Option<i64>,
    /// By domain ("" for this server's), then shortcode.
    by_domain: HashMap<String, HashMap<String, CustomEmoji>>,
}

/// Every enabled custom emoji, in memory.
#[derive(Debug, Default)]
pub struct EmojiCache {
    snapshot: RwLock<Arc<Snapshot>>,
    checked: Mutex<Option<Instant>>,
}

impl EmojiCache {
    /// Whether it is time to look for changes.
    pub fn due(&self) -> bool {
        self.checked
            .lock()
            .is_none_or(|at| at.elapsed() >= CHECK_EVERY)
    }

    /// Reloads the emojis when they changed since the last look (at most once a second).
    pub async fn refresh(&self, conn: &mut PgConnection, files: &Files) -> Result<(), sqlx::Error> {
        {
            let mut checked = self.checked.lock();
            if checked.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
                return Ok(());
            }
            *checked = Some(Instant::now());
        }
        // The version first: emojis read after it are at least as new as it says.
        let version: i64 = sqlx::query_scalar("SELECT version FROM custom_emojis_version")
            .fetch_one(&mut *conn)
            .await?;
        if self.snapshot.read().version == Some(version) {
            return Ok(());
        }
        let rows: Vec<EmojiRow> = sqlx::query_as(
            "SELECT shortcode, domain, image_key, static_key, image_remote_url, \
                    visible_in_picker, category \
             FROM custom_emojis WHERE NOT disabled",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut by_domain: HashMap<String, HashMap<String, CustomEmoji>> = HashMap::new();
        for row in rows {
            let (url, static_url) = match (&row.image_key, &row.static_key, &row.image_remote_url) {
                (Some(image), Some(still), _) => (files.url(image), files.url(still)),
                (_, _, Some(remote)) => (remote.clone(), remote.clone()),
                _ => continue,
            };
            by_domain
                .entry(row.domain.unwrap_or_default())
                .or_default()
                .insert(
                    row.shortcode.clone(),
                    CustomEmoji {
                        shortcode: row.shortcode,
                        url,
                        static_url,
                        visible_in_picker: row.visible_in_picker,
                        category: row.category,
                    },
                );
        }
        *self.snapshot.write() = Arc::new(Snapshot {
            version: Some(version),
            by_domain,
        });
        Ok(())
    }

    /// The emojis of `domain` (`None`: this server's) that `texts` use, each once.
    pub fn used_in(&self, domain: Option<&str>, texts: &[&str]) -> Vec<CustomEmoji> {
        if !texts.iter().any(|t| t.contains(':')) {
            return Vec::new();
        }
        let snapshot = self.snapshot.read().clone();
        let Some(known) = snapshot.by_domain.get(domain.unwrap_or_default()) else {
            return Vec::new();
        };
        let mut used: Vec<CustomEmoji> = Vec::new();
        for text in texts {
            for code in shortcodes(text) {
                if let Some(emoji) = known.get(code)
                    && !used.iter().any(|e| e.shortcode == code)
                {
                    used.push(emoji.clone());
                }
            }
        }
        used
    }

    /// This server's emojis, for `/api/v1/custom_emojis`, by shortcode.
    pub fn local(&self) -> Vec<CustomEmoji> {
        let snapshot = self.snapshot.read().clone();
        let mut list: Vec<CustomEmoji> = snapshot
            .by_domain
            .get("")
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| a.shortcode.cmp(&b.shortcode));
        list
    }
}

/// Why an emoji could not be added.
#[derive(Debug, thiserror::Error)]
pub enum EmojiError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Media(#[from] stampede_mediaproc::MediaError),
    #[error(transparent)]
    Storage(#[from] stampede_storage::StorageError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An emoji the operator adds.
#[derive(Debug, Clone)]
pub struct NewEmoji<'a> {
    pub shortcode: &'a str,
    /// The image file's bytes.
    pub image: Bytes,
    /// The picker's group.
    pub category: Option<&'a str>,
    pub visible_in_picker: bool,
}

/// Adds (or replaces) one of this server's emojis from an image file: the original and its
/// still PNG are stored first, then the row is written; a replaced emoji's old files go to the
/// storage garbage.
pub async fn add_local(
    db: &stampede_db::Db,
    storage: &Storage,
    limits: &Limits,
    ids: &IdGenerator,
    new: NewEmoji<'_>,
) -> Result<(), EmojiError> {
    let NewEmoji {
        shortcode,
        image,
        category,
        visible_in_picker,
    } = new;
    if !valid_shortcode(shortcode) {
        return Err(EmojiError::Invalid(format!(
            "'{shortcode}' is not a valid shortcode: at least two letters, digits or underscores"
        )));
    }
    let (mime, still) =
        stampede_mediaproc::emoji(image.clone(), MAX_BYTES, STILL_SIDE, limits).await?;
    let id = ids.next_id().as_i64();
    let extension = match mime {
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    };
    let image_key = format!("custom_emojis/{id}/original.{extension}");
    let static_key = format!("custom_emojis/{id}/static.png");
    storage.put(&image_key, image, mime).await?;
    storage.put(&static_key, still.bytes, still.mime).await?;
    let mut tx = db.begin().await?;
    take_local(&mut tx, shortcode).await?;
    sqlx::query(
        "INSERT INTO custom_emojis (id, shortcode, image_key, static_key, category, visible_in_picker) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(shortcode)
    .bind(&image_key)
    .bind(&static_key)
    .bind(category.map(str::trim).filter(|c| !c.is_empty()))
    .bind(visible_in_picker)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes this server's emoji `shortcode`, its files to the storage garbage, in the caller's
/// transaction; whether it existed.
async fn take_local(conn: &mut PgConnection, shortcode: &str) -> Result<bool, sqlx::Error> {
    let old: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "DELETE FROM custom_emojis WHERE shortcode = $1 AND domain IS NULL \
         RETURNING image_key, static_key",
    )
    .bind(shortcode)
    .fetch_optional(&mut *conn)
    .await?;
    let existed = old.is_some();
    if let Some((a, b)) = old {
        let keys: Vec<String> = a.into_iter().chain(b).collect();
        crate::media::discard(conn, &keys).await?;
    }
    Ok(existed)
}

/// Removes this server's emoji `shortcode`; its files go to the storage garbage. Returns
/// whether it existed.
pub async fn remove_local(db: &stampede_db::Db, shortcode: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let existed = take_local(&mut tx, shortcode).await?;
    tx.commit().await?;
    Ok(existed)
}

/// Records the `Emoji` tags of an object from `domain` (a status or an actor) in the
/// caller's transaction: new ones are added, changed ones (another image) updated. Tags that
/// are not well-formed are skipped.
pub async fn record_remote(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    domain: &str,
    tags: &Value,
) -> Result<(), sqlx::Error> {
    for tag in crate::remote::items(tags)
        .into_iter()
        .filter(|t| t["type"] == "Emoji")
    {
        let Some(code) = tag["name"]
            .as_str()
            .map(|n| n.trim_matches(':'))
            .filter(|n| valid_shortcode(n))
        else {
            continue;
        };
        let icon = &tag["icon"];
        let Some(url) = icon["url"]
            .as_str()
            .or_else(|| icon.as_str())
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        else {
            continue;
        };
        sqlx::query(
            "INSERT INTO custom_emojis (id, shortcode, domain, image_remote_url, uri) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (shortcode, coalesce(domain, '')) DO UPDATE \
               SET image_remote_url = EXCLUDED.image_remote_url, uri = EXCLUDED.uri, \
                   updated_at = now() \
             WHERE custom_emojis.image_remote_url IS DISTINCT FROM EXCLUDED.image_remote_url",
        )
        .bind(ids.next_id().as_i64())
        .bind(code)
        .bind(domain.to_ascii_lowercase())
        .bind(url)
        .bind(tag["id"].as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The ActivityPub `Emoji` tag of one of this server's emojis.
pub fn to_tag(base: &str, emoji: &CustomEmoji) -> Value {
    let media_type = if emoji.url.ends_with(".gif") {
        "image/gif"
    } else if emoji.url.ends_with(".webp") {
        "image/webp"
    } else {
        "image/png"
    };
    json!({
        "id": format!("{base}/emojis/{}", emoji.shortcode),
        "type": "Emoji",
        "name": format!(":{}:", emoji.shortcode),
        "icon": { "type": "Image", "mediaType": media_type, "url": emoji.url },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_need_free_colons() {
        assert_eq!(
            shortcodes("hi :blob_cat: and :wave:!"),
            vec!["blob_cat", "wave"]
        );
        assert_eq!(shortcodes(":a: :ok::no: x:yes: :yes:"), vec!["yes"]);
        assert_eq!(shortcodes("<p>:party:</p> :party:"), vec!["party"]);
        assert_eq!(shortcodes("12:30:45"), Vec::<&str>::new());
        assert_eq!(shortcodes("::double::"), Vec::<&str>::new());
        assert_eq!(shortcodes("été :café: :ok:"), vec!["ok"]);
    }
}
