//! What an upload is, from its first bytes.
//!
//! The type comes from magic numbers, never from the file name or the client's content type,
//! which a client chooses freely. Anything not recognised, or recognised but not accepted, is
//! refused with a message that names what was seen, so a person who uploaded a HEIC photo learns
//! that HEIC is the problem rather than that "the file is invalid".

use crate::MediaError;
use crate::MediaKind;

/// An upload's type as read from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The MIME type of the upload as it was sent (not of the processed variants).
    pub mime: &'static str,
    /// What it will become: `Image` for a still image, `Gifv` for any GIF (whether it is
    /// animated is decided while processing), `Video` or `Audio`. A video container holding only
    /// sound is found to be audio while processing.
    pub kind: MediaKind,
}

/// Image types accepted, for the instance's `supported_mime_types`.
pub const IMAGE_MIME_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Video and audio types accepted when ffmpeg is available.
pub const AV_MIME_TYPES: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/ogg",
    "video/3gpp",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/flac",
    "audio/aac",
    "audio/mp4",
];

/// The message for bytes that match nothing known.
const UNKNOWN: &str = "The file type was not recognised: this server accepts JPEG, PNG, GIF and \
                       WebP images, MP4, MOV and WebM videos, and MP3, OGG, WAV, FLAC and M4A audio";

/// The type of an upload from its first bytes (a few hundred are plenty; the whole file works).
///
/// Refuses with [`MediaError::Unsupported`] anything this server does not accept, naming the
/// type when it is recognised ("AVIF images are not supported").
pub fn sniff(head: &[u8]) -> Result<Sniffed, MediaError> {
    if head.is_empty() {
        return Err(MediaError::Unsupported("The file is empty".into()));
    }
    if let Some(found) = accepted(head) {
        return Ok(found);
    }
    let what = refused(head).map_or_else(
        || UNKNOWN.to_owned(),
        |name| format!("{name} are not supported"),
    );
    Err(MediaError::Unsupported(what))
}

fn sniffed(mime: &'static str, kind: MediaKind) -> Option<Sniffed> {
    Some(Sniffed { mime, kind })
}

/// The accepted types, or `None`.
fn accepted(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::{Audio, Gifv, Image, Video};
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return sniffed("image/jpeg", Image);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return sniffed("image/png", Image);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return sniffed("image/gif", Gifv);
    }
    if head.starts_with(b"RIFF") {
        return match head.get(8..12)? {
            b"WEBP" => sniffed("image/webp", Image),
            b"WAVE" => sniffed("audio/wav", Audio),
            _ => None,
        };
    }
    if head.get(4..8) == Some(b"ftyp") {
        return iso_media(head);
    }
    if matches!(
        head.get(4..8),
        Some(b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot")
    ) {
        // QuickTime files from before the `ftyp` box was introduced.
        return sniffed("video/quicktime", Video);
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return matroska(head);
    }
    if head.starts_with(b"OggS") {
        let theora = contains(head, b"\x80theora");
        return if theora {
            sniffed("video/ogg", Video)
        } else {
            sniffed("audio/ogg", Audio)
        };
    }
    if head.starts_with(b"fLaC") {
        return sniffed("audio/flac", Audio);
    }
    if head.starts_with(b"ID3") {
        return sniffed("audio/mpeg", Audio);
    }
    mpeg_audio_frame(head)
}

/// MP4, MOV, 3GP and M4A share the ISO base media format; the `ftyp` box's brands tell them
/// apart, and tell still-image formats (AVIF, HEIC) built on it from video.
fn iso_media(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::{Audio, Video};
    let brands = ftyp_brands(head);
    let has = |wanted: &[&[u8]]| brands.iter().any(|brand| wanted.contains(brand));
    if has(&[b"avif", b"avis"]) || has(&[b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"]) {
        // Refused in `refused`, which names the format.
        return None;
    }
    match brands.first().copied() {
        Some(b"qt  ") => sniffed("video/quicktime", Video),
        Some(b"M4A " | b"M4B " | b"M4P ") => sniffed("audio/mp4", Audio),
        Some(brand) if brand.starts_with(b"3g") => sniffed("video/3gpp", Video),
        _ => sniffed("video/mp4", Video),
    }
}

/// The major brand, then the compatible brands, of an `ftyp` box at the start of `head`.
fn ftyp_brands(head: &[u8]) -> Vec<&[u8]> {
    let declared = head
        .get(0..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let end = usize::try_from(declared)
        .unwrap_or(usize::MAX)
        .clamp(12, head.len().max(12));
    let mut brands: Vec<&[u8]> = head.get(8..12).into_iter().collect();
    // Bytes 12..16 are the minor version; compatible brands follow to the end of the box.
    if let Some(rest) = head.get(16..end.min(head.len())) {
        brands.extend(rest.chunks_exact(4));
    }
    brands
}

/// WebM is a restricted Matroska; the EBML header's DocType says which.
fn matroska(head: &[u8]) -> Option<Sniffed> {
    let window = &head[..head.len().min(64)];
    if contains(window, b"webm") {
        sniffed("video/webm", MediaKind::Video)
    } else if contains(window, b"matroska") {
        sniffed("video/x-matroska", MediaKind::Video)
    } else {
        None
    }
}

/// A raw MP3 or ADTS AAC stream without an ID3 tag starts with a frame header: eleven set
/// sync bits, then fields whose all-ones values are invalid.
fn mpeg_audio_frame(head: &[u8]) -> Option<Sniffed> {
    let [0xFF, b1, b2, ..] = *head else {
        return None;
    };
    if b1 & 0xE0 != 0xE0 {
        return None;
    }
    if b1 & 0xF6 == 0xF0 {
        // ADTS: MPEG version bit, layer 00.
        return sniffed("audio/aac", MediaKind::Audio);
    }
    let layer = (b1 >> 1) & 0b11;
    let bitrate_index = b2 >> 4;
    let sample_rate_index = (b2 >> 2) & 0b11;
    let valid = layer != 0 && bitrate_index != 0xF && sample_rate_index != 0b11;
    valid.then_some(Sniffed {
        mime: "audio/mpeg",
        kind: MediaKind::Audio,
    })
}

/// The name of a recognised type this server refuses, in the plural used in "… are not
/// supported", or `None` when the bytes are not recognised at all.
fn refused(head: &[u8]) -> Option<&'static str> {
    if head.get(4..8) == Some(b"ftyp") {
        let brands = ftyp_brands(head);
        if brands.iter().any(|b| matches!(*b, b"avif" | b"avis")) {
            return Some("AVIF images");
        }
        if brands.iter().any(|b| {
            matches!(
                *b,
                b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1"
            )
        }) {
            return Some("HEIC/HEIF images (convert them to JPEG first)");
        }
    }
    let text = trimmed_text_start(head);
    let known: &[(&[u8], &str)] = &[
        (b"%PDF-", "PDF documents"),
        (b"II*\0", "TIFF images"),
        (b"MM\0*", "TIFF images"),
        (b"8BPS", "Photoshop (PSD) files"),
        (&[0xFF, 0x0A], "JPEG XL images"),
        (b"\0\0\0\x0cJXL ", "JPEG XL images"),
        (b"BM", "BMP images"),
        (&[0, 0, 1, 0], "Icon (ICO) files"),
        (b"PK\x03\x04", "ZIP archives and documents"),
        (&[0x30, 0x26, 0xB2, 0x75], "Windows Media (WMV/WMA) files"),
        (b"FLV", "Flash video (FLV) files"),
        (&[0, 0, 1, 0xBA], "MPEG program streams (VOB/MPG)"),
        (b"caff", "Core Audio (CAF) files"),
        (b"MThd", "MIDI files"),
        (b"\x7fELF", "Programs"),
        (b"MZ", "Programs"),
    ];
    if let Some((_, name)) = known.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Some(name);
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"AVI ") {
        return Some("AVI videos");
    }
    if head.starts_with(b"FORM") && matches!(head.get(8..12), Some(b"AIFF" | b"AIFC")) {
        return Some("AIFF audio files");
    }
    if text.starts_with(b"<svg") || (text.starts_with(b"<?xml") && contains(text, b"<svg")) {
        return Some("SVG images");
    }
    if text.starts_with(b"#EXTM3U") {
        return Some("Playlists");
    }
    if text.starts_with(b"<!DOCTYPE html") || text.starts_with(b"<html") {
        return Some("Web pages");
    }
    None
}

/// `head` without a UTF-8 byte-order mark and leading white space, for text formats.
fn trimmed_text_start(head: &[u8]) -> &[u8] {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    &head[start..]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The ffmpeg demuxer for a sniffed audio or video type. Naming it, rather than letting ffmpeg
/// probe, keeps ffmpeg from reading the bytes as some other format than the one we checked
/// (a playlist that makes it open other files, for one).
pub(crate) fn demuxer(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "video/mp4" | "video/quicktime" | "video/3gpp" | "audio/mp4" => "mov",
        "video/webm" | "video/x-matroska" => "matroska",
        "video/ogg" | "audio/ogg" => "ogg",
        "audio/wav" => "wav",
        "audio/mpeg" => "mp3",
        "audio/flac" => "flac",
        "audio/aac" => "aac",
        "image/gif" => "gif",
        _ => return None,
    })
}

/// The image crate's format for a sniffed still-image type.
pub(crate) fn image_format(mime: &str) -> Option<image::ImageFormat> {
    Some(match mime {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        "image/gif" => image::ImageFormat::Gif,
        "image/webp" => image::ImageFormat::WebP,
        _ => return None,
    })
}
