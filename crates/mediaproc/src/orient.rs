//! EXIF orientation, applied to the pixels before re-encoding drops the tag.
//!
//! Phones store most portrait photos sideways with an EXIF orientation, so a quarter turn of an
//! 8-megapixel image is common work. `image` turns it pixel by pixel through its generic
//! accessors (about 0.1 s for 8 megapixels); copying in tiles that stay in cache is about three
//! times faster (see docs/decisions/0020-media.md). `fast_image_resize`, which does the resizing
//! (see `still`), has no rotation. Flips and half turns, and pixel types other than 8-bit, are
//! left to `image`, which does them in place.

use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, Pixel};

/// `image` with an EXIF orientation applied: quarter turns of 8-bit images by [`transposed`],
/// everything else by `image` (flips and half turns it does in place).
pub(crate) fn apply(image: DynamicImage, orientation: Orientation) -> DynamicImage {
    let turned = match &image {
        DynamicImage::ImageLuma8(b) => {
            transposed::<_, 1>(b, orientation).map(DynamicImage::ImageLuma8)
        }
        DynamicImage::ImageLumaA8(b) => {
            transposed::<_, 2>(b, orientation).map(DynamicImage::ImageLumaA8)
        }
        DynamicImage::ImageRgb8(b) => {
            transposed::<_, 3>(b, orientation).map(DynamicImage::ImageRgb8)
        }
        DynamicImage::ImageRgba8(b) => {
            transposed::<_, 4>(b, orientation).map(DynamicImage::ImageRgba8)
        }
        _ => None,
    };
    turned.unwrap_or_else(|| {
        let mut image = image;
        image.apply_orientation(orientation);
        image
    })
}

/// Side of the square tiles copied at a time: small enough that the source rows a tile reads
/// stay in cache while the tile's output rows are written.
const TILE: usize = 32;

/// The orientations that swap width and height, or `None` for the others. Output pixel
/// (x, y) comes from source column `y` (or `width - 1 - y` when `mirror_x`) and row `x` (or
/// `height - 1 - x` when `mirror_y`), matching `image`'s `apply_orientation`.
fn transposed<P, const CH: usize>(
    source: &ImageBuffer<P, Vec<u8>>,
    orientation: Orientation,
) -> Option<ImageBuffer<P, Vec<u8>>>
where
    P: Pixel<Subpixel = u8>,
{
    let (mirror_x, mirror_y) = match orientation {
        Orientation::Rotate90 => (false, true),
        Orientation::Rotate270 => (true, false),
        Orientation::Rotate90FlipH => (false, false),
        Orientation::Rotate270FlipH => (true, true),
        _ => return None,
    };
    let (width, height) = (source.width() as usize, source.height() as usize);
    let src = source.as_raw();
    let (out_width, out_height) = (height, width);
    let mut out = vec![0u8; src.len()];
    for tile_y in (0..out_height).step_by(TILE) {
        for tile_x in (0..out_width).step_by(TILE) {
            for y in tile_y..(tile_y + TILE).min(out_height) {
                let column = if mirror_x { width - 1 - y } else { y };
                let out_row = &mut out[y * out_width * CH..][..out_width * CH];
                for x in tile_x..(tile_x + TILE).min(out_width) {
                    let row = if mirror_y { height - 1 - x } else { x };
                    let from = (row * width + column) * CH;
                    out_row[x * CH..][..CH].copy_from_slice(&src[from..][..CH]);
                }
            }
        }
    }
    let (w, h) = (
        u32::try_from(out_width).ok()?,
        u32::try_from(out_height).ok()?,
    );
    Some(ImageBuffer::from_raw(w, h, out).expect("a transposed buffer has the source's length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn quarter_turns_match_image_crates() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(37, 70, |x, y| {
            Rgb([x as u8, y as u8, (x * y) as u8])
        }));
        for exif in 1..=8 {
            let orientation = Orientation::from_exif(exif).expect("a valid orientation");
            let mut expected = image.clone();
            expected.apply_orientation(orientation);
            assert_eq!(
                apply(image.clone(), orientation),
                expected,
                "EXIF orientation {exif}"
            );
        }
    }
}
