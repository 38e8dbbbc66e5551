//! `dead-peers` (filled in with federation): a share of remote inboxes that time out or fail
//! while the server delivers to them — does delivery to the living stay on time, do retries
//! back off, does the dead share stop costing work?
//!
//! The plan, for when Stampede federates: start `--peers` fake remote servers on loopback
//! (distinct 127.0.0.x addresses), `--dead-share` of which hang until the sender's time-out
//! (`timeout`), answer 5xx (`error`), or refuse connections (`refuse`); give local accounts
//! followers on every peer; post; measure per live peer the time to delivery and count the
//! attempts the dead ones receive over time. Until then the preflight finds no ActivityPub
//! endpoints and stops before sending anything.

use reqwest::StatusCode;

use super::api;
use super::slo::Catalogue;
use super::{Common, not_started};

/// How a dead peer fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Failure {
    Timeout,
    Error,
    Refuse,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Fake remote servers on loopback.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=250))]
    pub peers: u64,
    /// Share of them that are dead, 0..=1.
    #[arg(long, default_value_t = 0.3)]
    pub dead_share: f64,
    /// How the dead ones fail.
    #[arg(long, value_enum, default_value_t = Failure::Timeout)]
    pub failure: Failure,
    /// Run length in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    if !(0.0..=1.0).contains(&args.dead_share) {
        return Err(not_started(anyhow::anyhow!(
            "--dead-share must be between 0 and 1, not {}",
            args.dead_share
        )));
    }
    let catalogue = Catalogue {
        ops: vec!["deliver"],
        measures: vec!["delivery"],
        shares: vec![],
    };
    let prep = args.common.prepare("dead-peers", catalogue, &[]).await?;
    let client = api::client(prep.timeout, 2)?;
    // A federating server answers the shared inbox (401/400 without a signature) and NodeInfo.
    let mut missing = Vec::new();
    for (method, path) in [
        (reqwest::Method::GET, "/.well-known/nodeinfo"),
        (reqwest::Method::POST, "/inbox"),
    ] {
        let status = client
            .request(method.clone(), format!("{}{path}", prep.base))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| not_started(e.into()))?;
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            missing.push(format!("{method} {path} → {status}"));
        }
    }
    let why = if missing.is_empty() {
        "this server answers ActivityPub endpoints, but the federation half of dead-peers is not \
         written yet (see loadtest/src/surge/dead_peers.rs)"
            .to_string()
    } else {
        format!(
            "dead-peers needs federation (ActivityPub delivery to remote inboxes), which this \
             server does not serve yet ({}); the scenario will be filled in with it",
            missing.join(", ")
        )
    };
    Err(not_started(anyhow::anyhow!(why)))
}
