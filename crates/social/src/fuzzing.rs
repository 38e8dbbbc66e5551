//! Entry points for the fuzz targets in `fuzz/` (issue 22): each hands what another server or
//! a user controls to the code that reads it, the way the server does. They return nothing of
//! interest; a panic, a hang or an invariant broken is the finding.

use serde_json::Value;
use url::Url;

/// An ActivityPub document or WebFinger answer from another server: read as an actor, a note's
/// attachments, a poll, a WebFinger link and the loose shapes of ids and lists.
pub fn remote_document(bytes: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let fetched = Url::parse("https://remote.example/users/someone").expect("a URL");
    crate::remote::reads_as_actor(&fetched, &doc);
    crate::remote::webfinger_actor(&doc);
    crate::media::RemoteMedia::from_note(&doc);
    let _ = crate::inbox::poll_of(&doc).is_some();
    for key in [
        "object",
        "tag",
        "to",
        "cc",
        "url",
        "inReplyTo",
        "attributedTo",
    ] {
        crate::remote::first_id(&doc[key]);
        crate::remote::items(&doc[key]);
    }
    if let Some(content) = doc["content"].as_str() {
        html(content);
    }
}

/// HTML from another server (a note's content, an actor's summary), sanitized and checked with
/// [`assert_inert`].
pub fn html(input: &str) -> String {
    let clean = crate::text::sanitize(input);
    assert_inert(&clean);
    clean
}

/// Elements that run or load something, or change how the page around them is read.
const LIVE_ELEMENTS: &[&str] = &[
    "script", "iframe", "frame", "img", "svg", "style", "form", "input", "button", "object",
    "embed", "base", "math", "link", "meta", "video", "audio", "source", "template", "textarea",
];

/// Link schemes Mastodon lets through.
const SAFE_SCHEMES: &[&str] = &[
    "http:", "https:", "dat:", "dweb:", "ipfs:", "ipns:", "ssb:", "gopher:", "xmpp:", "magnet:",
    "gemini:", "mailto:",
];

/// The scheme a browser reads in an attribute value (with `:`), after decoding character
/// references and dropping what URL parsing ignores; `None` for a relative URL.
fn scheme_of(value: &str) -> Option<String> {
    let mut decoded = String::new();
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        decoded.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let code = if let Some(hex) = entity.strip_prefix("#x").or(entity.strip_prefix("#X")) {
            u32::from_str_radix(hex, 16).ok()
        } else if let Some(dec) = entity.strip_prefix('#') {
            dec.parse().ok()
        } else {
            match entity {
                "amp" => Some(u32::from('&')),
                "quot" => Some(u32::from('"')),
                "apos" => Some(u32::from('\'')),
                "lt" => Some(u32::from('<')),
                "gt" => Some(u32::from('>')),
                "colon" => Some(u32::from(':')),
                "tab" => Some(u32::from('\t')),
                "newline" => Some(u32::from('\n')),
                _ => None,
            }
        };
        match code.and_then(char::from_u32) {
            Some(c) => {
                decoded.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                decoded.push('&');
                rest = &rest[1..];
            }
        }
    }
    decoded.push_str(rest);
    let url: String = decoded
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| format!("{}:", scheme.to_ascii_lowercase()))
}

/// Panics unless `html`, which a client inserts as it is, is inert: no tag in it is one that
/// runs or loads anything, carries an event handler, a style or a source, or links outside the
/// safe schemes. Text may say anything (its `<` is escaped), so only tags are read, with their
/// attributes as an HTML tokenizer splits them (quoted values may hold spaces and `>`).
pub fn assert_inert(html: &str) {
    let bytes = html.as_bytes();
    let mut at = 0;
    while let Some(open) = html[at..].find('<').map(|o| at + o) {
        let mut i = open + 1;
        let closing = bytes.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        assert!(
            !LIVE_ELEMENTS.contains(&name.as_str()),
            "keeps <{}{name}>: {html:?}",
            if closing { "/" } else { "" }
        );
        // Attributes up to the tag's end.
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                break;
            }
            let key_start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && !matches!(bytes[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let key = html[key_start..i].to_ascii_lowercase();
            let mut value = "";
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                match bytes.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = html[i + 1..]
                            .find(quote as char)
                            .map_or(bytes.len(), |e| i + 1 + e);
                        value = &html[i + 1..end];
                        i = (end + 1).min(bytes.len());
                    }
                    _ => {
                        let start = i;
                        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>'
                        {
                            i += 1;
                        }
                        value = &html[start..i];
                    }
                }
            }
            assert!(
                !key.starts_with("on")
                    && !matches!(
                        key.as_str(),
                        "style" | "src" | "srcdoc" | "formaction" | "action"
                    ),
                "keeps {key}= in <{name}>: {html:?}"
            );
            if key == "href"
                && let Some(scheme) = scheme_of(value)
            {
                assert!(
                    SAFE_SCHEMES.contains(&scheme.as_str()),
                    "links to {value:?} in <{name}>: {html:?}"
                );
            }
        }
        at = (i + 1).min(bytes.len());
        if at >= bytes.len() {
            break;
        }
    }
}

/// A status as a local user writes it: its mentions and tags, its length, its HTML, its first
/// link (the card).
pub fn status_text(text: &str) {
    crate::text::parse(text);
    crate::text::length(text);
    let rendered = crate::text::render(text, &Default::default(), "https://stampede.example");
    html(&rendered);
    crate::cards::first_link(&rendered, "stampede.example");
}

/// A page fetched for a link preview.
pub fn link_preview(body: &[u8]) {
    let url = Url::parse("https://remote.example/page").expect("a URL");
    crate::cards::describe(&url, body);
}
