//! A page fetched for a link preview.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    stampede_social::fuzzing::link_preview(body);
});
