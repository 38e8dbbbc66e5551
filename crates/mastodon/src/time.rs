//! Mastodon's timestamp format: `2019-12-08T03:48:33.901Z`.

use chrono::{DateTime, SecondsFormat, Utc};

/// Renders a timestamp as Mastodon does (UTC, milliseconds, `Z`).
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accounts show only the day they were created, at midnight UTC, as Mastodon does.
pub fn day(at: DateTime<Utc>) -> String {
    let midnight = at
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|dt| dt.and_utc())
        .unwrap_or(at);
    iso(midnight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let at = DateTime::parse_from_rfc3339("2019-12-08T03:48:33.901234Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(iso(at), "2019-12-08T03:48:33.901Z");
        assert_eq!(day(at), "2019-12-08T00:00:00.000Z");
    }
}
