//! Times `process` beside `raw_reference` on a generated 12-megapixel photo-like JPEG.
//!
//! `cargo run --release -p stampede-mediaproc --example bench_jpeg [runs]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use stampede_mediaproc::{Limits, process, raw_reference};

/// A 4000×3000 image with gradients, soft shapes and sensor-like noise, so the encoder and
/// resizer see something like a photo rather than flat colour.
fn photo() -> RgbImage {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        i32::try_from(state % 17).expect("small") - 8
    };
    RgbImage::from_fn(4000, 3000, |x, y| {
        let (fx, fy) = (f64::from(x) / 4000.0, f64::from(y) / 3000.0);
        let wave = ((fx * 18.0).sin() * (fy * 11.0).cos() * 40.0) as i32;
        let sky = (fy * 120.0) as i32;
        let mut channel =
            |base: i32| u8::try_from((base + noise()).clamp(0, 255)).expect("clamped");
        Rgb([
            channel(90 + wave + sky),
            channel(120 - wave / 2 + sky / 2),
            channel(160 + wave / 3 - sky / 3),
        ])
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(f());
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&photo())
        .expect("encode the input");
    let jpeg = Bytes::from(jpeg);
    println!(
        "input: 4000x3000 JPEG, {} KiB; median of {runs} runs",
        jpeg.len() / 1024
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let limits = Limits::default();
    let processed = runtime
        .block_on(process(jpeg.clone(), &limits))
        .expect("process");
    let small = processed.small.as_ref().expect("a preview");
    println!(
        "process: original {}x{} ({} KiB), small {}x{} ({} KiB)",
        processed.original.width.unwrap_or(0),
        processed.original.height.unwrap_or(0),
        processed.original.bytes.len() / 1024,
        small.width.unwrap_or(0),
        small.height.unwrap_or(0),
        small.bytes.len() / 1024,
    );

    let process_time = time(runs, || {
        runtime
            .block_on(process(jpeg.clone(), &limits))
            .expect("process")
    });
    let raw_time = time(runs, || {
        raw_reference(&jpeg, limits.small_pixels).expect("raw_reference")
    });
    let rotated = Bytes::from(with_orientation_6(&jpeg));
    let rotated_time = time(runs, || {
        runtime
            .block_on(process(rotated.clone(), &limits))
            .expect("process")
    });
    println!("process:                 {process_time:?}");
    println!("process, EXIF rotated:   {rotated_time:?}");
    println!("raw_reference:           {raw_time:?}");
    println!(
        "ratio:                   {:.2}",
        process_time.as_secs_f64() / raw_time.as_secs_f64()
    );
}

/// The JPEG with an EXIF segment saying "rotate a quarter turn clockwise to display", as
/// phones write portrait photos.
fn with_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let mut segment = vec![0xFF, 0xE1, 0x00, 0x22];
    segment.extend_from_slice(
        b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0",
    );
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}
