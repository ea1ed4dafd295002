//! Clusters of real nodes sharing a real registry (Redis or etcd) and bus, for the
//! cluster tests.

use std::time::Duration;

use serde_json::Value;

use crate::servers::{EtcdServer, RedisServer};
use crate::{eventually, http, post, TestNode};

/// The registry backend of a test cluster.
#[derive(Clone, Copy, Debug)]
pub enum Registry {
    /// A Redis registry.
    Redis,
    /// An etcd registry.
    Etcd,
}

/// The bus of a test cluster.
#[derive(Clone, Copy, Debug)]
pub enum Bus {
    /// Room publishes over the node-to-node gRPC links.
    Grpc,
    /// Room publishes over Redis pub/sub.
    Redis,
}

/// The lease TTL of test clusters.
pub const TTL: &str = "2s";

/// Nodes sharing a registry (and maybe a Redis bus).
pub struct Cluster {
    /// The nodes, `n0`, `n1`, ... in start order.
    pub nodes: Vec<TestNode>,
    /// Each node's gRPC listen address.
    pub grpc: Vec<String>,
    /// The Redis server, when the registry or the bus is Redis.
    pub redis: Option<RedisServer>,
    /// The etcd server, when the registry is etcd.
    pub etcd: Option<EtcdServer>,
    registry: Registry,
    bus: Bus,
}

impl Cluster {
    /// Three nodes with the default test flags, formed.
    pub async fn start(registry: Registry, bus: Bus) -> Cluster {
        Cluster::start_with(registry, bus, 3, &[]).await
    }

    /// `size` nodes, each also given `extra` flags (a `--lease-ttl` there replaces [`TTL`]),
    /// formed.
    pub async fn start_with(registry: Registry, bus: Bus, size: usize, extra: &[&str]) -> Cluster {
        let redis = matches!((registry, bus), (Registry::Redis, _) | (_, Bus::Redis))
            .then(RedisServer::start);
        let etcd = matches!(registry, Registry::Etcd).then(EtcdServer::start);
        let mut cluster = Cluster {
            nodes: Vec::new(),
            grpc: Vec::new(),
            redis,
            etcd,
            registry,
            bus,
        };
        for _ in 0..size {
            cluster.add_node(extra);
        }
        cluster.wait_formed(size).await;
        cluster
    }

    /// The `--registry` value of this cluster.
    pub fn registry_flag(&self) -> String {
        match self.registry {
            Registry::Redis => self.redis.as_ref().map(|r| r.url()).unwrap_or_default(),
            Registry::Etcd => format!(
                "etcd://{}",
                self.etcd.as_ref().map(|e| e.endpoint()).unwrap_or_default()
            ),
        }
    }

    /// Starts one more node (`n<index>`) with the cluster's flags plus `extra`, without
    /// waiting for the others to see it; returns its index.
    pub fn add_node(&mut self, extra: &[&str]) -> usize {
        let index = self.nodes.len();
        let registry = self.registry_flag();
        let bus = match self.bus {
            Bus::Grpc => "grpc".to_owned(),
            Bus::Redis => self.redis.as_ref().map(|r| r.url()).unwrap_or_default(),
        };
        let name = format!("n{index}");
        let mut flags = vec!["--registry", registry.as_str(), "--bus", bus.as_str()];
        if !extra.contains(&"--lease-ttl") {
            flags.extend_from_slice(&["--lease-ttl", TTL]);
        }
        flags.extend_from_slice(&["--shards", "2"]);
        flags.extend_from_slice(extra);
        let (node, addr) = TestNode::start_clustered(&name, &flags);
        self.nodes.push(node);
        self.grpc.push(addr);
        index
    }

    /// Waits until every live node is healthy and sees `size - 1` peers.
    pub async fn wait_formed(&self, size: usize) {
        for node in &self.nodes {
            let addr = node.addr;
            let formed = eventually(Duration::from_secs(15), || async move {
                let stats = http(addr, "GET", "/stats", None, &[]).await.json();
                stats["status"] == "ok" && stats["peers"].as_array().map(Vec::len) == Some(size - 1)
            })
            .await;
            assert!(formed, "node {addr} did not join a cluster of {size}");
        }
    }

    /// The WebSocket URL of `path` on node `node`.
    pub fn url(&self, node: usize, path: &str) -> String {
        self.nodes[node].ws_url(path)
    }

    /// `POST path` with `body` on node `node`; the JSON answer.
    pub async fn api(&self, node: usize, path: &str, body: &str) -> Value {
        post(self.nodes[node].addr, path, body).await.json()
    }

    /// `/api/online/ID` on node `node`.
    pub async fn online(&self, node: usize, id: &str) -> Value {
        http(
            self.nodes[node].addr,
            "GET",
            &format!("/api/online/{id}"),
            None,
            &[],
        )
        .await
        .json()
    }

    /// Node `node`'s `/stats`.
    pub async fn stats(&self, node: usize) -> Value {
        http(self.nodes[node].addr, "GET", "/stats", None, &[])
            .await
            .json()
    }

    /// Waits until `id` reads online at node `node` (named `n<node>`... as given), seen
    /// from node `from`: registrations travel through the registry asynchronously.
    pub async fn wait_online(&self, from: usize, id: &str, node: &str) {
        let addr = self.nodes[from].addr;
        let seen = eventually(Duration::from_secs(10), || async move {
            let v = http(addr, "GET", &format!("/api/online/{id}"), None, &[])
                .await
                .json();
            v["online"] == true && v["node"] == node
        })
        .await;
        assert!(seen, "{id} online at {node}, seen from node {from}");
    }
}
