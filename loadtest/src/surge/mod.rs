//! The surge simulator: scenarios that replay what a migration wave does to a server, each
//! bounded in count and time, aimed only at the address it is given, seeding its own data, and
//! ending with an HTML report, a JSON summary and — when `--slo` rules are given — a pass/fail
//! exit code.
//!
//! ```text
//!  validate input ─▶ preflight (reachable? endpoints there?) ─▶ seed ─▶ load ─▶ report, rules
//!  └──────── exit 2, nothing sent but probes ────────┘                           └ exit 0 / 1
//! ```
//!
//! Nothing is sent before the input is valid and the target has answered the preflight; a
//! problem found there stops the run with exit code 2 and a message saying what to fix.
//!
//! The HTTP load of `signup-wave` and `migration-day` runs on goose (its users, ramp and
//! time limit); streaming clients and fan-out probes are bounded tokio tasks. Every request is
//! also recorded by [`record::Recorder`], whose per-second bins make the report's charts.

pub mod api;
pub mod migration_day;
pub mod profile;
pub mod record;
pub mod report;
pub mod seed;
pub mod signup_wave;
pub mod slo;
pub mod streaming;
pub mod streaming_crowd;
pub mod summary;
pub mod viral_post;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::loopback_only;
use record::Collected;
use slo::{Catalogue, Slo};
use summary::{RunInfo, Summary};

/// A problem found before any load was sent: the input or the target needs fixing.
#[derive(Debug)]
pub struct NotStarted(pub String);

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotStarted {}

/// Marks `e` as found before the load (exit code 2).
pub fn not_started(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(NotStarted(format!("{e:#}")))
}

/// Options every scenario takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The server's web address: `stampede web`/`all`, or the cluster's load balancer.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub base_url: String,
    /// A pass/fail rule, repeatable: 'p99<500ms', 'p99(signup)<2s', 'error-rate<1%',
    /// '429-rate<5%', '5xx-rate<=0%', 'throughput>=50/s', 'fanout-p99<10s'. Any failing rule: exit code 1.
    #[arg(long = "slo", value_name = "RULE")]
    pub slo: Vec<String>,
    /// Where report.html and summary.json go [default: /tmp/stampede-surge/SCENARIO-TIME].
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Seconds between progress lines on standard error.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub progress: u64,
    /// Client time-out of each request, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout: u64,
    /// Allow a target outside 127.0.0.0/8 and ::1. Never point this at a server you do not run.
    #[arg(long)]
    pub allow_remote: bool,
}

/// A scenario ready to send load: its rules parsed, its target checked.
#[derive(Debug)]
pub struct Prepared {
    pub base: String,
    pub rules: Vec<Slo>,
    pub catalogue: Catalogue,
    pub report_dir: PathBuf,
    pub started_at: String,
    pub progress: Duration,
    pub timeout: Duration,
}

impl Common {
    /// Validates the input and checks the target answers, before anything else is sent.
    pub async fn prepare(
        &self,
        scenario: &str,
        catalogue: Catalogue,
        extra_urls: &[(&str, &str)],
    ) -> anyhow::Result<Prepared> {
        let checks = async {
            if !self.allow_remote {
                loopback_only(&self.base_url, "--base-url")?;
                for (name, url) in extra_urls {
                    loopback_only(url, name)?;
                }
            }
            let rules = self
                .slo
                .iter()
                .map(|r| Slo::parse(r, &catalogue))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let base = self.base_url.trim_end_matches('/').to_string();
            url::Url::parse(&base).with_context(|| {
                format!("--base-url {base:?} is not a URL (e.g. http://127.0.0.1:3000)")
            })?;
            api::check_ready(&base).await?;
            anyhow::Ok((base, rules))
        };
        let (base, rules) = checks.await.map_err(not_started)?;
        let now = chrono::Utc::now();
        let report_dir = self.report_dir.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "/tmp/stampede-surge/{scenario}-{}",
                now.format("%Y%m%d-%H%M%S")
            ))
        });
        Ok(Prepared {
            base,
            rules,
            catalogue,
            report_dir,
            started_at: now.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            progress: Duration::from_secs(self.progress),
            timeout: Duration::from_secs(self.timeout),
        })
    }
}

/// Goose logs through `log` to standard output; its warnings go to standard error instead, so
/// standard output carries only the JSON summary.
struct GooseLog;

impl log::Log for GooseLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("goose: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// A goose configuration for `users` clients started `increase_rate` a second, ending after
/// `run_time` seconds at most, with this run's time-out and nothing printed by goose itself.
pub fn goose_config(
    prep: &Prepared,
    users: usize,
    increase_rate: f64,
    run_time: u64,
) -> goose::config::GooseConfiguration {
    if log::set_logger(&GooseLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let mut config = goose::config::GooseConfiguration::default();
    config.host = Some(prep.base.clone());
    config.users = Some(users);
    config.increase_rate = Some(increase_rate.to_string());
    config.run_time = Some(run_time.to_string());
    config.timeout = Some(prep.timeout.as_secs().to_string());
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    config.no_reset_metrics = true;
    config.no_gzip = true;
    config
}

/// This machine, for the report: cores, memory, architecture.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cores} cores, {mem_gib:.0} GiB, {}",
        std::env::consts::ARCH
    )
}

impl Prepared {
    /// Summarises, writes the report and prints where it is and each rule's verdict on standard
    /// output; returns whether every rule passed.
    pub fn finish(&self, info: RunInfo, data: Collected) -> anyhow::Result<bool> {
        std::fs::create_dir_all(&self.report_dir)?;
        std::fs::write(
            self.report_dir.join("seconds.jsonl"),
            data.per_second_lines(),
        )?;
        let summary = Summary::build(
            info,
            data,
            &self.rules,
            &self.catalogue,
            &self.started_at,
            &machine(),
        );
        report::write(&self.report_dir, &summary)?;
        // Standard output is for people (goose prints a line there too); the numbers are in
        // summary.json.
        let html = self.report_dir.join("report.html");
        let html = html.canonicalize().unwrap_or(html);
        println!("report: file://{}", html.display());
        println!(
            "summary: {}",
            self.report_dir.join("summary.json").display()
        );
        for r in &summary.slo {
            println!(
                "slo {:<28} observed {:<18} limit {:<14} {}",
                r["rule"].as_str().unwrap_or(""),
                r["observed_text"].as_str().unwrap_or(""),
                r["limit_text"].as_str().unwrap_or(""),
                if r["pass"] == true { "pass" } else { "FAIL" }
            );
        }
        Ok(summary.pass)
    }
}
