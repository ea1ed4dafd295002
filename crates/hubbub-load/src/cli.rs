//! The command line: subcommands, their flags and the help text that explains them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::proto::Protocol;

const ABOUT: &str = "Load generator for WebSocket servers: fan-out latency and loss at an \
open-loop rate, rate sweeps, memory per idle connection, connect rate.";

const LONG_ABOUT: &str = "\
Load generator for WebSocket servers: Hubbub, or any server that speaks one of the
protocol adapters below.

PAYLOAD. Every adapter carries the same text payload, '<seq>:<send_ns>:<padding>' padded
with '.' to --payload bytes: a sequence number and the send time in nanoseconds since the
Unix epoch (CLOCK_REALTIME, so worker processes on one machine compare their clocks). A
delivery's latency is its receive time minus that stamp.

PROTOCOLS (--protocol):
  hubbub     subscribers open {url}/ws/{room} and are ready at the welcome frame; the
             publisher opens {url}/ws and sends {\"type\":\"publish\",\"room\":R,\"data\":\"PAYLOAD\"}
             (or, with --publish-via api, POSTs {\"room\":R,\"data\":\"PAYLOAD\"} to
             {http}/api/publish); subscribers read 'data' of message frames.
  broadcast  every client opens the URL as given; the publisher sends PAYLOAD as a text
             frame and the server sends it to every connection (wrapping is tolerated:
             subscribers look for the payload inside the text).
  uws        topic pub/sub: clients open the URL as given; a subscriber sends
             {\"type\":\"join\",\"room\":R} and is ready at the server's first text frame (any
             content); the publisher sends {\"type\":\"publish\",\"room\":R,\"data\":\"PAYLOAD\"} and
             the server sends PAYLOAD as a text frame to every subscriber of R.
  socketio   socket.io 4 over the WebSocket transport: clients open
             {url}/socket.io/?EIO=4&transport=websocket, await the Engine.IO open packet,
             send '40' and await '40{...}'; a subscriber emits 42[\"join\",R] and is ready at
             42[\"joined\",...]; the publisher emits 42[\"publish\",R,\"PAYLOAD\"] and subscribers
             read PAYLOAD from 42[\"message\",\"PAYLOAD\"]. Engine.IO pings ('2') are answered
             ('3'). For crossnode, e.g. socket.io nodes sharing the Redis adapter.

OPEN LOOP. The publisher sends message i at start + i/rate whatever happened to earlier
messages; it never waits for deliveries. Messages it sends more than 5 ms late are counted
('late'), with the largest lag, so a publisher that cannot keep up is visible. Each
payload is stamped when it is handed to the socket: latencies leave out the publisher's own
lag, which is reported beside them.

MEASUREMENT. Each step sends --warmup seconds of unmeasured messages, then --duration
seconds of measured ones, then waits up to --drain seconds for the last deliveries. Loss is
messages x subscribers - deliveries. 'last sub' is, per message that reached every
subscriber, the latency of the last one to get it. The generator's CPU (this process and
its workers) and, with --server-pid, the server's CPU (utime+stime from /proc/PID/stat) are
measured over the measured window; 'server us/delivery' is server CPU per delivery. When
the generator's CPU nears 100% of its cores, the generator, not the server, is the limit.
Subscribers that end during a step are counted by close code (Hubbub: 4008 = slow
consumer). idle reads VmRSS: user-space memory, not the kernel's socket buffers.

SCALE. One process holds up to ~15,000 connections (less under a lower open-file limit);
beyond that the connections are split over worker processes (this program re-executed).
With a loopback server, client sockets are bound to 127.0.0.2, 127.0.0.3, ... (--per-source
connections each), since one source address has only ~28k ephemeral ports (about half of
them for sockets bound before connecting). Connections close with a reset (SO_LINGER 0), so
runs leave no TIME_WAIT ports behind.

CLUSTER SCALE (scale). Connection i opens node (i mod K) of the K --url nodes as client
'{id-prefix}{i}' ({url}/ws?id=c{i}) and accepts only its own payload (sequence number i).
Once every connection is ready and --settle has passed, the generator emits to each
client (or --emits of them: the same number per node, evenly spread) through the producer
API of ANOTHER node than the client's: POST {http}/api/emit {\"to\":\"c{i}\",\"data\":\"PAYLOAD\"},
over --api-connections keep-alive connections per node with --api-window requests in
flight each. It checks that every answer is 200 {\"delivered\":1} and that every targeted
client received its own payload exactly once, and no client anything else. Reports
connections per node (the generator's count and the node's /stats), emits/s, the API
round trip (request written -> answer read) and the delivery latency (payload stamp ->
client), and, with --server-pid once per --url in the same order, each node's VmRSS and
bytes per connection and the nodes' CPU (--registry-pid: the registry's too; 'rest' is the
machine's busy time from /proc/stat minus nodes, registry and generator: other processes,
and softirq work charged to none of them). Exits non-zero if any connection failed or
closed, or any answer or delivery was wrong or missing.

OUTPUT. A progress line on stderr every second; a table on stdout at the end; with
--json FILE, a JSON summary.";

const AFTER: &str = "\
Examples:
  hubbub-load fanout --url ws://127.0.0.1:8080 --subscribers 1000 --rate 1000 --duration 10
  hubbub-load fanout --subscribers 10000 --sweep --rates 10,20,50,100,200 --server-pid 1234
  hubbub-load fanout --protocol broadcast --url ws://127.0.0.1:9001/ --subscribers 500
  hubbub-load idle --connections 19000 --server-pid 1234
  hubbub-load connect-rate --connections 10000 --connect-concurrency 100
  hubbub-load scale --url ws://127.0.0.1:8081 --url ws://127.0.0.1:8082 --url ws://127.0.0.1:8083 \\
      --connections 30000 --server-pid 101 --server-pid 102 --server-pid 103 --json scale.json
  bash crates/hubbub-load/scripts/scale.sh   # 100,000 connections on 6 nodes and Redis";

/// The `hubbub-load` command line.
#[derive(Debug, Parser)]
#[command(name = "hubbub-load", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// S subscribers in one room, one publisher at an open-loop rate: latency, loss,
    /// deliveries/s; or, with --sweep, the highest rate held.
    Fanout(FanoutArgs),
    /// Like fanout, across two nodes of a cluster: subscribers on --sub-url, the publisher
    /// on --pub-url.
    Crossnode(CrossnodeArgs),
    /// N idle connections opened at a bounded rate; with --server-pid, the server's memory
    /// per connection (VmRSS before and after).
    Idle(IdleArgs),
    /// N connections opened as fast as --connect-concurrency connectors allow: connects/s,
    /// connect latency, failures.
    ConnectRate(ConnectRateArgs),
    /// N connections with client ids spread over the nodes of a cluster, then one emit per
    /// client (or a sample) through another node's producer API: every answer and every
    /// delivery checked.
    Scale(ScaleArgs),
    /// Internal: hold a share of the connections for a coordinating process.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// `fanout` flags.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Server URL (for hubbub, the node's base URL; for others, the WebSocket URL).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Load shape, sweep and output.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `crossnode` flags.
#[derive(Debug, Clone, Args)]
pub struct CrossnodeArgs {
    /// URL of the node the subscribers connect to.
    #[arg(long)]
    pub sub_url: String,
    /// URL of the node the publisher connects to.
    #[arg(long)]
    pub pub_url: String,
    /// Load shape, sweep and output.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How the publisher reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishVia {
    /// A WebSocket connection sending publish frames.
    Ws,
    /// Hubbub's producer API: POST /api/publish, pipelined on one keep-alive connection.
    Api,
}

/// Flags shared by `fanout` and `crossnode`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Subscribers in the room.
    #[arg(long, short = 's', default_value_t = 1000)]
    pub subscribers: u64,
    /// Messages per second the publisher sends (open loop); the first rate of a sweep.
    #[arg(long, short = 'r', default_value_t = 100.0)]
    pub rate: f64,
    /// Measured seconds per step.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds of messages before each step's measured part.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait after a step for deliveries still under way.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Payload bytes (at least the '<seq>:<send_ns>:' header, ~30 bytes).
    #[arg(long, short = 'p', default_value_t = 64)]
    pub payload: usize,
    /// How the publisher sends: a WebSocket, or (hubbub only) the producer HTTP API.
    #[arg(long, value_enum, default_value_t = PublishVia::Ws)]
    pub publish_via: PublishVia,
    /// Base URL of the producer API (default: the publisher URL with http://).
    #[arg(long)]
    pub http_url: Option<String>,
    /// API key for the producer API (sent as a bearer token).
    #[arg(long, env = "HUBBUB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Sweep rates: from --rate, x --sweep-factor per step (or the --rates list), until a
    /// step fails; reports the highest rate held.
    #[arg(long)]
    pub sweep: bool,
    /// Explicit sweep rates, e.g. 10,20,50,100 (implies --sweep).
    #[arg(long)]
    pub rates: Option<String>,
    /// Rate factor between sweep steps.
    #[arg(long, default_value_t = 1.5)]
    pub sweep_factor: f64,
    /// Most steps of a geometric sweep.
    #[arg(long, default_value_t = 12)]
    pub sweep_steps: usize,
    /// A step holds when its loss is below this fraction (0.001 = 0.1 %) ...
    #[arg(long, default_value_t = 0.001)]
    pub max_loss: f64,
    /// ... and its per-delivery p99 is below this many milliseconds, and the publisher sent
    /// at >= 95 % of the rate.
    #[arg(long, default_value_t = 1000.0)]
    pub max_p99_ms: f64,
    /// Connection placement and protocol.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Connections started per second while connecting subscribers (default: unlimited).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Measurement outputs.
    #[command(flatten)]
    pub out: OutArgs,
}

/// `idle` flags.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Server URL (for hubbub, the node's base URL; connections open {url}/ws).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Idle connections to open.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    pub connections: u64,
    /// Connections started per second.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Seconds to wait after the last connection before reading the server's memory.
    #[arg(long, default_value_t = 10.0)]
    pub settle: f64,
    /// Connection placement and protocol.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Measurement outputs.
    #[command(flatten)]
    pub out: OutArgs,
}

/// `connect-rate` flags.
#[derive(Debug, Clone, Args)]
pub struct ConnectRateArgs {
    /// Server URL (for hubbub, the node's base URL; connections open {url}/ws).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Connections to open (kept open until the end).
    #[arg(long, short = 'n', default_value_t = 10_000)]
    pub connections: u64,
    /// Connection placement and protocol.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Measurement outputs.
    #[command(flatten)]
    pub out: OutArgs,
}

/// `scale` flags.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Base URL of one node (repeat once per node, at least two): connection i opens
    /// {url i mod K}/ws?id={id-prefix}{i}; the producer API is the same URL with http://.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// Connections to open and hold.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    pub connections: u64,
    /// Clients to emit to (default: all): a deterministic sample, the same number from
    /// every node and evenly spread over each node's clients.
    #[arg(long)]
    pub emits: Option<u64>,
    /// Client ids are this prefix followed by the connection number (letters, digits, '-',
    /// '_').
    #[arg(long, default_value = "c")]
    pub id_prefix: String,
    /// Payload bytes of each emit (at least the '<seq>:<send_ns>:' header, ~30 bytes).
    #[arg(long, short = 'p', default_value_t = 64)]
    pub payload: usize,
    /// Keep-alive HTTP connections to each node's producer API (a Hubbub node answers the
    /// requests of one connection one at a time, so throughput grows with connections).
    #[arg(long, default_value_t = 16)]
    pub api_connections: usize,
    /// Emits in flight (sent, not yet answered) per HTTP connection.
    #[arg(long, default_value_t = 32)]
    pub api_window: usize,
    /// Seconds without any answer on an HTTP connection after which its emits count as
    /// unanswered.
    #[arg(long, default_value_t = 30.0)]
    pub api_timeout: f64,
    /// API key for the producer API (sent as a bearer token).
    #[arg(long, env = "HUBBUB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Connections started per second, over all workers (default: unlimited, bounded by
    /// --connect-concurrency).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Seconds to wait after the last connection before emitting (registrations land).
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Seconds to wait after the last answer for deliveries still under way.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Process id of the shared registry (e.g. redis-server): its CPU and memory are
    /// reported beside the nodes'.
    #[arg(long)]
    pub registry_pid: Option<u32>,
    /// Where connections live and how fast they open.
    #[command(flatten)]
    pub place: PlaceArgs,
    /// Measurement outputs; --server-pid is given once per --url, in the same order.
    #[command(flatten)]
    pub out: OutArgs,
}

/// Protocol, room and where connections live.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Protocol adapter (see the PROTOCOLS section of --help).
    #[arg(long, value_enum, default_value_t = Protocol::Hubbub)]
    pub protocol: Protocol,
    /// Room (topic) the subscribers join.
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Where connections live and how fast they open.
    #[command(flatten)]
    pub place: PlaceArgs,
}

/// Where connections live and how fast they open (every mode that opens many connections).
#[derive(Debug, Clone, Args)]
pub struct PlaceArgs {
    /// Worker processes (0: all connections in this process; default: as many as the
    /// open-file limit needs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Connections per worker process when placing automatically (default: ~15,000, less
    /// under a lower open-file limit).
    #[arg(long)]
    pub per_worker: Option<u64>,
    /// Runtime threads per process (0: one per usable CPU, e.g. 1 under taskset -c 1).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Connections per loopback source address (127.0.0.2, .3, ...); keep it well under
    /// half the ephemeral port range, where the kernel's port search stays fast.
    #[arg(long, default_value_t = 5_000)]
    pub per_source: u64,
    /// Do not bind client sockets to spread loopback source addresses.
    #[arg(long)]
    pub no_spread: bool,
    /// Connections being opened at once (the C of connect-rate), over all workers.
    #[arg(long, short = 'c', default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds one connection may take to become ready before it counts as failed.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
}

/// Measurement outputs.
#[derive(Debug, Clone, Args)]
pub struct OutArgs {
    /// Server process id(s) to measure CPU (and, for idle, memory) of; repeatable.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Write a JSON summary to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `worker` flags (internal).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Runtime threads (0: one per usable CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}
