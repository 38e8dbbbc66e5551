//! Still images, in process: JPEG, PNG, WebP and one-frame GIFs, decoded and encoded with the
//! `image` crate and scaled with `fast_image_resize`.
//!
//! One decode, then at most one resize per variant and one encode per variant:
//!
//! ```text
//! header ─► pixel check ─► decode ─► fit to original_pixels ─► orient ─► encode original
//!                                                                  └─► fit to small ─► encode small
//!                                                                                └─► blurhash
//! ```
//!
//! Resizing ([`downscale`]) happens before orientation ([`crate::orient`]) so a rotation copies
//! the smaller image, and the preview is made from the already-reduced original rather than from
//! the full decode. Re-encoding drops every piece of metadata (EXIF with its GPS position and
//! camera serial, XMP, IPTC, PNG text) except the ICC colour profile, which Mastodon keeps too:
//! without it a wide-gamut phone photo shows with washed-out colours.

use std::io::Cursor;

use bytes::Bytes;
use fast_image_resize::{self as fir, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader};

use crate::error::human_pixels;
use crate::{Limits, MediaError, Variant};

/// JPEG quality for re-encoded images: visually lossless for photos at a fraction of 100's size.
const JPEG_QUALITY: u8 = 85;
/// The longest side of the image the blurhash is computed from. Its 4×4 components only need
/// the broad colours, and the cost of encoding grows with the pixel count.
const BLURHASH_SIDE: u32 = 64;
/// Blurhash components on each axis, as Mastodon uses.
const BLURHASH_COMPONENTS: u32 = 4;
/// An ICC profile larger than this is dropped: real display profiles are a few KiB, and a
/// profile repeated in every variant should not outweigh a preview.
const MAX_ICC_BYTES: usize = 64 * 1024;
/// The longest side the decoder accepts, whatever the pixel count: JPEG's own maximum.
const MAX_SIDE: u32 = 65_535;

/// A decoded image and what re-encoding it needs from the source.
pub(crate) struct Decoded {
    pub image: DynamicImage,
    /// The EXIF orientation, not yet applied.
    pub orientation: Orientation,
    pub icc: Option<Vec<u8>>,
    pub output: Output,
}

/// The formats variants are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Jpeg,
    Png,
}

impl Output {
    /// JPEG stays JPEG, PNG stays PNG, a GIF frame becomes PNG (it may have transparency), and
    /// WebP becomes PNG when it uses transparency and JPEG when it is a photo.
    fn for_source(format: ImageFormat, image: &DynamicImage) -> Output {
        match format {
            ImageFormat::Jpeg => Output::Jpeg,
            ImageFormat::WebP if !uses_alpha(image) => Output::Jpeg,
            _ => Output::Png,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Output::Jpeg => "image/jpeg",
            Output::Png => "image/png",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Output::Jpeg => "jpg",
            Output::Png => "png",
        }
    }
}

/// Whether any pixel is less than fully opaque.
fn uses_alpha(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageRgba8(buffer) => buffer.pixels().any(|p| p.0[3] != u8::MAX),
        DynamicImage::ImageLumaA8(buffer) => buffer.pixels().any(|p| p.0[1] != u8::MAX),
        other => other.has_alpha(),
    }
}

/// An image processed into an original and a preview.
pub(crate) struct StillVariants {
    pub original: Variant,
    pub small: Variant,
    pub blurhash: String,
}

/// Decodes, orients and re-encodes an image into its original and small variants.
pub(crate) fn process(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<StillVariants, MediaError> {
    let decoded = decode(bytes, format, limits)?;
    let original = crate::orient::apply(
        fit(decoded.image, limits.original_pixels),
        decoded.orientation,
    );
    let icc = decoded.icc.as_deref();
    let small = fit_copy(&original, limits.small_pixels);
    let blurhash = blurhash(&small)?;
    Ok(StillVariants {
        small: encode(&small, decoded.output, icc)?,
        original: encode(&original, decoded.output, icc)?,
        blurhash,
    })
}

/// The preview alone, for a custom thumbnail or a GIF animation's first frame; `output` forces
/// the format (a video poster is always JPEG).
pub(crate) fn preview(
    bytes: &[u8],
    format: ImageFormat,
    output: Option<Output>,
    limits: &Limits,
) -> Result<(Variant, String), MediaError> {
    let decoded = decode(bytes, format, limits)?;
    let small = crate::orient::apply(fit(decoded.image, limits.small_pixels), decoded.orientation);
    let blurhash = blurhash(&small)?;
    let variant = encode(
        &small,
        output.unwrap_or(decoded.output),
        decoded.icc.as_deref(),
    )?;
    Ok((variant, blurhash))
}

/// An avatar or header: the centre of the image cropped to `width`:`height` and scaled down to
/// `width`×`height` (never up: a smaller image keeps its size, clients scale it anyway).
pub(crate) fn profile(
    bytes: &[u8],
    format: ImageFormat,
    (width, height): (u32, u32),
    limits: &Limits,
) -> Result<Variant, MediaError> {
    let decoded = decode(bytes, format, limits)?;
    let oriented = crate::orient::apply(decoded.image, decoded.orientation);
    let cropped = crop_to_aspect(oriented, width.max(1), height.max(1));
    let scaled = if cropped.width() > width || cropped.height() > height {
        downscale(&cropped, width, height)
    } else {
        cropped
    };
    encode(&scaled, decoded.output, decoded.icc.as_deref())
}

/// A custom emoji's still version: the first frame as PNG, scaled down to fit `side`×`side`.
pub(crate) fn emoji_still(
    bytes: &[u8],
    format: ImageFormat,
    side: u32,
    limits: &Limits,
) -> Result<Variant, MediaError> {
    let decoded = decode(bytes, format, limits)?;
    let image = crate::orient::apply(decoded.image, decoded.orientation);
    let image = if image.width() > side || image.height() > side {
        let (w, h) = (image.width() as u64, image.height() as u64);
        let scale = side as f64 / w.max(h) as f64;
        let width = ((w as f64 * scale).round() as u32).max(1);
        let height = ((h as f64 * scale).round() as u32).max(1);
        downscale(&image, width, height)
    } else {
        image
    };
    encode(&image, Output::Png, None)
}

/// The largest centred part of `image` with the aspect ratio `width`:`height`.
fn crop_to_aspect(image: DynamicImage, width: u32, height: u32) -> DynamicImage {
    let (w, h) = (u64::from(image.width()), u64::from(image.height()));
    let (want_w, want_h) = (u64::from(width), u64::from(height));
    // Compare w/h with want_w/want_h without dividing.
    let (crop_w, crop_h) = if w * want_h > h * want_w {
        ((h * want_w / want_h).max(1), h)
    } else {
        (w, (w * want_h / want_w).max(1))
    };
    if (crop_w, crop_h) == (w, h) {
        return image;
    }
    // Each part is at most the image's own side, which is a u32.
    let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    image.crop_imm(
        side((w - crop_w) / 2),
        side((h - crop_h) / 2),
        side(crop_w),
        side(crop_h),
    )
}

/// The same crates' plain decode → resize → JPEG encode of both variants: see
/// [`crate::raw_reference`].
pub(crate) fn raw_reference(
    bytes: &[u8],
    original_pixels: u64,
    small_pixels: u64,
) -> Result<(Vec<u8>, Vec<u8>), MediaError> {
    let image = image::load_from_memory(bytes).map_err(|e| decode_error(e, "image"))?;
    let scaled = |image: &DynamicImage, pixels: u64| match fit_dimensions(
        image.width(),
        image.height(),
        pixels,
    ) {
        Some((width, height)) => downscale(image, width, height),
        None => image.clone(),
    };
    let jpeg = |image: &DynamicImage| {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode_image(&image.to_rgb8())
            .map_err(encode_error)?;
        Ok::<_, MediaError>(out)
    };
    let original = scaled(&image, original_pixels);
    let small = scaled(&original, small_pixels);
    Ok((jpeg(&original)?, jpeg(&small)?))
}

/// Reads the header, refuses what is too large, then decodes the pixels under `limits`.
pub(crate) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Decoded, MediaError> {
    let name = format_name(format);
    if format == ImageFormat::Jpeg && !crate::jpeg::is_complete(bytes) {
        return Err(MediaError::Corrupt(format!(
            "The {name} is incomplete: it ends before its image data does"
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // No size limits yet, only the allocation cap: the header is read first so that a refusal
    // can say how large the image claims to be.
    reader.limits(allocation_limits(limits, None));
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(e, name))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits.max_decode_pixels, name)?;
    decoder
        .set_limits(allocation_limits(limits, Some(MAX_SIDE)))
        .map_err(|e| decode_error(e, name))?;
    if decoder.total_bytes() > limits.max_alloc {
        return Err(MediaError::TooLarge(format!(
            "The {name} ({width}x{height}) needs more memory to decode than this server allows"
        )));
    }
    // A damaged EXIF block is no reason to refuse the picture: it is shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| p.len() <= MAX_ICC_BYTES);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e, name))?;
    let output = Output::for_source(format, &image);
    Ok(Decoded {
        image,
        orientation,
        icc,
        output,
    })
}

/// Refuses an image or frame whose header claims more pixels than the server decodes, before
/// anything is allocated for it.
pub(crate) fn check_pixels(
    width: u32,
    height: u32,
    max: u64,
    what: &str,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Corrupt(format!(
            "The {what} says it is {width}x{height} pixels"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max {
        return Err(MediaError::TooLarge(format!(
            "The {what} is {width}x{height} pixels ({}); the most this server accepts is {}",
            human_pixels(pixels),
            human_pixels(max),
        )));
    }
    Ok(())
}

fn allocation_limits(limits: &Limits, max_side: Option<u32>) -> image::Limits {
    let mut out = image::Limits::default();
    out.max_alloc = Some(limits.max_alloc);
    out.max_image_width = max_side;
    out.max_image_height = max_side;
    out
}

/// `image` scaled down to at most `max_pixels`, or itself when it already fits.
fn fit(image: DynamicImage, max_pixels: u64) -> DynamicImage {
    match fit_dimensions(image.width(), image.height(), max_pixels) {
        Some((width, height)) => downscale(&image, width, height),
        None => image,
    }
}

/// Like [`fit`] for an image that is still needed afterwards: copies only when it must.
fn fit_copy(image: &DynamicImage, max_pixels: u64) -> DynamicImage {
    match fit_dimensions(image.width(), image.height(), max_pixels) {
        Some((width, height)) => downscale(image, width, height),
        None => image.clone(),
    }
}

/// The largest size with the same aspect ratio and at most `max_pixels`, or `None` when
/// `width`×`height` already fits (images are never scaled up).
pub(crate) fn fit_dimensions(width: u32, height: u32, max_pixels: u64) -> Option<(u32, u32)> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels <= max_pixels {
        return None;
    }
    // Pixel counts stay far below 2^52, where f64 stops being exact.
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let scaled = |side: u32| -> u32 {
        // In range: `scale` < 1, so the result is at most `side`.
        let value = (f64::from(side) * scale).floor() as u32;
        value.max(1)
    };
    let (mut w, mut h) = (scaled(width), scaled(height));
    // Rounding can leave the product a pixel row over; trim the longer side until it fits.
    while u64::from(w) * u64::from(h) > max_pixels && (w > 1 || h > 1) {
        if w >= h { w -= 1 } else { h -= 1 }
    }
    Some((w, h))
}

/// Scales down to exactly `width`×`height` with `fast_image_resize`'s tent (bilinear) filter,
/// which widens with the reduction so every source pixel contributes and large reductions do
/// not alias. It handles every pixel type the decoders produce (8- and 16-bit grey and colour,
/// with or without alpha, and 32-bit float), keeps the type, and filters colour premultiplied
/// by alpha so transparent pixels do not bleed into their neighbours. A type it does not know
/// (`DynamicImage` may grow) gets `image`'s triangle filter, the same tent but several times
/// slower.
pub(crate) fn downscale(image: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    let (width, height) = (width.max(1), height.max(1));
    let mut out = DynamicImage::new(width, height, image.color());
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(fir::FilterType::Bilinear));
    match Resizer::new().resize(image, &mut out, &options) {
        Ok(()) => out,
        Err(_) => image.resize_exact(width, height, FilterType::Triangle),
    }
}

/// The blurhash clients show while the preview loads: 4×4 components from a tiny copy.
fn blurhash(image: &DynamicImage) -> Result<String, MediaError> {
    let tiny = if image.width() > BLURHASH_SIDE || image.height() > BLURHASH_SIDE {
        image.thumbnail(BLURHASH_SIDE, BLURHASH_SIDE)
    } else {
        image.clone()
    };
    let rgba = tiny.to_rgba8();
    blurhash::encode(
        BLURHASH_COMPONENTS,
        BLURHASH_COMPONENTS,
        rgba.width(),
        rgba.height(),
        rgba.as_raw(),
    )
    .map_err(|e| MediaError::Corrupt(format!("Could not compute the image's blurhash: {e}")))
}

/// Encodes a variant. JPEG is always written from 8-bit RGB; PNG keeps the source's channels.
fn encode(image: &DynamicImage, output: Output, icc: Option<&[u8]>) -> Result<Variant, MediaError> {
    let (width, height) = (image.width(), image.height());
    // A compressed photo is rarely above a byte per pixel; reserving that avoids regrowing.
    let mut out =
        Vec::with_capacity(usize::try_from(u64::from(width) * u64::from(height) / 2).unwrap_or(0));
    match output {
        Output::Jpeg => {
            let mut encoder = JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
            with_icc(&mut encoder, icc, false);
            match image {
                DynamicImage::ImageRgb8(rgb) => encoder.encode_image(rgb),
                other => encoder.encode_image(&other.to_rgb8()),
            }
        }
        Output::Png => {
            let mut encoder = PngEncoder::new(&mut out);
            let grey = !matches!(image.color().channel_count(), 3 | 4);
            with_icc(&mut encoder, icc, grey);
            image.write_with_encoder(encoder)
        }
    }
    .map_err(encode_error)?;
    Ok(Variant {
        bytes: Bytes::from(out),
        mime: output.mime(),
        extension: output.extension(),
        width: Some(width),
        height: Some(height),
    })
}

/// Embeds the source's ICC profile when it describes the pixels being written: the profile
/// header's colour space (bytes 16..20) must be RGB for colour output and GRAY for grey, so the
/// CMYK profile of a print JPEG (decoded to RGB) or a grey profile on a JPEG written as RGB is
/// left out rather than misapplied.
fn with_icc(encoder: &mut impl ImageEncoder, icc: Option<&[u8]>, grey: bool) {
    let wanted: &[u8] = if grey { b"GRAY" } else { b"RGB " };
    if let Some(profile) = icc.filter(|p| p.get(16..20) == Some(wanted)) {
        // Both encoders used here accept profiles; a refusal would only lose colour accuracy.
        let _ = encoder.set_icc_profile(profile.to_vec());
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG image",
        ImageFormat::Png => "PNG image",
        ImageFormat::Gif => "GIF image",
        ImageFormat::WebP => "WebP image",
        _ => "image",
    }
}

/// Maps a decoder's error to what the uploader is told.
fn decode_error(error: ImageError, what: &str) -> MediaError {
    match error {
        ImageError::Limits(_) => MediaError::TooLarge(format!(
            "The {what} needs more memory to decode than this server allows"
        )),
        ImageError::Unsupported(e) => MediaError::Unsupported(format!(
            "The {what} uses a feature that is not supported: {e}"
        )),
        other => MediaError::Corrupt(format!(
            "The {what} could not be decoded; it may be truncated or damaged ({other})"
        )),
    }
}

/// Encoding our own decoded pixels fails only on a bug or a pathological size; say so plainly.
fn encode_error(error: ImageError) -> MediaError {
    MediaError::Corrupt(format!("The image could not be re-encoded: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    #[test]
    fn a_flat_image_stays_flat() {
        // The weights of every output pixel sum to one, at the reductions `process` makes too.
        for ((sw, sh), (dw, dh)) in [
            ((301, 157), (97, 40)),
            ((4000, 30), (3325, 25)),
            ((3325, 20), (554, 3)),
            ((7, 5), (1, 1)),
            ((5, 3), (3, 2)),
        ] {
            let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(sw, sh, Rgb([10, 128, 250])));
            let out = downscale(&flat, dw, dh).to_rgb8();
            assert_eq!(out.dimensions(), (dw, dh));
            assert!(
                out.pixels().all(|p| *p == Rgb([10, 128, 250])),
                "{sw}x{sh} -> {dw}x{dh}"
            );
        }
    }

    #[test]
    fn halving_averages_neighbours() {
        // Alternating black and white columns become mid grey.
        let stripes = GrayImage::from_fn(200, 10, |x, _| Luma([if x % 2 == 0 { 0 } else { 255 }]));
        let out = downscale(&DynamicImage::ImageLuma8(stripes), 100, 10).to_luma8();
        assert!(
            out.pixels()
                .skip(1)
                .take(98)
                .all(|p| (120..=135).contains(&p.0[0])),
            "{:?}",
            &out.as_raw()[..10]
        );
    }

    #[test]
    fn matches_image_crates_triangle_filter() {
        let photo = DynamicImage::ImageRgb8(crate::tests::fixtures::photo(400, 300));
        let (w, h) = fit_dimensions(400, 300, 230_400 / 4).expect("smaller");
        let ours = downscale(&photo, w, h).to_rgb8();
        let theirs = photo.resize_exact(w, h, FilterType::Triangle).to_rgb8();
        assert_eq!(ours.dimensions(), theirs.dimensions());
        let diffs = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| a.abs_diff(*b));
        let (total, worst) = diffs.fold((0u64, 0u8), |(t, m), d| (t + u64::from(d), m.max(d)));
        let mean = total as f64 / ours.as_raw().len() as f64;
        assert!(mean < 0.5 && worst <= 2, "mean {mean}, worst {worst}");
    }

    #[test]
    fn sixteen_bit_images_keep_their_depth() {
        let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(300, 200, |x, _| {
            Rgb([if x % 2 == 0 { 0 } else { 65535 }, 1000, 65535])
        });
        let out = downscale(&DynamicImage::ImageRgb16(deep), 150, 100);
        assert_eq!((out.width(), out.height()), (150, 100));
        let DynamicImage::ImageRgb16(out) = out else {
            panic!("expected 16-bit RGB, got {:?}", out.color());
        };
        let Rgb([r, g, b]) = *out.get_pixel(75, 50);
        assert!(
            (32000..=33500).contains(&r) && g == 1000 && b == 65535,
            "{r} {g} {b}"
        );
    }

    #[test]
    fn transparent_pixels_do_not_tint_their_neighbours() {
        // Invisible red beside opaque blue: filtering premultiplied keeps the edge blue.
        let image = RgbaImage::from_fn(40, 4, |x, _| {
            if x < 20 {
                Rgba([255, 0, 0, 0])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let out = downscale(&DynamicImage::ImageRgba8(image), 10, 1).to_rgba8();
        assert!(
            out.pixels().any(|p| (1..255).contains(&p.0[3])),
            "the edge is partly transparent: {out:?}"
        );
        for p in out.pixels().filter(|p| p.0[3] > 0) {
            assert!(p.0[0] < 8 && p.0[2] > 247, "{p:?}");
        }
    }
}
