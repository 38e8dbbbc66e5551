//! Strict readers for environment variables; each error names its variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use url::Url;

/// A variable is missing or malformed. Displayed as `NAME: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: String,
    /// What is wrong with it, and what would be right.
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            var: var.to_string(),
            problem: problem.into(),
        }
    }
}

/// A snapshot of the variables to read. An empty value counts as unset, as in Mastodon.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment. Variables that are not valid UTF-8 are kept out, and reading
    /// one of them reports it.
    pub fn process() -> Self {
        Self::from_pairs(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.into_string()
                    .unwrap_or_else(|_| "\u{fffd}not-utf-8".to_string()),
            )
        }))
    }

    /// Variables given as pairs; for tests.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Env {
            vars: pairs.into_iter().collect(),
        }
    }

    /// The value, or `None` when unset or empty.
    pub fn string(&self, var: &str) -> Result<Option<String>, ConfigError> {
        match self.vars.get(var).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.starts_with('\u{fffd}') => {
                Err(ConfigError::new(var, "is not valid UTF-8"))
            }
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    /// The value, or an error saying it is required.
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.string(var)?
            .ok_or_else(|| ConfigError::new(var, "is required"))
    }

    /// A value parsed with `FromStr`.
    pub fn parse<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.string(var)?
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ConfigError::new(var, format!("{v:?} is not valid: {e}")))
            })
            .transpose()
    }

    /// A whole number within `range`.
    pub fn parse_in<T>(&self, var: &str, range: RangeInclusive<T>) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.string(var)? else {
            return Ok(None);
        };
        match raw.parse::<T>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(ConfigError::new(
                var,
                format!(
                    "must be a whole number from {} to {}, not {raw:?}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn boolean(&self, var: &str) -> Result<Option<bool>, ConfigError> {
        match self.string(var)?.map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(other) => Err(ConfigError::new(
                var,
                format!("must be true or false, not {other:?}"),
            )),
        }
    }

    /// A URL whose scheme is one of `schemes`.
    pub fn url(&self, var: &str, schemes: &[&str]) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = self.string(var)? else {
            return Ok(None);
        };
        parse_url(var, &raw, schemes).map(Some)
    }

    /// One URL or several separated by commas (the nodes of a cluster), each with one of
    /// `schemes` and all with the same one; the first is returned for scheme checks.
    pub fn urls(&self, var: &str, schemes: &[&str]) -> Result<Option<Vec<Url>>, ConfigError> {
        let Some(raw) = self.string(var)? else {
            return Ok(None);
        };
        let mut urls = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let url = parse_url(var, part, schemes)?;
            if let Some(first) = urls.first()
                && Url::scheme(first) != url.scheme()
            {
                return Err(ConfigError::new(
                    var,
                    "lists URLs of different schemes; use one (all TLS or none)",
                ));
            }
            urls.push(url);
        }
        if urls.is_empty() {
            return Err(ConfigError::new(var, "names no URL"));
        }
        Ok(Some(urls))
    }

    /// The PEM certificates in the file the variable names (a CA bundle), read now so that a
    /// wrong path stops the process at start rather than at its first connection.
    pub fn pem_file(&self, var: &str) -> Result<Option<String>, ConfigError> {
        let Some(path) = self.string(var)? else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(var, format!("cannot read {path:?}: {e}")))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::new(
                var,
                format!("{path:?} holds no PEM certificate"),
            ));
        }
        Ok(Some(pem))
    }

    /// A CA bundle for the TLS connection `url_var` names: only meaningful when that URL's
    /// scheme is `tls_scheme`, so setting it for a plain URL is reported rather than ignored.
    pub fn tls_ca(
        &self,
        var: &str,
        url_var: &str,
        url: Option<&Url>,
        tls_scheme: &str,
    ) -> Result<Option<String>, ConfigError> {
        let pem = self.pem_file(var)?;
        if pem.is_some()
            && let Some(url) = url
            && url.scheme() != tls_scheme
        {
            return Err(ConfigError::new(
                var,
                format!(
                    "is set, but {url_var} is {}://…, not {tls_scheme}://…",
                    url.scheme()
                ),
            ));
        }
        Ok(pem)
    }

    /// A name made of letters, digits, `-`, `_` and `.` (queue prefixes and the like).
    pub fn name(&self, var: &str) -> Result<Option<String>, ConfigError> {
        let value = self.string(var)?;
        if let Some(v) = &value
            && !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::new(
                var,
                format!("may hold only letters, digits, '-', '_' and '.', not {v:?}"),
            ));
        }
        Ok(value)
    }
}

/// `raw` as a URL whose scheme is one of `schemes`; errors name `var`.
fn parse_url(var: &str, raw: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw).map_err(|e| ConfigError::new(var, format!("is not a valid URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(
            var,
            format!(
                "must be a {} URL, not {}://…",
                schemes.join(" or "),
                url.scheme()
            ),
        ));
    }
    Ok(url)
}
