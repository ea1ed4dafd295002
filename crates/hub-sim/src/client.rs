//! A simulated WebSocket client: it reads what the hub transmits, answers pings, and
//! acknowledges writes unless it is marked slow.

use bytes::Bytes;
use hub_core::frame::{opcode_of, payload_of, OpCode};
use hub_core::{ClientId, ConnId};
use serde_json::Value;

/// Names one client of a [`Sim`](crate::Sim); keys are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientKey(pub usize);

/// What one simulated client has seen.
///
/// Frames count as received when the shard hands them to the "socket" (`Transmit`). A
/// client that is not slow acknowledges every write at once (`Sent`); a slow one leaves
/// it outstanding, so the hub's send queue for it fills up.
#[derive(Debug, Clone)]
pub struct SimClient {
    pub(crate) node: usize,
    pub(crate) conn: Option<ConnId>,
    pub(crate) id: ClientId,
    pub(crate) received: Vec<Value>,
    pub(crate) close_code: Option<u16>,
    pub(crate) slow: bool,
    pub(crate) unacked: bool,
    pub(crate) pings: u64,
}

impl SimClient {
    pub(crate) fn new(node: usize, conn: ConnId, id: ClientId) -> Self {
        Self {
            node,
            conn: Some(conn),
            id,
            received: Vec::new(),
            close_code: None,
            slow: false,
            unacked: false,
            pings: 0,
        }
    }

    /// The client id the hub knows it by.
    pub fn id(&self) -> &ClientId {
        &self.id
    }

    /// The node it connected to.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Its connection, while open.
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    /// Whether the connection is still up.
    pub fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Every JSON message received, in order (welcome, acks, errors, messages).
    pub fn received(&self) -> &[Value] {
        &self.received
    }

    /// The `data` of every `{"type":"message"}` received, in order.
    pub fn messages(&self) -> Vec<&Value> {
        self.received
            .iter()
            .filter(|v| v["type"] == "message")
            .map(|v| &v["data"])
            .collect()
    }

    /// The close code the hub sent, if it closed the connection.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// WebSocket pings received from the hub.
    pub fn pings(&self) -> u64 {
        self.pings
    }

    /// Whether it leaves writes unacknowledged.
    pub fn is_slow(&self) -> bool {
        self.slow
    }

    /// Reads a batch of frames; returns whether one was a ping (to be answered).
    pub(crate) fn read(&mut self, frames: &[Bytes]) -> bool {
        let mut pinged = false;
        for frame in frames {
            match opcode_of(frame) {
                Some(OpCode::Text) => {
                    let value = serde_json::from_slice(&payload_of(frame)).unwrap_or(Value::Null);
                    self.received.push(value);
                }
                Some(OpCode::Ping) => {
                    self.pings += 1;
                    pinged = true;
                }
                Some(OpCode::Close) => {
                    let payload = payload_of(frame);
                    if let (Some(hi), Some(lo)) = (payload.first(), payload.get(1)) {
                        self.close_code = Some(u16::from_be_bytes([*hi, *lo]));
                    }
                }
                _ => {}
            }
        }
        pinged
    }

    /// The connection is gone (closed by the hub, hung up, or its node crashed).
    pub(crate) fn gone(&mut self) {
        self.conn = None;
        self.unacked = false;
    }
}
