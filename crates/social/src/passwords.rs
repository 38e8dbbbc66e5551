//! Password hashing, and the admission control that keeps a sign-up surge from taking the
//! server down.
//!
//! Hashing runs argon2id (m = 19 MiB, t = 2, p = 1: OWASP's minimum) on a fixed pool of threads,
//! one per core, outside the async runtime, so the runtime never stalls and reads stay fast
//! however many sign-ups arrive. Each thread owns its 19 MiB working memory for its whole life:
//! allocating and page-faulting it afresh for every hash cost about 8 % of the hash rate and
//! left hundreds of MiB behind in the allocator's arenas (docs/decisions/0008).
//!
//! Before queueing, a request estimates its wait from the number already waiting and the recent
//! hash time; if that exceeds the configured bound (SIGNUP_MAX_WAIT_MS, 2 s by default) it is
//! answered 429 with Retry-After at once — a client told "come back in N seconds" instead of a
//! time-out, and a server that keeps its promise to the requests it accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use stampede_telemetry::Metrics;
use tokio::sync::oneshot;

/// The pool is saturated; the caller should come back after this long.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub retry_after: Duration,
}

/// The production parameters: argon2id, 19 MiB, 2 passes, 1 lane.
pub fn params() -> Params {
    // These constants are valid argon2 parameters.
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

pub fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// One hashing thread's reusable working memory.
pub struct Scratch {
    blocks: Vec<Block>,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            blocks: vec![Block::default(); params().block_count()],
        }
    }

    /// Hashes `password` with a fresh salt into a PHC string (`$argon2id$v=19$m=19456,…`).
    pub fn hash(&mut self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let mut out = [0u8; 32];
        argon2()
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_raw,
                &mut out,
                &mut self.blocks,
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        let hash = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: (&params())
                .try_into()
                .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc`. Hashes made with other parameters (an
    /// older policy) are checked with memory of their own.
    pub fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(stored_params) = Params::try_from(&parsed) else {
            return false;
        };
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return false;
        }
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, stored_params.clone());
        let computed = if stored_params.block_count() == self.blocks.len() {
            hasher.hash_password_into_with_memory(
                password.as_bytes(),
                salt_raw,
                &mut out,
                &mut self.blocks,
            )
        } else {
            hasher.hash_password_into(password.as_bytes(), salt_raw, &mut out)
        };
        computed.is_ok() && crate::tokens::constant_time_eq(&out, expected.as_bytes())
    }
}

enum Work {
    Hash(String, oneshot::Sender<anyhow::Result<String>>),
    Verify(String, Option<String>, oneshot::Sender<bool>),
}

/// A hash of no one's password: verifying against it when the user does not exist makes a
/// failed sign-in take as long as a real one, so timing does not reveal who has an account.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash() -> &'static str {
    DUMMY_HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2()
            .hash_password(b"not anybody's password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

struct Shared {
    waiting: AtomicUsize,
    /// Exponentially weighted mean hash time, in microseconds.
    mean_micros: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Bounded, admission-controlled argon2id.
pub struct PasswordPool {
    jobs: flume::Sender<Work>,
    threads: usize,
    max_wait: Duration,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("threads", &self.threads)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

fn worker(jobs: flume::Receiver<Work>, shared: Arc<Shared>) {
    // Allocated at the first hash, so a process that never hashes (an idle replica, a CLI
    // command) does not carry 19 MiB per thread.
    let mut scratch: Option<Scratch> = None;
    while let Ok(work) = jobs.recv() {
        let scratch = scratch.get_or_insert_with(Scratch::new);
        shared.waiting.fetch_sub(1, Ordering::Relaxed);
        shared
            .metrics
            .password_hash_waiting
            .set(shared.waiting.load(Ordering::Relaxed) as i64);
        let started = Instant::now();
        match work {
            Work::Hash(password, reply) => {
                let _ = reply.send(scratch.hash(&password));
            }
            Work::Verify(password, phc, reply) => {
                let ok = match phc {
                    Some(phc) => scratch.verify(&password, &phc),
                    None => {
                        let _ = scratch.verify(&password, dummy_hash());
                        false
                    }
                };
                let _ = reply.send(ok);
            }
        }
        let elapsed = started.elapsed();
        shared
            .metrics
            .password_hash_duration
            .observe(elapsed.as_secs_f64());
        // EWMA with weight 1/8.
        let sample = elapsed.as_micros() as u64;
        let old = shared.mean_micros.load(Ordering::Relaxed);
        shared
            .mean_micros
            .store(old - old / 8 + sample / 8, Ordering::Relaxed);
    }
}

impl PasswordPool {
    /// A pool of `threads` hashing threads (the cores by default).
    pub fn new(threads: Option<usize>, max_wait: Duration, metrics: Arc<Metrics>) -> Self {
        let threads = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let shared = Arc::new(Shared {
            waiting: AtomicUsize::new(0),
            mean_micros: AtomicU64::new(50_000),
            metrics,
        });
        let (jobs, receiver) = flume::unbounded();
        for n in 0..threads {
            let (receiver, shared) = (receiver.clone(), shared.clone());
            // The threads end when the pool (the sender) is dropped.
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(receiver, shared));
        }
        PasswordPool {
            jobs,
            threads,
            max_wait,
            shared,
        }
    }

    /// How long a request arriving now would wait for a hashing thread: the requests already
    /// waiting, cleared `threads` at a time at the recent hash time.
    pub fn expected_wait(&self) -> Duration {
        let ahead = self.shared.waiting.load(Ordering::Relaxed);
        let rounds = ahead.div_ceil(self.threads) as u64;
        Duration::from_micros(self.shared.mean_micros.load(Ordering::Relaxed) * rounds)
    }

    /// Refuses at once when the pool is already saturated, before a request spends anything
    /// else (database look-ups, validation) on work it would then have to turn away.
    pub fn precheck(&self) -> Result<(), Busy> {
        let expected = self.expected_wait();
        if expected > self.max_wait {
            self.shared.metrics.signup_rejected.inc();
            Err(Busy {
                retry_after: expected,
            })
        } else {
            Ok(())
        }
    }

    fn admit(&self) -> Result<(), Busy> {
        self.precheck()?;
        self.shared.metrics.signup_admitted.inc();
        let waiting = self.shared.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared
            .metrics
            .password_hash_waiting
            .set(waiting as i64);
        Ok(())
    }

    /// Only if every hashing thread died; the client may simply try again.
    fn lost(&self) -> Busy {
        self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
        Busy {
            retry_after: Duration::from_secs(1),
        }
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<anyhow::Result<String>, Busy> {
        self.admit()?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Work::Hash(password, reply))
            .map_err(|_| self.lost())?;
        // A dropped reply means the thread took the job (and counted it) and then died.
        answer.await.map_err(|_| Busy {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Checks a password against a stored hash; `None` (no such user) still costs one hash.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, Busy> {
        self.admit()?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Work::Verify(password, phc, reply))
            .map_err(|_| self.lost())?;
        answer.await.map_err(|_| Busy {
            retry_after: Duration::from_secs(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_the_production_parameters() {
        let mut scratch = Scratch::new();
        let phc = scratch.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(scratch.verify("correct horse battery staple", &phc));
        assert!(!scratch.verify("wrong", &phc));
        assert!(!scratch.verify("x", "not a hash"));
        // Interoperable with the library's own hashing and with other parameters.
        use argon2::password_hash::PasswordVerifier as _;
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            argon2()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        );
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let old = other
            .hash_password(b"older policy", &salt)
            .unwrap()
            .to_string();
        assert!(scratch.verify("older policy", &old));
    }

    #[tokio::test]
    async fn refuses_when_the_wait_would_exceed_the_bound() {
        let pool = PasswordPool::new(Some(1), Duration::from_millis(100), Metrics::new());
        pool.shared.mean_micros.store(60_000, Ordering::Relaxed);
        assert_eq!(
            pool.expected_wait(),
            Duration::ZERO,
            "nobody waiting: admitted"
        );
        pool.shared.waiting.store(1, Ordering::Relaxed);
        assert!(pool.expected_wait() <= Duration::from_millis(100));
        pool.shared.waiting.store(5, Ordering::Relaxed);
        let busy = pool.hash("x".into()).await.unwrap_err();
        assert!(busy.retry_after >= Duration::from_millis(300));
    }
}
