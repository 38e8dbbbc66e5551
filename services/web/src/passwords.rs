//! Password hashing, and the admission control that keeps a sign-up surge from taking the
//! server down.
//!
//! Hashing runs argon2id (m = 19 MiB, t = 2, p = 1: OWASP's minimum) on the blocking pool, at most
//! one hash per core at a time, so the async runtime never stalls and reads stay fast however many
//! sign-ups arrive. Before queueing, a request estimates its wait from the number already waiting
//! and the recent hash time; if that exceeds the configured bound (SIGNUP_MAX_WAIT_MS, 2 s by
//! default) it is answered 429 with Retry-After at once — a client told "come back in N seconds"
//! instead of a time-out, and a server that keeps its promise to the requests it accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use stampede_telemetry::Metrics;
use tokio::sync::Semaphore;

/// The pool is saturated; the caller should come back after this long.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub retry_after: Duration,
}

/// Bounded, admission-controlled argon2id.
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    threads: usize,
    waiting: AtomicUsize,
    /// Exponentially weighted mean hash time, in microseconds.
    mean_micros: AtomicU64,
    max_wait: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("threads", &self.threads)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

/// The production parameters: argon2id, 19 MiB, 2 passes, 1 lane.
pub fn argon2() -> Argon2<'static> {
    // These constants are valid argon2 parameters.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of no one's password: verifying against it when the user does not exist makes a
/// failed sign-in take as long as a real one, so timing does not reveal who has an account.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl PasswordPool {
    /// A pool of `threads` concurrent hashes (the cores by default).
    pub fn new(threads: Option<usize>, max_wait: Duration, metrics: Arc<Metrics>) -> Self {
        let threads = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        PasswordPool {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            waiting: AtomicUsize::new(0),
            mean_micros: AtomicU64::new(50_000),
            max_wait,
            metrics,
        }
    }

    /// How long a request arriving now would wait for a hashing thread: the requests already
    /// waiting, cleared `threads` at a time at the recent hash time.
    pub fn expected_wait(&self) -> Duration {
        let ahead = self.waiting.load(Ordering::Relaxed);
        let rounds = ahead.div_ceil(self.threads) as u64;
        Duration::from_micros(self.mean_micros.load(Ordering::Relaxed) * rounds)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let expected = self.expected_wait();
        if expected > self.max_wait {
            self.metrics.signup_rejected.inc();
            return Err(Busy {
                retry_after: expected,
            });
        }
        self.metrics.signup_admitted.inc();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .password_hash_waiting
            .set(self.waiting.load(Ordering::Relaxed) as i64);
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(work).await;
        drop(permit);
        let elapsed = started.elapsed();
        self.metrics
            .password_hash_duration
            .observe(elapsed.as_secs_f64());
        // EWMA with weight 1/8.
        let sample = elapsed.as_micros() as u64;
        let old = self.mean_micros.load(Ordering::Relaxed);
        self.mean_micros
            .store(old - old / 8 + sample / 8, Ordering::Relaxed);
        result.map_err(|_| Busy {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<anyhow::Result<String>, Busy> {
        self.run(move || hash_now(&password).map_err(|e| anyhow::anyhow!("argon2: {e}")))
            .await
    }

    /// Checks a password against a stored hash; `None` (no such user) still costs one hash.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, Busy> {
        self.run(move || match phc {
            Some(phc) => verify_now(&password, &phc),
            None => {
                let dummy =
                    DUMMY_HASH.get_or_init(|| hash_now("not a password").unwrap_or_default());
                let _ = verify_now(&password, dummy);
                false
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_the_production_parameters() {
        let phc = hash_now("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_now("correct horse battery staple", &phc));
        assert!(!verify_now("wrong", &phc));
        assert!(!verify_now("x", "not a hash"));
    }

    #[tokio::test]
    async fn refuses_when_the_wait_would_exceed_the_bound() {
        let pool = PasswordPool::new(Some(1), Duration::from_millis(100), Metrics::new());
        pool.mean_micros.store(60_000, Ordering::Relaxed);
        assert_eq!(
            pool.expected_wait(),
            Duration::ZERO,
            "nobody waiting: admitted"
        );
        pool.waiting.store(1, Ordering::Relaxed);
        assert!(pool.expected_wait() <= Duration::from_millis(100));
        pool.waiting.store(5, Ordering::Relaxed);
        let busy = pool.hash("x".into()).await.unwrap_err();
        assert!(busy.retry_after >= Duration::from_millis(300));
    }
}
