//! What a run saw: every request's outcome and latency, and scenario measurements (fan-out
//! completion, streaming delivery), gathered by one task through a channel so the load itself
//! never waits on a lock. The collector bins them per second for the report and prints progress.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// How a request ended, as the report counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 429: the server refused in time, as it should under overload.
    Limited,
    /// Another 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No answer within the client's time-out.
    Timeout,
    /// No connection, or it broke.
    Transport,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Limited,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::Transport,
    ];

    pub fn from_status(status: u16) -> Self {
        match status {
            200..=399 => Outcome::Ok,
            429 => Outcome::Limited,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }

    pub fn from_reqwest(result: &Result<reqwest::Response, reqwest::Error>) -> Self {
        match result {
            Ok(r) => Self::from_status(r.status().as_u16()),
            Err(e) if e.is_timeout() => Outcome::Timeout,
            Err(e) => match e.status() {
                Some(s) => Self::from_status(s.as_u16()),
                None => Outcome::Transport,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "2xx",
            Outcome::Limited => "429",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::Timeout => "timeout",
            Outcome::Transport => "connect",
        }
    }

    /// Counted in the error rate (429 has its own rate).
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Limited)
    }

    fn index(self) -> usize {
        self as usize
    }
}

enum Event {
    Request {
        op: &'static str,
        at: Duration,
        latency_ms: f32,
        outcome: Outcome,
    },
    Measure {
        name: &'static str,
        at: Duration,
        value_ms: f32,
    },
    Finish(oneshot::Sender<Collected>),
}

/// Hands samples to the collector; cheap to clone into every client task.
#[derive(Clone, Debug)]
pub struct Recorder {
    origin: Instant,
    tx: mpsc::UnboundedSender<Event>,
}

/// Per-second counts and latencies of one operation.
#[derive(Clone, Debug, Default)]
pub struct Bin {
    pub counts: [u64; 6],
    pub latencies_ms: Vec<f32>,
}

/// Everything a run recorded.
#[derive(Debug, Default)]
pub struct Collected {
    /// op → second → bin.
    pub requests: BTreeMap<&'static str, BTreeMap<u64, Bin>>,
    /// measurement → (seconds into the run, value in ms).
    pub measures: BTreeMap<&'static str, Vec<(f64, f32)>>,
    /// The wall-clock time of the run's second 0, in milliseconds since the Unix epoch.
    pub origin_unix_ms: u128,
}

impl Collected {
    /// Every second of the run with requests, all operations together, one JSON object a line:
    /// its wall-clock start (`t_unix_ms`), the count of each outcome and the p99 latency of the
    /// answered ones — for matching the run against events outside it (the chaos run's faults).
    pub fn per_second_lines(&self) -> String {
        let mut seconds: BTreeMap<u64, Bin> = BTreeMap::new();
        for bins in self.requests.values() {
            for (second, bin) in bins {
                let all = seconds.entry(*second).or_default();
                for (sum, n) in all.counts.iter_mut().zip(bin.counts) {
                    *sum += n;
                }
                all.latencies_ms.extend(&bin.latencies_ms);
            }
        }
        let mut out = String::new();
        for (second, mut bin) in seconds {
            bin.latencies_ms.sort_by(f32::total_cmp);
            let p99 = bin
                .latencies_ms
                .get(((bin.latencies_ms.len().max(1) - 1) as f64 * 0.99).round() as usize)
                .copied();
            let mut line = serde_json::Map::new();
            line.insert(
                "t_unix_ms".into(),
                (self.origin_unix_ms as u64 + second * 1000).into(),
            );
            for outcome in Outcome::ALL {
                line.insert(outcome.name().into(), bin.counts[outcome.index()].into());
            }
            line.insert("p99_ms".into(), serde_json::json!(p99));
            out.push_str(&serde_json::Value::Object(line).to_string());
            out.push('\n');
        }
        out
    }
}

impl Recorder {
    /// Starts the collector; it prints a progress line every `progress` to standard error.
    pub fn start(label: &'static str, progress: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let origin = Instant::now();
        tokio::spawn(collect(label, origin, progress, rx));
        Recorder { origin, tx }
    }

    /// When the run's clock started.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Seconds since the recorder started: the run's clock.
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// One request of `op`, which started at `started`.
    pub fn request(&self, op: &'static str, started: Instant, outcome: Outcome) {
        let now = Instant::now();
        let _ = self.tx.send(Event::Request {
            op,
            at: now.saturating_duration_since(self.origin),
            latency_ms: now.saturating_duration_since(started).as_secs_f32() * 1000.0,
            outcome,
        });
    }

    /// A scenario measurement (fan-out completion, delivery latency), in milliseconds.
    pub fn measure(&self, name: &'static str, value: Duration) {
        let _ = self.tx.send(Event::Measure {
            name,
            at: self.origin.elapsed(),
            value_ms: value.as_secs_f32() * 1000.0,
        });
    }

    /// Stops collecting and returns what was recorded.
    pub async fn finish(self) -> Collected {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Event::Finish(tx));
        rx.await.unwrap_or_default()
    }
}

async fn collect(
    label: &'static str,
    origin: Instant,
    progress: Duration,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    let mut data = Collected {
        origin_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .saturating_sub(origin.elapsed().as_millis()),
        ..Collected::default()
    };
    let mut ticker = tokio::time::interval(progress);
    ticker.tick().await;
    // What arrived since the last progress line.
    let mut window: Vec<(f32, Outcome)> = Vec::new();
    let mut measures_window = 0u64;
    let mut total = 0u64;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Request { op, at, latency_ms, outcome }) => {
                    let bin = data.requests.entry(op).or_default().entry(at.as_secs()).or_default();
                    bin.counts[outcome.index()] += 1;
                    if outcome == Outcome::Ok {
                        bin.latencies_ms.push(latency_ms);
                    }
                    window.push((latency_ms, outcome));
                    total += 1;
                }
                Some(Event::Measure { name, at, value_ms }) => {
                    data.measures.entry(name).or_default().push((at.as_secs_f64(), value_ms));
                    measures_window += 1;
                }
                Some(Event::Finish(reply)) => {
                    let _ = reply.send(data);
                    return;
                }
                None => return,
            },
            _ = ticker.tick() => {
                let secs = progress.as_secs_f64();
                let n = window.len().max(1) as f64;
                let count = |o: Outcome| window.iter().filter(|(_, x)| *x == o).count() as f64;
                let errors = window.iter().filter(|(_, o)| o.is_error()).count() as f64;
                let mut ok: Vec<f32> = window.iter().filter(|(_, o)| *o == Outcome::Ok).map(|(l, _)| *l).collect();
                ok.sort_by(f32::total_cmp);
                let p99 = percentile(&ok, 0.99);
                eprintln!(
                    "{label}: {:>5.0}s  {total} requests  last {:.0}s: {:.1} ok/s, 429 {:.1} %, errors {:.1} %, p99 {}{}",
                    origin.elapsed().as_secs_f64(),
                    secs,
                    count(Outcome::Ok) / secs,
                    count(Outcome::Limited) / n * 100.0,
                    errors / n * 100.0,
                    if p99.is_nan() { "-".to_string() } else { format!("{p99:.0} ms") },
                    if measures_window > 0 { format!(", {measures_window} measurements") } else { String::new() },
                );
                window.clear();
                measures_window = 0;
            }
        }
    }
}

/// The `p` quantile (0..=1) of sorted values, by the nearest-rank method; NaN when empty.
pub fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_percentiles() {
        assert_eq!(Outcome::from_status(201), Outcome::Ok);
        assert_eq!(Outcome::from_status(429), Outcome::Limited);
        assert_eq!(Outcome::from_status(422), Outcome::ClientError);
        assert_eq!(Outcome::from_status(503), Outcome::ServerError);
        assert!(!Outcome::Limited.is_error());
        assert!(Outcome::Timeout.is_error());
        let v: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[tokio::test]
    async fn collects_per_second() {
        let r = Recorder::start("test", Duration::from_secs(60));
        let t = Instant::now();
        r.request("signup", t, Outcome::Ok);
        r.request("signup", t, Outcome::Limited);
        r.measure("fanout", Duration::from_millis(250));
        let c = r.finish().await;
        let bin = &c.requests["signup"][&0];
        assert_eq!(bin.counts[0], 1);
        assert_eq!(bin.counts[1], 1);
        assert_eq!(bin.latencies_ms.len(), 1);
        assert_eq!(c.measures["fanout"][0].1, 250.0);
    }
}
