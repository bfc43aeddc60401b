//! DNS-rebinding protection: `Host` and `Origin` must name this gateway.

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// The allowlists, normalised once.
#[derive(Debug, Clone)]
pub struct HostGuard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl HostGuard {
    pub fn new(hosts: &[String], origins: &[String]) -> Self {
        Self {
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// `Err` names what was refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("missing or unreadable Host header")?;
        if !self.host_allowed(host) {
            return Err("Host not allowed");
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().map_err(|_| "unreadable Origin header")?;
            if !self.origin_allowed(origin) {
                return Err("Origin not allowed");
            }
        }
        Ok(())
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let host = strip_port(authority).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if !self.origins.is_empty() {
            return self.origins.contains(&origin);
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https") && self.host_allowed(authority)
    }
}

/// `host:port` → `host`, `[::1]:port` → `[::1]`.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn loopback_defaults() {
        let guard = HostGuard::new(
            &["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            &[],
        );
        assert!(guard.check(&headers("127.0.0.1:8700", None)).is_ok());
        assert!(guard.check(&headers("[::1]:8700", None)).is_ok());
        assert!(
            guard
                .check(&headers("LOCALHOST", Some("http://localhost:3000")))
                .is_ok()
        );
        assert!(guard.check(&headers("evil.example:8700", None)).is_err());
        assert!(
            guard
                .check(&headers("127.0.0.1:8700", Some("http://evil.example")))
                .is_err()
        );
        assert!(
            guard
                .check(&headers("127.0.0.1:8700", Some("null")))
                .is_err()
        );
        assert!(guard.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn explicit_origins() {
        let guard = HostGuard::new(&["localhost".into()], &["https://app.example".into()]);
        assert!(
            guard
                .check(&headers("localhost", Some("https://app.example/")))
                .is_ok()
        );
        assert!(
            guard
                .check(&headers("localhost", Some("http://localhost")))
                .is_err()
        );
    }
}
