//! The `Origin` check of the WebSocket upgrade (cross-site WebSocket hijacking defence).
//!
//! Browsers always send `Origin` on a WebSocket upgrade; other clients usually do not. So a
//! request without `Origin` is allowed, a page served by this very host is allowed, and any
//! other page must be on the allow-list (or the list must hold `*`). The opaque origin
//! `null` (sandboxed frames, `file:` pages) is always refused.

/// Which browser origins may open WebSocket connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Normalised allow-list entries (lower case, no trailing slash).
    allowed: Vec<String>,
    /// Whether `*` was listed.
    any: bool,
}

/// Lower case, trimmed, without trailing slashes: how origins are compared.
fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The default port of a scheme, as text.
fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    }
}

/// `authority` without an explicit default port (`example.com:443` → `example.com`).
fn strip_port<'a>(authority: &'a str, port: Option<&str>) -> &'a str {
    match port.and_then(|p| authority.strip_suffix(p)?.strip_suffix(':')) {
        Some(bare) if !bare.is_empty() => bare,
        _ => authority,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return false;
    }
    let port = default_port(scheme);
    let host = host.trim();
    !host.is_empty() && strip_port(authority, port).eq_ignore_ascii_case(strip_port(host, port))
}

impl OriginPolicy {
    /// A policy allowing the listed origins (`https://app.example.com`, or `*` for any).
    pub fn new(allowed: Vec<String>) -> Self {
        let mut policy = Self::default();
        for entry in allowed {
            let entry = normalize(&entry);
            if entry == "*" {
                policy.any = true;
            } else if !entry.is_empty() && !policy.allowed.contains(&entry) {
                policy.allowed.push(entry);
            }
        }
        policy
    }

    /// A policy from a comma-separated list, as given to `--allowed-origins`.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(',').map(str::to_owned).collect())
    }

    /// Whether any origin but `null` is allowed (`*` was listed).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a request with these `Origin` and `Host` headers may upgrade.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.trim();
        if origin.is_empty() || origin.eq_ignore_ascii_case("null") {
            return false;
        }
        if host.is_some_and(|host| same_origin(origin, host)) {
            return true;
        }
        if self.any {
            return true;
        }
        let origin = normalize(origin);
        self.allowed.contains(&origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy::new(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn no_origin_is_a_non_browser_client() {
        assert!(policy(&[]).check(None, None));
        assert!(policy(&[]).check(None, Some("hub.example.com")));
    }

    #[test]
    fn same_host_is_allowed() {
        let p = policy(&[]);
        let ok = |o: &str, h: &str| p.check(Some(o), Some(h));
        assert!(ok("http://localhost:8080", "localhost:8080"));
        assert!(ok("https://Hub.Example.com", "hub.example.com"));
        assert!(ok("https://hub.example.com", "hub.example.com:443"));
        assert!(ok("https://hub.example.com:443", "hub.example.com"));
        assert!(ok("http://hub.example.com", "hub.example.com:80"));
        assert!(ok("http://[::1]:8080", "[::1]:8080"));
        assert!(ok("http://127.0.0.1:8080/", "127.0.0.1:8080"));
        assert!(!ok("http://localhost:8081", "localhost:8080"));
        assert!(!ok("https://hub.example.com", "hub.example.com:80"));
        assert!(!ok("https://hub.example.com.evil.com", "hub.example.com"));
        assert!(!ok("https://evil.com/hub.example.com", "hub.example.com"));
        assert!(!ok("https://user@hub.example.com", "hub.example.com"));
        assert!(!ok("hub.example.com", "hub.example.com"));
        assert!(!ok("https://", ""));
        assert!(!p.check(Some("https://hub.example.com"), None));
    }

    #[test]
    fn allow_list_matches_exactly() {
        let p = policy(&[
            "https://app.example.com/",
            " HTTPS://Admin.Example.com ",
            "",
        ]);
        let ok = |o: &str| p.check(Some(o), Some("hub.internal:8080"));
        assert!(ok("https://app.example.com"));
        assert!(ok("https://APP.example.com/"));
        assert!(ok("https://admin.example.com"));
        assert!(!ok("http://app.example.com"));
        assert!(!ok("https://app.example.com:8443"));
        assert!(!ok("https://app.example.com.evil.com"));
        assert!(!ok("https://evil.com"));
        assert!(!ok(""));
        assert!(!p.allows_any());
    }

    #[test]
    fn null_is_refused_even_with_a_wildcard() {
        for p in [policy(&[]), policy(&["*"]), policy(&["null"])] {
            assert!(!p.check(Some("null"), Some("localhost")));
            assert!(!p.check(Some("NULL"), None));
        }
    }

    #[test]
    fn wildcard_allows_any_origin() {
        let p = OriginPolicy::from_list("https://a.example, *");
        assert!(p.allows_any());
        assert!(p.check(Some("https://anything.example"), Some("hub:80")));
        assert!(p.check(Some("http://localhost:3000"), None));
        let p = OriginPolicy::from_list("https://a.example,https://b.example");
        assert!(p.check(Some("https://b.example"), None));
        assert!(!p.check(Some("https://c.example"), None));
    }
}
