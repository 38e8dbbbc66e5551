//! Mastodon's rules for local usernames.

/// The longest local username Mastodon accepts.
pub const MAX_USERNAME_LEN: usize = 30;

/// Names nobody may register: they would impersonate the server or its staff. Mastodon reserves
/// the same by default; the rest are addresses mail systems treat specially.
pub const RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "administrator",
    "support",
    "help",
    "root",
    "webmaster",
    "mod",
    "moderator",
    "postmaster",
    "hostmaster",
    "abuse",
    "security",
    "noreply",
    "no-reply",
    "instance.actor",
    "stampede",
];

/// Why a username is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernameError {
    Blank,
    TooLong,
    /// Letters, digits and underscores, optionally joined by single dots or dashes.
    Invalid,
    Reserved,
}

impl UsernameError {
    /// Mastodon's error code for the `details` of a 422.
    pub fn code(self) -> &'static str {
        match self {
            UsernameError::Blank => "ERR_BLANK",
            UsernameError::TooLong => "ERR_TOO_LONG",
            UsernameError::Invalid => "ERR_INVALID",
            UsernameError::Reserved => "ERR_RESERVED",
        }
    }

    /// A sentence for people.
    pub fn description(self) -> &'static str {
        match self {
            UsernameError::Blank => "can't be blank",
            UsernameError::TooLong => "is too long (maximum is 30 characters)",
            UsernameError::Invalid => "must contain only letters, numbers and underscores",
            UsernameError::Reserved => "is reserved",
        }
    }
}

/// Checks a local username: `[a-z0-9_]+` segments joined by `.` or `-`, at most 30 characters,
/// not reserved (compared case-insensitively, as uniqueness is).
pub fn validate_username(username: &str) -> Result<(), UsernameError> {
    if username.is_empty() {
        return Err(UsernameError::Blank);
    }
    if username.chars().count() > MAX_USERNAME_LEN {
        return Err(UsernameError::TooLong);
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut previous_was_joiner = true; // a leading joiner is invalid
    for c in username.chars() {
        if word(c) {
            previous_was_joiner = false;
        } else if c == '.' || c == '-' {
            if previous_was_joiner {
                return Err(UsernameError::Invalid);
            }
            previous_was_joiner = true;
        } else {
            return Err(UsernameError::Invalid);
        }
    }
    if previous_was_joiner {
        return Err(UsernameError::Invalid);
    }
    let lower = username.to_ascii_lowercase();
    if RESERVED_USERNAMES.contains(&lower.as_str()) {
        return Err(UsernameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mastodon_username_rules() {
        for ok in ["alice", "Alice_99", "a.b", "a-b_c", "x", "_under"] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_username(""), Err(UsernameError::Blank));
        assert_eq!(
            validate_username(&"a".repeat(31)),
            Err(UsernameError::TooLong)
        );
        for bad in [".a", "a.", "a..b", "a b", "ä", "a@b", "-a", "a-"] {
            assert_eq!(validate_username(bad), Err(UsernameError::Invalid), "{bad}");
        }
        assert_eq!(validate_username("Admin"), Err(UsernameError::Reserved));
        assert_eq!(validate_username("ROOT"), Err(UsernameError::Reserved));
    }
}
