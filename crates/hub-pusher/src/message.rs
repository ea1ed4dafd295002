//! The messages a Pusher client sends, parsed without panicking and without re-serialising
//! payloads: `{"event":E,"channel":C,"data":D}`.
//!
//! `data` may be an object or a JSON-encoded string of one (some clients send either); the
//! fields of `pusher:subscribe` and `pusher:signin` are read from it. A client event's `data`
//! stays raw JSON text, copied into the frame its channel receives.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A parsed client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong` (the answer to a server ping).
    Pong,
    /// `pusher:subscribe`.
    Subscribe {
        /// The channel.
        channel: String,
        /// `KEY:HEXSIG`, for private and presence channels.
        auth: Option<String>,
        /// The presence member's data, a JSON-encoded string as it was signed.
        channel_data: Option<String>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// `pusher:signin`.
    Signin {
        /// `KEY:HEXSIG` over `socket_id::user::user_data`.
        auth: String,
        /// The user's data, a JSON-encoded string as it was signed.
        user_data: String,
    },
    /// A `client-*` event.
    ClientEvent {
        /// The event name (starts with `client-`).
        event: String,
        /// The channel.
        channel: String,
        /// The payload, raw JSON text (`null` when absent).
        data: String,
    },
}

/// Why a message was refused; the node answers with a `pusher:error` (no close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not one JSON object.
    #[error("expected one JSON object: {0}")]
    BadJson(String),
    /// A field is missing or has the wrong type.
    #[error("{0}")]
    BadRequest(&'static str),
    /// An event the server does not know (neither `pusher:` nor `client-`).
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Fields {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<String>,
    #[serde(default)]
    user_data: Option<String>,
}

fn string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok()
}

/// The fields of `data`, an object or a JSON string holding one.
fn fields(raw: Option<&RawValue>) -> Result<Fields, MessageError> {
    let Some(raw) = raw else {
        return Ok(Fields::default());
    };
    let text = raw.get();
    let parsed = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .ok()
            .and_then(|inner| serde_json::from_str::<Fields>(&inner).ok())
    } else {
        serde_json::from_str::<Fields>(text).ok()
    };
    parsed.ok_or(MessageError::BadRequest(
        "data must be an object with string fields",
    ))
}

fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

/// Parses one text frame from a Pusher client.
pub fn parse(text: &[u8]) -> Result<ClientMessage, MessageError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(MessageError::BadJson("not an object".into()));
    }
    let raw: RawMessage<'_> =
        serde_json::from_slice(text).map_err(|e| MessageError::BadJson(e.to_string()))?;
    let event =
        string(raw.event).ok_or(MessageError::BadRequest("missing string field \"event\""))?;
    match event.as_str() {
        "pusher:ping" => Ok(ClientMessage::Ping),
        "pusher:pong" => Ok(ClientMessage::Pong),
        "pusher:subscribe" | "pusher:unsubscribe" => {
            let f = fields(raw.data)?;
            let channel = f.channel.ok_or(MessageError::BadRequest(
                "missing string field \"data.channel\"",
            ))?;
            if event == "pusher:unsubscribe" {
                return Ok(ClientMessage::Unsubscribe { channel });
            }
            Ok(ClientMessage::Subscribe {
                channel,
                auth: f.auth,
                channel_data: f.channel_data,
            })
        }
        "pusher:signin" => {
            let f = fields(raw.data)?;
            match (f.auth, f.user_data) {
                (Some(auth), Some(user_data)) => Ok(ClientMessage::Signin { auth, user_data }),
                _ => Err(MessageError::BadRequest(
                    "pusher:signin needs string fields \"data.auth\" and \"data.user_data\"",
                )),
            }
        }
        name if name.starts_with("client-") => {
            let channel = string(raw.channel).ok_or(MessageError::BadRequest(
                "client events need a string field \"channel\"",
            ))?;
            let data = raw
                .data
                .map_or_else(|| "null".to_owned(), |d| d.get().to_owned());
            Ok(ClientMessage::ClientEvent {
                event,
                channel,
                data,
            })
        }
        other => Err(MessageError::UnknownEvent(shown(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_pusher_js_sends() {
        assert_eq!(
            parse(br#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse(br#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#),
            Ok(ClientMessage::Subscribe {
                channel: "news".into(),
                auth: None,
                channel_data: None
            })
        );
        assert_eq!(
            parse(
                br#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\":\"1\"}","channel":"presence-a"}}"#
            ),
            Ok(ClientMessage::Subscribe {
                channel: "presence-a".into(),
                auth: Some("k:s".into()),
                channel_data: Some(r#"{"user_id":"1"}"#.into())
            })
        );
        assert_eq!(
            parse(br#"{"event":"pusher:unsubscribe","data":"{\"channel\":\"a\"}"}"#),
            Ok(ClientMessage::Unsubscribe {
                channel: "a".into()
            })
        );
        assert_eq!(
            parse(br#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{}"}}"#),
            Ok(ClientMessage::Signin {
                auth: "k:s".into(),
                user_data: "{}".into()
            })
        );
        assert_eq!(
            parse(br#"{"event":"client-typing","channel":"private-a","data":{"x":[1]}}"#),
            Ok(ClientMessage::ClientEvent {
                event: "client-typing".into(),
                channel: "private-a".into(),
                data: r#"{"x":[1]}"#.into()
            })
        );
    }

    #[test]
    fn bad_input_gets_an_error() {
        let err = |s: &[u8]| parse(s).expect_err("must fail");
        assert!(matches!(err(b"nope"), MessageError::BadJson(_)));
        assert!(matches!(err(b"[1]"), MessageError::BadJson(_)));
        assert!(matches!(err(b"{\"event\":"), MessageError::BadJson(_)));
        assert!(matches!(err(b"\xff"), MessageError::BadJson(_)));
        assert!(matches!(
            err(br#"{"data":{}}"#),
            MessageError::BadRequest(_)
        ));
        assert!(matches!(
            err(br#"{"event":1}"#),
            MessageError::BadRequest(_)
        ));
        assert!(matches!(
            err(br#"{"event":"pusher:subscribe","data":{}}"#),
            MessageError::BadRequest(_)
        ));
        assert!(matches!(
            err(br#"{"event":"pusher:subscribe","data":{"channel":5}}"#),
            MessageError::BadRequest(_)
        ));
        assert!(matches!(
            err(br#"{"event":"pusher:signin","data":{"auth":"a"}}"#),
            MessageError::BadRequest(_)
        ));
        assert!(matches!(
            err(br#"{"event":"client-x","data":1}"#),
            MessageError::BadRequest(_)
        ));
        assert_eq!(
            err(br#"{"event":"dance"}"#),
            MessageError::UnknownEvent("dance".into())
        );
    }
}
