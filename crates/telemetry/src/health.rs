//! Liveness and readiness.
//!
//! `/health/live` answers 200 while the process runs. `/health/ready` answers 200 only while every
//! registered dependency check passes (PostgreSQL always; Redis, RabbitMQ and storage when
//! configured), so a load balancer or Kubernetes sends no traffic to a replica that cannot serve.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use tokio::sync::RwLock;

use crate::metrics::{DependencyLabels, Metrics};

/// One dependency's check: resolves to `Err(reason)` when it cannot be used.
pub type HealthCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A load gauge that readiness reports without failing on it: `"ok"`, `"saturated"`, ….
pub type LoadProbe = Arc<dyn Fn() -> &'static str + Send + Sync>;

/// The set of dependency checks of this process.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<Vec<(String, HealthCheck)>>>,
    /// Busy is not broken: a saturated pool is reported, and the process stays ready, since
    /// taking every replica out of a load balancer in a surge would turn busy into down.
    load: Arc<RwLock<Vec<(String, LoadProbe)>>>,
    /// Dependencies failing at the last check, so only changes are logged.
    failing: Arc<RwLock<std::collections::HashSet<String>>>,
    /// Set on shutdown: a draining process is not ready, so load balancers stop sending to it.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// The process's background loops, listed at `/health/workers`.
    workers: crate::Workers,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

/// The result of one readiness probe.
#[derive(Debug)]
pub struct Readiness {
    pub ready: bool,
    /// Each load probe's word (`ok`, `saturated`); informative, never failing readiness.
    pub load: Vec<(String, &'static str)>,
    /// Each dependency with `None` when it answers, or why it does not.
    pub dependencies: Vec<(String, Option<String>)>,
}

impl Health {
    /// The process's background loops.
    pub fn workers(&self) -> &crate::Workers {
        &self.workers
    }

    /// Adds a check; a name registered twice is checked once.
    pub async fn register(&self, name: &str, check: HealthCheck) {
        let mut checks = self.checks.write().await;
        if !checks.iter().any(|(n, _)| n == name) {
            checks.push((name.to_string(), check));
        }
    }

    /// Adds a load probe, reported by readiness without deciding it.
    pub async fn report_load(&self, name: &str, probe: LoadProbe) {
        let mut load = self.load.write().await;
        if !load.iter().any(|(n, _)| n == name) {
            load.push((name.to_string(), probe));
        }
    }

    /// Marks the process as shutting down: readiness is false from now on.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs every check (each bounded to two seconds) and records the results as metrics.
    pub async fn check(&self, metrics: &Metrics) -> Readiness {
        let checks = self.checks.read().await.clone();
        let results = join_all(checks.iter().map(|(name, check)| {
            let check = check.clone();
            async move {
                let outcome = match tokio::time::timeout(Duration::from_secs(2), check()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(reason)) => Some(reason),
                    Err(_) => Some("no answer within 2 s".to_string()),
                };
                (name.clone(), outcome)
            }
        }))
        .await;
        let mut failing = self.failing.write().await;
        for (name, outcome) in &results {
            match outcome {
                Some(reason) if failing.insert(name.clone()) => {
                    tracing::warn!(dependency = %name, %reason, "dependency unavailable; not ready");
                }
                None if failing.remove(name) => {
                    tracing::info!(dependency = %name, "dependency available again");
                }
                _ => {}
            }
            metrics
                .dependency_up
                .get_or_create(&DependencyLabels {
                    dependency: name.clone(),
                })
                .set(i64::from(outcome.is_none()));
        }
        drop(failing);
        let mut results = results;
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            results.push(("process".to_string(), Some("shutting down".to_string())));
        }
        let load = self
            .load
            .read()
            .await
            .iter()
            .map(|(name, probe)| (name.clone(), probe()))
            .collect();
        Readiness {
            load,
            ready: results.iter().all(|(_, outcome)| outcome.is_none()),
            dependencies: results,
        }
    }
}

/// Checks every dependency every `interval` until `stop` resolves, so failures and recoveries
/// are logged and `stampede_dependency_up` stays current even when nobody probes readiness.
pub async fn watch(
    health: Health,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        health.check(&metrics).await;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
