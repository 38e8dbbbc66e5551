//! The headers of a signed request to the inbox: `name: value` lines, then a blank line and
//! the body. Both signature schemes are read and checked against the body, as the inbox does
//! before it fetches any key.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    use stampede_activitypub::{rfc9421, signature};
    if let Ok(sig) = signature::Signature::from_headers(&headers) {
        let _ = sig.check_strength(&Method::POST);
    }
    if let Ok(value) = std::str::from_utf8(head) {
        let _ = signature::Signature::parse(value);
    }
    let _ = signature::check_digest(&headers, body);
    let _ = rfc9421::MessageSignature::from_headers(&headers);
    let _ = rfc9421::check_content_digest(&headers, body);
});
