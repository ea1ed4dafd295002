//! The error every cluster call returns, and its mapping from the Redis and etcd clients.
//!
//! Invariant: no message carries a credential. Redis URLs may hold a password; every Redis
//! error text passes through [`Redactor`] before it becomes a [`ClusterError`]. etcd endpoints
//! are `HOST:PORT` and carry none.

/// What went wrong talking to the registry or the bus backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The backend could not be reached (refused, reset, closed).
    #[error("cluster backend unreachable: {0}")]
    Unreachable(String),
    /// The backend did not answer within the operation timeout.
    #[error("cluster backend did not answer in time")]
    Timeout,
    /// The backend answered something unexpected, or the request was invalid.
    #[error("cluster backend protocol error: {0}")]
    Protocol(String),
    /// This node's lease is gone (expired or revoked): call `join()` again, then re-register.
    #[error("this node's lease expired; join again and re-register")]
    LeaseExpired,
}

/// The error code the Redis scripts answer when this node's key (its lease) is gone.
pub(crate) const REDIS_LEASE_EXPIRED: &str = "HUBBUB_LEASE_EXPIRED";

/// Removes the credentials of one URL from error texts.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// The secrets in `url`: its userinfo (`user:pass`), the password alone, and both decoded.
    pub(crate) fn for_url(url: &str) -> Redactor {
        let mut secrets = Vec::new();
        if let Some(scheme) = url.find("://") {
            let rest = &url[scheme + 3..];
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if let Some(at) = authority.rfind('@') {
                let userinfo = &authority[..at];
                secrets.push(userinfo.to_owned());
                if let Some((_, pass)) = userinfo.split_once(':') {
                    secrets.push(pass.to_owned());
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a password inside the userinfo does not leave the user name behind.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    /// Maps a Redis client error, without credentials.
    pub(crate) fn redis(&self, err: &redis::RedisError) -> ClusterError {
        if err.is_timeout() {
            ClusterError::Timeout
        } else if err.to_string().contains(REDIS_LEASE_EXPIRED) {
            ClusterError::LeaseExpired
        } else if is_redis_connection_error(err) {
            ClusterError::Unreachable(self.clean(&err.to_string()))
        } else {
            ClusterError::Protocol(self.clean(&err.to_string()))
        }
    }
}

/// Whether `err` means the connection is unusable (so a new one should be made).
pub(crate) fn is_redis_connection_error(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
        || err.is_timeout()
}

/// Maps an etcd client error. A missing lease means this node's lease is gone.
pub(crate) fn etcd(err: &etcd_client::Error) -> ClusterError {
    use etcd_client::Error as E;
    use tonic::Code;
    match err {
        E::GRpcStatus(status) => {
            let message = status.message().to_owned();
            match status.code() {
                Code::NotFound if message.contains("lease not found") => ClusterError::LeaseExpired,
                Code::Unavailable | Code::Cancelled | Code::Unknown => {
                    ClusterError::Unreachable(message)
                }
                Code::DeadlineExceeded => ClusterError::Timeout,
                code => ClusterError::Protocol(format!("{code:?}: {message}")),
            }
        }
        E::TransportError(e) => ClusterError::Unreachable(e.to_string()),
        E::IoError(e) => ClusterError::Unreachable(e.to_string()),
        E::LeaseKeepAliveError(e) if e.contains("lease not found") => ClusterError::LeaseExpired,
        E::LeaseKeepAliveError(e) => ClusterError::Unreachable(e.clone()),
        other => ClusterError::Protocol(other.to_string()),
    }
}

/// Decodes `%XX` escapes; anything malformed stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_password() {
        let r = Redactor::for_url("redis://user:s%40cret@host:6379/0");
        let text = "failed redis://user:s%40cret@host:6379/0 with s@cret and s%40cret";
        let clean = r.clean(text);
        assert!(!clean.contains("cret"), "{clean}");
        assert!(clean.contains("host:6379"));
        let none = Redactor::for_url("redis://host:6379");
        assert_eq!(none.clean("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }
}
