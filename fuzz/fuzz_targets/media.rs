//! An upload's bytes: sniffed, and a still image decoded and resized under the server's limits
//! (video and animated GIFs go to ffmpeg, which is not fuzzed here).
#![no_main]

use std::sync::LazyLock;

use stampede_mediaproc::{Limits, MediaKind, process, sniff};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if sniff(data).is_ok_and(|s| s.kind == MediaKind::Image) {
        let limits = Limits::default();
        let _ = RUNTIME.block_on(process(bytes::Bytes::copy_from_slice(data), &limits));
    }
});
