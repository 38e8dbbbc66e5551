//! Turns uploaded bytes into Mastodon-style media variants: an `original` that clients play or
//! show, a `small` preview image, a blurhash and the attachment's `meta`.
//!
//! Pure processing: no database, storage or HTTP. The caller stores the variants and renders
//! every [`MediaError`] as HTTP 422 with the error's message as `{"error": …}`.
//!
//! - The type comes from the bytes ([`sniff`]), never from a file name.
//! - Still images (JPEG, PNG, WebP, one-frame GIF) are decoded, oriented and re-encoded in
//!   process with the `image` crate, and scaled with `fast_image_resize`, on a blocking thread;
//!   re-encoding drops EXIF (with its GPS position), XMP and every other tag but the ICC colour
//!   profile. A header claiming more than
//!   [`Limits::max_decode_pixels`] is refused before any pixel is decoded.
//! - Animated GIFs, video and audio go through ffmpeg (see `av`), each run under a deadline, in
//!   a private temporary directory that is removed afterwards. Without ffmpeg those uploads are
//!   refused with [`MediaError::Unavailable`] and images still work.

mod av;
mod error;
mod gif;
mod job;
mod jpeg;
mod limits;
mod meta;
mod orient;
mod probe;
mod sniff;
mod still;
mod tool;

#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;

pub use error::MediaError;
pub use limits::Limits;
pub use sniff::{AV_MIME_TYPES, IMAGE_MIME_TYPES, Sniffed, sniff};

use crate::error::human_bytes;
use crate::tool::{FFMPEG_MISSING, Outcome, Run};

/// Mastodon's attachment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    /// A GIF animation, served as a silent looping MP4.
    Gifv,
    Video,
    Audio,
}

impl MediaKind {
    /// The `type` of a Mastodon media attachment.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Gifv => "gifv",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }
    }
}

/// One processed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub bytes: Bytes,
    pub mime: &'static str,
    /// The file name extension for storage keys, without the dot: "jpg", "png", "mp4", "mp3".
    pub extension: &'static str,
    /// Pixel size; `None` for audio.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// An upload turned into what a Mastodon media attachment serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub kind: MediaKind,
    /// What clients play or show.
    pub original: Variant,
    /// The preview image: for video and GIF animations their first frame; `None` for audio.
    pub small: Option<Variant>,
    /// From the preview, 4×4 components like Mastodon's; `None` for audio.
    pub blurhash: Option<String>,
    /// Mastodon's `meta` without `focus`: see the `meta` module for its keys per kind.
    pub meta: serde_json::Value,
}

/// Sniffs the type, checks the size limit for it, and processes the upload.
///
/// Images are decoded on `tokio::task::spawn_blocking`; animated GIFs, video and audio run
/// through ffmpeg under [`Limits::ffmpeg_timeout`].
pub async fn process(bytes: Bytes, limits: &Limits) -> Result<Processed, MediaError> {
    let sniffed = sniff(&bytes)?;
    check_size(bytes.len(), sniffed.kind, limits)?;
    match sniffed.kind {
        MediaKind::Gifv if gif::is_animated(&bytes) => {
            let (width, height) = gif::screen_size(&bytes).unwrap_or((0, 0));
            still::check_pixels(width, height, limits.max_decode_pixels, "GIF animation")?;
            av::process_gifv(bytes, limits).await
        }
        MediaKind::Image | MediaKind::Gifv => process_still(bytes, sniffed, limits).await,
        MediaKind::Video | MediaKind::Audio => av::process(bytes, sniffed, limits).await,
    }
}

async fn process_still(
    bytes: Bytes,
    sniffed: Sniffed,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let format = sniff::image_format(sniffed.mime).ok_or_else(|| {
        MediaError::Unsupported(format!("{} images are not supported", sniffed.mime))
    })?;
    let limits = limits.clone();
    let variants = run_blocking(move || still::process(&bytes, format, &limits)).await?;
    let (original, small) = (&variants.original, &variants.small);
    let meta = meta::image(
        (original.width.unwrap_or(0), original.height.unwrap_or(0)),
        (small.width.unwrap_or(0), small.height.unwrap_or(0)),
    );
    Ok(Processed {
        kind: MediaKind::Image,
        original: variants.original,
        small: Some(variants.small),
        blurhash: Some(variants.blurhash),
        meta,
    })
}

/// A custom thumbnail for an attachment (Mastodon's `thumbnail` parameter): an image only.
/// Returns the preview variant, scaled to [`Limits::small_pixels`], and its blurhash.
pub async fn thumbnail(bytes: Bytes, limits: &Limits) -> Result<(Variant, String), MediaError> {
    let sniffed = sniff(&bytes)?;
    let format = sniff::image_format(sniffed.mime).ok_or_else(|| {
        MediaError::Unsupported(format!(
            "A thumbnail must be an image (JPEG, PNG, GIF or WebP), not {}",
            sniffed.mime
        ))
    })?;
    check_size(bytes.len(), MediaKind::Image, limits)?;
    let limits = limits.clone();
    run_blocking(move || still::preview(&bytes, format, None, &limits)).await
}

/// An account's avatar or header (an image only): the centre cropped to the aspect ratio of
/// `width`×`height` and scaled down to that size, like Mastodon's `400x400#` and `1500x500#`.
/// An image smaller than that keeps its size. A GIF animation keeps only its first frame.
pub async fn profile_image(
    bytes: Bytes,
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<Variant, MediaError> {
    let sniffed = sniff(&bytes)?;
    let format = sniff::image_format(sniffed.mime).ok_or_else(|| {
        MediaError::Unsupported(format!(
            "An avatar or header must be an image (JPEG, PNG, GIF or WebP), not {}",
            sniffed.mime
        ))
    })?;
    check_size(bytes.len(), MediaKind::Image, limits)?;
    let limits = limits.clone();
    run_blocking(move || still::profile(&bytes, format, (width, height), &limits)).await
}

/// A custom emoji (PNG, GIF or WebP of at most `max_bytes`): its MIME type and its still
/// version, the first frame as PNG fitting `side`×`side`.
pub async fn emoji(
    bytes: Bytes,
    max_bytes: usize,
    side: u32,
    limits: &Limits,
) -> Result<(&'static str, Variant), MediaError> {
    let sniffed = sniff(&bytes)?;
    if !matches!(sniffed.mime, "image/png" | "image/gif" | "image/webp") {
        return Err(MediaError::Unsupported(format!(
            "A custom emoji must be a PNG, GIF or WebP image, not {}",
            sniffed.mime
        )));
    }
    if bytes.len() > max_bytes {
        return Err(MediaError::TooLarge(format!(
            "A custom emoji may be at most {} KiB",
            max_bytes / 1024
        )));
    }
    let format = sniff::image_format(sniffed.mime)
        .ok_or_else(|| MediaError::Unsupported(format!("{} cannot be decoded", sniffed.mime)))?;
    let limits = limits.clone();
    let still = run_blocking(move || still::emoji_still(&bytes, format, side, &limits)).await?;
    Ok((sniffed.mime, still))
}

/// Whether ffmpeg and ffprobe can be run, with the encoders this crate uses: for the instance
/// entity's media configuration and for refusing a video before it is uploaded in full.
/// Takes tens of milliseconds; callers check once at startup.
pub async fn ffmpeg_available(limits: &Limits) -> bool {
    check_ffmpeg(limits).await.is_ok()
}

/// Like [`ffmpeg_available`], with the reason as the error a video upload would get.
pub async fn check_ffmpeg(limits: &Limits) -> Result<(), MediaError> {
    let timeout = limits.ffmpeg_timeout.min(Duration::from_secs(10));
    let encoders = Run::new(&limits.ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .run(timeout)
        .await?;
    let missing = match encoders {
        Outcome::Success(list) => {
            let list = String::from_utf8_lossy(&list);
            // Each encoder is a line: flags, name, description.
            let has = |name: &str| {
                list.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(name))
            };
            ["libx264", "libmp3lame", "aac"]
                .into_iter()
                .filter(|e| !has(e))
                .collect::<Vec<_>>()
        }
        Outcome::Failed(_) => return Err(MediaError::Unavailable(FFMPEG_MISSING.to_owned())),
    };
    if !missing.is_empty() {
        return Err(MediaError::Unavailable(format!(
            "Video and audio uploads need an ffmpeg with the {} encoders, which this server's ffmpeg lacks",
            missing.join(", ")
        )));
    }
    match Run::new(limits.ffprobe_program())
        .arg("-version")
        .run(timeout)
        .await?
    {
        Outcome::Success(_) => Ok(()),
        Outcome::Failed(_) => Err(MediaError::Unavailable(FFMPEG_MISSING.to_owned())),
    }
}

/// The same crates' plain decode (`image`) → resize (`fast_image_resize`, the filter
/// [`process`] uses) → JPEG encode of the two variants [`process`] makes (an original of at most
/// `original_pixels` and a preview of at most `small_pixels`), without sniffing, limits,
/// orientation, colour profile or blurhash: the benchmark's ceiling for the same work.
pub fn raw_reference(
    bytes: &[u8],
    original_pixels: u64,
    small_pixels: u64,
) -> Result<(Vec<u8>, Vec<u8>), MediaError> {
    still::raw_reference(bytes, original_pixels, small_pixels)
}

/// Refuses an upload over its type's byte limit ([`Limits::image_bytes`] for images and GIF
/// animations, [`Limits::video_bytes`] for video and audio). [`process`] checks this itself;
/// a caller that stores the upload before processing it checks first, to refuse at once.
pub fn check_size(len: usize, kind: MediaKind, limits: &Limits) -> Result<(), MediaError> {
    let (limit, what) = match kind {
        MediaKind::Image | MediaKind::Gifv => (limits.image_bytes, "image"),
        MediaKind::Video => (limits.video_bytes, "video"),
        MediaKind::Audio => (limits.video_bytes, "audio file"),
    };
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    if len > limit {
        return Err(MediaError::TooLarge(format!(
            "The {what} is {}; the largest {what} this server accepts is {}",
            human_bytes(len),
            human_bytes(limit)
        )));
    }
    Ok(())
}

/// Runs CPU-bound decoding off the async threads. A decoder that panics on a hostile file is
/// reported as an undecodable file, not a crashed request.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, MediaError>
where
    F: FnOnce() -> Result<T, MediaError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(MediaError::Corrupt(
            "The file could not be decoded (the decoder failed on it)".to_owned(),
        )),
        Err(_) => Err(MediaError::Unavailable(
            "Processing was cancelled".to_owned(),
        )),
    }
}
