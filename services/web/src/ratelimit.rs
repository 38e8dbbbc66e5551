//! Per-IP rate limits, shared by every web replica through the cache (Redis).
//!
//! Mastodon's defaults: 5 sign-ups per 30 minutes and 25 sign-in attempts per 5 minutes per IP.
//! RATE_LIMITS=false turns them off (for load tests that sign up thousands of users from one
//! address).

use std::net::IpAddr;
use std::time::Duration;

use stampede_telemetry::metrics::ActionLabels;

use crate::AppState;
use crate::error::ApiError;

/// A limited action.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub action: &'static str,
    pub max: u64,
    pub window: Duration,
}

pub const SIGN_UP: Limit = Limit {
    action: "sign_up",
    max: 5,
    window: Duration::from_secs(30 * 60),
};

pub const SIGN_IN: Limit = Limit {
    action: "sign_in",
    max: 25,
    window: Duration::from_secs(5 * 60),
};

/// Counts one attempt of `limit.action` from `ip`; 429 with Retry-After once over the limit. If
/// the cache is down the request is let through: losing Redis must not stop sign-ups.
pub async fn check(state: &AppState, limit: Limit, ip: IpAddr) -> Result<(), ApiError> {
    check_wait(state, limit, ip)
        .await
        .map_err(ApiError::too_many_requests)
}

/// As [`check`], answering how long to wait (for pages, which answer in HTML). The wait is the
/// whole window: a conservative bound, since the window's start is not looked up.
pub async fn check_wait(state: &AppState, limit: Limit, ip: IpAddr) -> Result<(), Duration> {
    if !state.ctx.config.registrations.rate_limits {
        return Ok(());
    }
    let key = format!("ratelimit:{}:{}", limit.action, bucket(ip));
    match state.ctx.cache.hit(&key, limit.window).await {
        Ok(count) if count > limit.max => {
            state
                .ctx
                .metrics
                .rate_limited
                .get_or_create(&ActionLabels {
                    action: limit.action.to_string(),
                })
                .inc();
            Err(limit.window)
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "rate limit not checked: cache unavailable");
            Ok(())
        }
    }
}

/// The address a limit counts against: IPv4 as is, IPv6 by its /64, since one host commonly
/// holds a whole /64 and could otherwise rotate through it (Mastodon does the same).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(c));
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(bucket(v4), v4);
    }
}
