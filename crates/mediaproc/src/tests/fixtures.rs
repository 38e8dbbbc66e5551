//! Inputs made in code: photos, crafted headers, animations, and clips made by ffmpeg.

use std::io::Cursor;
use std::process::Command;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{Delay, Frame, ImageFormat, RgbImage, Rgba, RgbaImage};

/// A deterministic photo-like image: smooth gradients with noise, so encoders and resizers do
/// real work, and a pure red block in the top-left corner to tell orientations apart.
pub fn photo(width: u32, height: u32) -> RgbImage {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 24) as u8
    };
    RgbImage::from_fn(width, height, |x, y| {
        if x < width / 8 && y < height / 8 {
            return image::Rgb([255, 0, 0]);
        }
        let gx = (x * 200 / width) as u8;
        let gy = (y * 200 / height) as u8;
        image::Rgb([gx + noise(), gy + noise(), 100 + noise()])
    })
}

pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(image)
        .expect("encode JPEG");
    out
}

pub fn png(image: &RgbaImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// An RGBA image whose left half is transparent.
pub fn translucent(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, _| {
        Rgba([0, 128, 255, if x < width / 2 { 0 } else { 255 }])
    })
}

/// `jpeg` with an EXIF APP1 segment right after SOI holding one IFD entry: Orientation = `value`.
/// The segment also carries a camera-make entry, to show that tags do not survive.
pub fn with_exif_orientation(jpeg: &[u8], value: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&2u16.to_le_bytes()); // two entries
    // Orientation (0x0112), SHORT (3), count 1, value padded to four bytes.
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&value.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    // Make (0x010F), ASCII (2), count 4, "Cam\0" inline.
    tiff.extend_from_slice(&0x010Fu16.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&4u32.to_le_bytes());
    tiff.extend_from_slice(b"Cam\0");
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let length = u16::try_from(payload.len() + 2).expect("a short segment");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header claims `width`×`height` RGB pixels, with a token IDAT: a decompression
/// bomb's shape, without the bomb.
pub fn claimed_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(
        &u32::try_from(data.len())
            .expect("a small chunk")
            .to_be_bytes(),
    );
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (IEEE), bit by bit: enough for a few chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A GIF with `frames` frames of 32×24 in different colours.
pub fn gif(frames: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        let frames = (0..frames).map(|i| {
            let image = RgbaImage::from_pixel(32, 24, Rgba([i.wrapping_mul(90), 60, 200, 255]));
            Frame::from_parts(image, 0, 0, Delay::from_numer_denom_ms(100, 1))
        });
        encoder.encode_frames(frames).expect("encode GIF");
    }
    out
}

/// Fails the test with the reason when ffmpeg is not installed: the project's test script
/// installs it, so a missing ffmpeg is a broken environment, not a reason to skip.
pub fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let ran = Command::new(tool).arg("-version").output();
        assert!(
            ran.is_ok_and(|o| o.status.success()),
            "{tool} is needed by this test and was not found on PATH: install it (apt-get install ffmpeg)"
        );
    }
}

/// A clip made by ffmpeg from `args` (its inputs and options), written as `extension`.
pub fn ffmpeg_clip(args: &[&str], extension: &str) -> Vec<u8> {
    require_ffmpeg();
    let path = std::env::temp_dir().join(format!(
        "mediaproc-fixture-{}.{extension}",
        uuid::Uuid::new_v4()
    ));
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    let bytes = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    bytes.expect("ffmpeg's output")
}

/// One second of a 320×240 test pattern at 10 fps with a sine tone.
pub fn video_clip(extension: &str) -> Vec<u8> {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=1:size=320x240:rate=10",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-metadata",
        "title=Secret title",
    ];
    if extension == "webm" {
        args.extend(["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"]);
    } else {
        args.extend([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ]);
    }
    ffmpeg_clip(&args, extension)
}

/// One second of a sine tone as WAV.
pub fn wav_clip() -> Vec<u8> {
    ffmpeg_clip(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-metadata",
            "artist=Someone",
        ],
        "wav",
    )
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
