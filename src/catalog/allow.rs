//! Where upstreams registered at run time may be reached. Checked on the resolved address of every connection (a
//! resolver that drops every address outside the allowlist), never on the URL text alone; redirects are never
//! followed. Public addresses are allowed; every special-purpose address (IANA's registries, multicast: see
//! [`super::special`]) only when a configured network contains it, and cloud metadata addresses only when listed
//! exactly.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{UpstreamConfig, UpstreamTransport};

use super::special::{IPV4, IPV6, METADATA, Special};

fn networks(table: &'static [Special]) -> Vec<(IpNet, &'static Special)> {
    // Every entry parses (tested); one that did not would be skipped rather than stop the gateway.
    table
        .iter()
        .filter_map(|s| Some((s.network.parse().ok()?, s)))
        .collect()
}

/// Special-purpose networks, IPv4 and IPv6, most specific first (so that an address is named by its own entry).
static SPECIAL: LazyLock<Vec<(IpNet, &'static Special)>> = LazyLock::new(|| {
    let mut all: Vec<_> = networks(IPV4).into_iter().chain(networks(IPV6)).collect();
    all.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
    all
});
/// Cloud instance-metadata addresses.
static METADATA_NETS: LazyLock<Vec<(IpNet, &'static Special)>> =
    LazyLock::new(|| networks(METADATA));

/// The special range `ip` lies in, as admins read it: `network (name, source)`.
fn range_of(ip: IpAddr) -> String {
    METADATA_NETS
        .iter()
        .chain(SPECIAL.iter())
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, s)| format!("{} ({}, {})", s.network, s.name, s.source))
        .unwrap_or_else(|| "a special-purpose range".to_string())
}

/// Why an upstream's URL, or the allowlist itself, is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AllowError {
    #[error("`{0}` is not a network (CIDR) or address")]
    Network(String),
    #[error("`{url}` is not a URL: {reason}")]
    NotUrl { url: String, reason: String },
    #[error("`{0}` is not an http(s) URL")]
    Scheme(String),
    #[error("credentials go in `headers`, never in the URL")]
    Credentials,
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error(
        "{ip} is in {range}, outside the networks upstreams may be registered on (registry.allowed_networks)"
    )]
    Outside { ip: IpAddr, range: String },
    #[error("cannot build HTTP client: {0}")]
    Client(String),
}

/// The networks registered upstreams may be reached on, besides public addresses.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    networks: Vec<IpNet>,
}

impl Allowlist {
    pub fn parse(networks: &[String]) -> Result<Self, AllowError> {
        let networks = networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| AllowError::Network(n.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    fn listed(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether a registered upstream may be reached at `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        // IPv4 carried in IPv6 (mapped, compatible, NAT64, 6to4) is judged as the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => {
                let seg = v6.segments();
                let embedded = |hi: u16, lo: u16| {
                    IpAddr::V4(std::net::Ipv4Addr::new(
                        (hi >> 8) as u8,
                        hi as u8,
                        (lo >> 8) as u8,
                        lo as u8,
                    ))
                };
                if let Some(v4) = v6.to_ipv4_mapped() {
                    IpAddr::V4(v4)
                } else if (seg[..6] == [0, 0, 0, 0, 0, 0]
                    && !v6.is_loopback()
                    && !v6.is_unspecified())
                    || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                {
                    // IPv4-compatible and NAT64 (64:ff9b::/96) addresses.
                    embedded(seg[6], seg[7])
                } else if seg[0] == 0x2002 {
                    embedded(seg[1], seg[2])
                } else {
                    ip
                }
            }
            v4 => v4,
        };
        if METADATA_NETS.iter().any(|(m, _)| m.contains(&ip)) {
            // Only an exact entry (a /32 or /128 of it) opens a metadata address.
            return self
                .networks
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && n.contains(&ip));
        }
        let special = SPECIAL.iter().any(|(n, _)| n.contains(&ip));
        !special || self.listed(ip)
    }

    /// An HTTP client for one registered upstream: its resolver keeps only allowed addresses, on every
    /// connection. An address given literally in the URL is checked by [`Allowlist::check_url`].
    pub fn client(self: &Arc<Self>) -> Result<reqwest::Client, AllowError> {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(Resolver(Arc::clone(self))))
            // A proxy from the environment would be checked instead of the upstream: never use one.
            .no_proxy()
            .build()
            .map_err(|e| AllowError::Client(e.to_string()))
    }

    /// The HTTP client of a registered HTTP upstream, after checking its URL (none for stdio upstreams).
    pub fn client_for(
        self: &Arc<Self>,
        upstream: &UpstreamConfig,
    ) -> Result<Option<reqwest::Client>, AllowError> {
        match &upstream.transport {
            UpstreamTransport::Http(http) => {
                self.check_url(&http.url)?;
                self.client().map(Some)
            }
            UpstreamTransport::Stdio(_) => Ok(None),
        }
    }

    /// Checks a URL's scheme, and its host when it is an address.
    pub fn check_url(&self, url: &str) -> Result<(), AllowError> {
        let parsed = url::Url::parse(url).map_err(|e| AllowError::NotUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AllowError::Scheme(url.to_string()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(AllowError::Credentials);
        }
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(AllowError::NoHost(url.to_string())),
        };
        match ip {
            Some(ip) if !self.allows(ip) => Err(AllowError::Outside {
                ip,
                range: range_of(ip),
            }),
            _ => Ok(()),
        }
    }
}

struct Resolver(Arc<Allowlist>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowlist = Arc::clone(&self.0);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| allowlist.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                tracing::warn!(%host, addresses = ?resolved, "registered upstream resolves outside the allowlist");
                return Err(
                    format!("`{host}` resolves only to addresses outside the allowlist").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_refuse_internal_and_metadata_addresses() {
        let none = Allowlist::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!none.allows(refused.parse().unwrap()), "{refused}");
        }
        assert!(none.allows("93.184.216.34".parse().unwrap()));
        let loopback = Allowlist::parse(&["127.0.0.0/8".into()]).unwrap();
        assert!(loopback.allows("127.0.0.1".parse().unwrap()));
        // A wide network never opens the metadata address; only an exact entry does.
        let wide = Allowlist::parse(&["169.254.0.0/16".into()]).unwrap();
        assert!(!wide.allows("169.254.169.254".parse().unwrap()));
        assert!(wide.allows("169.254.1.1".parse().unwrap()));
        assert!(loopback.check_url("http://169.254.169.254/latest").is_err());
        assert!(loopback.check_url("file:///etc/passwd").is_err());
        assert!(loopback.check_url("http://user:pw@127.0.0.1/mcp").is_err());
        assert!(loopback.check_url("http://127.0.0.1:9/mcp").is_ok());
        // The refusal names the range, as the table does.
        let refused = none
            .check_url("http://10.1.2.3/mcp")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("10.0.0.0/8 (Private-Use, RFC 1918)"),
            "{refused}"
        );
        let refused = none
            .check_url("http://[fd00:ec2::254]/mcp")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("AWS instance metadata (IPv6)"),
            "{refused}"
        );
        assert!(Allowlist::parse(&["not a net".into()]).is_err());
    }

    /// The first, a middle and the last address of a network.
    fn samples(net: &IpNet) -> Vec<IpAddr> {
        let first = net.network();
        let last = net.broadcast();
        let middle = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                IpAddr::V4((u32::from(a) + (u32::from(b) - u32::from(a)) / 2).into())
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                IpAddr::V6((u128::from(a) + (u128::from(b) - u128::from(a)) / 2).into())
            }
            _ => first,
        };
        vec![first, middle, last]
    }

    /// Whether `ip` is an IPv6 address carrying an IPv4 one (judged as that address).
    fn carries_v4(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()
            || v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            || v6.segments()[0] == 0x2002
            || (v6.segments()[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified()))
    }

    /// The address just outside a network on either side, when it is not special itself.
    fn neighbours(net: &IpNet) -> Vec<IpAddr> {
        let step = |ip: IpAddr, up: bool| -> Option<IpAddr> {
            match ip {
                IpAddr::V4(v4) => {
                    let n = u32::from(v4);
                    (if up {
                        n.checked_add(1)
                    } else {
                        n.checked_sub(1)
                    })
                    .map(|n| IpAddr::V4(n.into()))
                }
                IpAddr::V6(v6) => {
                    let n = u128::from(v6);
                    (if up {
                        n.checked_add(1)
                    } else {
                        n.checked_sub(1)
                    })
                    .map(|n| IpAddr::V6(n.into()))
                }
            }
        };
        [step(net.network(), false), step(net.broadcast(), true)]
            .into_iter()
            .flatten()
            .filter(|ip| !carries_v4(*ip))
            .filter(|ip| {
                !SPECIAL
                    .iter()
                    .chain(METADATA_NETS.iter())
                    .any(|(n, _)| n.contains(ip))
            })
            .collect()
    }

    #[test]
    fn every_special_purpose_range_is_refused_unless_listed() {
        let none = Allowlist::default();
        for entry in IPV4.iter().chain(IPV6) {
            let net: IpNet = entry
                .network
                .parse()
                .unwrap_or_else(|_| panic!("{}", entry.network));
            let listed = Allowlist::parse(&[entry.network.to_string()]).unwrap();
            for ip in samples(&net) {
                let metadata = METADATA_NETS.iter().any(|(m, _)| m.contains(&ip));
                // An address IPv6 carries IPv4 in is judged as that IPv4 address (tested below).
                if carries_v4(ip) {
                    continue;
                }
                assert!(
                    !none.allows(ip),
                    "{} ({}): {ip} allowed",
                    entry.network,
                    entry.name
                );
                assert_eq!(
                    listed.allows(ip),
                    !metadata,
                    "{} ({}): {ip} when listed",
                    entry.network,
                    entry.name
                );
            }
            // The table is exact: the public address next to a range is reachable.
            for ip in neighbours(&net) {
                assert!(
                    none.allows(ip),
                    "{} ({}): neighbour {ip} refused",
                    entry.network,
                    entry.name
                );
            }
        }
    }

    #[test]
    fn metadata_addresses_need_an_exact_entry_and_ipv4_inside_ipv6_is_judged_as_ipv4() {
        for entry in METADATA {
            let net: IpNet = entry.network.parse().unwrap();
            let ip = net.network();
            assert!(!Allowlist::default().allows(ip), "{}", entry.name);
            let wide = match ip {
                IpAddr::V4(_) => vec!["0.0.0.0/0".to_string(), format!("{}/8", ip)],
                IpAddr::V6(_) => vec!["::/0".to_string(), "fd00::/8".to_string()],
            };
            let wide = Allowlist::parse(
                &wide
                    .iter()
                    .map(|w| {
                        w.parse::<IpNet>()
                            .map(|n| n.trunc().to_string())
                            .unwrap_or_else(|_| w.clone())
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            assert!(!wide.allows(ip), "{} opened by a wide network", entry.name);
            let exact = Allowlist::parse(&[entry.network.to_string()]).unwrap();
            assert!(
                exact.allows(ip),
                "{} not opened by its exact entry",
                entry.name
            );
        }
        let none = Allowlist::default();
        for carrier in [
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::ffff:169.254.169.254",
        ] {
            assert!(!none.allows(carrier.parse().unwrap()), "{carrier}");
        }
        for carrier in [
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::",
        ] {
            assert!(none.allows(carrier.parse().unwrap()), "{carrier}");
        }
    }
}
