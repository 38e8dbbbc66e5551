//! When to try a failed job again.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `attempt + 1`, after attempt `attempt` (0-based) failed: Sidekiq's
/// curve as Mastodon uses it, `attempt⁴ + 15 s` plus jitter growing with the attempt, so the 16
/// retries of a delivery span about two days and retries to one dead server spread out
/// instead of arriving together.
pub fn backoff(attempt: u32) -> Duration {
    let jitter = rand::rng().random_range(0..=30u64) * u64::from(attempt + 1);
    base(attempt) + Duration::from_secs(jitter)
}

fn base(attempt: u32) -> Duration {
    Duration::from_secs(u64::from(attempt).pow(4) + 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_as_the_fourth_power_with_bounded_jitter() {
        for attempt in 0..16 {
            let d = backoff(attempt);
            assert!(d >= base(attempt));
            assert!(d <= base(attempt) + Duration::from_secs(30 * u64::from(attempt + 1)));
        }
        let total: Duration = (0..16).map(base).sum();
        // 16 retries after the first attempt: about two days before jitter.
        assert!(total > Duration::from_secs(2 * 86400) && total < Duration::from_secs(3 * 86400));
    }
}
