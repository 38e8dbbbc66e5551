//! The type from the bytes, and clear refusals.

use bytes::Bytes;

use crate::{Limits, MediaError, MediaKind, process, sniff};

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = u32::try_from(16 + 4 * compatible.len()).expect("small");
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(b"ftyp");
    out.extend_from_slice(major);
    out.extend_from_slice(&[0, 0, 0, 0]);
    for brand in compatible {
        out.extend_from_slice(*brand);
    }
    out.extend_from_slice(b"\0\0\0\x08free");
    out
}

fn refused(head: &[u8]) -> String {
    match sniff(head) {
        Err(MediaError::Unsupported(message)) => message,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn accepted_types_from_their_magic() {
    let cases: &[(&[u8], &str, MediaKind)] = &[
        (
            b"\xFF\xD8\xFF\xE0\0\x10JFIF",
            "image/jpeg",
            MediaKind::Image,
        ),
        (
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
            "image/png",
            MediaKind::Image,
        ),
        (b"GIF89a\x01\0\x01\0", "image/gif", MediaKind::Gifv),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp", MediaKind::Image),
        (b"RIFF\0\0\0\0WAVEfmt ", "audio/wav", MediaKind::Audio),
        (
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
            "video/webm",
            MediaKind::Video,
        ),
        (
            b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\x13OpusHead",
            "audio/ogg",
            MediaKind::Audio,
        ),
        (b"fLaC\0\0\0\x22", "audio/flac", MediaKind::Audio),
        (b"ID3\x04\0\0\0\0\0\0", "audio/mpeg", MediaKind::Audio),
        (b"\xFF\xFB\x90\x64\0", "audio/mpeg", MediaKind::Audio),
        (b"\xFF\xF1\x50\x80\0", "audio/aac", MediaKind::Audio),
        (
            b"\0\0\0\x08wide\0\0\0\0mdat",
            "video/quicktime",
            MediaKind::Video,
        ),
    ];
    for (head, mime, kind) in cases {
        let found = sniff(head).unwrap_or_else(|e| panic!("{mime}: {e}"));
        assert_eq!((found.mime, found.kind), (*mime, *kind));
    }
    assert_eq!(
        sniff(&ftyp(b"isom", &[b"isom", b"avc1"])).map(|s| s.mime),
        Ok("video/mp4")
    );
    assert_eq!(
        sniff(&ftyp(b"qt  ", &[b"qt  "])).map(|s| s.mime),
        Ok("video/quicktime")
    );
    assert_eq!(
        sniff(&ftyp(b"M4A ", &[b"M4A ", b"mp42"])).map(|s| s.kind),
        Ok(MediaKind::Audio)
    );
}

#[test]
fn refusals_name_what_was_seen() {
    assert_eq!(
        refused(&ftyp(b"avif", &[b"avif", b"mif1"])),
        "AVIF images are not supported"
    );
    assert_eq!(
        refused(&ftyp(b"mif1", &[b"mif1", b"avif"])),
        "AVIF images are not supported"
    );
    assert!(refused(&ftyp(b"heic", &[b"mif1", b"heic"])).starts_with("HEIC"));
    assert_eq!(
        refused(b"%PDF-1.7\n%\xe2\xe3"),
        "PDF documents are not supported"
    );
    assert_eq!(refused(b"II*\0\x08\0\0\0"), "TIFF images are not supported");
    assert_eq!(
        refused(b"\xEF\xBB\xBF  <svg xmlns='http://www.w3.org/2000/svg'>"),
        "SVG images are not supported"
    );
    assert_eq!(
        refused(b"RIFF\0\0\0\0AVI LIST"),
        "AVI videos are not supported"
    );
    assert_eq!(refused(b""), "The file is empty");
    assert!(refused(&[0x13, 0x37, 0x42, 0x00, 0x99, 0x01]).contains("not recognised"));
}

#[tokio::test]
async fn process_refuses_random_bytes_and_documents() {
    let mut state = 7u32;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    for upload in [
        random,
        b"%PDF-1.4\n1 0 obj".to_vec(),
        ftyp(b"avif", &[b"avif"]),
    ] {
        let result = process(Bytes::from(upload), &Limits::default()).await;
        assert!(
            matches!(result, Err(MediaError::Unsupported(_))),
            "{result:?}"
        );
    }
}
