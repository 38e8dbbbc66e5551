//! The health of each remote domain we deliver to, so that a dead server costs nothing.
//!
//! ```text
//!            5 outages in a row              cooldown over: one probe
//!  Closed ───────────────────────► Open ─────────────────────────► Probing
//!    ▲                              ▲  deliveries held (a copy         │ │
//!    │                              │  waits out the cooldown in a     │ │ outage: cooldown × 2
//!    │                              │  retry tier, attempt unchanged)  │ └─────────► Open
//!    └──────── any answer ──────────┴──────────────────────────────────┘
//! ```
//!
//! A *domain* is the inbox URL's host with its port ([`crate::remote::authority`]). Each delivery process keeps its own
//! breakers and per-host connection caps in memory (a host that has not answered yet gets
//! [`SLOW_START`] connections, the full cap from its first answer); what must outlive a restart or be shared is
//! in PostgreSQL (`delivery_domains`): the distinct days a domain failed on, when its breaker
//! reopens, and whether it is *unavailable* — failing on [`UNAVAILABLE_AFTER_DAYS`] distinct days,
//! after which deliveries to it are skipped (and counted) until one delivery to it, or one signed
//! request from it, succeeds, or an operator clears it (`stampede admin domains clear`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use stampede_db::Db;
use stampede_telemetry::Metrics;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Outages in a row that open a domain's breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// The longest a breaker stays open before the next probe.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(3600);
/// Distinct days of failure after which a domain is unavailable (Mastodon's rule).
pub const UNAVAILABLE_AFTER_DAYS: i32 = 7;
/// Requests a process sends at once to a host that has not answered it yet: a hung server
/// holds at most this many before its breaker learns, the full cap opens with the first answer.
pub const SLOW_START: usize = 4;
/// How often each process rereads the shared state (clears by operators or other processes).
const REFRESH: Duration = Duration::from_secs(10);

/// What a delivery to a domain may do now.
#[derive(Debug)]
pub enum Admit {
    /// Go, within the host's connection cap (possibly as the one request a half-open breaker
    /// lets through).
    Go {
        permits: Arc<Semaphore>,
        /// Sign with RFC 9421 (the domain's server signed to us that way).
        rfc9421: bool,
    },
    /// The breaker is open: hold the delivery for this long.
    Hold(Duration),
    /// The domain is unavailable: skip the delivery.
    Unavailable,
}

/// How a request to a domain ended, as far as its health goes.
#[derive(Debug)]
pub enum Outcome {
    /// The server answered (2xx, or a 4xx/429: alive, whatever it thought of the request).
    Answered,
    /// No answer a live server gives: connection refused, timeout, 5xx.
    Outage(String),
}

#[derive(Debug)]
enum Breaker {
    Closed,
    Open(Instant),
    /// A probe went out at this instant.
    Probing(Instant),
}

/// A probe that has not reported back by then (handed over, deferred) is replaced by another.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Health {
    outages: u32,
    breaker: Breaker,
    cooldown: Duration,
    /// The day this process last recorded a failure for the domain in PostgreSQL.
    recorded: Option<NaiveDate>,
    /// PostgreSQL holds failures for the domain that a success must clear.
    dirty: bool,
    permits: Arc<Semaphore>,
    /// It answered this process once: its connection cap is the full one.
    warm: bool,
}

#[derive(Debug, Default)]
struct State {
    domains: HashMap<String, Health>,
    unavailable: HashSet<String>,
    /// Domains whose servers signed to us with RFC 9421: we sign to them that way too.
    rfc9421: HashSet<String>,
}

/// Every domain's health in this process; shared by the `deliver` and `ingress` workers.
#[derive(Debug)]
pub struct DomainHealth {
    db: Db,
    metrics: Arc<Metrics>,
    host_cap: usize,
    first_cooldown: Duration,
    state: Mutex<State>,
}

impl DomainHealth {
    /// Health for domains reached with at most `host_cap` requests each at once; a breaker
    /// first opens for `cooldown`.
    pub fn new(db: Db, metrics: Arc<Metrics>, host_cap: u32, cooldown: Duration) -> Arc<Self> {
        Arc::new(DomainHealth {
            db,
            metrics,
            host_cap: host_cap.max(1) as usize,
            first_cooldown: cooldown.max(Duration::from_millis(100)),
            state: Mutex::default(),
        })
    }

    fn health<'a>(&self, state: &'a mut State, domain: &str) -> &'a mut Health {
        state
            .domains
            .entry(domain.to_string())
            .or_insert_with(|| Health {
                outages: 0,
                breaker: Breaker::Closed,
                cooldown: self.first_cooldown,
                recorded: None,
                dirty: false,
                permits: Arc::new(Semaphore::new(self.host_cap.min(SLOW_START))),
                warm: false,
            })
    }

    /// Whether a delivery to `domain` may go now, and the class it is counted under
    /// (`healthy`, `failing`, `unavailable`).
    pub fn admit(&self, domain: &str) -> (Admit, &'static str) {
        let mut state = self.state.lock();
        if state.unavailable.contains(domain) {
            return (Admit::Unavailable, "unavailable");
        }
        let rfc9421 = state.rfc9421.contains(domain);
        let health = self.health(&mut state, domain);
        let class =
            if health.dirty || health.outages > 0 || !matches!(health.breaker, Breaker::Closed) {
                "failing"
            } else {
                "healthy"
            };
        let now = Instant::now();
        let admit = match health.breaker {
            Breaker::Closed => Admit::Go {
                permits: health.permits.clone(),
                rfc9421,
            },
            Breaker::Open(until) if until > now => Admit::Hold(until - now),
            // One probe at a time; the rest wait about as long as it may take.
            Breaker::Probing(since) if now - since < PROBE_TIMEOUT => {
                Admit::Hold(health.cooldown.min(PROBE_TIMEOUT))
            }
            Breaker::Open(_) | Breaker::Probing(_) => {
                health.breaker = Breaker::Probing(now);
                Admit::Go {
                    permits: health.permits.clone(),
                    rfc9421,
                }
            }
        };
        (admit, class)
    }

    /// Learns from a request to `domain`.
    pub async fn record(&self, domain: &str, outcome: Outcome) {
        match outcome {
            Outcome::Answered => self.answered(domain).await,
            Outcome::Outage(error) => self.outage(domain, &error).await,
        }
    }

    async fn answered(&self, domain: &str) {
        let clear_record = {
            let mut state = self.state.lock();
            let was_unavailable = state.unavailable.remove(domain);
            let cap = self.host_cap;
            let health = self.health(&mut state, domain);
            if !std::mem::replace(&mut health.warm, true) {
                health.permits.add_permits(cap.saturating_sub(SLOW_START));
            }
            health.outages = 0;
            health.breaker = Breaker::Closed;
            health.cooldown = self.first_cooldown;
            health.recorded = None;
            std::mem::take(&mut health.dirty) || was_unavailable
        };
        if clear_record {
            if let Err(error) = clear(&self.db, domain).await {
                tracing::warn!(domain, %error, "could not clear a domain's failures");
            } else {
                tracing::info!(domain, "domain answers again");
            }
            self.publish_gauges();
        }
    }

    async fn outage(&self, domain: &str, error: &str) {
        let today = Utc::now().date_naive();
        // The cooldown of a breaker this outage opened.
        let (open_for, record_day) = {
            let mut state = self.state.lock();
            let first = self.first_cooldown;
            let health = self.health(&mut state, domain);
            health.outages += 1;
            let open_for = match health.breaker {
                Breaker::Probing(_) => Some((health.cooldown * 2).min(MAX_COOLDOWN)),
                Breaker::Closed if health.outages >= BREAKER_THRESHOLD => Some(first),
                _ => None,
            };
            if let Some(cooldown) = open_for {
                health.cooldown = cooldown;
                health.breaker = Breaker::Open(Instant::now() + cooldown);
            }
            let record_day = health.recorded != Some(today);
            if record_day {
                health.recorded = Some(today);
                health.dirty = true;
            }
            (open_for, record_day)
        };
        if let Some(cooldown) = open_for {
            tracing::warn!(domain, cooldown_s = cooldown.as_secs_f64(), %error, "circuit breaker open");
        }
        if record_day || open_for.is_some() {
            match record_failure(&self.db, domain, error, open_for).await {
                Ok(true) => {
                    tracing::warn!(
                        domain,
                        "domain unavailable: failing on {UNAVAILABLE_AFTER_DAYS} distinct days"
                    );
                    self.state.lock().unavailable.insert(domain.to_string());
                    self.publish_gauges();
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(domain, %error, "could not record a domain's failure"),
            }
        }
    }

    /// A signed request from `domain` was accepted: it is alive, whatever deliveries said.
    pub async fn revived(&self, domain: &str) {
        let known_bad = {
            let state = self.state.lock();
            state.unavailable.contains(domain)
                || state.domains.get(domain).is_some_and(|h| {
                    h.dirty || h.outages > 0 || !matches!(h.breaker, Breaker::Closed)
                })
        };
        if known_bad {
            self.answered(domain).await;
        }
    }

    /// `domain`'s server signed a request to us with RFC 9421 (or, with `speaks` false, refused
    /// ours): remembered here and, for the other processes, in PostgreSQL.
    pub async fn learned_rfc9421(&self, domain: &str, speaks: bool) {
        let changed = {
            let mut state = self.state.lock();
            if speaks {
                state.rfc9421.insert(domain.to_string())
            } else {
                state.rfc9421.remove(domain)
            }
        };
        if !changed {
            return;
        }
        let statement = if speaks {
            "INSERT INTO domain_signatures (domain) VALUES ($1) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM domain_signatures WHERE domain = $1"
        };
        if let Err(error) = sqlx::query(statement).bind(domain).execute(&self.db).await {
            tracing::debug!(domain, %error, "could not record a domain's signature scheme");
        }
    }

    /// Reads the shared state: unavailable domains, domains with failures on record, breakers
    /// opened by another process (or before a restart).
    pub async fn load(&self) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT domain, unavailable_since IS NOT NULL, open_until FROM delivery_domains",
        )
        .fetch_all(&self.db)
        .await?;
        let rfc9421: HashSet<String> = sqlx::query_scalar("SELECT domain FROM domain_signatures")
            .fetch_all(&self.db)
            .await?
            .into_iter()
            .collect();
        {
            let mut state = self.state.lock();
            state.rfc9421 = rfc9421;
            let now = Utc::now();
            let listed: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
            state.unavailable = rows.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
            for (domain, _, open_until) in &rows {
                let health = self.health(&mut state, domain);
                health.dirty = true;
                if let Some(until) = open_until.and_then(|u| (u - now).to_std().ok())
                    && matches!(health.breaker, Breaker::Closed)
                {
                    health.breaker = Breaker::Open(Instant::now() + until);
                }
            }
            // Cleared elsewhere (an operator, another process): forget what we held against it.
            for (domain, health) in state.domains.iter_mut() {
                if health.dirty && !listed.contains(domain.as_str()) {
                    health.dirty = false;
                    health.outages = 0;
                    health.recorded = None;
                    if matches!(health.breaker, Breaker::Open(_)) {
                        health.breaker = Breaker::Closed;
                    }
                }
            }
        }
        self.publish_gauges();
        Ok(())
    }

    fn publish_gauges(&self) {
        let state = self.state.lock();
        let (mut open, mut probing) = (0i64, 0i64);
        for health in state.domains.values() {
            match health.breaker {
                Breaker::Open(_) => open += 1,
                Breaker::Probing(_) => probing += 1,
                Breaker::Closed => {}
            }
        }
        let breakers = &self.metrics.delivery_breakers;
        breakers.get_or_create(&Metrics::state("open")).set(open);
        breakers
            .get_or_create(&Metrics::state("half_open"))
            .set(probing);
        self.metrics
            .unavailable_domains
            .set(state.unavailable.len() as i64);
    }

    /// Rereads the shared state every few seconds until `shutdown`.
    pub async fn refresh(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.load().await {
                tracing::debug!(%error, "could not read delivery domains");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(REFRESH) => {}
            }
        }
    }
}

/// Records a failure of `domain` today (and, with `open_for`, its open breaker); whether the
/// domain is unavailable now.
async fn record_failure(
    db: &Db,
    domain: &str,
    error: &str,
    open_for: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    let error: String = error.chars().take(500).collect();
    sqlx::query_scalar(
        "INSERT INTO delivery_domains AS d (domain, failure_days, last_failure_at, last_error, open_until) \
         VALUES ($1, ARRAY[(now() AT TIME ZONE 'UTC')::date], now(), $2, now() + $3 * interval '1 millisecond') \
         ON CONFLICT (domain) DO UPDATE SET \
           failure_days = CASE WHEN (now() AT TIME ZONE 'UTC')::date = ANY(d.failure_days) THEN d.failure_days \
                               ELSE d.failure_days || (now() AT TIME ZONE 'UTC')::date END, \
           last_failure_at = now(), last_error = $2, \
           open_until = coalesce(EXCLUDED.open_until, d.open_until), \
           unavailable_since = CASE WHEN cardinality(d.failure_days) + 1 >= $4 \
                                     AND NOT (now() AT TIME ZONE 'UTC')::date = ANY(d.failure_days) \
                                    THEN coalesce(d.unavailable_since, now()) \
                                    ELSE d.unavailable_since END \
         RETURNING unavailable_since IS NOT NULL",
    )
    .bind(domain)
    .bind(error)
    .bind(open_for.map(|d| d.as_millis() as i64))
    .bind(UNAVAILABLE_AFTER_DAYS)
    .fetch_one(db)
    .await
}

/// Forgets `domain`'s failures and unavailability; whether it had any.
pub async fn clear(db: &Db, domain: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM delivery_domains WHERE domain = $1")
        .bind(domain)
        .execute(db)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// A domain's record, for operators.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DomainRecord {
    pub domain: String,
    pub failure_days: Vec<NaiveDate>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub open_until: Option<DateTime<Utc>>,
    pub unavailable_since: Option<DateTime<Utc>>,
}

/// Domains with failures on record (only the unavailable ones with `unavailable_only`).
pub async fn list(db: &Db, unavailable_only: bool) -> Result<Vec<DomainRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT domain, failure_days, last_failure_at, last_error, open_until, unavailable_since \
         FROM delivery_domains WHERE NOT $1 OR unavailable_since IS NOT NULL \
         ORDER BY unavailable_since DESC NULLS LAST, domain",
    )
    .bind(unavailable_only)
    .fetch_all(db)
    .await
}
