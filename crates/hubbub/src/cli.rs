//! The command line: `hubbub serve` and its flags, each with a `HUBBUB_*` environment
//! equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hub_core::history::HistoryRule;
use hub_edge::units::{parse_duration, parse_size};
use hub_serve::secret::resolve_secret;
use hub_serve::settings::parse_history_rule;
use hub_serve::{BusSpec, RegistrySpec, RuntimeKind, Settings, TlsFiles};

/// Hubbub: a distributed WebSocket hub.
#[derive(Debug, Parser)]
#[command(name = "hubbub", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node: WebSocket clients on /ws, the producer API on /api, health, stats and
    /// metrics, and a demo page on /.
    Serve(Box<ServeArgs>),
    /// Deliver DATA (JSON) to client ID, wherever it is connected.
    Emit {
        #[command(flatten)]
        server: ServerArgs,
        /// The client id.
        id: String,
        /// The payload, as JSON text (e.g. '{"text":"hi"}' or '"hi"').
        data: String,
    },
    /// Deliver DATA (JSON) to every connection of USER.
    EmitUser {
        #[command(flatten)]
        server: ServerArgs,
        /// The user id.
        user: String,
        /// The payload, as JSON text.
        data: String,
    },
    /// Deliver DATA (JSON) to every member of ROOM.
    Publish {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        room: String,
        /// The payload, as JSON text.
        data: String,
    },
    /// Deliver DATA (JSON) to every connection of the cluster.
    Broadcast {
        #[command(flatten)]
        server: ServerArgs,
        /// The payload, as JSON text.
        data: String,
    },
    /// Is client ID connected, and on which node?
    Online {
        #[command(flatten)]
        server: ServerArgs,
        /// The client id.
        id: String,
    },
    /// Close client ID's connection (close code 4003).
    Disconnect {
        #[command(flatten)]
        server: ServerArgs,
        /// The client id.
        id: String,
    },
    /// The kept messages of ROOM (a room with --history), oldest first.
    History {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        room: String,
        /// Only the messages after this offset (with --epoch).
        #[arg(long, value_name = "OFFSET", requires = "epoch")]
        since: Option<u64>,
        /// The epoch --since belongs to.
        #[arg(long, value_name = "EPOCH", requires = "since")]
        epoch: Option<String>,
        /// Most messages to print (1 to 1000).
        #[arg(long, default_value = "100", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// The last offset and the epoch of ROOM (a room with --history).
    Position {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        room: String,
    },
    /// Who is in ROOM on every node, as {"clients":[{"id":ID,"user":U},...]}, or with
    /// --count how many, as {"clients":N,"users":M} (connections, distinct user ids).
    Presence {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        room: String,
        /// Print only the counts, as {"clients":N,"users":M}.
        #[arg(long)]
        count: bool,
    },
}

/// Which node a producer command talks to.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// gRPC address of any node (its --grpc-listen).
    #[arg(
        long,
        env = "HUBBUB_SERVER",
        default_value = "127.0.0.1:8081",
        value_name = "ADDR"
    )]
    pub(crate) server: String,

    /// API key, when the node requires one.
    #[arg(
        long,
        env = "HUBBUB_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,

    /// PEM certificate of the CA that signed the node's gRPC certificate: the call goes over
    /// TLS and the node's certificate is verified against it [default: plaintext].
    #[arg(long, env = "HUBBUB_TLS_CA", value_name = "PATH")]
    pub(crate) tls_ca: Option<PathBuf>,
}

/// The async runtime, as named on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RuntimeArg {
    /// tokio, multi-threaded.
    Tokio,
    /// smol / async-io.
    Smol,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn size(s: &str) -> Result<usize, String> {
    parse_size(s)
}

fn patterns(s: &str) -> Result<hub_core::RoomPatterns, String> {
    hub_core::RoomPatterns::parse_list(s).map_err(|e| e.to_string())
}

fn registry(s: &str) -> Result<RegistrySpec, String> {
    RegistrySpec::parse(s)
}

fn bus(s: &str) -> Result<BusSpec, String> {
    BusSpec::parse(s)
}

fn shards(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of shards from 1 to 1024, got {s:?}"
        )),
    }
}

fn positive(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number above zero, got {s:?}")),
    }
}

/// Flags of `hubbub serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address for WebSocket clients, the producer HTTP API and the endpoints.
    #[arg(
        long,
        env = "HUBBUB_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) listen: SocketAddr,

    /// Async runtime driving the node.
    #[arg(long, env = "HUBBUB_RUNTIME", value_enum, default_value = "tokio")]
    pub(crate) runtime: RuntimeArg,

    /// Number of shards (one task each) [default: one per core].
    #[arg(long, env = "HUBBUB_SHARDS", value_name = "N", value_parser = shards)]
    pub(crate) shards: Option<u16>,

    /// This node's name in the cluster and in `welcome` frames [default: node-PORT].
    #[arg(long, env = "HUBBUB_NODE_ID", value_name = "NAME")]
    pub(crate) node_id: Option<String>,

    /// Address of the gRPC service (producer API and node-to-node); needed in a cluster.
    #[arg(long, env = "HUBBUB_GRPC_LISTEN", value_name = "ADDR")]
    pub(crate) grpc_listen: Option<SocketAddr>,

    /// Address other nodes use to reach this node's gRPC service [default: --grpc-listen].
    #[arg(long, env = "HUBBUB_ADVERTISE", value_name = "ADDR")]
    pub(crate) advertise: Option<String>,

    /// Connection registry: memory (one node), redis://HOST:PORT[/DB] or
    /// etcd://HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "HUBBUB_REGISTRY", default_value = "memory", value_name = "SPEC", value_parser = registry)]
    pub(crate) registry: RegistrySpec,

    /// Broadcast bus between nodes: grpc, or redis://HOST:PORT for Redis pub/sub.
    #[arg(long, env = "HUBBUB_BUS", default_value = "grpc", value_name = "SPEC", value_parser = bus)]
    pub(crate) bus: BusSpec,

    /// Lifetime of this node's registry lease; a crashed node's clients read offline after it.
    #[arg(long, env = "HUBBUB_LEASE_TTL", default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub(crate) lease_ttl: Duration,

    /// API key the producer API requires (Authorization: Bearer KEY), at least 32 bytes
    /// [default: none, open].
    #[arg(
        long,
        env = "HUBBUB_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,

    /// File holding the API key (one trailing line break is ignored); instead of --api-key.
    #[arg(long, env = "HUBBUB_API_KEY_FILE", value_name = "PATH")]
    pub(crate) api_key_file: Option<PathBuf>,

    /// HMAC secret (HS256/384/512), at least 32 bytes: clients then need a JWT (query token= or
    /// Authorization: Bearer) whose `sub` is their user id and which has `exp`
    /// [default: none, no tokens].
    #[arg(
        long,
        env = "HUBBUB_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) jwt_secret: Option<String>,

    /// File holding the JWT secret (one trailing line break is ignored); instead of
    /// --jwt-secret.
    #[arg(long, env = "HUBBUB_JWT_SECRET_FILE", value_name = "PATH")]
    pub(crate) jwt_secret_file: Option<PathBuf>,

    /// PEM public key (RSA, EC P-256/P-384 or Ed25519) that client JWTs are verified with
    /// (RS256/384/512, ES256/384, EdDSA), instead of --jwt-secret.
    #[arg(long, env = "HUBBUB_JWT_PUBLIC_KEY_FILE", value_name = "PATH")]
    pub(crate) jwt_public_key_file: Option<PathBuf>,

    /// http:// URL of a JWKS document whose keys client JWTs are verified with, instead of
    /// --jwt-secret: fetched at start (the node does not start without it) and again every
    /// --jwks-refresh.
    #[arg(long, env = "HUBBUB_JWKS_URL", value_name = "URL")]
    pub(crate) jwks_url: Option<String>,

    /// How often the --jwks-url document is fetched again (a failed fetch keeps the keys).
    #[arg(long, env = "HUBBUB_JWKS_REFRESH", default_value = "5m", value_name = "DURATION", value_parser = duration)]
    pub(crate) jwks_refresh: Duration,

    /// Browser origins allowed besides the node's own (comma-separated; * for any).
    /// Clients that send no Origin (non-browsers) are always allowed.
    #[arg(
        long,
        env = "HUBBUB_ALLOWED_ORIGINS",
        value_name = "ORIGIN,...",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,

    /// Let clients send {"type":"broadcast"} to every connection.
    #[arg(long, env = "HUBBUB_ALLOW_CLIENT_BROADCAST")]
    pub(crate) allow_client_broadcast: bool,

    /// How often the node pings each client.
    #[arg(long, env = "HUBBUB_PING_INTERVAL", default_value = "25s", value_name = "DURATION", value_parser = duration)]
    pub(crate) ping_interval: Duration,

    /// How long a client may stay silent after a ping before it is closed (4001).
    #[arg(long, env = "HUBBUB_PONG_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub(crate) pong_timeout: Duration,

    /// Largest message a client may send; larger ones close the connection (1009).
    #[arg(long, env = "HUBBUB_MAX_MESSAGE_SIZE", default_value = "64KiB", value_name = "SIZE", value_parser = size)]
    pub(crate) max_message_size: usize,

    /// Send queue bound per connection; a client that falls this far behind is closed (4008).
    #[arg(long, env = "HUBBUB_SEND_QUEUE_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = size)]
    pub(crate) send_queue_bytes: usize,

    /// Connections allowed per client IP address, WebSockets and HTTP alike [default:
    /// unlimited].
    #[arg(long, env = "HUBBUB_MAX_CONNECTIONS_PER_IP", value_name = "N", value_parser = positive)]
    pub(crate) max_connections_per_ip: Option<u32>,

    /// How long SIGINT/SIGTERM waits for clients to receive their 1001 close.
    #[arg(long, env = "HUBBUB_SHUTDOWN_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub(crate) shutdown_timeout: Duration,

    /// Time a connection has to send its whole HTTP request (head and body), and each answer
    /// has to be written.
    #[arg(long, env = "HUBBUB_HANDSHAKE_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub(crate) handshake_timeout: Duration,

    /// Connections served at once that are not WebSockets (HTTP requests, handshakes in
    /// progress); more are answered 503 and closed.
    #[arg(long, env = "HUBBUB_MAX_HTTP_CONNECTIONS", default_value = "1024", value_name = "N", value_parser = positive)]
    pub(crate) max_http_connections: u32,

    /// Cluster secret (32 bytes or more, the same on every node): node-to-node calls carry
    /// proof of it and calls without are refused. Needed when --grpc-listen is beyond loopback.
    #[arg(
        long,
        env = "HUBBUB_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) cluster_secret: Option<String>,

    /// File holding the cluster secret (instead of --cluster-secret; a final line break is
    /// ignored).
    #[arg(long, env = "HUBBUB_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub(crate) cluster_secret_file: Option<PathBuf>,

    /// A Pusher app served at /app/{KEY} (WebSocket) and /apps/{ID} (HTTP API): its id, key
    /// and secret (16 bytes or more). Repeatable; the environment variable takes several,
    /// comma-separated. With none, a node listening on loopback serves soketi's default app
    /// app-id:app-key:app-secret, and a node beyond loopback serves no Pusher app.
    #[arg(
        long = "pusher-app",
        env = "HUBBUB_PUSHER_APP",
        value_name = "ID:KEY:SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) pusher_apps: Vec<String>,

    /// Let clients of the apps given by --pusher-app send client-* events on private and
    /// presence channels (never echoed to the sender).
    #[arg(long, env = "HUBBUB_PUSHER_CLIENT_EVENTS")]
    pub(crate) pusher_client_events: bool,

    /// A URL (http://HOST[:PORT]/PATH) that receives the Pusher webhooks of every app:
    /// channel_occupied, channel_vacated, member_added, member_removed and client_event, in
    /// signed batches (X-Pusher-Key, X-Pusher-Signature), retried with backoff. Repeatable;
    /// comma-separated in the environment variable [default: none].
    #[arg(
        long = "pusher-webhook",
        env = "HUBBUB_PUSHER_WEBHOOK",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub(crate) pusher_webhooks: Vec<String>,

    /// Rooms that keep history, e.g. 'chat:*=100/10m': rooms named PATTERN (a trailing *
    /// matches any suffix) keep their last N messages (1 to 100000), each for at most TTL; their
    /// messages carry offset and epoch, and a join with since replays what was missed.
    /// Repeatable; comma-separated in HUBBUB_HISTORY. Kept in memory on one node, in Redis in a
    /// cluster (the bus's or the registry's) [default: none].
    #[arg(long, env = "HUBBUB_HISTORY", value_name = "PATTERN=N/TTL", value_parser = parse_history_rule, value_delimiter = ',')]
    pub(crate) history: Vec<HistoryRule>,
    /// PEM certificate chain (leaf first) of the client listener: with --tls-key it serves
    /// wss:// and https:// instead of plaintext. Checked every 2 s and on SIGHUP, and
    /// reloaded without a restart when it changes (a bad new pair keeps the old one).
    #[arg(long, env = "HUBBUB_TLS_CERT", value_name = "PATH")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "HUBBUB_TLS_KEY", value_name = "PATH")]
    pub(crate) tls_key: Option<PathBuf>,

    /// PEM certificate chain of the gRPC listener (producer API and node-to-node), with
    /// --grpc-tls-key [default: the --tls-cert pair when given, else plaintext]. In a
    /// cluster it must chain to --cluster-ca.
    #[arg(long, env = "HUBBUB_GRPC_TLS_CERT", value_name = "PATH")]
    pub(crate) grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "HUBBUB_GRPC_TLS_KEY", value_name = "PATH")]
    pub(crate) grpc_tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) of the cluster: peers' gRPC certificates, and their client
    /// certificates with mutual TLS, must chain to it. Needed by a clustered node whose gRPC
    /// listener serves TLS.
    #[arg(long, env = "HUBBUB_CLUSTER_CA", value_name = "PATH")]
    pub(crate) cluster_ca: Option<PathBuf>,

    /// PEM client certificate (signed by --cluster-ca) this node presents to its peers, with
    /// --cluster-tls-key: mutual TLS, which also makes --cluster-secret optional.
    #[arg(long, env = "HUBBUB_CLUSTER_TLS_CERT", value_name = "PATH")]
    pub(crate) cluster_tls_cert: Option<PathBuf>,

    /// PEM private key of --cluster-tls-cert.
    #[arg(long, env = "HUBBUB_CLUSTER_TLS_KEY", value_name = "PATH")]
    pub(crate) cluster_tls_key: Option<PathBuf>,

    /// Rooms whose members are told who joins and leaves, as
    /// {"type":"presence","room":R,"join"|"leave":{"id":ID,"user":U}} (comma-separated room
    /// names; a name ending in * matches every room starting with the rest, * alone every
    /// room) [default: none].
    #[arg(long, env = "HUBBUB_PRESENCE_NOTIFY", value_name = "PATTERN,...", value_parser = patterns)]
    pub(crate) presence_notify: Option<hub_core::RoomPatterns>,
}

impl ServeArgs {
    /// The node settings these flags describe (secret files are read here); the error is one
    /// line naming the flag.
    pub(crate) fn settings(&self) -> Result<Settings, String> {
        let defaults = Settings::default();
        let api_key = resolve_secret(
            "api-key",
            self.api_key.as_deref(),
            self.api_key_file.as_deref(),
        )?;
        let jwt_secret = resolve_secret(
            "jwt-secret",
            self.jwt_secret.as_deref(),
            self.jwt_secret_file.as_deref(),
        )?;
        let cluster_secret = resolve_secret(
            "cluster-secret",
            self.cluster_secret.as_deref(),
            self.cluster_secret_file.as_deref(),
        )?;
        let jwt_public_key_pem = match &self.jwt_public_key_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                format!("--jwt-public-key-file: cannot read {}: {e}", path.display())
            })?),
            None => None,
        };
        let tls = TlsFiles::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            "tls-cert",
            "tls-key",
        )?;
        let grpc_tls = TlsFiles::from_flags(
            self.grpc_tls_cert.as_deref(),
            self.grpc_tls_key.as_deref(),
            "grpc-tls-cert",
            "grpc-tls-key",
        )?;
        let cluster_tls = TlsFiles::from_flags(
            self.cluster_tls_cert.as_deref(),
            self.cluster_tls_key.as_deref(),
            "cluster-tls-cert",
            "cluster-tls-key",
        )?;
        Ok(Settings {
            listen: self.listen,
            runtime: match self.runtime {
                RuntimeArg::Tokio => RuntimeKind::Tokio,
                RuntimeArg::Smol => RuntimeKind::Smol,
            },
            shards: self.shards.unwrap_or(defaults.shards),
            node_id: self.node_id.clone(),
            grpc_listen: self.grpc_listen,
            advertise: self.advertise.clone(),
            registry: self.registry.clone(),
            bus: self.bus.clone(),
            lease_ttl: self.lease_ttl,
            api_key,
            jwt_secret,
            jwt_public_key_pem,
            jwks_url: self.jwks_url.clone(),
            jwks_refresh: self.jwks_refresh,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            allow_client_broadcast: self.allow_client_broadcast,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            max_message_size: self.max_message_size,
            send_queue_bytes: self.send_queue_bytes,
            max_connections_per_ip: self.max_connections_per_ip,
            shutdown_timeout: self.shutdown_timeout,
            handshake_timeout: self.handshake_timeout,
            max_http_connections: self.max_http_connections as usize,
            cluster_secret,
            pusher_apps: hub_pusher::Apps::from_specs(&self.pusher_apps, self.pusher_client_events)
                .map_err(|e| e.to_string())?,
            pusher_webhooks: self.pusher_webhooks.clone(),
            history: self.history.clone(),
            tls,
            grpc_tls,
            cluster_ca: self.cluster_ca.clone(),
            cluster_tls,
            presence_notify: self.presence_notify.clone().unwrap_or_default(),
        })
    }
}
