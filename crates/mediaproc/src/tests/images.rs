//! Still images through `process` and `thumbnail`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use image::GenericImageView;

use super::fixtures::{
    claimed_png, contains, gif, jpeg, photo, png, translucent, with_exif_orientation,
};
use crate::{Limits, MediaError, MediaKind, process, profile_image, raw_reference, thumbnail};

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("a decodable variant")
}

#[tokio::test]
async fn exif_orientation_is_applied_and_exif_dropped() {
    let upload = with_exif_orientation(&jpeg(&photo(80, 40)), 6);
    assert!(contains(&upload, b"Exif") && contains(&upload, b"Cam\0"));
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");

    assert_eq!(processed.kind, MediaKind::Image);
    let original = &processed.original;
    assert_eq!((original.mime, original.extension), ("image/jpeg", "jpg"));
    assert_eq!(
        (original.width, original.height),
        (Some(40), Some(80)),
        "rotated a quarter turn"
    );
    assert!(!contains(&original.bytes, b"Exif") && !contains(&original.bytes, b"Cam\0"));
    // Orientation 6 shows the stored top-left corner (red) at the top right.
    let shown = decode(&original.bytes);
    let top_right = shown.get_pixel(37, 2).0;
    assert!(
        top_right[0] > 200 && top_right[1] < 60,
        "top right is {top_right:?}"
    );
    assert_eq!(processed.meta["original"]["size"], "40x80");
    assert_eq!(processed.meta["original"]["aspect"], 0.5);
}

#[tokio::test]
async fn png_with_transparency_stays_png_with_alpha() {
    let processed = process(Bytes::from(png(&translucent(64, 48))), &Limits::default())
        .await
        .expect("processed");
    let small = processed.small.expect("a preview");
    for variant in [&processed.original, &small] {
        assert_eq!((variant.mime, variant.extension), ("image/png", "png"));
        let decoded = decode(&variant.bytes);
        assert_eq!(
            decoded.get_pixel(0, 0).0[3],
            0,
            "the transparent half stays transparent"
        );
    }
    assert_eq!(processed.meta["small"]["width"], 64);
}

#[tokio::test]
async fn a_still_gif_is_an_image_written_as_png() {
    let processed = process(Bytes::from(gif(1)), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.kind, MediaKind::Image);
    assert_eq!(processed.original.mime, "image/png");
    assert_eq!(
        (processed.original.width, processed.original.height),
        (Some(32), Some(24))
    );
}

#[tokio::test]
async fn a_large_photo_is_scaled_to_mastodons_sizes() {
    let limits = Limits::default();
    // Grey PNG keeps this test quick in a debug build while still decoding, resizing and
    // encoding nine megapixels.
    let grey = image::GrayImage::from_fn(4000, 2200, |x, y| image::Luma([((x + y) % 251) as u8]));
    let mut upload = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut upload, image::ImageFormat::Png)
        .expect("encode PNG");
    let upload = upload.into_inner();
    let processed = process(Bytes::from(upload), &limits)
        .await
        .expect("processed");

    let (w, h) = (
        processed.original.width.expect("w"),
        processed.original.height.expect("h"),
    );
    assert!(
        u64::from(w) * u64::from(h) <= limits.original_pixels,
        "original {w}x{h}"
    );
    assert!(w >= 3800, "scaled only as much as needed: {w}x{h}");
    assert!((f64::from(w) / f64::from(h) - 4000.0 / 2200.0).abs() < 0.01);
    let small = processed.small.expect("a preview");
    let (sw, sh) = (small.width.expect("w"), small.height.expect("h"));
    assert!(
        u64::from(sw) * u64::from(sh) <= limits.small_pixels,
        "small {sw}x{sh}"
    );
    assert!(sw >= 640, "small {sw}x{sh}");
    assert_eq!(decode(&small.bytes).dimensions(), (sw, sh));
    assert_eq!(processed.meta["small"]["size"], format!("{sw}x{sh}"));
}

#[tokio::test]
async fn small_images_are_never_enlarged() {
    let limits = Limits {
        original_pixels: 20_000,
        small_pixels: 2_000,
        ..Limits::default()
    };
    let processed = process(Bytes::from(jpeg(&photo(200, 150))), &limits)
        .await
        .expect("processed");
    let original = &processed.original;
    assert!(u64::from(original.width.expect("w") * original.height.expect("h")) <= 20_000);
    let small = processed.small.expect("a preview");
    assert!(u64::from(small.width.expect("w") * small.height.expect("h")) <= 2_000);

    let tiny = process(Bytes::from(jpeg(&photo(20, 10))), &limits)
        .await
        .expect("processed");
    assert_eq!(
        (tiny.original.width, tiny.original.height),
        (Some(20), Some(10))
    );
    assert_eq!(
        tiny.small.map(|s| (s.width, s.height)),
        Some((Some(20), Some(10)))
    );
}

#[tokio::test]
async fn a_sixteen_bit_png_is_scaled_and_stays_sixteen_bit() {
    let limits = Limits {
        original_pixels: 20_000,
        small_pixels: 2_000,
        ..Limits::default()
    };
    let deep = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(300, 200, |x, y| {
        image::Rgb([(x * 200) as u16, (y * 300) as u16, 40_000])
    });
    let mut upload = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb16(deep)
        .write_to(&mut upload, image::ImageFormat::Png)
        .expect("encode PNG");
    let processed = process(Bytes::from(upload.into_inner()), &limits)
        .await
        .expect("processed");
    let small = processed.small.expect("a preview");
    for (variant, max) in [(&processed.original, 20_000), (&small, 2_000)] {
        assert_eq!(variant.mime, "image/png");
        let (w, h) = (variant.width.expect("w"), variant.height.expect("h"));
        assert!(u64::from(w) * u64::from(h) <= max, "{w}x{h}");
        assert!((f64::from(w) / f64::from(h) - 1.5).abs() < 0.05, "{w}x{h}");
        let decoded = decode(&variant.bytes);
        assert_eq!(decoded.dimensions(), (w, h));
        assert_eq!(decoded.color(), image::ColorType::Rgb16);
    }
}

#[tokio::test]
async fn blurhash_has_four_by_four_components() {
    let processed = process(Bytes::from(jpeg(&photo(120, 90))), &Limits::default())
        .await
        .expect("processed");
    let hash = processed.blurhash.expect("a blurhash");
    // Size flag, maximum, DC (4) and 15 AC components of 2 characters each.
    assert_eq!(hash.len(), 36, "{hash}");
    assert!(
        hash.starts_with('U'),
        "4x4 components encode as 'U': {hash}"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_before_decoding() {
    let started = Instant::now();
    let result = process(
        Bytes::from(claimed_png(100_000, 100_000)),
        &Limits::default(),
    )
    .await;
    let Err(MediaError::TooLarge(message)) = result else {
        panic!("expected TooLarge, got {result:?}");
    };
    assert!(message.contains("100000x100000"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_truncated_jpeg_is_corrupt() {
    let whole = jpeg(&photo(64, 64));
    let result = process(
        Bytes::copy_from_slice(&whole[..whole.len() / 3]),
        &Limits::default(),
    )
    .await;
    assert!(matches!(result, Err(MediaError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn uploads_over_the_image_limit_are_too_large() {
    let limits = Limits {
        image_bytes: 1000,
        ..Limits::default()
    };
    let result = process(Bytes::from(jpeg(&photo(64, 64))), &limits).await;
    let Err(MediaError::TooLarge(message)) = result else {
        panic!("expected TooLarge, got {result:?}");
    };
    assert!(message.contains("1000 bytes"), "{message}");
}

#[tokio::test]
async fn webp_without_transparency_becomes_jpeg() {
    let mut webp = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo(48, 32))
        .write_to(&mut webp, image::ImageFormat::WebP)
        .expect("encode WebP");
    let processed = process(Bytes::from(webp.into_inner()), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.original.mime, "image/jpeg");

    let mut webp = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(translucent(48, 32))
        .write_to(&mut webp, image::ImageFormat::WebP)
        .expect("encode WebP");
    let processed = process(Bytes::from(webp.into_inner()), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.original.mime, "image/png");
}

#[tokio::test]
async fn a_thumbnail_is_a_small_preview_with_a_blurhash() {
    let limits = Limits::default();
    let upload = with_exif_orientation(&jpeg(&photo(1600, 900)), 6);
    let (variant, hash) = thumbnail(Bytes::from(upload), &limits)
        .await
        .expect("a thumbnail");
    let (w, h) = (variant.width.expect("w"), variant.height.expect("h"));
    assert!(h > w, "oriented: {w}x{h}");
    assert!(u64::from(w) * u64::from(h) <= limits.small_pixels);
    assert_eq!(variant.mime, "image/jpeg");
    assert_eq!(hash.len(), 36);

    let result = thumbnail(Bytes::from_static(b"ID3\x04\0\0\0\0\0\0"), &limits).await;
    assert!(
        matches!(result, Err(MediaError::Unsupported(ref m)) if m.contains("thumbnail")),
        "{result:?}"
    );
}

#[test]
fn raw_reference_makes_both_variants_as_jpegs() {
    let (original, small) =
        raw_reference(&jpeg(&photo(1280, 720)), 640 * 360, 230_400).expect("reference JPEGs");
    let (original, small) = (decode(&original), decode(&small));
    assert!(u64::from(original.width()) * u64::from(original.height()) <= 640 * 360);
    assert!(u64::from(small.width()) * u64::from(small.height()) <= 230_400);
}

/// A stand-in ICC profile: a 132-byte header naming `space`, and no tags.
fn icc_profile(space: &[u8; 4]) -> Vec<u8> {
    let mut profile = vec![0u8; 132];
    profile[..4].copy_from_slice(&132u32.to_be_bytes());
    profile[16..20].copy_from_slice(space);
    profile[36..40].copy_from_slice(b"acsp");
    profile[100..116].copy_from_slice(b"stand-in profile");
    profile
}

fn jpeg_with_icc(profile: Vec<u8>) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    encoder
        .set_icc_profile(profile)
        .expect("JPEG takes ICC profiles");
    encoder
        .write_image(
            photo(32, 32).as_raw(),
            32,
            32,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    out
}

#[tokio::test]
async fn an_rgb_colour_profile_is_kept_and_others_dropped() {
    let upload = jpeg_with_icc(icc_profile(b"RGB "));
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");
    assert!(contains(&processed.original.bytes, b"stand-in profile"));
    assert!(contains(
        &processed.small.expect("a preview").bytes,
        b"stand-in profile"
    ));

    let upload = jpeg_with_icc(icc_profile(b"CMYK"));
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");
    assert!(!contains(&processed.original.bytes, b"stand-in profile"));
}

#[tokio::test]
async fn profile_images_are_cropped_to_fill_and_scaled_down() {
    let limits = Limits::default();
    let avatar = profile_image(Bytes::from(jpeg(&photo(900, 600))), 400, 400, &limits)
        .await
        .expect("an avatar");
    assert_eq!(
        (avatar.width, avatar.height, avatar.mime),
        (Some(400), Some(400), "image/jpeg")
    );

    let header = profile_image(
        Bytes::from(png(&translucent(3000, 600))),
        1500,
        500,
        &limits,
    )
    .await
    .expect("a header");
    assert_eq!(
        (header.width, header.height, header.mime),
        (Some(1500), Some(500), "image/png")
    );

    let small = profile_image(Bytes::from(jpeg(&photo(120, 200))), 400, 400, &limits)
        .await
        .expect("a small avatar");
    assert_eq!(
        (small.width, small.height),
        (Some(120), Some(120)),
        "cropped, not enlarged"
    );

    let refused = profile_image(Bytes::from_static(b"fLaC\0\0\0\x22"), 400, 400, &limits).await;
    assert!(
        matches!(refused, Err(MediaError::Unsupported(ref m)) if m.contains("avatar")),
        "{refused:?}"
    );
}
