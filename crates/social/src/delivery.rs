//! The `deliver` worker: signed POSTs to remote inboxes, built so that a dead server costs
//! nothing and never slows the deliveries to live ones.
//!
//! ```text
//!  deliver message (one activity, ≤ 50 inboxes), signed with RFC 9421 to servers that signed
//!  to us that way (falling back to draft-cavage at once on a 401), draft-cavage to the rest
//!    └─ each inbox at once, on its own:
//!         sent before (by this process)  → done
//!         domain blocked by this server  → skipped, counted
//!         domain unavailable             → skipped, counted
//!         breaker open                   → held: a copy waits out the cooldown
//!         host at its connection cap     → deferred: a copy waits 10 s          (attempt kept)
//!         POST ─ answered 2xx            → done
//!              ─ 5xx, timeout, refused,
//!                401, 408, 429           → retried: a copy waits attempt⁴ + 15 s (+ jitter), or
//!                                          the 429's Retry-After; parked after 17 attempts
//!              ─ another 4xx             → parked at once (waiting will not change it)
//!              ─ still running after 3 s → handed over: it finishes on its own, and a copy
//!                                          waits 30 s, then finds it sent (or tries again);
//!                                          meanwhile the domain counts it as an outage
//! ```
//!
//! Copies that wait alike (same attempt, same retry tier) travel as one message.
//!
//! The message is acknowledged once every inbox is done or its copy is durably queued, so a
//! worker slot is never held longer than [`PATIENCE`] by a slow peer, and the copies live in
//! RabbitMQ's durable retry tiers: a restart of the process loses nothing. An inbox that a
//! redelivered message names again is skipped if this process sent it already.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use stampede_activitypub::keys::PrivateKey;
use stampede_activitypub::{Client, FetchError, rfc9421, signature};
use stampede_db::Db;
use stampede_queue::{Consume, Envelope, JobError, Queue, WorkQueue, retry};
use stampede_telemetry::Metrics;
use stampede_telemetry::metrics::OutcomeLabels;
use tokio::sync::{RwLock, Semaphore};
use tokio::time::Instant;
use url::Url;

use crate::activitypub::actor_uri;
use crate::domain_policy::DomainPolicy;
use crate::domains::{Admit, DomainHealth, Outcome};
use crate::keys;
use crate::outbound::{Batch, Deliver, Outgoing};

/// How long a message waits for its inboxes before handing the slow ones over.
pub const PATIENCE: Duration = Duration::from_secs(3);
/// The wait of a copy for a request handed over while still running (past the request timeout,
/// so the request has ended by then).
const HANDOVER_WAIT: Duration = Duration::from_secs(30);
/// The wait of a copy for a host that was at its connection cap.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// Signers kept parsed at most; past it the cache starts again.
const SIGNERS_CACHED: usize = 10_000;
/// Deliveries remembered as sent, per generation (two generations are kept).
const REMEMBERED: usize = 100_000;

/// A signer's key id (`…/users/NAME#main-key`) and parsed private key.
type SigningKey = (String, PrivateKey);

/// The `deliver` worker; cheap to clone.
#[derive(Clone, Debug)]
pub struct Deliverer {
    db: Db,
    client: Client,
    base: String,
    queue: Queue,
    health: Arc<DomainHealth>,
    metrics: Arc<Metrics>,
    /// The instance's domain blocks: nothing goes to a suspended domain.
    policy: Arc<DomainPolicy>,
    /// Signers' key ids and parsed keys: a key is read and parsed once per process, not once
    /// per delivery (a post to 200 inboxes signs 200 times with the same key).
    signers: Arc<RwLock<HashMap<i64, Arc<SigningKey>>>>,
    sent: Arc<Mutex<Sent>>,
}

/// Deliveries (activity id, inbox) this process made, by fingerprint.
#[derive(Debug, Default)]
struct Sent {
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

impl Sent {
    fn contains(&self, tag: u64) -> bool {
        self.current.contains(&tag) || self.previous.contains(&tag)
    }

    fn insert(&mut self, tag: u64) {
        if self.current.len() >= REMEMBERED {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(tag);
    }
}

fn fingerprint(activity_id: &str, inbox: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (activity_id, inbox).hash(&mut hasher);
    hasher.finish()
}

/// Where one delivery goes: the inbox, its domain, the domain's connection permits, and
/// whether to sign with RFC 9421.
struct Target {
    url: Url,
    domain: String,
    permits: Arc<Semaphore>,
    rfc9421: bool,
}

/// How one inbox's delivery ended, when it did not succeed.
enum Fate {
    /// The host stayed at its connection cap.
    Busy,
    Failed {
        error: String,
        transient: bool,
        retry_after: Option<Duration>,
    },
}

/// What happens next to one inbox of a message.
enum Next {
    /// A copy for this inbox alone, at `attempt`, after `wait`.
    Copy {
        attempt: u32,
        wait: Duration,
    },
    Park(String),
}

impl Deliverer {
    pub fn new(
        db: Db,
        client: Client,
        base: String,
        queue: Queue,
        health: Arc<DomainHealth>,
        metrics: Arc<Metrics>,
        policy: Arc<DomainPolicy>,
    ) -> Self {
        Deliverer {
            db,
            client,
            base,
            queue,
            health,
            metrics,
            policy,
            signers: Arc::default(),
            sent: Arc::default(),
        }
    }

    /// The key id and key of local account `signer`; `None` if it is not (any more) local.
    async fn signer(&self, signer: i64) -> Result<Option<Arc<SigningKey>>, JobError> {
        if let Some(known) = self.signers.read().await.get(&signer) {
            return Ok(Some(known.clone()));
        }
        if signer == crate::outbound::INSTANCE_SIGNER {
            let key = keys::instance_key(&self.db)
                .await
                .map_err(JobError::Retry)?;
            let key = PrivateKey::from_pem(&key.private_key)
                .map_err(|e| JobError::Permanent(e.into()))?;
            let entry = Arc::new((format!("{}/actor#main-key", self.base), key));
            self.signers.write().await.insert(signer, entry.clone());
            return Ok(Some(entry));
        }
        let username: Option<String> =
            sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1 AND domain IS NULL")
                .bind(signer)
                .fetch_optional(&self.db)
                .await?;
        let Some(username) = username else {
            return Ok(None);
        };
        let key = keys::account_key(&self.db, signer)
            .await
            .map_err(JobError::Retry)?
            .ok_or_else(|| JobError::Permanent(anyhow::anyhow!("no key")))?;
        let key =
            PrivateKey::from_pem(&key.private_key).map_err(|e| JobError::Permanent(e.into()))?;
        let key_id = format!("{}#main-key", actor_uri(&self.base, &username));
        let entry = Arc::new((key_id, key));
        let mut signers = self.signers.write().await;
        if signers.len() >= SIGNERS_CACHED {
            signers.clear();
        }
        signers.insert(signer, entry.clone());
        Ok(Some(entry))
    }

    /// Delivers `activity` to `inboxes` (at `attempt`), as the module describes.
    async fn deliver(
        &self,
        signer: i64,
        activity: Value,
        inboxes: Vec<String>,
        attempt: u32,
    ) -> Result<(), JobError> {
        let Some(key) = self.signer(signer).await? else {
            // The account is gone: nothing may be sent in its name.
            return Err(JobError::Permanent(anyhow::anyhow!(
                "signer {signer} is not a local account"
            )));
        };
        let body =
            Arc::new(serde_json::to_vec(&activity).map_err(|e| JobError::Permanent(e.into()))?);
        let activity_id = activity["id"].as_str().unwrap_or_default().to_string();
        let policy = self.policy.get().await?;
        let deadline = Instant::now() + PATIENCE;
        let mut next: Vec<(String, Next)> = Vec::new();
        let mut running = Vec::new();
        for inbox in inboxes {
            let tag = fingerprint(&activity_id, &inbox);
            if self.sent.lock().contains(tag) {
                continue;
            }
            let url = match Url::parse(&inbox) {
                Ok(url) => url,
                Err(error) => {
                    self.metrics.delivery("parked", "healthy");
                    next.push((inbox, Next::Park(format!("not a URL: {error}"))));
                    continue;
                }
            };
            let domain = crate::remote::authority(&url).unwrap_or_default();
            if policy.refuses(&domain) && self.policy.refuses_now(&domain).await? {
                self.metrics.delivery("skipped_blocked", "blocked");
                continue;
            }
            let (admit, class) = self.health.admit(&domain);
            match admit {
                Admit::Unavailable => self.metrics.delivery("skipped_unavailable", class),
                Admit::Hold(wait) => {
                    self.metrics.delivery("circuit_open", class);
                    next.push((inbox, Next::Copy { attempt, wait }));
                }
                Admit::Go { permits, rfc9421 } => {
                    let domain_of_post = domain.clone();
                    let post = self.clone().post(
                        key.clone(),
                        body.clone(),
                        Target {
                            url,
                            domain,
                            permits,
                            rfc9421,
                        },
                        tag,
                        deadline,
                    );
                    running.push((inbox, class, domain_of_post, tokio::spawn(post)));
                }
            }
        }
        // A little past the deadline, so a request still waiting for its host's cap reports
        // itself busy rather than being handed over.
        let patience = deadline + Duration::from_millis(100);
        for (inbox, class, domain, mut task) in running {
            let then = match tokio::time::timeout_at(patience, &mut task).await {
                Ok(Ok(Ok(()))) => {
                    self.metrics.delivery("success", class);
                    continue;
                }
                Ok(Ok(Err(Fate::Busy))) => {
                    self.metrics.delivery("deferred", class);
                    Next::Copy {
                        attempt,
                        wait: BUSY_WAIT,
                    }
                }
                Ok(Ok(Err(Fate::Failed {
                    error,
                    transient,
                    retry_after,
                }))) => {
                    if transient && attempt + 1 < WorkQueue::Deliver.max_attempts() {
                        self.metrics.delivery("retry", class);
                        Next::Copy {
                            attempt: attempt + 1,
                            wait: retry_after.map_or_else(
                                || retry::backoff(attempt),
                                |after| after.max(Duration::from_secs(1)),
                            ),
                        }
                    } else {
                        self.metrics.delivery("parked", class);
                        Next::Park(error)
                    }
                }
                Ok(Err(join)) => {
                    self.metrics.delivery("parked", class);
                    Next::Park(format!("the delivery task failed: {join}"))
                }
                // Still running: it finishes on its own (and is remembered if it succeeds). A
                // server that has not answered in 3 s counts as down until it does answer, so a
                // hung one's breaker opens after 5 such requests, not after 5 timeouts.
                Err(_) => {
                    self.health
                        .record(
                            &domain,
                            Outcome::Outage(format!("no answer within {PATIENCE:?}")),
                        )
                        .await;
                    self.metrics.delivery("deferred", class);
                    Next::Copy {
                        attempt,
                        wait: HANDOVER_WAIT,
                    }
                }
            };
            next.push((inbox, then));
        }
        // Copies that wait alike travel together: by attempt and retry tier, the longest wait
        // of the group (a post's held inboxes are one message, not one each).
        let mut copies: HashMap<(u32, usize), (Duration, Vec<String>)> = HashMap::new();
        for (inbox, then) in next {
            match then {
                Next::Copy { attempt, wait } => {
                    let group = copies
                        .entry((attempt, stampede_queue::topology::tier_for(wait)))
                        .or_insert((wait, Vec::new()));
                    group.0 = group.0.max(wait);
                    group.1.push(inbox);
                }
                Next::Park(reason) => {
                    let mut envelope = Envelope::of(&Deliver::Activity(Outgoing {
                        inbox,
                        signer,
                        activity: activity.clone(),
                    }));
                    envelope.attempt = attempt;
                    tracing::warn!(%reason, "delivery parked");
                    self.queue
                        .park(WorkQueue::Deliver, &envelope, &reason)
                        .await?;
                }
            }
        }
        for ((attempt, _), (wait, inboxes)) in copies {
            let mut envelope = Envelope::of(&Deliver::Many(Batch {
                inboxes,
                signer,
                activity: activity.clone(),
            }));
            envelope.attempt = attempt;
            self.queue
                .publish_after(WorkQueue::Deliver, &envelope, wait)
                .await?;
        }
        Ok(())
    }

    /// Signs and POSTs `body` to `url` within `domain`'s connection cap (waiting for a
    /// connection until `deadline` at most), and tells the domain's health how it went.
    async fn post(
        self,
        key: Arc<SigningKey>,
        body: Arc<Vec<u8>>,
        target: Target,
        tag: u64,
        deadline: Instant,
    ) -> Result<(), Fate> {
        let Target {
            url,
            domain,
            permits,
            rfc9421: modern,
        } = target;
        let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, permits.acquire_owned()).await
        else {
            return Err(Fate::Busy);
        };
        let started = Instant::now();
        let mut result = self.send(&key, &url, &body, modern).await;
        // A server that signs with RFC 9421 but refuses it: draft-cavage at once, and from now on.
        if modern
            && matches!(&result, Err(Sending::Fetch(FetchError::Status(_, status))) if status.as_u16() == 401)
        {
            self.health.learned_rfc9421(&domain, false).await;
            result = self.send(&key, &url, &body, false).await;
        }
        let (label, outcome) = match &result {
            Ok(()) => ("answered", Some(Outcome::Answered)),
            Err(Sending::Fetch(error)) if error.is_outage() => {
                ("outage", Some(Outcome::Outage(error.to_string())))
            }
            Err(Sending::Fetch(FetchError::Status(..) | FetchError::TooMany(..))) => {
                ("answered", Some(Outcome::Answered))
            }
            Err(_) => ("refused", None),
        };
        self.metrics
            .delivery_duration
            .get_or_create(&OutcomeLabels {
                outcome: label.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        if let Some(outcome) = outcome {
            self.health.record(&domain, outcome).await;
        }
        match result {
            Ok(()) => {
                self.sent.lock().insert(tag);
                Ok(())
            }
            Err(Sending::Fetch(error)) => Err(Fate::Failed {
                transient: error.is_transient(),
                retry_after: error.retry_after(),
                error: error.to_string(),
            }),
            Err(Sending::Sign(error)) => Err(Fate::Failed {
                error,
                transient: false,
                retry_after: None,
            }),
        }
    }

    /// Signs (RFC 9421 when `modern`, draft-cavage otherwise) and POSTs.
    async fn send(
        &self,
        key: &SigningKey,
        url: &Url,
        body: &[u8],
        modern: bool,
    ) -> Result<(), Sending> {
        let (key_id, key) = key;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/activity+json"),
        );
        let signed = if modern {
            rfc9421::sign(key, key_id, url, &mut headers, body, Utc::now())
        } else {
            signature::sign(
                key,
                key_id,
                &http::Method::POST,
                url,
                &mut headers,
                Some(body),
                Utc::now(),
            )
        };
        signed.map_err(|e| Sending::Sign(e.to_string()))?;
        let request = self
            .client
            .request(reqwest::Method::POST, url)
            .map_err(Sending::Fetch)?
            .headers(headers)
            .body(body.to_vec());
        self.client
            .send(request, 64 * 1024)
            .await
            .map(|_| ())
            .map_err(Sending::Fetch)
    }
}

enum Sending {
    Sign(String),
    Fetch(FetchError),
}

impl Consume<Deliver> for Deliverer {
    fn consume<'a>(
        &'a self,
        message: Deliver,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        let attempt = envelope.attempt;
        match message {
            Deliver::Activity(Outgoing {
                inbox,
                signer,
                activity,
            }) => self.deliver(signer, activity, vec![inbox], attempt).boxed(),
            Deliver::Many(Batch {
                inboxes,
                signer,
                activity,
            }) => self.deliver(signer, activity, inboxes, attempt).boxed(),
        }
    }
}
