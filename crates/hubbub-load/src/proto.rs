//! Protocol adapters: how a client of each kind of server joins, what the publisher sends,
//! and where the payload sits in what subscribers receive. The payload itself
//! ([`crate::payload`]) is the same for every adapter.
//!
//! The contracts, exactly:
//!
//! * `hubbub`: subscribers connect to `{url}/ws/{room}` and are ready at the welcome frame;
//!   the publisher connects to `{url}/ws` and sends
//!   `{"type":"publish","room":ROOM,"data":"PAYLOAD"}` (or POSTs `{"room":ROOM,"data":"PAYLOAD"}`
//!   to `{http}/api/publish`); subscribers read `data` of `{"type":"message",...}` frames.
//! * `broadcast`: every client connects to the URL as given and is ready once upgraded; the
//!   publisher sends PAYLOAD as a text frame and the server sends it on to every connection
//!   (a prefix or wrapping around it is tolerated: subscribers look for the payload inside
//!   the text).
//! * `uws` (topic pub/sub, e.g. a uWebSockets.js script): every client connects to the URL
//!   as given; a subscriber sends `{"type":"join","room":ROOM}` and is ready at the first
//!   text frame the server answers (any content, e.g. `{"type":"joined"}`); the publisher
//!   sends `{"type":"publish","room":ROOM,"data":"PAYLOAD"}` and the server sends PAYLOAD as
//!   a text frame to every subscriber of ROOM.
//! * `socketio` (socket.io 4 over its WebSocket transport, no polling): every client opens
//!   `{url}/socket.io/?EIO=4&transport=websocket`, waits for the Engine.IO open packet
//!   (`0{...}`), sends `40` (connect to namespace `/`) and waits for `40{...}`; a subscriber
//!   then emits `join` (`42["join",ROOM]`) and is ready at the server's `joined` event
//!   (`42["joined",...]`); the publisher emits `publish` (`42["publish",ROOM,"PAYLOAD"]`) and
//!   the server emits `message` to the room (`42["message","PAYLOAD"]`). Engine.IO pings
//!   (`2`) are answered with pongs (`3`). Only this minimal framing: no binary packets, no
//!   acknowledgements, no namespaces other than `/`.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::payload::{self, Stamp};

/// Which kind of server is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Hubbub's client protocol (rooms, welcome frame, JSON messages).
    Hubbub,
    /// A generic broadcast server: whatever one client sends, every client receives.
    Broadcast,
    /// Topic pub/sub in the uWebSockets.js style: join a room, publish to a room.
    Uws,
    /// socket.io 4 (Engine.IO 4 WebSocket transport): `join` and `publish` events.
    Socketio,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Joins the room and records every payload it receives.
    Subscriber,
    /// Connects and stays idle (answers pings, joins nothing).
    Idle,
    /// Sends the messages.
    Publisher,
}

impl Protocol {
    /// The URL a connection of `role` opens, given the server's base URL.
    pub fn url(self, base: &str, role: Role, room: &str) -> String {
        let base = base.trim_end_matches('/');
        match (self, role) {
            (Protocol::Hubbub, Role::Subscriber) => format!("{base}/ws/{room}"),
            (Protocol::Hubbub, _) => format!("{base}/ws"),
            (Protocol::Socketio, _) => format!("{base}/socket.io/?EIO=4&transport=websocket"),
            _ => base.to_string(),
        }
    }

    /// The text a connection of `role` sends right after the upgrade, if any.
    pub fn join_frame(self, role: Role, room: &str) -> Option<String> {
        match (self, role) {
            (Protocol::Uws, Role::Subscriber) => {
                Some(format!(r#"{{"type":"join","room":{}}}"#, json_string(room)))
            }
            (Protocol::Socketio, Role::Subscriber) => {
                Some(format!(r#"42["join",{}]"#, json_string(room)))
            }
            _ => None,
        }
    }

    /// Whether a connection of `role` is ready only after the server's first text frame.
    pub fn waits_for_first_frame(self, role: Role) -> bool {
        match self {
            Protocol::Hubbub => true,
            Protocol::Uws | Protocol::Socketio => role == Role::Subscriber,
            Protocol::Broadcast => false,
        }
    }

    /// Checks the first frame of a connection that waits for one.
    pub fn check_first_frame(self, text: &str) -> Result<(), String> {
        if self == Protocol::Hubbub && !text.contains(r#""welcome""#) {
            return Err(format!("expected a welcome frame, got {}", clip(text)));
        }
        if self == Protocol::Socketio && !text.starts_with(r#"42["joined""#) {
            return Err(format!("expected the joined event, got {}", clip(text)));
        }
        Ok(())
    }

    /// The frames a connection sends and awaits before its join frame (socket.io: the
    /// Engine.IO open packet, then a namespace connect and its answer), as
    /// (frame to send first or none, prefix the awaited answer starts with).
    pub fn preamble(self) -> &'static [(Option<&'static str>, &'static str)] {
        match self {
            Protocol::Socketio => &[(None, "0{"), (Some("40"), "40")],
            _ => &[],
        }
    }

    /// The frame that answers `text` at once when the protocol asks for one (socket.io:
    /// Engine.IO ping `2` → pong `3`); such frames carry no payload.
    pub fn heartbeat_reply(self, text: &str) -> Option<&'static str> {
        (self == Protocol::Socketio && text == "2").then_some("3")
    }

    /// The text frame that publishes `payload` to `room`.
    pub fn publish_frame(self, room: &str, payload: &str) -> String {
        match self {
            Protocol::Broadcast => payload.to_string(),
            Protocol::Hubbub | Protocol::Uws => format!(
                r#"{{"type":"publish","room":{},"data":"{payload}"}}"#,
                json_string(room)
            ),
            Protocol::Socketio => format!(r#"42["publish",{},"{payload}"]"#, json_string(room)),
        }
    }

    /// The payload in a received text frame, if it carries one.
    pub fn extract(self, text: &str) -> Option<Stamp> {
        match self {
            Protocol::Hubbub => {
                const KEY: &str = r#""data":""#;
                // Hubbub ends a message frame with its `data`: the payload is the last
                // string, found from the end without searching the envelope (a cost paid per
                // delivery, which would make the generator the limit sooner). Other shapes:
                // a search for the key.
                if let Some(body) = text.strip_suffix("\"}") {
                    if let Some(start) = body.rfind('"').map(|q| q + 1) {
                        if body[..start].ends_with(KEY) {
                            return payload::decode(&body[start..]);
                        }
                    }
                }
                let start = text.find(KEY)? + KEY.len();
                let len = text[start..].find('"')?;
                payload::decode(&text[start..start + len])
            }
            Protocol::Broadcast | Protocol::Uws | Protocol::Socketio => payload::find(text),
        }
    }
}

/// The body of a producer-API publish of `payload` to `room`.
pub fn api_publish_body(room: &str, payload: &str) -> String {
    format!(r#"{{"room":{},"data":"{payload}"}}"#, json_string(room))
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The start of `text`, for error messages.
pub fn clip(text: &str) -> String {
    let end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
    format!("{:?}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::encode;

    #[test]
    fn urls_per_protocol_and_role() {
        let base = "ws://127.0.0.1:8080/";
        assert_eq!(
            Protocol::Hubbub.url(base, Role::Subscriber, "bench"),
            "ws://127.0.0.1:8080/ws/bench"
        );
        assert_eq!(
            Protocol::Hubbub.url(base, Role::Publisher, "bench"),
            "ws://127.0.0.1:8080/ws"
        );
        assert_eq!(
            Protocol::Broadcast.url("ws://h:1/chat", Role::Subscriber, "r"),
            "ws://h:1/chat"
        );
    }

    #[test]
    fn frames_carry_the_same_payload() {
        let p = encode(3, 1_000, 64);
        let stamp = Some(Stamp {
            seq: 3,
            send_ns: 1_000,
        });
        // What Hubbub delivers for a publish.
        let hub = format!(r#"{{"type":"message","room":"bench","data":"{p}"}}"#);
        assert_eq!(Protocol::Hubbub.extract(&hub), stamp);
        assert_eq!(Protocol::Broadcast.extract(&p), stamp);
        assert_eq!(Protocol::Uws.extract(&p), stamp);
        assert_eq!(Protocol::Broadcast.publish_frame("r", &p), p);
        let frame = Protocol::Hubbub.publish_frame("a\"b", &p);
        let v: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
        assert_eq!(v["room"], "a\"b");
        assert_eq!(v["data"], p.as_str());
        let body: serde_json::Value =
            serde_json::from_str(&api_publish_body("r", &p)).expect("valid JSON");
        assert_eq!(body["data"], p.as_str());
    }

    #[test]
    fn hubbub_payload_is_found_at_the_end_or_by_its_key() {
        let p = payload::encode(7, 123_456_789, 64);
        let last = format!(r#"{{"type":"message","room":"r","from":"a","data":"{p}"}}"#);
        let first = format!(r#"{{"data":"{p}","type":"message","room":"r"}}"#);
        for text in [&last, &first] {
            let stamp = Protocol::Hubbub.extract(text).expect("payload found");
            assert_eq!((stamp.seq, stamp.send_ns), (7, 123_456_789), "{text}");
        }
        assert!(Protocol::Hubbub
            .extract(r#"{"type":"message","room":"r","from":"x"}"#)
            .is_none());
    }

    #[test]
    fn joins_and_first_frames() {
        assert_eq!(
            Protocol::Uws
                .join_frame(Role::Subscriber, "bench")
                .as_deref(),
            Some(r#"{"type":"join","room":"bench"}"#)
        );
        assert_eq!(Protocol::Uws.join_frame(Role::Idle, "bench"), None);
        assert_eq!(Protocol::Hubbub.join_frame(Role::Subscriber, "bench"), None);
        assert!(Protocol::Hubbub.waits_for_first_frame(Role::Idle));
        assert!(!Protocol::Broadcast.waits_for_first_frame(Role::Subscriber));
        assert!(Protocol::Hubbub
            .check_first_frame(r#"{"type":"welcome","id":"x"}"#)
            .is_ok());
        assert!(Protocol::Hubbub.check_first_frame("hello").is_err());
        assert!(Protocol::Uws.check_first_frame("anything").is_ok());
        assert_eq!(Protocol::Hubbub.extract(r#"{"type":"welcome"}"#), None);
    }

    #[test]
    fn socketio_framing() {
        let p = encode(9, 77, 64);
        assert_eq!(
            Protocol::Socketio.url("ws://127.0.0.1:3000/", Role::Subscriber, "r"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            Protocol::Socketio
                .join_frame(Role::Subscriber, "bench")
                .as_deref(),
            Some(r#"42["join","bench"]"#)
        );
        assert_eq!(
            Protocol::Socketio.join_frame(Role::Publisher, "bench"),
            None
        );
        assert!(Protocol::Socketio.waits_for_first_frame(Role::Subscriber));
        assert!(!Protocol::Socketio.waits_for_first_frame(Role::Idle));
        assert!(Protocol::Socketio
            .check_first_frame(r#"42["joined","bench"]"#)
            .is_ok());
        assert!(Protocol::Socketio.check_first_frame("40{}").is_err());
        let frame = Protocol::Socketio.publish_frame("bench", &p);
        let v: serde_json::Value =
            serde_json::from_str(frame.strip_prefix("42").expect("event packet")).expect("JSON");
        assert_eq!(v[0], "publish");
        assert_eq!(v[1], "bench");
        assert_eq!(v[2], p.as_str());
        let delivered = format!(r#"42["message","{p}"]"#);
        assert_eq!(
            Protocol::Socketio.extract(&delivered),
            Some(Stamp {
                seq: 9,
                send_ns: 77
            })
        );
        assert_eq!(Protocol::Socketio.heartbeat_reply("2"), Some("3"));
        assert_eq!(Protocol::Socketio.heartbeat_reply("22"), None);
        assert_eq!(Protocol::Uws.heartbeat_reply("2"), None);
        assert_eq!(Protocol::Socketio.preamble().len(), 2);
        assert!(Protocol::Hubbub.preamble().is_empty());
    }
}
