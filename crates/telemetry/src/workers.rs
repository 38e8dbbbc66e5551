//! The background loops of a process — the clock, the pruner, the queue consumers, the outbox
//! relay … — and what each last did, so that an operator can see a loop that stopped or keeps
//! failing: at `/health/workers` on every process, and across processes through
//! `stampede admin workers` (see `stampede_runtime::workers`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What a loop is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// Ended on shutdown, as it should.
    Stopped,
    /// Ended on its own: an error, or its input closed.
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }
}

/// One loop's record.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    pub name: String,
    pub state: State,
    /// The wait between rounds; `None` for a loop driven by its input (a queue, a subscription).
    pub period: Option<Duration>,
    pub started_at: SystemTime,
    pub last_round_at: Option<SystemTime>,
    pub last_ok_at: Option<SystemTime>,
    pub rounds: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

impl WorkerStatus {
    /// As `/health/workers` shows it.
    pub fn to_json(&self) -> Value {
        let ago = |t: Option<SystemTime>| {
            t.and_then(|t| SystemTime::now().duration_since(t).ok())
                .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
        };
        json!({
            "name": self.name,
            "state": self.state.name(),
            "period_seconds": self.period.map(|p| p.as_secs_f64()),
            "started_at": unix(self.started_at),
            "seconds_since_last_round": ago(self.last_round_at),
            "seconds_since_last_ok": ago(self.last_ok_at),
            "rounds": self.rounds,
            "failures": self.failures,
            "last_error": self.last_error,
        })
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The loops of this process.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    all: Arc<Mutex<Vec<WorkerStatus>>>,
    heartbeat: Arc<std::sync::atomic::AtomicBool>,
}

impl Workers {
    /// Records a loop that starts now and answers the handle it reports through.
    pub async fn start(&self, name: &str, period: Option<Duration>) -> WorkerHandle {
        let mut all = self.all.lock().await;
        all.push(WorkerStatus {
            name: name.to_string(),
            state: State::Running,
            period,
            started_at: SystemTime::now(),
            last_round_at: None,
            last_ok_at: None,
            rounds: 0,
            failures: 0,
            last_error: None,
        });
        WorkerHandle {
            workers: self.clone(),
            index: all.len() - 1,
        }
    }

    /// `true` for the first caller only: whoever starts the process's one heartbeat.
    pub fn claim_heartbeat(&self) -> bool {
        !self
            .heartbeat
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Every loop this process started, in the order they started.
    pub async fn list(&self) -> Vec<WorkerStatus> {
        self.all.lock().await.clone()
    }
}

/// How a loop reports what it does.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    workers: Workers,
    index: usize,
}

impl WorkerHandle {
    /// A round ended, with `Err(reason)` when it failed; answers the record as it now stands.
    pub async fn round(&self, outcome: Result<(), String>) -> WorkerStatus {
        self.update(|status| {
            let now = SystemTime::now();
            status.rounds += 1;
            status.last_round_at = Some(now);
            match outcome {
                Ok(()) => status.last_ok_at = Some(now),
                Err(reason) => {
                    status.failures += 1;
                    status.last_error = Some(reason);
                }
            }
        })
        .await
    }

    /// The loop ended: `Stopped` on shutdown, else `Failed` with `reason`.
    pub async fn finish(&self, state: State, reason: Option<String>) -> WorkerStatus {
        self.update(|status| {
            status.state = state;
            if reason.is_some() {
                status.last_error = reason;
            }
        })
        .await
    }

    async fn update(&self, change: impl FnOnce(&mut WorkerStatus)) -> WorkerStatus {
        let mut all = self.workers.all.lock().await;
        let status = &mut all[self.index];
        change(status);
        status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_failures_and_the_end_are_recorded() {
        let workers = Workers::default();
        let clock = workers.start("clock", Some(Duration::from_secs(5))).await;
        let relay = workers.start("relay", None).await;
        clock.round(Ok(())).await;
        let status = clock.round(Err("database unavailable".into())).await;
        assert_eq!((status.rounds, status.failures), (2, 1));
        assert!(status.last_ok_at.is_some());
        assert_eq!(status.last_error.as_deref(), Some("database unavailable"));
        relay
            .finish(State::Failed, Some("input closed".into()))
            .await;
        let listed = workers.list().await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].state, State::Running);
        assert_eq!(listed[1].state, State::Failed);
        let shown = listed[0].to_json();
        assert_eq!(shown["state"], "running");
        assert_eq!(shown["period_seconds"], 5.0);
        assert_eq!(shown["failures"], 1);
    }
}
