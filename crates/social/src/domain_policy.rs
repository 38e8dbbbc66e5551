//! The instance's own moderation lists, kept in memory by every process: domain blocks
//! (defederation), domain allows (limited federation mode) and IP blocks.
//!
//! They are read on hot paths — every inbound activity, every outbound delivery, every request
//! — so each process keeps a snapshot and looks at most once a second at
//! `instance_policy_version`, which a statement trigger moves on every change, before
//! answering; a change made anywhere applies everywhere within a second, and a process never
//! admits a blocked domain because it has just started or was idle.
//!
//! A block of `example.com` covers its subdomains (Mastodon's rule); a domain written with a
//! port (`127.0.0.1:4000`, as servers on one machine are named) matches exactly that authority.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use stampede_db::Db;

/// How often a process looks for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How hard a domain is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Only the flags (media, reports) apply.
    Noop,
    /// Its accounts are silenced: they reach only their followers.
    Silence,
    /// Nothing is exchanged with it; its accounts are suspended.
    Suspend,
}

impl Severity {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "noop" => Severity::Noop,
            "silence" => Severity::Silence,
            "suspend" => Severity::Suspend,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Noop => "noop",
            Severity::Silence => "silence",
            Severity::Suspend => "suspend",
        }
    }
}

/// One domain block.
#[derive(Debug, Clone)]
pub struct Block {
    pub domain: String,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub created_at: DateTime<Utc>,
}

/// What an IP block does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpSeverity {
    /// Sign-ups from it wait for a moderator's approval.
    SignUpRequiresApproval,
    /// Sign-ups from it are refused.
    SignUpBlock,
    /// Every request from it is refused.
    NoAccess,
}

impl IpSeverity {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "sign_up_requires_approval" => IpSeverity::SignUpRequiresApproval,
            "sign_up_block" => IpSeverity::SignUpBlock,
            "no_access" => IpSeverity::NoAccess,
            _ => return None,
        })
    }
}

/// One IP block: an address range (`ip/prefix`) until it expires.
#[derive(Debug, Clone)]
struct IpRule {
    network: IpAddr,
    prefix: u8,
    severity: IpSeverity,
    expires_at: Option<DateTime<Utc>>,
}

impl IpRule {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The lists at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    version: Option<i64>,
    /// By lower-cased domain.
    blocks: HashMap<String, Block>,
    allows: HashSet<String>,
    ips: Vec<IpRule>,
    /// LIMITED_FEDERATION_MODE: only allowed domains federate.
    limited: bool,
}

/// `domain` (lower-cased), then without its port, then each parent domain.
fn candidates(domain: &str) -> Vec<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut out = vec![domain.clone()];
    let host = match domain.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') => {
            out.push(host.to_string());
            host.to_string()
        }
        _ => domain.clone(),
    };
    if host.parse::<IpAddr>().is_err() {
        let mut rest = host.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            out.push(parent.to_string());
            rest = parent;
        }
    }
    out
}

impl Snapshot {
    /// The block that covers `domain` (its own, or a parent domain's).
    pub fn block(&self, domain: &str) -> Option<&Block> {
        candidates(domain)
            .iter()
            .find_map(|candidate| self.blocks.get(candidate))
    }

    /// Nothing is exchanged with `domain`: it is suspended, or the server federates only with
    /// allowed domains and it is not one.
    pub fn refuses(&self, domain: &str) -> bool {
        if self
            .block(domain)
            .is_some_and(|b| b.severity == Severity::Suspend)
        {
            return true;
        }
        self.limited
            && !candidates(domain)
                .iter()
                .any(|candidate| self.allows.contains(candidate))
    }

    /// The moment `domain`'s block silenced it, when it does.
    pub fn silenced_since(&self, domain: &str) -> Option<DateTime<Utc>> {
        self.block(domain)
            .filter(|b| b.severity == Severity::Silence)
            .map(|b| b.created_at)
    }

    /// Media from `domain` is neither fetched nor stored.
    pub fn rejects_media(&self, domain: &str) -> bool {
        self.block(domain)
            .is_some_and(|b| b.reject_media || b.severity == Severity::Suspend)
    }

    /// Reports from `domain` are dropped.
    pub fn rejects_reports(&self, domain: &str) -> bool {
        self.block(domain)
            .is_some_and(|b| b.reject_reports || b.severity == Severity::Suspend)
    }

    /// The strictest unexpired IP block covering `ip`.
    pub fn ip_block(&self, ip: IpAddr) -> Option<IpSeverity> {
        let now = Utc::now();
        let rank = |s: IpSeverity| match s {
            IpSeverity::SignUpRequiresApproval => 0,
            IpSeverity::SignUpBlock => 1,
            IpSeverity::NoAccess => 2,
        };
        self.ips
            .iter()
            .filter(|r| r.expires_at.is_none_or(|at| at > now) && r.contains(ip))
            .map(|r| r.severity)
            .max_by_key(|s| rank(*s))
    }

    /// Whether any IP block exists (requests skip the look-up when none does).
    pub fn has_ip_blocks(&self) -> bool {
        !self.ips.is_empty()
    }
}

/// The process's copy of the lists; cheap to share.
#[derive(Debug)]
pub struct DomainPolicy {
    db: Db,
    limited: bool,
    snapshot: RwLock<Arc<Snapshot>>,
    checked: Mutex<Option<Instant>>,
}

impl DomainPolicy {
    /// `limited`: LIMITED_FEDERATION_MODE.
    pub fn new(db: Db, limited: bool) -> Arc<Self> {
        Arc::new(DomainPolicy {
            db,
            limited,
            snapshot: RwLock::default(),
            checked: Mutex::new(None),
        })
    }

    /// The lists, from memory; at most once a second the first caller looks whether they
    /// changed (one small query, a reload only after a change) before answering. The caller
    /// must not hold a connection of this pool.
    pub async fn get(self: &Arc<Self>) -> Result<Arc<Snapshot>, sqlx::Error> {
        let due = {
            let mut checked = self.checked.lock();
            let due = checked.is_none_or(|at| at.elapsed() >= CHECK_EVERY);
            if due {
                *checked = Some(Instant::now());
            }
            due
        };
        if due {
            // On an error the next look is a second later too: a database that is down is
            // not asked again by every request.
            self.load().await?;
        }
        Ok(self.snapshot.read().clone())
    }

    /// Whether `domain` is refused, by the lists as they are now (a look at the version, and a
    /// reload after a change): what a caller asks before dropping something for good because
    /// its copy says so, since a block lifted less than a second ago may still be in it.
    pub async fn refuses_now(&self, domain: &str) -> Result<bool, sqlx::Error> {
        self.load().await?;
        Ok(self.current().refuses(domain))
    }

    /// The lists as last loaded, without looking for changes (for callers holding a
    /// connection; another path refreshes them).
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Reloads now when the lists changed (after this process changed them itself, so that
    /// its next request sees the change).
    pub async fn load(&self) -> Result<(), sqlx::Error> {
        // The version first: lists read after it are at least as new as it says.
        let version: i64 = sqlx::query_scalar("SELECT version FROM instance_policy_version")
            .fetch_one(&self.db)
            .await?;
        if self.snapshot.read().version == Some(version) {
            return Ok(());
        }
        type BlockRow = (String, String, bool, bool, DateTime<Utc>);
        let blocks: Vec<BlockRow> = sqlx::query_as(
            "SELECT domain, severity, reject_media, reject_reports, created_at FROM domain_blocks",
        )
        .fetch_all(&self.db)
        .await?;
        let allows: Vec<String> = sqlx::query_scalar("SELECT lower(domain) FROM domain_allows")
            .fetch_all(&self.db)
            .await?;
        type IpRow = (String, i32, String, Option<DateTime<Utc>>);
        let ips: Vec<IpRow> = sqlx::query_as(
            "SELECT host(ip), masklen(ip), severity, expires_at FROM ip_blocks \
             WHERE expires_at IS NULL OR expires_at > now()",
        )
        .fetch_all(&self.db)
        .await?;
        let snapshot = Snapshot {
            version: Some(version),
            blocks: blocks
                .into_iter()
                .filter_map(
                    |(domain, severity, reject_media, reject_reports, created_at)| {
                        Some((
                            domain.to_ascii_lowercase(),
                            Block {
                                domain,
                                severity: Severity::parse(&severity)?,
                                reject_media,
                                reject_reports,
                                created_at,
                            },
                        ))
                    },
                )
                .collect(),
            allows: allows.into_iter().collect(),
            ips: ips
                .into_iter()
                .filter_map(|(ip, prefix, severity, expires_at)| {
                    Some(IpRule {
                        network: ip.parse().ok()?,
                        prefix: u8::try_from(prefix).ok()?,
                        severity: IpSeverity::parse(&severity)?,
                        expires_at,
                    })
                })
                .collect(),
            limited: self.limited,
        };
        // Two loads may overlap: the newer lists win.
        let mut current = self.snapshot.write();
        if current.version.is_none_or(|v| v < version) {
            *current = Arc::new(snapshot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(domain: &str, severity: Severity) -> Block {
        Block {
            domain: domain.into(),
            severity,
            reject_media: false,
            reject_reports: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn blocks_cover_subdomains_and_ports_match_exactly() {
        let mut snapshot = Snapshot::default();
        snapshot.blocks.insert(
            "example.com".into(),
            block("example.com", Severity::Suspend),
        );
        snapshot.blocks.insert(
            "127.0.0.1:4000".into(),
            block("127.0.0.1:4000", Severity::Silence),
        );
        assert!(snapshot.refuses("example.com"));
        assert!(snapshot.refuses("Social.EXAMPLE.com"));
        assert!(snapshot.refuses("example.com:8443"));
        assert!(!snapshot.refuses("notexample.com"));
        assert!(snapshot.silenced_since("127.0.0.1:4000").is_some());
        assert!(snapshot.silenced_since("127.0.0.1:4001").is_none());
        assert!(snapshot.rejects_media("a.example.com"));
        snapshot.limited = true;
        snapshot.allows.insert("friends.org".into());
        assert!(!snapshot.refuses("friends.org") && !snapshot.refuses("m.friends.org"));
        assert!(snapshot.refuses("strangers.org"));
    }

    #[test]
    fn ip_ranges() {
        let rule = |ip: &str, prefix, severity| IpRule {
            network: ip.parse().unwrap(),
            prefix,
            severity,
            expires_at: None,
        };
        let snapshot = Snapshot {
            ips: vec![
                rule("192.0.2.0", 24, IpSeverity::SignUpBlock),
                rule("192.0.2.7", 32, IpSeverity::NoAccess),
                rule("2001:db8::", 32, IpSeverity::SignUpRequiresApproval),
            ],
            ..Snapshot::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            snapshot.ip_block(ip("192.0.2.9")),
            Some(IpSeverity::SignUpBlock)
        );
        assert_eq!(
            snapshot.ip_block(ip("192.0.2.7")),
            Some(IpSeverity::NoAccess)
        );
        assert_eq!(
            snapshot.ip_block(ip("::ffff:192.0.2.7")),
            Some(IpSeverity::NoAccess)
        );
        assert_eq!(snapshot.ip_block(ip("192.0.3.1")), None);
        assert_eq!(
            snapshot.ip_block(ip("2001:db8:1::5")),
            Some(IpSeverity::SignUpRequiresApproval)
        );
        assert_eq!(snapshot.ip_block(ip("2001:db9::1")), None);
    }
}
