//! OAuth scopes as Mastodon defines them.
//!
//! A token holds a set of scopes; an endpoint accepts any of a few (`read` or `read:accounts`).
//! A top-level scope grants every granular scope below it (`read` grants `read:statuses`,
//! `admin:read` grants `admin:read:accounts`), and the deprecated `follow` grants reading and
//! writing blocks, follows and mutes.

use std::collections::BTreeSet;
use std::fmt;

/// Every scope a client may request.
pub const KNOWN_SCOPES: &[&str] = &[
    "read",
    "write",
    "follow",
    "push",
    "profile",
    "admin:read",
    "admin:write",
    "read:accounts",
    "read:blocks",
    "read:bookmarks",
    "read:favourites",
    "read:filters",
    "read:follows",
    "read:lists",
    "read:mutes",
    "read:notifications",
    "read:search",
    "read:statuses",
    "write:accounts",
    "write:blocks",
    "write:bookmarks",
    "write:conversations",
    "write:favourites",
    "write:filters",
    "write:follows",
    "write:lists",
    "write:media",
    "write:mutes",
    "write:notifications",
    "write:reports",
    "write:statuses",
    "admin:read:accounts",
    "admin:read:reports",
    "admin:read:domain_allows",
    "admin:read:domain_blocks",
    "admin:read:ip_blocks",
    "admin:read:email_domain_blocks",
    "admin:read:canonical_email_blocks",
    "admin:write:accounts",
    "admin:write:reports",
    "admin:write:domain_allows",
    "admin:write:domain_blocks",
    "admin:write:ip_blocks",
    "admin:write:email_domain_blocks",
    "admin:write:canonical_email_blocks",
];

/// A set of scopes, as a token or application holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

/// A requested scope that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope(pub String);

impl fmt::Display for UnknownScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scope {:?}", self.0)
    }
}

impl std::error::Error for UnknownScope {}

impl Scopes {
    /// Parses a space-separated list (Mastodon also accepts `+` and commas from some clients);
    /// an empty list means `read`, Mastodon's default.
    pub fn parse(list: &str) -> Result<Self, UnknownScope> {
        let mut set = BTreeSet::new();
        for scope in list
            .split(|c: char| c.is_whitespace() || c == '+' || c == ',')
            .filter(|s| !s.is_empty())
        {
            if !KNOWN_SCOPES.contains(&scope) {
                return Err(UnknownScope(scope.to_string()));
            }
            set.insert(scope.to_string());
        }
        if set.is_empty() {
            set.insert("read".to_string());
        }
        Ok(Scopes(set))
    }

    /// Whether this set grants `scope`.
    pub fn grants(&self, scope: &str) -> bool {
        if self.0.contains(scope) {
            return true;
        }
        // A parent grants its children: read → read:x, admin:read → admin:read:x.
        if let Some((parent, _)) = scope.rsplit_once(':')
            && parent != "admin"
            && self.0.contains(parent)
        {
            return true;
        }
        self.0.contains("follow")
            && matches!(
                scope,
                "read:blocks"
                    | "read:follows"
                    | "read:mutes"
                    | "write:blocks"
                    | "write:follows"
                    | "write:mutes"
            )
    }

    /// Whether this set grants any of `scopes` (what an endpoint accepts).
    pub fn grants_any(&self, scopes: &[&str]) -> bool {
        scopes.iter().any(|s| self.grants(s))
    }

    /// Whether every scope of `other` is granted by this set (a token may not exceed its app).
    pub fn covers(&self, other: &Scopes) -> bool {
        other.0.iter().all(|s| self.grants(s))
    }

    /// The scopes, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<&str> = self.iter().collect();
        f.write_str(&list.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_grant_children() {
        let s = Scopes::parse("read write:statuses admin:read").unwrap();
        assert!(s.grants("read:accounts"));
        assert!(s.grants("write:statuses"));
        assert!(!s.grants("write:accounts"));
        assert!(!s.grants("write"));
        assert!(s.grants("admin:read:accounts"));
        assert!(!s.grants("admin:write:accounts"));
        assert!(s.grants_any(&["write", "read:search"]));
    }

    #[test]
    fn follow_and_defaults() {
        let s = Scopes::parse("follow").unwrap();
        assert!(s.grants("write:follows") && s.grants("read:blocks"));
        assert!(!s.grants("read:statuses"));
        assert_eq!(Scopes::parse("").unwrap().to_string(), "read");
        assert_eq!(
            Scopes::parse("read+write").unwrap().to_string(),
            "read write"
        );
        assert!(Scopes::parse("read bogus").is_err());
        let app = Scopes::parse("read write").unwrap();
        assert!(app.covers(&Scopes::parse("read:accounts write").unwrap()));
        assert!(!app.covers(&Scopes::parse("follow").unwrap()));
    }
}
