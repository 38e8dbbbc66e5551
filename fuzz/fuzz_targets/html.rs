//! Remote HTML (a note's content, an actor's summary) through the sanitizer.
#![no_main]

libfuzzer_sys::fuzz_target!(|html: &str| {
    stampede_social::fuzzing::html(html);
});
