//! A local user's status text: mentions, tags, length, HTML and its first link.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    stampede_social::fuzzing::status_text(text);
});
