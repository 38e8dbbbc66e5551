//! The outbound guard: no request leaving the server may reach loopback, private, link-local,
//! shared (CGNAT), multicast or cloud-metadata addresses — the classic SSRF targets — unless
//! ALLOWED_PRIVATE_ADDRESSES (Mastodon's setting, a comma-separated list of CIDRs) names them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Which addresses outbound requests may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    allowed: Vec<IpNet>,
}

/// A bad ALLOWED_PRIVATE_ADDRESSES entry.
#[derive(Debug, thiserror::Error)]
#[error("ALLOWED_PRIVATE_ADDRESSES: {0:?} is not an address or CIDR range")]
pub struct BadRange(pub String);

impl Guard {
    /// A guard that also permits `allowed` (ALLOWED_PRIVATE_ADDRESSES, already parsed).
    pub fn new(allowed: Vec<IpNet>) -> Guard {
        Guard { allowed }
    }

    /// Parses `127.0.0.0/8,::1` (single addresses allowed); empty means none.
    pub fn parse(value: &str) -> Result<Guard, BadRange> {
        let allowed = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadRange(s.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Guard { allowed })
    }

    /// Whether a request may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped and -compatible IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, the cloud metadata services among them
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]) // NAT64 of anything
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || ip.segments()[..6] == [0; 6] // IPv4-compatible, deprecated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let guard = Guard::default();
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!guard.permits(ip(bad)), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(guard.permits(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_what_it_names() {
        let guard = Guard::parse("127.0.0.0/8, ::1").expect("parse");
        assert!(guard.permits(ip("127.0.0.2")));
        assert!(guard.permits(ip("::1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(!guard.permits(ip("10.0.0.1")));
        assert!(!guard.permits(ip("169.254.169.254")));
        assert!(Guard::parse("").expect("empty").allowed.is_empty());
        assert!(
            Guard::parse("10.0.0.1")
                .expect("single")
                .permits(ip("10.0.0.1"))
        );
        assert!(Guard::parse("localhost").is_err());
    }
}
