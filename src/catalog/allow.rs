//! Where upstreams registered at run time may be reached. Checked on the resolved address of every connection (a
//! resolver that drops every address outside the allowlist), never on the URL text alone; redirects are never
//! followed. Public addresses are allowed; loopback, private, link-local and cloud metadata addresses only when a
//! configured network contains them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{UpstreamConfig, UpstreamTransport};

/// Cloud instance metadata endpoints.
const METADATA: &[&str] = &["169.254.169.254", "fd00:ec2::254", "100.100.100.200"];

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
        "{0} is outside the networks upstreams may be registered on (registry.allowed_networks)"
    )]
    Outside(IpAddr),
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
        if METADATA
            .iter()
            .any(|m| m.parse::<IpAddr>().ok() == Some(ip))
        {
            // Only an exact entry (a /32 or /128 of it) opens a metadata address.
            return self
                .networks
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && n.contains(&ip));
        }
        let special = match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
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
            Some(ip) if !self.allows(ip) => Err(AllowError::Outside(ip)),
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
        assert!(Allowlist::parse(&["not a net".into()]).is_err());
    }
}
