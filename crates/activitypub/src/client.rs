//! The one HTTP client for everything that leaves the server (actors, keys, objects, deliveries):
//! connect within 5 s, finish within 10 s, at most 3 redirects, bodies capped, and every address
//! — resolved or literal, first hop or redirect — checked by the [`Guard`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, Url, redirect};

use crate::guard::Guard;

/// Connection set-up bound.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request bound.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 3;
/// The largest document body read (an actor, a note, a collection page).
pub const MAX_BODY: usize = 1 << 20;

/// Why an outbound request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is refused by the outbound guard")]
    Refused(String),
    #[error("not an http(s) URL: {0}")]
    Scheme(String),
    #[error("the response body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("{0} answered {1}")]
    Status(String, reqwest::StatusCode),
    /// 429, with the wait the peer asked for in `Retry-After` (when it named one).
    #[error("{0} answered 429 Too Many Requests")]
    TooMany(String, Option<Duration>),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
}

impl FetchError {
    /// Whether another attempt later may succeed (the peer is down or busy, not refusing).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(_, status) => {
                status.is_server_error() || matches!(status.as_u16(), 401 | 408 | 429)
            }
            FetchError::Http(_) | FetchError::TooMany(..) => true,
            _ => false,
        }
    }

    /// Whether the peer failed to answer as a live server does (no connection, a timeout, a
    /// 5xx): what counts against its domain's health. A refusal (4xx) or a 429 is an answer.
    pub fn is_outage(&self) -> bool {
        match self {
            FetchError::Status(_, status) => status.is_server_error(),
            FetchError::Http(_) => true,
            _ => false,
        }
    }

    /// The wait a 429 asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::TooMany(_, after) => *after,
            _ => None,
        }
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110 §10.2.3); `None` if unreadable or
/// past.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

/// Resolves names, then drops every address the guard refuses; a name left with none fails.
struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| guard.permits(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    Box::new(FetchError::Refused(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// The guarded client; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    guard: Arc<Guard>,
}

impl Client {
    /// A client that lets through only what `guard` permits, introducing itself as `user_agent`.
    pub fn new(guard: Guard, user_agent: &str) -> Result<Client, FetchError> {
        let for_redirects = guard.clone();
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .no_proxy()
            .dns_resolver(GuardedResolver {
                guard: guard.clone(),
            })
            .redirect(redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match literal_refused(&for_redirects, attempt.url()) {
                    Some(error) => attempt.error(error),
                    None => attempt.follow(),
                }
            }))
            .build()?;
        Ok(Client {
            http,
            guard: Arc::new(guard),
        })
    }

    /// Checks a URL before anything is sent: http(s) only, and a literal address must pass the
    /// guard (names are checked when they resolve).
    pub fn check(&self, url: &Url) -> Result<(), FetchError> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(FetchError::Scheme(url.to_string()));
        }
        match literal_refused(&self.guard, url) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// A request builder for `url`, after [`Client::check`].
    pub fn request(
        &self,
        method: Method,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder, FetchError> {
        self.check(url)?;
        Ok(self.http.request(method, url.clone()))
    }

    /// Sends `request`, fails on a non-2xx status, and reads at most `limit` bytes of body.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), FetchError> {
        let response = request.send().await.map_err(refused_or)?;
        let status = response.status();
        let url = response.url().to_string();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            return Err(FetchError::TooMany(url, after));
        }
        if !status.is_success() {
            return Err(FetchError::Status(url, status));
        }
        if let Some(length) = response.content_length()
            && length as usize > limit
        {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// A refusal by the resolver surfaces as a connect error; name it as the refusal it is.
fn refused_or(error: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(inner) = source {
        if let Some(FetchError::Refused(what)) = inner.downcast_ref::<FetchError>() {
            return FetchError::Refused(what.clone());
        }
        source = inner.source();
    }
    FetchError::Http(error)
}

fn literal_refused(guard: &Guard, url: &Url) -> Option<FetchError> {
    let ip: IpAddr = match url.host()? {
        url::Host::Ipv4(v4) => v4.into(),
        url::Host::Ipv6(v6) => v6.into(),
        url::Host::Domain(_) => return None,
    };
    (!guard.permits(ip)).then(|| FetchError::Refused(ip.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Dec 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Dec 2026 09:00:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let closed = Client::new(Guard::default(), "test").expect("client");
        let url = Url::parse("http://127.0.0.1:9/x").expect("url");
        assert!(matches!(closed.check(&url), Err(FetchError::Refused(_))));
        let url = Url::parse("http://[::1]:9/x").expect("url");
        assert!(matches!(closed.check(&url), Err(FetchError::Refused(_))));
        let url = Url::parse("file:///etc/passwd").expect("url");
        assert!(matches!(closed.check(&url), Err(FetchError::Scheme(_))));
        // A name resolving only to loopback is refused when it resolves.
        let url = Url::parse("http://localhost:9/x").expect("url");
        let request = closed
            .request(Method::GET, &url)
            .expect("a name passes the literal check");
        let error = closed.send(request, MAX_BODY).await.expect_err("refused");
        assert!(matches!(error, FetchError::Refused(_)), "{error:?}");

        let open =
            Client::new(Guard::parse("127.0.0.0/8,::1").expect("guard"), "test").expect("client");
        let url = Url::parse("http://127.0.0.1:9/x").expect("url");
        assert!(open.check(&url).is_ok());
    }
}
