//! Everything a node is configured with, independent of how it was given (flags, environment,
//! code). Secrets never appear in `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hub_core::history::{HistoryRule, HistoryRules};
use hub_core::{BusKind, ClusterMode, Config, NodeConfig, NodeId, Seed};

use crate::secret::check_secret;
use crate::tls::TlsFiles;

/// Which async runtime drives the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// tokio (the default).
    #[default]
    Tokio,
    /// smol / async-io.
    Smol,
}

impl RuntimeKind {
    /// The name used on the command line and in `/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokio => "tokio",
            Self::Smol => "smol",
        }
    }
}

/// Where the connection registry lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RegistrySpec {
    /// In this process: a single node (the default).
    #[default]
    Memory,
    /// A Redis server, `redis://HOST:PORT[/DB]`.
    Redis(String),
    /// etcd endpoints, `HOST:PORT` each.
    Etcd(Vec<String>),
}

impl RegistrySpec {
    /// Parses `memory`, `redis://…` or `etcd://HOST:PORT[,HOST:PORT…]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis(s.to_owned()))
        } else if let Some(rest) = s.strip_prefix("etcd://") {
            let endpoints: Vec<String> = rest
                .split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() {
                return Err(format!(
                    "expected etcd://HOST:PORT[,HOST:PORT...], got {s:?}"
                ));
            }
            Ok(Self::Etcd(endpoints))
        } else {
            Err(format!(
                "expected memory, redis://HOST:PORT[/DB] or etcd://HOST:PORT[,...], got {s:?}"
            ))
        }
    }

    /// A display form without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory => "memory".into(),
            Self::Redis(url) => redact_url(url),
            Self::Etcd(endpoints) => format!("etcd://{}", endpoints.join(",")),
        }
    }
}

/// How room publishes and broadcasts reach other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BusSpec {
    /// Node-to-node gRPC (the default).
    #[default]
    Grpc,
    /// Redis pub/sub at this URL.
    Redis(String),
}

impl BusSpec {
    /// Parses `grpc` or `redis://…`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "grpc" {
            Ok(Self::Grpc)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis(s.to_owned()))
        } else {
            Err(format!("expected grpc or redis://HOST:PORT, got {s:?}"))
        }
    }

    /// A display form without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Grpc => "grpc".into(),
            Self::Redis(url) => redact_url(url),
        }
    }
}

/// `redis://user:pass@host` → `redis://***@host`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A node's settings. `Settings::default()` is `hubbub serve` with no flags.
#[derive(Clone)]
pub struct Settings {
    /// HTTP/WebSocket listen address. Default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// The async runtime. Default tokio.
    pub runtime: RuntimeKind,
    /// Shards (one task each). Default: one per core.
    pub shards: u16,
    /// The node's name. Default: derived from the listen address.
    pub node_id: Option<String>,
    /// gRPC listen address for the producer and node-to-node services.
    pub grpc_listen: Option<SocketAddr>,
    /// Address other nodes use to reach this node's gRPC service.
    pub advertise: Option<String>,
    /// The connection registry. Default memory.
    pub registry: RegistrySpec,
    /// The broadcast bus. Default grpc.
    pub bus: BusSpec,
    /// Lifetime of the node's registry lease. Default 10 s.
    pub lease_ttl: Duration,
    /// API key required by the producer API (at least 32 bytes).
    pub api_key: Option<String>,
    /// HMAC secret for client JWTs (at least 32 bytes).
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA, EC or Ed25519) for client JWTs, instead of a secret.
    pub jwt_public_key_pem: Option<String>,
    /// URL of a JWKS document holding the keys of client JWTs, instead of a secret.
    pub jwks_url: Option<String>,
    /// How often the JWKS document is fetched again. Default 5 min.
    pub jwks_refresh: Duration,
    /// Origins allowed besides same-origin and non-browser clients.
    pub allowed_origins: Vec<String>,
    /// Whether clients may broadcast to everyone.
    pub allow_client_broadcast: bool,
    /// Server ping interval. Default 25 s.
    pub ping_interval: Duration,
    /// Time allowed for a pong. Default 10 s.
    pub pong_timeout: Duration,
    /// Largest client message. Default 64 KiB.
    pub max_message_size: usize,
    /// Send queue bound per connection. Default 1 MiB.
    pub send_queue_bytes: usize,
    /// WebSocket connections allowed per client IP (none: unlimited).
    pub max_connections_per_ip: Option<u32>,
    /// How long a shutdown waits for queues to drain. Default 10 s.
    pub shutdown_timeout: Duration,
    /// Time allowed for a new connection to send its whole request (head and body), and
    /// for each answer to be written. Default 10 s.
    pub handshake_timeout: Duration,
    /// Connections allowed at once that are not (yet) WebSockets: HTTP requests and
    /// handshakes in progress. Default 1024.
    pub max_http_connections: usize,
    /// The cluster secret: node-to-node calls carry proof of it. Needed by a clustered node
    /// whose gRPC listener is beyond loopback.
    pub cluster_secret: Option<String>,
    /// The Pusher apps given by `--pusher-app` (see [`Settings::pusher_apps`] for those served).
    pub pusher_apps: hub_pusher::Apps,
    /// The URLs every Pusher app's webhooks are POSTed to (`--pusher-webhook`).
    pub pusher_webhooks: Vec<String>,
    /// Rooms that keep history (`--history PATTERN=N/TTL`, repeatable). Default none.
    pub history: Vec<HistoryRule>,
    /// Certificate and key of the client listener (`--tls-cert`, `--tls-key`): `wss://` and
    /// `https://` instead of plaintext.
    pub tls: Option<TlsFiles>,
    /// Certificate and key of the gRPC listener (`--grpc-tls-cert`, `--grpc-tls-key`);
    /// without them it uses the client listener's pair, if any.
    pub grpc_tls: Option<TlsFiles>,
    /// CA certificates that peers' gRPC certificates (and their client certificates, with
    /// mutual TLS) must chain to (`--cluster-ca`).
    pub cluster_ca: Option<PathBuf>,
    /// Client certificate and key this node presents to its peers (`--cluster-tls-cert`,
    /// `--cluster-tls-key`): mutual TLS.
    pub cluster_tls: Option<TlsFiles>,
    /// Rooms whose members are told who joins and leaves (`{"type":"presence",...}`).
    /// Default: none.
    pub presence_notify: hub_core::RoomPatterns,
}

impl Default for Settings {
    fn default() -> Self {
        let core = Config::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            runtime: RuntimeKind::Tokio,
            shards: std::thread::available_parallelism().map_or(1, |n| n.get().min(256) as u16),
            node_id: None,
            grpc_listen: None,
            advertise: None,
            registry: RegistrySpec::Memory,
            bus: BusSpec::Grpc,
            lease_ttl: Duration::from_secs(10),
            api_key: None,
            jwt_secret: None,
            jwt_public_key_pem: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(300),
            allowed_origins: Vec::new(),
            allow_client_broadcast: false,
            ping_interval: core.ping_interval,
            pong_timeout: core.pong_timeout,
            max_message_size: core.max_message_size,
            send_queue_bytes: core.send_queue_bytes,
            max_connections_per_ip: None,
            shutdown_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_http_connections: 1024,
            cluster_secret: None,
            pusher_apps: hub_pusher::Apps::default(),
            pusher_webhooks: Vec::new(),
            history: Vec::new(),
            tls: None,
            grpc_tls: None,
            cluster_ca: None,
            cluster_tls: None,
            presence_notify: hub_core::RoomPatterns::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<set>");
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("runtime", &self.runtime)
            .field("shards", &self.shards)
            .field("node_id", &self.node_id)
            .field("grpc_listen", &self.grpc_listen)
            .field("advertise", &self.advertise)
            .field("registry", &self.registry.describe())
            .field("bus", &self.bus.describe())
            .field("lease_ttl", &self.lease_ttl)
            .field("api_key", &secret(&self.api_key))
            .field("jwt_secret", &secret(&self.jwt_secret))
            .field("jwt_public_key", &self.jwt_public_key_pem.is_some())
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("allowed_origins", &self.allowed_origins)
            .field("allow_client_broadcast", &self.allow_client_broadcast)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("send_queue_bytes", &self.send_queue_bytes)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_http_connections", &self.max_http_connections)
            .field("cluster_secret", &secret(&self.cluster_secret))
            .field("pusher_apps", &self.pusher_apps)
            .field("pusher_webhooks", &self.pusher_webhooks)
            .field("history", &self.history)
            .field("tls", &self.tls)
            .field("grpc_tls", &self.grpc_tls)
            .field("cluster_ca", &self.cluster_ca)
            .field("cluster_tls", &self.cluster_tls)
            .finish()
    }
}

/// Most messages a `--history` rule may keep per room. A replay larger than a send queue
/// (1,024 frames, `--send-queue-bytes`) closes its connection with 4008, so a small gap
/// recovers whatever N is, and a large one only when the queue takes it.
pub const MAX_HISTORY_LEN: usize = 100_000;

/// Parses one `--history` value: `PATTERN=N/TTL` (`chat:*=100/10m`: rooms whose names start
/// with `chat:` keep their last 100 messages, each for at most 10 minutes).
pub fn parse_history_rule(s: &str) -> Result<HistoryRule, String> {
    let err =
        |why: &str| format!("expected PATTERN=N/TTL like 'chat:*=100/10m' ({why}), got {s:?}");
    let (pattern, rest) = s.rsplit_once('=').ok_or_else(|| err("no '='"))?;
    let (n, ttl) = rest
        .split_once('/')
        .ok_or_else(|| err("no '/' between N and TTL"))?;
    let n: usize = n
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_HISTORY_LEN).contains(n))
        .ok_or_else(|| {
            err(&format!(
                "N must be a whole number from 1 to {MAX_HISTORY_LEN}"
            ))
        })?;
    let ttl = hub_edge::units::parse_duration(ttl.trim()).map_err(|e| err(&e))?;
    if pattern.is_empty() || pattern.len() > 256 {
        return Err(err("the pattern must be 1 to 256 bytes long"));
    }
    HistoryRule::new(pattern, n, ttl)
        .ok_or_else(|| err("'*' only at the end of the pattern, and a TTL above zero"))
}

/// Room left in a send queue beside a producer payload: the frame header and the message
/// envelope (`{"type":"message","room":R,"data":...}` with a room of up to 256 bytes).
pub const PRODUCER_ENVELOPE_ROOM: usize = 1024;

impl Settings {
    /// Largest producer `data` (JSON text) accepted over HTTP and gRPC: `--max-message-size`,
    /// and never more than a send queue can hold with its envelope, so a producer message
    /// can never close its recipients as slow consumers by its size alone.
    pub fn max_producer_data(&self) -> usize {
        self.max_message_size
            .min(self.send_queue_bytes.saturating_sub(PRODUCER_ENVELOPE_ROOM))
    }

    /// The node's name: `--node-id`, or `node-PORT` from the listen address.
    pub fn node_name(&self) -> String {
        self.node_id
            .clone()
            .unwrap_or_else(|| format!("node-{}", self.listen.port()))
    }

    /// Warnings for a producer API reachable beyond loopback without `--api-key` (the HTTP
    /// API on the listen address, the gRPC API on `--grpc-listen`).
    pub fn exposure_warnings(&self) -> Vec<String> {
        if self.api_key.is_some() {
            return Vec::new();
        }
        let mut warnings = Vec::new();
        let open = [("HTTP", Some(self.listen)), ("gRPC", self.grpc_listen)];
        for (api, addr) in open {
            if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                warnings.push(format!(
                    "the producer {api} API on {addr} is reachable beyond loopback without --api-key: anyone who reaches it can publish, emit, broadcast and disconnect clients"
                ));
            }
        }
        warnings
    }

    /// The Pusher apps this node serves: those of `--pusher-app`; with none, soketi's default
    /// app when the listener is on loopback (and no app beyond it), with a line to log.
    pub fn pusher_apps(&self) -> hub_pusher::app::Resolved {
        self.pusher_apps
            .clone()
            .resolve(self.listen.ip().is_loopback())
    }

    /// The certificate and key of the gRPC listener: `--grpc-tls-cert`/`--grpc-tls-key`, or
    /// else the client listener's (`--tls-cert`/`--tls-key`); `None` serves plaintext.
    pub fn grpc_tls_files(&self) -> Option<&TlsFiles> {
        self.grpc_tls.as_ref().or(self.tls.as_ref())
    }

    /// Whether peers prove membership with a client certificate (mutual TLS).
    pub fn cluster_mtls(&self) -> bool {
        self.cluster_tls.is_some() && self.cluster_ca.is_some()
    }

    /// Whether clients need a token (a JWT secret, public key or JWKS URL is configured).
    pub fn tokens_required(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key_pem.is_some() || self.jwks_url.is_some()
    }

    /// The Redis a clustered node keeps history in (and delivers it through): the bus's, else
    /// the registry's; `None` without history rooms or without Redis.
    pub fn history_redis(&self) -> Option<String> {
        if self.history.is_empty() || !self.clustered() {
            return None;
        }
        match (&self.bus, &self.registry) {
            (BusSpec::Redis(url), _) | (_, RegistrySpec::Redis(url)) => Some(url.clone()),
            _ => None,
        }
    }

    /// Whether the node is part of a cluster (a shared registry is configured).
    pub fn clustered(&self) -> bool {
        self.registry != RegistrySpec::Memory
    }

    /// The core configuration these settings imply; `seed` is the node's secret seed
    /// ([`crate::random_seed`]) of generated client ids and keyed maps.
    pub fn core_config(&self, seed: Seed) -> Config {
        Config {
            node_id: NodeId::from(self.node_name()),
            shard_count: self.shards,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            max_message_size: self.max_message_size,
            send_queue_bytes: self.send_queue_bytes,
            allow_client_broadcast: self.allow_client_broadcast,
            seed,
            history: HistoryRules::new(self.history.clone()),
            ..Config::default()
        }
    }

    /// The router configuration these settings imply, with the node's secret `seed`.
    pub fn node_config(&self, seed: Seed) -> NodeConfig {
        let mut config = NodeConfig::standalone(NodeId::from(self.node_name()), self.shards);
        config.seed = seed;
        config.history = HistoryRules::new(self.history.clone());
        config.presence_notify = self.presence_notify.clone();
        if self.clustered() {
            let bus = match self.bus {
                BusSpec::Grpc => BusKind::Grpc,
                BusSpec::Redis(_) => BusKind::Redis,
            };
            config.mode = ClusterMode::Cluster { bus };
        }
        config
    }

    /// Checks the settings as a whole; the error is one line naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        self.core_config(Seed::default())
            .validate()
            .map_err(|e| format!("--{}: {}", e.setting, e.problem))?;
        check_secret("api-key", self.api_key.as_deref())?;
        check_secret("jwt-secret", self.jwt_secret.as_deref())?;
        let token_keys = [
            self.jwt_secret.is_some(),
            self.jwt_public_key_pem.is_some(),
            self.jwks_url.is_some(),
        ];
        if token_keys.iter().filter(|given| **given).count() > 1 {
            return Err("--jwt-public-key-file: give one of --jwt-secret, --jwt-public-key-file and --jwks-url".into());
        }
        if let Some(pem) = &self.jwt_public_key_pem {
            hub_edge::auth::JwtVerifier::from_public_key_pem(pem.as_bytes())
                .map_err(|e| format!("--jwt-public-key-file: {e}"))?;
        }
        if let Some(url) = &self.jwks_url {
            if !url.starts_with("http://") {
                return Err(format!(
                    "--jwks-url: expected http://HOST[:PORT]/PATH, got {url:?}"
                ));
            }
        }
        for url in &self.pusher_webhooks {
            crate::webhooks::check_url(url).map_err(|e| format!("--pusher-webhook: {e}"))?;
        }
        if self.jwks_refresh < Duration::from_secs(1) {
            return Err("--jwks-refresh: must be at least 1s".into());
        }
        check_secret("cluster-secret", self.cluster_secret.as_deref())?;
        if self.shutdown_timeout.is_zero() {
            return Err("--shutdown-timeout: must be above zero".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err("--lease-ttl: must be at least 1s".into());
        }
        if self.max_http_connections == 0 {
            return Err("--max-http-connections: must be at least 1".into());
        }
        if self.max_connections_per_ip == Some(0) {
            return Err("--max-connections-per-ip: must be at least 1".into());
        }
        if self.clustered() && !self.history.is_empty() && self.history_redis().is_none() {
            return Err("--history: a cluster keeps history in Redis; use --registry redis://HOST:PORT or --bus redis://HOST:PORT".into());
        }
        if self.clustered() && self.grpc_listen.is_none() {
            return Err("--grpc-listen: a clustered node (--registry redis:// or etcd://) needs a gRPC address".into());
        }
        self.check_tls()?;
        self.check_cluster_exposure()
    }

    /// Every certificate, key and CA file loads (and each key matches its certificate), and
    /// the cluster's TLS settings fit together.
    fn check_tls(&self) -> Result<(), String> {
        for files in [&self.tls, &self.grpc_tls, &self.cluster_tls]
            .into_iter()
            .flatten()
        {
            crate::tls::load_pair(files)?;
        }
        if let Some(ca) = &self.cluster_ca {
            crate::tls::load_roots(ca, "cluster-ca")?;
        }
        if self.cluster_tls.is_some() && self.cluster_ca.is_none() {
            return Err("--cluster-tls-cert: a client certificate for peers needs --cluster-ca (the CA that signs the cluster's certificates)".into());
        }
        if !self.clustered() {
            return Ok(());
        }
        match (self.grpc_tls_files(), &self.cluster_ca) {
            (Some(_), None) => Err("--cluster-ca: the gRPC listener serves TLS, so peers verify each other's certificates against a cluster CA; give its PEM file (the same on every node)".into()),
            (None, Some(_)) => Err("--grpc-tls-cert: with --cluster-ca, peers are reached over TLS, so this node's gRPC listener needs a certificate signed by that CA (--grpc-tls-cert and --grpc-tls-key, or --tls-cert and --tls-key)".into()),
            _ => Ok(()),
        }
    }

    /// A clustered node whose gRPC listener is reachable beyond loopback must authenticate
    /// its peers: without a cluster secret or mutual TLS it does not start.
    fn check_cluster_exposure(&self) -> Result<(), String> {
        let authenticated = self.cluster_secret.is_some() || self.cluster_mtls();
        match (self.clustered(), self.grpc_listen, authenticated) {
            (true, Some(grpc), false) if !grpc.ip().is_loopback() => Err(format!(
                "--cluster-secret: the gRPC listener {grpc} is reachable beyond loopback, so peers must authenticate; set --cluster-secret or --cluster-secret-file (32 bytes or more, the same on every node), or mutual TLS (--cluster-tls-cert, --cluster-tls-key and --cluster-ca)"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_standalone() {
        let s = Settings::default();
        s.validate().expect("valid");
        assert!(!s.clustered());
        assert_eq!(s.node_name(), "node-8080");
        assert_eq!(s.node_config(Seed::default()).mode, ClusterMode::Standalone);
    }

    #[test]
    fn specs_parse_and_redact() {
        assert_eq!(RegistrySpec::parse("memory"), Ok(RegistrySpec::Memory));
        assert_eq!(
            RegistrySpec::parse("etcd://a:1,b:2"),
            Ok(RegistrySpec::Etcd(vec!["a:1".into(), "b:2".into()]))
        );
        assert!(RegistrySpec::parse("etcd://").is_err());
        assert!(RegistrySpec::parse("mysql://x").is_err());
        assert_eq!(
            RegistrySpec::Redis("redis://u:p@h:1/0".into()).describe(),
            "redis://***@h:1/0"
        );
        assert_eq!(BusSpec::parse("grpc"), Ok(BusSpec::Grpc));
        assert!(BusSpec::parse("kafka").is_err());
    }

    #[test]
    fn an_open_api_beyond_loopback_is_warned_about() {
        assert!(Settings::default().exposure_warnings().is_empty());
        let open = Settings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            grpc_listen: Some(SocketAddr::from(([10, 0, 0, 1], 8081))),
            ..Settings::default()
        };
        let warnings = open.exposure_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("0.0.0.0:8080") && warnings[0].contains("--api-key"));
        let keyed = Settings {
            api_key: Some("k".repeat(32)),
            ..open
        };
        assert!(keyed.exposure_warnings().is_empty());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = Settings {
            api_key: Some("hunter2".into()),
            jwt_secret: Some("s3cret".into()),
            ..Settings::default()
        };
        let text = format!("{s:?}");
        assert!(!text.contains("hunter2") && !text.contains("s3cret"));
        assert!(text.contains("<set>"));
    }

    #[test]
    fn history_rules_parse_and_bad_ones_say_why() {
        let rule = parse_history_rule("chat:*=100/10m").expect("valid");
        assert!(rule.matches("chat:x") && !rule.matches("chatx"));
        assert_eq!((rule.max_len, rule.ttl), (100, Duration::from_secs(600)));
        let rule = parse_history_rule("a=b=1/1s").expect("the last '=' splits");
        assert!(rule.matches("a=b"));
        for bad in [
            "",
            "x",
            "x=1",
            "x=0/1s",
            "x=100001/1s",
            "x=1/0s",
            "x=1/soon",
            "=1/1s",
            "a*b=1/1s",
            "x=-1/1s",
        ] {
            let e = parse_history_rule(bad).expect_err(bad);
            assert!(e.contains("PATTERN=N/TTL"), "{e}");
        }
        let clustered = Settings {
            registry: RegistrySpec::Redis("redis://h:1".into()),
            grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            history: vec![parse_history_rule("a=1/1s").expect("valid")],
            ..Settings::default()
        };
        assert_eq!(clustered.validate(), Ok(()));
        assert_eq!(clustered.history_redis().as_deref(), Some("redis://h:1"));
        let etcd = Settings {
            registry: RegistrySpec::Etcd(vec!["h:2379".into()]),
            ..clustered.clone()
        };
        let e = etcd.validate().expect_err("history needs a Redis");
        assert!(e.starts_with("--history: "), "{e}");
        let with_bus = Settings {
            bus: BusSpec::Redis("redis://b:1".into()),
            ..etcd
        };
        assert_eq!(with_bus.history_redis().as_deref(), Some("redis://b:1"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let s = Settings {
            shards: 0,
            ..Settings::default()
        };
        assert!(s
            .validate()
            .expect_err("zero shards")
            .starts_with("--shards"));
        let s = Settings {
            registry: RegistrySpec::Redis("redis://h:1".into()),
            ..Settings::default()
        };
        assert!(s
            .validate()
            .expect_err("no grpc")
            .starts_with("--grpc-listen"));
        for (settings, flag) in [
            (
                Settings {
                    jwt_secret: Some(String::new()),
                    ..Settings::default()
                },
                "--jwt-secret: must not be empty",
            ),
            (
                Settings {
                    api_key: Some("short".into()),
                    ..Settings::default()
                },
                "--api-key: too short",
            ),
        ] {
            let e = settings.validate().expect_err(flag);
            assert!(e.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn an_exposed_cluster_listener_needs_a_secret() {
        let exposed = Settings {
            registry: RegistrySpec::Redis("redis://h:1".into()),
            grpc_listen: Some(SocketAddr::from(([0, 0, 0, 0], 7001))),
            ..Settings::default()
        };
        let e = exposed.validate().expect_err("no secret");
        assert!(
            e.starts_with("--cluster-secret:") && !e.contains('\n'),
            "{e}"
        );
        let loopback = Settings {
            grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7001))),
            ..exposed.clone()
        };
        loopback.validate().expect("loopback without a secret");
        let standalone = Settings {
            registry: RegistrySpec::Memory,
            ..exposed.clone()
        };
        standalone
            .validate()
            .expect("a standalone node serves no peers");
        let secured = Settings {
            cluster_secret: Some("7".repeat(32)),
            ..exposed
        };
        secured.validate().expect("with a secret");
        assert!(!format!("{secured:?}").contains("777"));
    }
}
