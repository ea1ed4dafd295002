//! The client JSON protocol of PROTOCOL.md: parsing requests and writing server messages.
//!
//! Parsing never panics and never allocates more than the input's size. Message payloads
//! (`data`) stay raw JSON text: they are validated once and copied into the outgoing frame
//! without being re-serialised.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::frame;
use crate::history::{Position, Since};

/// A parsed client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// `{"type":"join","room":R}`, with `"since":{"offset":N,"epoch":E}` to recover what
    /// was missed in a room with history.
    Join {
        /// The room to join.
        room: String,
        /// Where the client left off, for a recovering join.
        since: Option<Since>,
    },
    /// `{"type":"leave","room":R}`.
    Leave {
        /// The room to leave.
        room: String,
    },
    /// `{"type":"publish","room":R,"data":D}`.
    Publish {
        /// The room to publish to.
        room: String,
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `{"type":"emit","to":ID,"data":D}`.
    Emit {
        /// The receiving client id.
        to: String,
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `{"type":"broadcast","data":D}`.
    Broadcast {
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `{"type":"ping"}`.
    Ping,
}

/// A request with its optional `ref` (raw JSON text: a string or a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asked for.
    pub kind: ClientRequest,
    /// The `ref` to echo in the answer.
    pub reference: Option<String>,
}

/// Error codes sent in `{"type":"error","code":C}` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    BadJson,
    /// A required field is missing or has the wrong type.
    BadRequest,
    /// The `type` is not one the server knows.
    UnknownType,
    /// The request is not allowed (client broadcast without `--allow-client-broadcast`).
    Forbidden,
    /// A name is empty or longer than the configured limit.
    BadName,
    /// The connection is in as many rooms as it may be.
    TooManyRooms,
    /// The node could not carry out the request.
    Internal,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::BadRequest => "bad_request",
            Self::UnknownType => "unknown_type",
            Self::Forbidden => "forbidden",
            Self::BadName => "bad_name",
            Self::TooManyRooms => "too_many_rooms",
            Self::Internal => "internal",
        }
    }
}

/// A request the server refuses, with the `ref` to answer to (when one could be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The request's `ref`, raw JSON text.
    pub reference: Option<String>,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(rename = "ref", borrow, default, deserialize_with = "present")]
    reference: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    room: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    to: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
}

/// The `since` of a join: `{"offset":N,"epoch":E}` (N a non-negative integer, E a string).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSince {
    offset: u64,
    epoch: String,
}

/// A field that is present, even as `null`, is `Some` (serde's `Option` would make `null` `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok()
}

/// Parses one text frame of the client protocol.
pub fn parse_request(text: &[u8]) -> Result<Request, RequestError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(RequestError {
            code: ErrorCode::BadJson,
            message: "expected one JSON object".into(),
            reference: None,
        });
    }
    let raw: RawRequest<'_> = serde_json::from_slice(text).map_err(|e| RequestError {
        code: ErrorCode::BadJson,
        message: format!("expected one JSON object: {e}"),
        reference: None,
    })?;
    let reference = match raw.reference {
        None => None,
        Some(r) => {
            let text = r.get();
            let is_string_or_number = text.starts_with('"')
                || text.starts_with('-')
                || text.starts_with(|c: char| c.is_ascii_digit());
            if !is_string_or_number {
                return Err(RequestError {
                    code: ErrorCode::BadRequest,
                    message: "\"ref\" must be a string or a number".into(),
                    reference: None,
                });
            }
            Some(text.to_owned())
        }
    };
    let fail = |code, message: &str| RequestError {
        code,
        message: message.to_owned(),
        reference: reference.clone(),
    };
    let Some(kind) = as_string(raw.kind) else {
        return Err(fail(ErrorCode::BadRequest, "missing string field \"type\""));
    };
    let room = || {
        as_string(raw.room)
            .ok_or_else(|| fail(ErrorCode::BadRequest, "missing string field \"room\""))
    };
    let data = || {
        raw.data
            .map(|d| d.get().to_owned())
            .ok_or_else(|| fail(ErrorCode::BadRequest, "missing field \"data\""))
    };
    let kind = match kind.as_str() {
        "join" => ClientRequest::Join {
            room: room()?,
            since: match raw.since {
                None => None,
                Some(since) => {
                    let since: RawSince = serde_json::from_str(since.get()).map_err(|_| {
                        fail(
                            ErrorCode::BadRequest,
                            "\"since\" must be {\"offset\":N,\"epoch\":E} (N an integer >= 0, E a string)",
                        )
                    })?;
                    Some(Since {
                        offset: since.offset,
                        epoch: since.epoch,
                    })
                }
            },
        },
        "leave" => ClientRequest::Leave { room: room()? },
        "publish" => ClientRequest::Publish {
            room: room()?,
            data: data()?,
        },
        "emit" => ClientRequest::Emit {
            to: as_string(raw.to)
                .ok_or_else(|| fail(ErrorCode::BadRequest, "missing string field \"to\""))?,
            data: data()?,
        },
        "broadcast" => ClientRequest::Broadcast { data: data()? },
        "ping" => ClientRequest::Ping,
        other => {
            let mut shown: String = other.chars().take(64).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(fail(
                ErrorCode::UnknownType,
                &format!("unknown type {shown:?}"),
            ));
        }
    };
    Ok(Request { kind, reference })
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `{"type":"welcome","id":ID,"node":NODE}` as a text frame.
pub fn welcome(id: &str, node: &str) -> Bytes {
    let mut out = Vec::with_capacity(40 + id.len() + node.len());
    out.extend_from_slice(br#"{"type":"welcome","id":"#);
    push_json_str(&mut out, id);
    out.extend_from_slice(br#","node":"#);
    push_json_str(&mut out, node);
    out.push(b'}');
    frame::text(&out)
}

/// The JSON text of `{"type":"message",...}` (`room` and `from` only when given). `data` must
/// be valid JSON text.
pub fn message_json(room: Option<&str>, from: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + data.len());
    out.extend_from_slice(br#"{"type":"message""#);
    if let Some(room) = room {
        out.extend_from_slice(br#","room":"#);
        push_json_str(&mut out, room);
    }
    if let Some(from) = from {
        out.extend_from_slice(br#","from":"#);
        push_json_str(&mut out, from);
    }
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data.as_bytes());
    out.push(b'}');
    out
}

/// `{"type":"message","room":R,"from":F,"offset":N,"epoch":E,"data":D}` (`from` only when
/// given) as one finished text frame: a message of a room with history. `data` must be valid
/// JSON text, and it is the last field (its bytes end one before the frame's end).
pub fn sequenced_message(
    room: &str,
    from: Option<&str>,
    offset: u64,
    epoch: &str,
    data: &str,
) -> Bytes {
    let mut out = Vec::with_capacity(96 + room.len() + epoch.len() + data.len());
    out.extend_from_slice(br#"{"type":"message","room":"#);
    push_json_str(&mut out, room);
    if let Some(from) = from {
        out.extend_from_slice(br#","from":"#);
        push_json_str(&mut out, from);
    }
    out.extend_from_slice(br#","offset":"#);
    out.extend_from_slice(offset.to_string().as_bytes());
    out.extend_from_slice(br#","epoch":"#);
    push_json_str(&mut out, epoch);
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data.as_bytes());
    out.push(b'}');
    frame::text(&out)
}

/// The start of a history room's `message` JSON, `{"type":"message","room":R` and
/// `,"from":F` when given: what a shared history store completes with the offset, the
/// epoch and the data (the layout of [`sequenced_message`]).
pub fn message_head(room: &str, from: Option<&str>) -> String {
    let mut out = Vec::with_capacity(48 + room.len());
    out.extend_from_slice(br#"{"type":"message","room":"#);
    push_json_str(&mut out, room);
    if let Some(from) = from {
        out.extend_from_slice(br#","from":"#);
        push_json_str(&mut out, from);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The offset and epoch of a frame [`sequenced_message`] (or a shared store) built;
/// `None` for any other frame. Reads the fields before `data` only.
pub fn sequenced_position(frame: &Bytes) -> Option<(u64, String)> {
    let payload = frame::payload_of(frame);
    let at = payload.windows(10).position(|w| w == br#","offset":"#)? + 10;
    let rest = payload.get(at..)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let offset = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(br#","epoch":"#)?;
    let mut strings = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
    let epoch = strings.next()?.ok()?;
    Some((offset, epoch))
}

/// `{"type":"joined","room":R,"offset":N,"epoch":E}` (with `"recovered":bool` for a join
/// with `since`, and the join's `ref` when given) as a text frame.
pub fn joined(
    room: &str,
    position: &Position,
    recovered: Option<bool>,
    reference: Option<&str>,
) -> Bytes {
    let mut out = Vec::with_capacity(96 + room.len());
    out.extend_from_slice(br#"{"type":"joined","room":"#);
    push_json_str(&mut out, room);
    out.extend_from_slice(br#","offset":"#);
    out.extend_from_slice(position.offset.to_string().as_bytes());
    out.extend_from_slice(br#","epoch":"#);
    push_json_str(&mut out, &position.epoch);
    if let Some(recovered) = recovered {
        out.extend_from_slice(if recovered {
            br#","recovered":true"#
        } else {
            br#","recovered":false"#
        });
    }
    if let Some(r) = reference {
        out.extend_from_slice(br#","ref":"#);
        out.extend_from_slice(r.as_bytes());
    }
    out.push(b'}');
    frame::text(&out)
}

/// `{"type":"message",...}` as one finished text frame, to be shared by every recipient.
pub fn message(room: Option<&str>, from: Option<&str>, data: &str) -> Bytes {
    frame::text(&message_json(room, from, data))
}

/// What a `message` frame says: the content another node needs to build the same frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageParts {
    /// The room, for room messages.
    pub room: Option<String>,
    /// The sending client, for messages from clients.
    pub from: Option<String>,
    /// The payload, JSON text (a slice of the frame: no copy).
    pub data: Bytes,
}

/// The parts of a `message` frame that [`message`] built, or `None` for any other frame.
/// Costs O(room + from): the payload is not read, since this node built (and checked) it.
pub fn message_parts(frame: &Bytes) -> Option<MessageParts> {
    if frame.first() != Some(&0x81) {
        return None;
    }
    let payload = frame::payload_of(frame);
    let body = payload.strip_prefix(br#"{"type":"message""#)?;
    if payload.last() != Some(&b'}') {
        return None;
    }
    let mut at = payload.len() - body.len();
    // A JSON string starting at `at` after `key`, and where it ends.
    let field = |at: usize, key: &[u8]| -> Option<(String, usize)> {
        let rest = payload.get(at..)?.strip_prefix(key)?;
        let mut strings = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
        let value = strings.next()?.ok()?;
        Some((value, at + key.len() + strings.byte_offset()))
    };
    let room = field(at, br#","room":"#).map(|(room, end)| {
        at = end;
        room
    });
    let from = field(at, br#","from":"#).map(|(from, end)| {
        at = end;
        from
    });
    let data_at = at + payload.get(at..)?.strip_prefix(br#","data":"#).map(|_| 8)?;
    let data = payload.slice(data_at..payload.len() - 1);
    Some(MessageParts { room, from, data })
}

/// `{"type":"presence","room":R,"join":{"id":ID,"user":U,"info":I}}` (or `"leave"`) as a
/// text frame; `user` and `info` only when the member has them (`info` is JSON text).
pub fn presence(room: &str, join: bool, member: &crate::presence::Member) -> Bytes {
    let info = member.info.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(64 + room.len() + member.client.as_str().len() + info.len());
    out.extend_from_slice(br#"{"type":"presence","room":"#);
    push_json_str(&mut out, room);
    out.extend_from_slice(if join {
        br#","join":{"id":"#
    } else {
        br#","leave":{"id":"#
    });
    push_json_str(&mut out, member.client.as_str());
    if let Some(user) = &member.user {
        out.extend_from_slice(br#","user":"#);
        push_json_str(&mut out, user.as_str());
    }
    if let Some(info) = &member.info {
        out.extend_from_slice(br#","info":"#);
        out.extend_from_slice(info.as_bytes());
    }
    out.extend_from_slice(b"}}");
    frame::text(&out)
}

/// `{"type":"ack","ref":X}` as a text frame.
pub fn ack(reference: &str) -> Bytes {
    frame::text(format!(r#"{{"type":"ack","ref":{reference}}}"#).as_bytes())
}

/// `{"type":"pong"}` (with the `ref` when given) as a text frame.
pub fn pong(reference: Option<&str>) -> Bytes {
    match reference {
        Some(r) => frame::text(format!(r#"{{"type":"pong","ref":{r}}}"#).as_bytes()),
        None => frame::text(br#"{"type":"pong"}"#),
    }
}

/// `{"type":"error","ref":X,"code":C,"message":M}` as a text frame (no `ref` when absent).
pub fn error(reference: Option<&str>, code: ErrorCode, message: &str) -> Bytes {
    let mut out = Vec::with_capacity(48 + message.len());
    out.extend_from_slice(br#"{"type":"error""#);
    if let Some(r) = reference {
        out.extend_from_slice(br#","ref":"#);
        out.extend_from_slice(r.as_bytes());
    }
    out.extend_from_slice(br#","code":"#);
    push_json_str(&mut out, code.as_str());
    out.extend_from_slice(br#","message":"#);
    push_json_str(&mut out, message);
    out.push(b'}');
    frame::text(&out)
}

/// Whether `data` is one valid JSON value (for payloads that arrive from outside the protocol
/// parser, such as the producer API).
pub fn is_json(data: &str) -> bool {
    serde_json::from_str::<&RawValue>(data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json_of(frame: &Bytes) -> Value {
        serde_json::from_slice(&frame::payload_of(frame)).expect("valid json")
    }

    #[test]
    fn message_frames_come_apart_into_what_built_them() {
        let cases: [(Option<&str>, Option<&str>, &str); 5] = [
            (Some("r"), Some("c"), r#"{"x":[1,"}"]}"#),
            (None, Some("a \"quoted\" \\ name ☃"), "1"),
            (Some(r#","from":"x"#), None, r#""data""#),
            (None, None, "null"),
            (Some("r"), None, &"[0]".repeat(30_000)),
        ];
        for (room, from, data) in cases {
            let frame = message(room, from, data);
            let parts = message_parts(&frame).expect("a message frame");
            assert_eq!(parts.room.as_deref(), room);
            assert_eq!(parts.from.as_deref(), from);
            assert_eq!(&parts.data[..], data.as_bytes());
            let data = std::str::from_utf8(&parts.data).expect("utf-8");
            assert_eq!(
                message(parts.room.as_deref(), parts.from.as_deref(), data),
                frame
            );
        }
        for other in [
            welcome("a", "n"),
            ack("1"),
            pong(None),
            frame::close(4000, "x"),
            frame::text(br#"{"type":"message","data":1"#),
            frame::binary(br#"{"type":"message","data":1}"#),
            Bytes::new(),
        ] {
            assert_eq!(message_parts(&other), None, "{other:?}");
        }
    }

    #[test]
    fn parses_every_request_type() {
        let p = |s: &str| parse_request(s.as_bytes()).expect(s).kind;
        assert_eq!(
            p(r#"{"type":"join","room":"a"}"#),
            ClientRequest::Join {
                room: "a".into(),
                since: None
            }
        );
        assert_eq!(
            p(r#"{"type":"join","room":"a","since":{"offset":7,"epoch":"e"}}"#),
            ClientRequest::Join {
                room: "a".into(),
                since: Some(Since {
                    offset: 7,
                    epoch: "e".into()
                })
            }
        );
        for bad in [
            r#"{"type":"join","room":"a","since":7}"#,
            r#"{"type":"join","room":"a","since":{"offset":-1,"epoch":"e"}}"#,
            r#"{"type":"join","room":"a","since":{"offset":1}}"#,
            r#"{"type":"join","room":"a","since":{"offset":1,"epoch":2}}"#,
            r#"{"type":"join","room":"a","since":null}"#,
        ] {
            let e = parse_request(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            p(r#"{"type":"leave","room":"a"}"#),
            ClientRequest::Leave { room: "a".into() }
        );
        assert_eq!(
            p(r#"{"type":"publish","room":"a","data":{"x":[1,2]}}"#),
            ClientRequest::Publish {
                room: "a".into(),
                data: r#"{"x":[1,2]}"#.into()
            }
        );
        assert_eq!(
            p(r#"{"type":"emit","to":"c1","data":"hi"}"#),
            ClientRequest::Emit {
                to: "c1".into(),
                data: r#""hi""#.into()
            }
        );
        assert_eq!(
            p(r#"{"type":"broadcast","data":null}"#),
            ClientRequest::Broadcast {
                data: "null".into()
            }
        );
        assert_eq!(p(r#"{"type":"ping"}"#), ClientRequest::Ping);
    }

    #[test]
    fn ref_is_kept_raw() {
        let r = parse_request(br#"{"type":"ping","ref":"a\"b"}"#).expect("ok");
        assert_eq!(r.reference.as_deref(), Some(r#""a\"b""#));
        let r = parse_request(br#"{"type":"ping","ref":-12.5}"#).expect("ok");
        assert_eq!(r.reference.as_deref(), Some("-12.5"));
        let e = parse_request(br#"{"type":"ping","ref":{}}"#).expect_err("object ref");
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[test]
    fn bad_input_gets_the_right_code() {
        let code = |s: &[u8]| parse_request(s).expect_err("must fail").code;
        assert_eq!(code(b"not json"), ErrorCode::BadJson);
        assert_eq!(code(b"[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(b"\xff\xfe"), ErrorCode::BadJson);
        assert_eq!(code(br#"{"room":"a"}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"type":5}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"type":"join"}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"type":"join","room":7}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"type":"publish","room":"a"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code(br#"{"type":"emit","data":1}"#), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"type":"dance"}"#), ErrorCode::UnknownType);
        let e = parse_request(br#"{"type":"dance","ref":7}"#).expect_err("unknown");
        assert_eq!(e.reference.as_deref(), Some("7"));
    }

    #[test]
    fn server_messages_are_valid_json() {
        let v = json_of(&welcome("c\"1", "n"));
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["id"], "c\"1");
        let v = json_of(&message(Some("r"), Some("a"), r#"{"k":1}"#));
        assert_eq!(v["room"], "r");
        assert_eq!(v["from"], "a");
        assert_eq!(v["data"]["k"], 1);
        let v = json_of(&sequenced_message("r", Some("a"), 7, "e\"", "[1]"));
        assert_eq!(
            (v["offset"].as_u64(), v["epoch"].as_str()),
            (Some(7), Some("e\""))
        );
        assert_eq!(v["data"][0], 1);
        assert_eq!(
            message_parts(&sequenced_message("r", None, 1, "e", "1")),
            None
        );
        let position = Position {
            offset: 3,
            epoch: "e".into(),
        };
        let v = json_of(&joined("r", &position, Some(false), Some("5")));
        assert_eq!(v["type"], "joined");
        assert_eq!(
            (v["offset"].as_u64(), v["recovered"].as_bool()),
            (Some(3), Some(false))
        );
        assert_eq!(v["ref"], 5);
        assert!(json_of(&joined("r", &position, None, None))
            .get("recovered")
            .is_none());
        let v = json_of(&message(None, None, "3"));
        assert!(v.get("room").is_none() && v.get("from").is_none());
        assert_eq!(json_of(&ack("\"x\""))["ref"], "x");
        assert_eq!(json_of(&pong(Some("4")))["ref"], 4);
        assert_eq!(json_of(&pong(None))["type"], "pong");
        let v = json_of(&error(Some("1"), ErrorCode::BadJson, "oops \"q\""));
        assert_eq!(v["code"], "bad_json");
        assert_eq!(v["message"], "oops \"q\"");
        assert!(json_of(&error(None, ErrorCode::Internal, "m"))
            .get("ref")
            .is_none());
    }
}
