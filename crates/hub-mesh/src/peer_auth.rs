//! Proof of cluster membership on node-to-node calls (`hubbub.v1.Peer`).
//!
//! Scheme (v1). The calling node sends two metadata entries:
//! - `hubbub-node-bin`: its node id;
//! - `hubbub-peer-auth`: `v1.<unix seconds>.<MAC>`, the MAC being HMAC-SHA256 under the
//!   cluster secret of the sender's id, the receiver's id and the time (each length-prefixed,
//!   after a fixed label), in unpadded base64url.
//!
//! The receiver recomputes the MAC with its own id as the receiver, compares in constant
//! time, and accepts times within [`PROOF_WINDOW`] of its own clock. So the proof binds the
//! sender (the Peer service then checks that every `from` it is told is that node), the
//! receiver (a proof sent to one node opens no other) and the time (a captured proof stops
//! working). It hides nothing: gRPC between nodes is plaintext until transport security
//! arrives. Mutual TLS with a cluster CA belongs beside [`PeerAuth::verify`]: a verified
//! certificate would name the node instead of (or besides) the MAC.
//!
//! Invariants: with a secret configured, every Peer call without a valid proof is refused
//! with UNAUTHENTICATED; without one (a loopback-only listener, see the settings' check),
//! calls are accepted as before and the node warns at start.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use hub_core::NodeId;
use sha2::Sha256;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap};
use tonic::Status;

type HmacSha256 = Hmac<Sha256>;

/// Metadata key of the calling node's id.
pub const NODE_KEY: &str = "hubbub-node-bin";
/// Metadata key of the proof.
pub const PROOF_KEY: &str = "hubbub-peer-auth";
/// How far (seconds) a proof's time may be from the receiver's clock.
pub const PROOF_WINDOW: u64 = 300;

const LABEL: &[u8] = b"hubbub-peer-v1";

/// Seconds since the Unix epoch (0 for a clock before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This node's side of peer authentication: signs its calls and checks the calls it gets.
#[derive(Clone)]
pub struct PeerAuth {
    me: NodeId,
    /// The MAC keyed with the cluster secret; `None` when no secret is configured.
    mac: Option<HmacSha256>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth")
            .field("me", &self.me)
            .field("secret", &self.mac.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl PeerAuth {
    /// Authentication for node `me` with the cluster secret, if one is configured.
    pub fn new(me: NodeId, secret: Option<&[u8]>) -> Self {
        // HMAC accepts keys of any length: this cannot fail.
        let mac = secret.and_then(|s| HmacSha256::new_from_slice(s).ok());
        Self { me, mac }
    }

    /// The node this is.
    pub fn node(&self) -> &NodeId {
        &self.me
    }

    /// Whether calls must carry a proof.
    pub fn required(&self) -> bool {
        self.mac.is_some()
    }

    fn tag(&self, from: &str, to: &str, time: u64) -> Option<HmacSha256> {
        let mut mac = self.mac.clone()?;
        let time = time.to_string();
        mac.update(LABEL);
        for part in [from.as_bytes(), to.as_bytes(), time.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Some(mac)
    }

    /// Adds this node's id and proof for a call to `peer` at `now` (unix seconds); nothing
    /// without a secret.
    pub fn sign(&self, peer: &NodeId, now: u64, metadata: &mut MetadataMap) {
        let Some(mac) = self.tag(self.me.as_str(), peer.as_str(), now) else {
            return;
        };
        let proof = format!(
            "v1.{now}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        // Base64 and digits are always valid ASCII metadata.
        if let Ok(value) = AsciiMetadataValue::try_from(proof) {
            metadata.insert(PROOF_KEY, value);
        }
        metadata.insert_bin(
            NODE_KEY,
            BinaryMetadataValue::from_bytes(self.me.as_str().as_bytes()),
        );
    }

    /// The authenticated caller of a call received at `now`: `Some(node)` with a valid proof,
    /// `None` when no secret is configured (nothing to check), UNAUTHENTICATED otherwise.
    pub fn verify(&self, metadata: &MetadataMap, now: u64) -> Result<Option<NodeId>, Status> {
        if !self.required() {
            return Ok(None);
        }
        let refuse = |why: &str| {
            Status::unauthenticated(format!(
                "node-to-node call refused: {why} (nodes of a cluster share --cluster-secret)"
            ))
        };
        let from = metadata
            .get_bin(NODE_KEY)
            .and_then(|v| v.to_bytes().ok())
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .filter(|n| !n.is_empty() && n.len() <= 256)
            .ok_or_else(|| refuse("no node id"))?;
        let proof = metadata
            .get(PROOF_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refuse("no proof of membership"))?;
        let mut parts = proof.splitn(3, '.');
        let (Some("v1"), Some(time), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refuse("malformed proof"));
        };
        let time: u64 = time.parse().map_err(|_| refuse("malformed proof"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| refuse("malformed proof"))?;
        let mac = self
            .tag(&from, self.me.as_str(), time)
            .ok_or_else(|| refuse("no secret"))?;
        mac.verify_slice(&tag)
            .map_err(|_| refuse("wrong proof for this node id"))?;
        if time.abs_diff(now) > PROOF_WINDOW {
            return Err(refuse("proof expired (are the nodes' clocks in step?)"));
        }
        Ok(Some(NodeId::from(from)))
    }

    /// An interceptor that signs every call to `peer` with the current time.
    pub fn interceptor(
        &self,
        peer: NodeId,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Clone {
        let auth = self.clone();
        move |mut request: tonic::Request<()>| {
            auth.sign(&peer, unix_now(), request.metadata_mut());
            Ok(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(me: &str, secret: &[u8]) -> PeerAuth {
        PeerAuth::new(NodeId::from(me), Some(secret))
    }

    fn caller(auth: &PeerAuth, md: &MetadataMap, now: u64) -> Result<Option<NodeId>, tonic::Code> {
        auth.verify(md, now).map_err(|s| s.code())
    }

    #[test]
    fn a_proof_opens_its_receiver_only_for_its_sender_and_time() {
        let secret = [1u8; 32];
        let a = auth("a", &secret);
        let b = auth("b", &secret);
        let c = auth("c", &secret);
        let mut md = MetadataMap::new();
        a.sign(&NodeId::from("b"), 1000, &mut md);
        assert_eq!(caller(&b, &md, 1000), Ok(Some(NodeId::from("a"))));
        assert_eq!(
            caller(&b, &md, 1000 + PROOF_WINDOW),
            Ok(Some(NodeId::from("a")))
        );
        let denied = Err(tonic::Code::Unauthenticated);
        assert_eq!(caller(&b, &md, 1001 + PROOF_WINDOW), denied, "expired");
        assert_eq!(caller(&c, &md, 1000), denied, "another receiver");
        assert_eq!(
            caller(&auth("b", &[2u8; 32]), &md, 1000),
            denied,
            "another secret"
        );
        // The same proof presented under another node's id.
        md.insert_bin(NODE_KEY, BinaryMetadataValue::from_bytes(b"c"));
        assert_eq!(caller(&b, &md, 1000), denied, "another sender");
        assert_eq!(caller(&b, &MetadataMap::new(), 1000), denied, "no proof");
        let mut garbage = MetadataMap::new();
        garbage.insert_bin(NODE_KEY, BinaryMetadataValue::from_bytes(b"a"));
        for proof in ["", "v1", "v1.x.y", "v2.1000.AAAA", "v1.1000.!!"] {
            if let Ok(v) = AsciiMetadataValue::try_from(proof) {
                garbage.insert(PROOF_KEY, v);
            }
            assert_eq!(caller(&b, &garbage, 1000), denied, "{proof:?}");
        }
    }

    #[test]
    fn without_a_secret_nothing_is_signed_or_checked() {
        let open = PeerAuth::new(NodeId::from("b"), None);
        assert!(!open.required());
        let mut md = MetadataMap::new();
        open.sign(&NodeId::from("a"), 1000, &mut md);
        assert!(md.is_empty());
        assert_eq!(caller(&open, &md, 1000), Ok(None));
        assert!(!format!("{:?}", auth("a", &[9u8; 32])).contains("9"));
    }
}
