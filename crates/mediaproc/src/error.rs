//! Why an upload could not be turned into media.
//!
//! Every variant becomes HTTP 422 with the message as Mastodon's `{"error": "…"}` body, so each
//! message is written for the person who uploaded the file: what was wrong with it, in words,
//! with the numbers that matter. The variant tells the caller which of four things happened, for
//! logs and metrics; it does not change the status.

/// An upload that this crate refused or could not process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Not a type this server accepts, or not recognisable at all.
    #[error("{0}")]
    Unsupported(String),
    /// Over a limit: the bytes for its type, the pixels the server decodes, or the duration.
    #[error("{0}")]
    TooLarge(String),
    /// Recognised, but truncated or undecodable.
    #[error("{0}")]
    Corrupt(String),
    /// The server cannot process it now: ffmpeg is missing, or processing ran out of time.
    #[error("{0}")]
    Unavailable(String),
}

impl MediaError {
    /// The message for the person who uploaded the file.
    pub fn message(&self) -> &str {
        match self {
            MediaError::Unsupported(m)
            | MediaError::TooLarge(m)
            | MediaError::Corrupt(m)
            | MediaError::Unavailable(m) => m,
        }
    }
}

/// The text for a size in bytes that a person reads: "16 MiB", "1.5 MiB", "900 KiB".
pub(crate) fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    // Exact for any upload size a server accepts; only used for display.
    let b = bytes as f64;
    if b >= MIB {
        trim_number(b / MIB, "MiB")
    } else if b >= KIB {
        trim_number(b / KIB, "KiB")
    } else {
        format!("{bytes} bytes")
    }
}

/// The text for a pixel count: "67.1 megapixels".
pub(crate) fn human_pixels(pixels: u64) -> String {
    let mp = pixels as f64 / 1_000_000.0;
    trim_number(mp, "megapixels")
}

/// One decimal, dropped when it is zero.
fn trim_number(value: f64, unit: &str) -> String {
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {unit}")
}
