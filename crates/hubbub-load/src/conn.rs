//! Opening WebSocket client connections: parsing `ws://` URLs, resolving the server once,
//! binding each client socket to a loopback source address (127.0.0.2, .3, … — each source
//! address has its own ~28k ephemeral ports) and upgrading with small buffers.
//!
//! Only plain `ws://` is supported; source addresses are spread only when the server is on
//! an IPv4 loopback address. Sockets close with a reset (`SO_LINGER` 0) so that runs do not
//! leave their ports in TIME_WAIT (a binding to port 0 may only use about half of the
//! ephemeral range, and its search slows down as the range fills).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// The parts of a `ws://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Parses a `ws://` URL.
pub fn parse_ws_url(url: &str) -> Result<WsUrl, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url:?}: only ws:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| format!("{url:?}: unclosed ["))?;
        let port = v6[end + 1..].strip_prefix(':');
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        None => 80,
    };
    Ok(WsUrl {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Resolves the server address of a `ws://` URL (first address found).
pub async fn resolve(url: &str) -> Result<SocketAddr, String> {
    let parsed = parse_ws_url(url)?;
    let mut addrs = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
        .await
        .map_err(|e| format!("{url:?}: cannot resolve: {e}"))?;
    addrs.next().ok_or_else(|| format!("{url:?}: no address"))
}

/// The source address of connection number `index` when `per_source` connections share
/// one address: 127.0.0.2 for the first `per_source`, then 127.0.0.3, and so on.
pub fn source_for(index: u64, per_source: u64) -> IpAddr {
    let offset = u32::try_from(index / per_source.max(1)).unwrap_or(u32::MAX);
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    // Stay inside 127.0.0.0/8.
    let addr = base
        .saturating_add(offset)
        .min(u32::from(Ipv4Addr::new(127, 255, 255, 254)));
    IpAddr::V4(Ipv4Addr::from(addr))
}

/// Whether client source addresses can be spread for a server at `addr`.
pub fn can_spread(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(v4) if v4.is_loopback())
}

/// Buffer sizes for client connections: small, so that many connections stay cheap.
pub fn client_config(small: bool) -> WebSocketConfig {
    if small {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
    } else {
        WebSocketConfig::default()
    }
}

/// Connects to `addr` (from `source` when given) and upgrades to a WebSocket at `url`;
/// returns the socket and the time from connect start to the upgrade answer.
pub async fn open(
    url: &str,
    addr: SocketAddr,
    source: Option<IpAddr>,
    config: WebSocketConfig,
) -> Result<(Ws, Duration), String> {
    let started = Instant::now();
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    // Close with a reset: no TIME_WAIT left on the client's ports after a run.
    let _ = stream.set_zero_linger();
    let (ws, _response) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    Ok((ws, started.elapsed()))
}

/// A short name for the kind of an error message from [`open`] (its text up to `:`).
pub fn error_kind(message: &str) -> String {
    let kind = message.split(':').next().unwrap_or(message);
    kind.split_whitespace().next().unwrap_or(kind).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_ws_url("ws://127.0.0.1:8080/ws/room?x=1").ok(),
            Some(WsUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/ws/room?x=1".into()
            })
        );
        assert_eq!(
            parse_ws_url("ws://localhost").map(|u| u.port).ok(),
            Some(80)
        );
        assert_eq!(
            parse_ws_url("ws://[::1]:9/").map(|u| u.host).ok(),
            Some("::1".to_string())
        );
        assert!(parse_ws_url("wss://x").is_err());
        assert!(parse_ws_url("ws://:80").is_err());
        assert!(parse_ws_url("ws://h:port").is_err());
    }

    #[test]
    fn sources_advance_per_block() {
        assert_eq!(source_for(0, 10_000).to_string(), "127.0.0.2");
        assert_eq!(source_for(9_999, 10_000).to_string(), "127.0.0.2");
        assert_eq!(source_for(10_000, 10_000).to_string(), "127.0.0.3");
        assert_eq!(source_for(254 * 3, 3).to_string(), "127.0.1.0");
        assert_eq!(source_for(u64::MAX, 1).to_string(), "127.255.255.254");
        assert!(can_spread("127.0.0.1:80".parse().expect("addr")));
        assert!(!can_spread("[::1]:80".parse().expect("addr")));
        assert!(!can_spread("10.0.0.1:80".parse().expect("addr")));
    }

    #[test]
    fn error_kinds() {
        assert_eq!(
            error_kind("connect: Connection refused (os error 111)"),
            "connect"
        );
        assert_eq!(error_kind("bind 127.0.0.2: in use"), "bind");
        assert_eq!(error_kind("timeout"), "timeout");
    }
}
