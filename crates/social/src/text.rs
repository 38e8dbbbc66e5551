//! Status text: what it mentions and tags, how long it counts, and the HTML it renders to.
//!
//! Text is plain: it is escaped, then links, `@mentions` and `#hashtags` become anchors shaped
//! like Mastodon's, paragraphs become `<p>` and line breaks `<br />`. The result is passed
//! through ammonia with Mastodon's allowed tags as a second line of defence.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

/// A URL counts as this many characters, whatever its length (Mastodon's rule).
pub const URL_LENGTH: usize = 23;

static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (?P<url>https?://[^\s<>\x22]+)
      | (?P<mention>@[A-Za-z0-9_]+(?:@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?(?::[0-9]{1,5})?)?)
      | (?P<tag>\#[\p{L}\p{N}_\p{M}]+)",
    )
    .expect("token pattern")
});

/// One piece of a status's text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    Url(&'a str),
    /// `user` or `user@domain`, without the `@`.
    Mention(&'a str),
    /// Without the `#`.
    Tag(&'a str),
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A URL does not end in sentence punctuation, nor in a closing bracket it did not open.
fn trim_url(url: &str) -> &str {
    let mut end = url.len();
    loop {
        let s = &url[..end];
        let Some(last) = s.chars().last() else { break };
        let strip = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' => true,
            ')' => s.matches('(').count() < s.matches(')').count(),
            ']' => s.matches('[').count() < s.matches(']').count(),
            _ => false,
        };
        if !strip {
            break;
        }
        end -= last.len_utf8();
    }
    &url[..end]
}

/// A hashtag needs at least one letter or underscore (`#1` is not a tag).
fn valid_tag(name: &str) -> bool {
    name.chars().any(|c| c.is_alphabetic() || c == '_') && name.chars().count() <= 100
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut plain_from = 0;
    for caps in TOKENS.captures_iter(text) {
        let whole = caps.get(0).expect("match");
        let before = text[..whole.start()].chars().last();
        let token = if let Some(m) = caps.name("url") {
            let url = trim_url(m.as_str());
            (url.len() > "https://".len())
                .then(|| (m.start(), m.start() + url.len(), Token::Url(url)))
        } else if let Some(m) = caps.name("mention") {
            // `a@b` is an e-mail address, `/@user` part of a URL.
            let ok = before.is_none_or(|c| !word_char(c) && c != '/' && c != '@');
            ok.then(|| (m.start(), m.end(), Token::Mention(&m.as_str()[1..])))
        } else if let Some(m) = caps.name("tag") {
            let name = &m.as_str()[1..];
            let ok = before.is_none_or(|c| !word_char(c) && c != '/' && c != '&' && c != '#')
                && valid_tag(name);
            ok.then(|| (m.start(), m.end(), Token::Tag(name)))
        } else {
            None
        };
        if let Some((start, end, token)) = token {
            if start > plain_from {
                tokens.push(Token::Text(&text[plain_from..start]));
            }
            tokens.push(token);
            plain_from = end;
        }
    }
    if plain_from < text.len() {
        tokens.push(Token::Text(&text[plain_from..]));
    }
    tokens
}

/// What a status's text refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `user` or `user@domain` as written, first occurrence of each (case-insensitively).
    pub mentions: Vec<String>,
    /// Hashtag names as first written, each once (case-insensitively).
    pub tags: Vec<String>,
}

/// The mentions and hashtags of `text`.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut seen_mentions = HashSet::new();
    let mut seen_tags = HashSet::new();
    for token in tokenize(text) {
        match token {
            Token::Mention(acct) if seen_mentions.insert(acct.to_lowercase()) => {
                parsed.mentions.push(acct.to_string());
            }
            Token::Tag(name) if seen_tags.insert(name.to_lowercase()) => {
                parsed.tags.push(name.to_string());
            }
            _ => {}
        }
    }
    parsed
}

/// The length a status counts as: characters, each URL as [`URL_LENGTH`], and a remote mention
/// only by its username part.
pub fn length(text: &str) -> usize {
    tokenize(text)
        .into_iter()
        .map(|token| match token {
            Token::Text(t) => t.chars().count(),
            Token::Url(_) => URL_LENGTH,
            Token::Mention(acct) => 1 + acct.split('@').next().unwrap_or(acct).chars().count(),
            Token::Tag(name) => 1 + name.chars().count(),
        })
        .sum()
}

/// Where a mention links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentionLink {
    pub username: String,
    pub url: String,
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn render_url(out: &mut String, url: &str) {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let (shown, hidden) = if rest.chars().count() > 30 {
        let cut = rest.char_indices().nth(30).map_or(rest.len(), |(i, _)| i);
        (&rest[..cut], &rest[cut..])
    } else {
        (rest, "")
    };
    let ellipsis = if hidden.is_empty() { "" } else { "ellipsis" };
    out.push_str(&format!(
        "<a href=\"{href}\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\">\
         <span class=\"invisible\">{scheme}://</span><span class=\"{ellipsis}\">{shown}</span>\
         <span class=\"invisible\">{hidden}</span></a>",
        href = escape(url),
        shown = escape(shown),
        hidden = escape(hidden),
    ));
}

/// The HTML of a status. `mentions` maps lower-cased `user` / `user@domain` to the accounts that
/// exist; other mentions stay text. `base_url` is this server's (`https://example.com`).
pub fn render(text: &str, mentions: &HashMap<String, MentionLink>, base_url: &str) -> String {
    let mut inline = String::with_capacity(text.len() * 2);
    for token in tokenize(&text.replace("\r\n", "\n")) {
        match token {
            Token::Text(t) => inline.push_str(&escape(t)),
            Token::Url(url) => render_url(&mut inline, url),
            Token::Mention(acct) => match mentions.get(&acct.to_lowercase()) {
                Some(link) => inline.push_str(&format!(
                    "<span class=\"h-card\" translate=\"no\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>",
                    escape(&link.url),
                    escape(&link.username)
                )),
                None => inline.push_str(&escape(&format!("@{acct}"))),
            },
            Token::Tag(name) => inline.push_str(&format!(
                "<a href=\"{base_url}/tags/{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{}</span></a>",
                escape(&name.to_lowercase()),
                escape(name)
            )),
        }
    }
    let html: String = inline
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim_matches('\n').replace('\n', "<br />")))
        .collect();
    sanitize(&html)
}

/// Mastodon's allowed HTML: paragraphs, breaks, links, spans with its classes and a few inline
/// and block elements. Everything else — scripts, styles, event handlers — is removed.
pub fn sanitize(html: &str) -> String {
    static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
        let mut b = ammonia::Builder::empty();
        b.add_tags([
            "p",
            "br",
            "span",
            "a",
            "del",
            "s",
            "pre",
            "blockquote",
            "code",
            "b",
            "strong",
            "u",
            "i",
            "em",
            "ul",
            "ol",
            "li",
        ])
        .add_tag_attributes("a", ["href", "class", "target", "translate"])
        .add_tag_attributes("span", ["class", "translate"])
        .add_tag_attributes("ol", ["start", "reversed"])
        .add_tag_attributes("li", ["value"])
        .url_schemes(["http", "https"].into_iter().collect())
        .link_rel(Some("nofollow noopener"));
        b
    });
    // html5ever writes void elements HTML-style; Mastodon's clients expect `<br />`.
    CLEANER.clean(html).to_string().replace("<br>", "<br />")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mentions_tags_and_urls() {
        let p =
            parse("hi @alice and @Bob@example.org #Rust #rust #1 mail a@b.c https://x.org/@carol");
        assert_eq!(p.mentions, vec!["alice", "Bob@example.org"]);
        assert_eq!(p.tags, vec!["Rust"]);
        // A domain may carry a port, as instances federating on one machine do.
        let p = parse("hi @zed@127.0.0.2:8090, bye");
        assert_eq!(p.mentions, vec!["zed@127.0.0.2:8090"]);
    }

    #[test]
    fn counts_urls_as_23() {
        let url = format!("https://example.com/{}", "a".repeat(200));
        assert_eq!(length(&format!("see {url}")), 4 + URL_LENGTH);
        assert_eq!(length("@bob@very.long.domain.example hi"), 4 + 3);
        assert_eq!(length("héllo"), 5);
    }

    #[test]
    fn renders_links_mentions_and_paragraphs() {
        let mut m = HashMap::new();
        m.insert(
            "alice".to_string(),
            MentionLink {
                username: "alice".into(),
                url: "https://s.test/@alice".into(),
            },
        );
        let html = render(
            "Hi @alice, see https://example.com/x.\n\n<b>bold</b> #Tag\nline @nobody",
            &m,
            "https://s.test",
        );
        assert!(html.starts_with("<p>Hi <span class=\"h-card\""), "{html}");
        assert!(html.contains("href=\"https://s.test/@alice\""), "{html}");
        assert!(html.contains("href=\"https://example.com/x\""), "{html}");
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");
        assert!(html.contains("href=\"https://s.test/tags/tag\""), "{html}");
        assert!(html.contains("<br />line @nobody</p>"), "{html}");
        assert_eq!(html.matches("<p>").count(), 2);
    }

    #[test]
    fn sanitizer_strips_scripts_and_handlers() {
        let dirty = "<p onclick=\"x()\">a<script>alert(1)</script><a href=\"javascript:x\">b</a><img src=x></p>";
        let clean = sanitize(dirty);
        assert!(!clean.contains("script"), "{clean}");
        assert!(!clean.contains("onclick"), "{clean}");
        assert!(!clean.contains("javascript"), "{clean}");
        assert!(!clean.contains("<img"), "{clean}");
    }
}
