//! The registry operations both backends execute, and what each one answered.
//!
//! A batch is a slice of [`Op`]s; a backend answers one [`Outcome`] per op, in the same
//! order, and applies the ops of one client id in batch order.

use hub_core::node::RegistryCommand;
use hub_core::{ClientId, NodeId};

use crate::BatchResult;

/// One registry operation on one client id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Point the client at this node; report the previous live holder if it was another node.
    Register(&'a ClientId),
    /// Delete the client's entry if it still points at this node.
    Unregister(&'a ClientId),
    /// Which live node holds the client?
    Lookup(&'a ClientId),
    /// Point the client at this node unless another live node holds it now.
    Restore(&'a ClientId),
}

impl<'a> Op<'a> {
    /// The op a router command asks for.
    pub(crate) fn from_command(command: &'a RegistryCommand) -> Op<'a> {
        match command {
            RegistryCommand::Register { client, .. } => Op::Register(client),
            RegistryCommand::Unregister { client } => Op::Unregister(client),
            RegistryCommand::Lookup { client, .. } => Op::Lookup(client),
        }
    }

    /// The client id the op is about.
    pub(crate) fn client(&self) -> &'a ClientId {
        match *self {
            Op::Register(c) | Op::Unregister(c) | Op::Lookup(c) | Op::Restore(c) => c,
        }
    }
}

/// What one [`Op`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Registered; the other live node that held the client before, if any.
    Registered(Option<NodeId>),
    /// Whether an entry pointing at this node was deleted.
    Unregistered(bool),
    /// The live node holding the client, if any.
    Found(Option<NodeId>),
    /// Restored (`None`), or left alone because this other live node holds the client.
    Restored(Option<NodeId>),
}

/// Folds the outcomes of a router batch into the caller's answer.
pub(crate) fn batch_result(batch: &[RegistryCommand], outcomes: Vec<Outcome>) -> BatchResult {
    let mut result = BatchResult::default();
    for (command, outcome) in batch.iter().zip(outcomes) {
        match (command, outcome) {
            (RegistryCommand::Lookup { req, .. }, Outcome::Found(node)) => {
                result.lookups.push((*req, node));
            }
            (RegistryCommand::Register { client, .. }, Outcome::Registered(Some(node))) => {
                result.displaced.push((client.clone(), node));
            }
            _ => {}
        }
    }
    result
}
