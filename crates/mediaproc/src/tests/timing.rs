//! How long a 12-megapixel photo takes: the two resizes `process` makes and the whole of it.
//! Ignored; run with
//! `cargo test -p stampede-mediaproc --release -- --ignored --nocapture timing`. The numbers
//! before and after `fast_image_resize` are in docs/decisions/0020-media.md.

use std::time::Instant;

use bytes::Bytes;

use super::fixtures::{jpeg, photo};
use crate::Limits;

/// Runs `work` nine times and gives the median, fastest and slowest in milliseconds.
fn median_ms(mut work: impl FnMut()) -> (f64, f64, f64) {
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[4], times[0], times[8])
}

#[test]
#[ignore = "timing, for release builds"]
fn timing_of_a_12_megapixel_photo() {
    let upload = jpeg(&photo(4000, 3000));
    let image = image::load_from_memory(&upload).expect("decodable");
    let limits = Limits::default();
    for pixels in [limits.original_pixels, limits.small_pixels] {
        let (w, h) = crate::still::fit_dimensions(4000, 3000, pixels).expect("smaller");
        let (median, min, max) = median_ms(|| {
            std::hint::black_box(crate::still::downscale(&image, w, h));
        });
        println!("downscale to {w}x{h}: {median:.1} ms ({min:.1}-{max:.1})");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (median, min, max) = median_ms(|| {
        let processed = runtime
            .block_on(crate::process(Bytes::from(upload.clone()), &limits))
            .expect("processed");
        std::hint::black_box(processed);
    });
    println!("process(): {median:.1} ms ({min:.1}-{max:.1})");
}
