//! Announcements from the operator (`stampede admin announcements`), shown to signed-in users
//! through `/api/v1/announcements` while they are active, with each user's dismissals and
//! reactions.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

/// Different reactions an announcement takes at most (Mastodon's limit).
pub const MAX_REACTIONS: i64 = 8;

/// Adds an announcement; its text becomes HTML as a status's does (paragraphs, line breaks,
/// links and hashtags, under `base`). Returns its id.
pub async fn create(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    base: &str,
    text: &str,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    all_day: bool,
) -> Result<i64, sqlx::Error> {
    let id = ids.next_id().as_i64();
    sqlx::query(
        "INSERT INTO announcements (id, text, content, starts_at, ends_at, all_day) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(text)
    .bind(crate::text::render(text, &Default::default(), base))
    .bind(starts_at)
    .bind(ends_at)
    .bind(all_day)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Removes an announcement; whether it existed.
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM announcements WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether `name` is a reaction Mastodon takes: one emoji (with its modifiers, joiners and
/// variation selectors, or a flag), or the shortcode of a local custom emoji (checked by the
/// caller).
pub fn is_emoji(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    if chars.is_empty() || chars.len() > 16 {
        return false;
    }
    let pictographic = |c: char| {
        matches!(c as u32,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x00A9 | 0x00AE
            | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x24C2 | 0x25AA..=0x25FE)
    };
    let joiner = |c: char| matches!(c as u32, 0x200D | 0xFE0F | 0xFE0E | 0x20E3 | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F);
    let keycap_base = |c: char| c.is_ascii_digit() || c == '#' || c == '*';
    chars.iter().any(|&c| pictographic(c))
        && chars
            .iter()
            .all(|&c| pictographic(c) || joiner(c) || keycap_base(c))
        || (chars.len() >= 2 && keycap_base(chars[0]) && chars.contains(&'\u{20E3}'))
}

#[cfg(test)]
mod tests {
    use super::is_emoji;

    #[test]
    fn emojis_are_told_from_words() {
        for ok in ["👍", "❤️", "👩‍💻", "🇫🇷", "👍🏽", "1️⃣", "⭐"] {
            assert!(is_emoji(ok), "{ok}");
        }
        for bad in ["", "a", "ok", "👍 ok", ":blobcat:", "<script>"] {
            assert!(!is_emoji(bad), "{bad}");
        }
    }
}
