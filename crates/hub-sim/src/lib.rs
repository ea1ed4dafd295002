//! # hub-sim — a deterministic simulation of Hubbub clusters
//!
//! Runs whole clusters of the sans-IO core in one thread, in virtual time:
//!
//! - a [`SimNode`] is one [`hub_core::Hub`]: a router and its shards, wired in-process by
//!   the core (reports to the router, `ToShard` inputs to the shard, at the same instant);
//! - a [`SimClient`] records the JSON messages its connection receives, answers pings, and
//!   acknowledges writes unless marked slow;
//! - a [`Sim`] holds several nodes, a virtual clock ([`Sim::advance`] fires every due
//!   message and timer in a fixed order), simulated links with seeded delay and loss
//!   ([`SimRng`], FIFO per link), a stub registry (register / unregister / lookup, entries of a
//!   crashed node offline once its lease TTL passes) and a stub Redis bus (publish /
//!   subscribe), so crashes and partitions play out in milliseconds of real time.
//!
//! The same seed replays the same run. [`fuzzing`] holds the bodies of the fuzz targets, so
//! that ordinary builds compile and unit-test them.
//!
//! ```
//! use hub_sim::{Sim, SimConfig};
//! use hub_core::{BusKind, Target};
//!
//! let mut sim = Sim::new(SimConfig::cluster(2, 2, BusKind::Grpc)).expect("valid");
//! let a = sim.connect(1, "alice").expect("opens");
//! assert_eq!(sim.deliver(0, Target::Client("alice".into()), "1"), Some(1));
//! assert_eq!(sim.client(a).messages().len(), 1);
//! ```

#![warn(missing_docs)]

mod client;
mod fuzz_cluster;
pub mod fuzzing;
mod node;
mod rng;
mod sim;

pub use client::{ClientKey, SimClient};
pub use node::SimNode;
pub use rng::SimRng;
pub use sim::{Sim, SimConfig};
