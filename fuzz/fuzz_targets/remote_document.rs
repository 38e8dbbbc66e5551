//! ActivityPub documents and WebFinger answers from another server.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stampede_social::fuzzing::remote_document(data);
});
