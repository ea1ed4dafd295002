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
//! working). It hides nothing by itself: links are encrypted when the cluster runs TLS
//! (`--cluster-ca`).
//!
//! Mutual TLS (`--cluster-tls-cert`, `--cluster-tls-key`, `--cluster-ca`) is the stronger
//! credential: the gRPC listener verifies a client certificate against the cluster CA during
//! the handshake, and [`PeerAuth::verify_call`] refuses a Peer call whose connection
//! presented none. With mutual TLS and no secret, the caller's node id is the one it sends
//! (every holder of a cluster certificate is a member); with both, a call needs both.
//!
//! Invariants: with a secret or mutual TLS configured, every Peer call without the proofs
//! configured is refused with UNAUTHENTICATED; with neither (a loopback-only listener, see
//! the settings' check), calls are accepted as before and the node warns at start.

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
    /// Whether calls must come over a connection with a client certificate of the cluster CA.
    mtls: bool,
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
        Self {
            me,
            mac,
            mtls: false,
        }
    }

    /// The same, requiring mutual TLS too when `mtls` (see the module docs).
    pub fn with_mtls(mut self, mtls: bool) -> Self {
        self.mtls = mtls;
        self
    }

    /// The node this is.
    pub fn node(&self) -> &NodeId {
        &self.me
    }

    /// Whether calls must carry a proof (of the secret, or a client certificate).
    pub fn required(&self) -> bool {
        self.mac.is_some() || self.mtls
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

    /// Adds this node's id and proof for a call to `peer` at `now` (unix seconds); only the
    /// id with mutual TLS and no secret, nothing with neither.
    pub fn sign(&self, peer: &NodeId, now: u64, metadata: &mut MetadataMap) {
        let Some(mac) = self.tag(self.me.as_str(), peer.as_str(), now) else {
            if self.mtls {
                metadata.insert_bin(
                    NODE_KEY,
                    BinaryMetadataValue::from_bytes(self.me.as_str().as_bytes()),
                );
            }
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

    /// The authenticated caller of a call received at `now` over a connection that presented
    /// a client certificate of the cluster CA (`certified`) or not: see the module docs.
    /// `None` when nothing is configured to check, UNAUTHENTICATED when a proof is missing.
    pub fn verify_call(
        &self,
        metadata: &MetadataMap,
        certified: bool,
        now: u64,
    ) -> Result<Option<NodeId>, Status> {
        if self.mtls && !certified {
            return Err(Status::unauthenticated(
                "node-to-node call refused: no client certificate signed by the cluster CA (--cluster-tls-cert)",
            ));
        }
        if self.mac.is_some() || !self.mtls {
            return self.verify(metadata, now);
        }
        let from = node_id(metadata)
            .ok_or_else(|| Status::unauthenticated("node-to-node call refused: no node id"))?;
        Ok(Some(NodeId::from(from)))
    }

    /// The caller of a call received at `now` as its secret proves it: `Some(node)` with a
    /// valid proof, `None` when no secret is configured (nothing to check), UNAUTHENTICATED
    /// otherwise.
    pub fn verify(&self, metadata: &MetadataMap, now: u64) -> Result<Option<NodeId>, Status> {
        if self.mac.is_none() {
            return Ok(None);
        }
        let refuse = |why: &str| {
            Status::unauthenticated(format!(
                "node-to-node call refused: {why} (nodes of a cluster share --cluster-secret)"
            ))
        };
        let from = node_id(metadata).ok_or_else(|| refuse("no node id"))?;
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

/// The node id a call names (1 to 256 bytes of UTF-8).
fn node_id(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get_bin(NODE_KEY)
        .and_then(|v| v.to_bytes().ok())
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|n| !n.is_empty() && n.len() <= 256)
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

    #[test]
    fn with_mutual_tls_a_call_needs_a_certificate_and_with_a_secret_both() {
        let certs_only = PeerAuth::new(NodeId::from("b"), None).with_mtls(true);
        assert!(certs_only.required());
        let mut md = MetadataMap::new();
        PeerAuth::new(NodeId::from("a"), None).with_mtls(true).sign(
            &NodeId::from("b"),
            1000,
            &mut md,
        );
        let check = |auth: &PeerAuth, md: &MetadataMap, certified| {
            auth.verify_call(md, certified, 1000).map_err(|s| s.code())
        };
        let denied = Err(tonic::Code::Unauthenticated);
        assert_eq!(check(&certs_only, &md, true), Ok(Some(NodeId::from("a"))));
        assert_eq!(check(&certs_only, &md, false), denied, "no certificate");
        assert_eq!(
            check(&certs_only, &MetadataMap::new(), true),
            denied,
            "no id"
        );
        let both = auth("b", &[1u8; 32]).with_mtls(true);
        assert_eq!(check(&both, &md, true), denied, "no proof of the secret");
        let mut signed = MetadataMap::new();
        auth("a", &[1u8; 32]).sign(&NodeId::from("b"), 1000, &mut signed);
        assert_eq!(check(&both, &signed, false), denied, "no certificate");
        assert_eq!(check(&both, &signed, true), Ok(Some(NodeId::from("a"))));
    }
}
