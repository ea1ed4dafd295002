//! The frames a Pusher client receives, each a finished WebSocket text frame
//! ([`hub_core::frame::text`]) built once and shared by every recipient.
//!
//! Shapes follow Pusher protocol 7: `{"event":E,"channel":C,"data":D}`. Where Pusher sends
//! `data` as a JSON-encoded string (connection and subscription events, member events,
//! subscription counts), so does this module; an event's own `data` is copied as given (the
//! server SDKs already send a string). Error and sign-in answers carry an object, as in
//! Pusher's protocol documentation; pusher-js reads both forms.

use bytes::Bytes;
use hub_core::frame;

/// Pusher's error and close codes (4000-4299).
pub mod code {
    /// The app does not exist.
    pub const APP_NOT_FOUND: u16 = 4001;
    /// The app is disabled.
    pub const APP_DISABLED: u16 = 4003;
    /// The app is over its connection quota.
    pub const OVER_QUOTA: u16 = 4004;
    /// The path is not `/app/{key}`.
    pub const PATH_NOT_FOUND: u16 = 4005;
    /// The protocol version is missing or not supported.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// The connection is unauthorized (a bad channel or sign-in signature).
    pub const UNAUTHORIZED: u16 = 4009;
    /// Over capacity: reconnect later, with backoff.
    pub const OVER_CAPACITY: u16 = 4100;
    /// Generic reconnect: the server is closing the connection.
    pub const RECONNECT: u16 = 4200;
    /// No pong (or other traffic) within the activity timeout.
    pub const PONG_NOT_RECEIVED: u16 = 4201;
    /// Closed after being inactive too long.
    pub const INACTIVE: u16 = 4202;
    /// A client event was refused (rate, or not allowed on the channel).
    pub const CLIENT_EVENT_REJECTED: u16 = 4301;
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A frame `{"event":E[,"channel":C],"data":D}` whose `data` is the JSON text `inner`
/// encoded as one JSON string.
fn with_string_data(event: &str, channel: Option<&str>, inner: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(48 + event.len() + inner.len() * 2);
    out.extend_from_slice(br#"{"event":"#);
    push_json_str(&mut out, event);
    if let Some(channel) = channel {
        out.extend_from_slice(br#","channel":"#);
        push_json_str(&mut out, channel);
    }
    out.extend_from_slice(br#","data":"#);
    push_json_str(&mut out, &String::from_utf8_lossy(inner));
    out.push(b'}');
    frame::text(&out)
}

/// The JSON text of an event frame: `{"event":E,"channel":C,"data":D}`, then
/// `"user_id":U` when given (client events on presence channels). `data` must be valid JSON
/// text; it is copied as it is.
pub fn event_json(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + event.len() + channel.len() + data.len());
    out.extend_from_slice(br#"{"event":"#);
    push_json_str(&mut out, event);
    out.extend_from_slice(br#","channel":"#);
    push_json_str(&mut out, channel);
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data.as_bytes());
    if let Some(user) = user_id {
        out.extend_from_slice(br#","user_id":"#);
        push_json_str(&mut out, user);
    }
    out.push(b'}');
    out
}

/// An event on a channel as one finished frame, to be shared by every subscriber.
pub fn event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> Bytes {
    frame::text(&event_json(event, channel, data, user_id))
}

/// What an event frame says: the content another node needs to build the same frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParts {
    /// The event name.
    pub event: String,
    /// The channel.
    pub channel: String,
    /// The payload, JSON text (a slice of the frame: no copy).
    pub data: Bytes,
    /// The sending member's user id (client events on presence channels).
    pub user_id: Option<String>,
}

/// The parts of a frame that [`event`] built, or `None` for any other frame. Costs
/// O(event + channel + data): the payload is scanned once to find where it ends.
pub fn event_parts(frame: &Bytes) -> Option<EventParts> {
    use serde_json::value::RawValue;
    if frame.first() != Some(&0x81) {
        return None;
    }
    let payload = frame::payload_of(frame);
    if payload.last() != Some(&b'}') {
        return None;
    }
    // A JSON value starting at `at` after `key`, and where it ends.
    let string_at = |at: usize, key: &[u8]| -> Option<(String, usize)> {
        let rest = payload.get(at..)?.strip_prefix(key)?;
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
        let value = values.next()?.ok()?;
        Some((value, at + key.len() + values.byte_offset()))
    };
    let (event, at) = string_at(0, br#"{"event":"#)?;
    let (channel, at) = string_at(at, br#","channel":"#)?;
    let data_at = at + 8;
    let rest = payload.get(at..)?.strip_prefix(br#","data":"#)?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
    values.next()?.ok()?;
    let data_end = data_at + values.byte_offset();
    let user_id = match payload.get(data_end..)? {
        b"}" => None,
        _ => {
            let (user, end) = string_at(data_end, br#","user_id":"#)?;
            if end + 1 != payload.len() {
                return None;
            }
            Some(user)
        }
    };
    Some(EventParts {
        event,
        channel,
        data: payload.slice(data_at..data_end),
        user_id,
    })
}

/// `pusher:connection_established` with the socket id and the activity timeout in seconds.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> Bytes {
    let mut inner = Vec::with_capacity(48 + socket_id.len());
    inner.extend_from_slice(br#"{"socket_id":"#);
    push_json_str(&mut inner, socket_id);
    inner.extend_from_slice(format!(r#","activity_timeout":{activity_timeout_secs}}}"#).as_bytes());
    with_string_data("pusher:connection_established", None, &inner)
}

/// `pusher:error` with a code (none for errors that close nothing) and a message.
pub fn error(code: Option<u16>, message: &str) -> Bytes {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(br#"{"event":"pusher:error","data":{"code":"#);
    match code {
        Some(code) => out.extend_from_slice(code.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","message":"#);
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    frame::text(&out)
}

/// `pusher:pong`, the answer to `pusher:ping`.
pub fn pong() -> Bytes {
    frame::text(br#"{"event":"pusher:pong","data":"{}"}"#)
}

/// `pusher:ping`, the server's liveness probe (answered by `pusher:pong`).
pub fn ping() -> Bytes {
    frame::text(br#"{"event":"pusher:ping","data":"{}"}"#)
}

/// `pusher_internal:subscription_succeeded` of a channel other than a presence channel.
pub fn subscription_succeeded(channel: &str) -> Bytes {
    with_string_data(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        b"{}",
    )
}

/// `pusher_internal:subscription_succeeded` of a presence channel:
/// `{"presence":{"ids":[...],"hash":{ID:INFO,...},"count":N}}` over `members`, each a user
/// id and its `user_info` as JSON text (`null` when the member gave none).
pub fn presence_subscription_succeeded<'a>(
    channel: &str,
    members: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Bytes {
    let mut inner = Vec::with_capacity(64);
    inner.extend_from_slice(br#"{"presence":{"ids":["#);
    let mut count = 0usize;
    for (i, (id, _)) in members.clone().into_iter().enumerate() {
        if i > 0 {
            inner.push(b',');
        }
        push_json_str(&mut inner, id);
        count += 1;
    }
    inner.extend_from_slice(br#"],"hash":{"#);
    for (i, (id, info)) in members.into_iter().enumerate() {
        if i > 0 {
            inner.push(b',');
        }
        push_json_str(&mut inner, id);
        inner.push(b':');
        inner.extend_from_slice(info.as_bytes());
    }
    inner.extend_from_slice(format!(r#"}},"count":{count}}}}}"#).as_bytes());
    with_string_data(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        &inner,
    )
}

/// `pusher:subscription_error` as pusher-js reports a refused subscription:
/// `{"type":T,"error":M,"status":S}` (`AuthError` and 401 for a bad signature).
pub fn subscription_error(channel: &str, kind: &str, message: &str, status: u16) -> Bytes {
    let mut out = Vec::with_capacity(96 + channel.len() + message.len());
    out.extend_from_slice(br#"{"event":"pusher:subscription_error","channel":"#);
    push_json_str(&mut out, channel);
    out.extend_from_slice(br#","data":{"type":"#);
    push_json_str(&mut out, kind);
    out.extend_from_slice(br#","error":"#);
    push_json_str(&mut out, message);
    out.extend_from_slice(format!(r#","status":{status}}}}}"#).as_bytes());
    frame::text(&out)
}

/// `pusher_internal:member_added` with the user id and its `user_info` (JSON text).
pub fn member_added(channel: &str, user_id: &str, user_info: &str) -> Bytes {
    let mut inner = Vec::with_capacity(32 + user_id.len() + user_info.len());
    inner.extend_from_slice(br#"{"user_id":"#);
    push_json_str(&mut inner, user_id);
    inner.extend_from_slice(br#","user_info":"#);
    inner.extend_from_slice(user_info.as_bytes());
    inner.push(b'}');
    with_string_data("pusher_internal:member_added", Some(channel), &inner)
}

/// `pusher_internal:member_removed` with the user id.
pub fn member_removed(channel: &str, user_id: &str) -> Bytes {
    let mut inner = Vec::with_capacity(16 + user_id.len());
    inner.extend_from_slice(br#"{"user_id":"#);
    push_json_str(&mut inner, user_id);
    inner.push(b'}');
    with_string_data("pusher_internal:member_removed", Some(channel), &inner)
}

/// `pusher:cache_miss`: a `cache-` channel was subscribed and holds no last event.
pub fn cache_miss(channel: &str) -> Bytes {
    with_string_data("pusher:cache_miss", Some(channel), b"{}")
}

/// `pusher_internal:subscription_count` with the channel's subscriber count.
pub fn subscription_count(channel: &str, count: u64) -> Bytes {
    let inner = format!(r#"{{"subscription_count":{count}}}"#);
    with_string_data(
        "pusher_internal:subscription_count",
        Some(channel),
        inner.as_bytes(),
    )
}

/// `pusher:signin_success` carrying the signed `user_data` (a JSON-encoded string).
pub fn signin_success(user_data: &str) -> Bytes {
    let mut out = Vec::with_capacity(64 + user_data.len());
    out.extend_from_slice(br#"{"event":"pusher:signin_success","data":{"user_data":"#);
    push_json_str(&mut out, user_data);
    out.extend_from_slice(b"}}");
    frame::text(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(frame: &Bytes) -> Value {
        serde_json::from_slice(&frame::payload_of(frame)).expect("valid JSON")
    }

    /// What pusher-js does with a frame: parse it, then parse `data` if it is a string.
    fn data(frame: &Bytes) -> Value {
        match json(frame)["data"].clone() {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        }
    }

    #[test]
    fn connection_and_control_frames() {
        let f = connection_established("12.34", 120);
        assert_eq!(json(&f)["event"], "pusher:connection_established");
        assert!(json(&f)["data"].is_string());
        assert_eq!(data(&f)["socket_id"], "12.34");
        assert_eq!(data(&f)["activity_timeout"], 120);
        let e = error(Some(code::APP_NOT_FOUND), "no \"app\"");
        assert_eq!(data(&e)["code"], 4001);
        assert_eq!(data(&e)["message"], "no \"app\"");
        assert!(data(&error(None, "x"))["code"].is_null());
        assert_eq!(json(&pong())["event"], "pusher:pong");
        assert_eq!(json(&ping())["event"], "pusher:ping");
    }

    #[test]
    fn events_copy_data_and_name_the_user() {
        let f = event("my-event", "news", r#""{\"a\":1}""#, None);
        assert_eq!(json(&f)["channel"], "news");
        assert_eq!(data(&f)["a"], 1);
        assert!(json(&f).get("user_id").is_none());
        let f = event("client-x", "presence-a", r#"{"b":[2]}"#, Some("u\"1"));
        assert_eq!(json(&f)["user_id"], "u\"1");
        assert_eq!(data(&f)["b"][0], 2);
    }

    #[test]
    fn event_frames_come_apart_into_what_built_them() {
        let long = format!("[{}0]", "0,".repeat(10_000));
        let cases: [(&str, &str, &str, Option<&str>); 4] = [
            ("e", "news", r#""{\"a\":\"}\"}""#, None),
            (
                "client-\"x",
                "presence-a",
                r#"{"user_id":"no"}"#,
                Some("u\"1"),
            ),
            ("e", "c", &long, None),
            ("e", "c", "null", Some("")),
        ];
        for (name, channel, data, user) in cases {
            let f = event(name, channel, data, user);
            let parts = event_parts(&f).expect("an event frame");
            assert_eq!(parts.event, name);
            assert_eq!(parts.channel, channel);
            assert_eq!(&parts.data[..], data.as_bytes());
            assert_eq!(parts.user_id.as_deref(), user);
        }
        for other in [
            pong(),
            error(Some(4001), "x"),
            subscription_succeeded("a"),
            frame::text(br#"{"event":"e","channel":"c","data":1,"x":2}"#),
            frame::text(br#"{"event":"e","channel":"c","data":1"#),
            frame::binary(br#"{"event":"e","channel":"c","data":1}"#),
            Bytes::new(),
        ] {
            let parts = event_parts(&other);
            assert!(
                parts.is_none() || other == subscription_succeeded("a"),
                "{other:?}"
            );
        }
    }

    #[test]
    fn subscription_frames() {
        let f = subscription_succeeded("private-a");
        assert_eq!(json(&f)["event"], "pusher_internal:subscription_succeeded");
        assert_eq!(json(&f)["channel"], "private-a");
        let f = presence_subscription_succeeded(
            "presence-a",
            [("u1", r#"{"name":"A"}"#), ("u\"2", "null")],
        );
        let p = &data(&f)["presence"];
        assert_eq!(p["ids"], serde_json::json!(["u1", "u\"2"]));
        assert_eq!(p["hash"]["u1"]["name"], "A");
        assert!(p["hash"]["u\"2"].is_null());
        assert_eq!(p["count"], 2);
        let empty = presence_subscription_succeeded("presence-a", std::iter::empty());
        assert_eq!(data(&empty)["presence"]["count"], 0);
        let f = subscription_error("private-a", "AuthError", "bad signature", 401);
        assert_eq!(json(&f)["event"], "pusher:subscription_error");
        assert_eq!(data(&f)["type"], "AuthError");
        assert_eq!(data(&f)["status"], 401);
        let f = member_added("presence-a", "u1", r#"{"n":1}"#);
        assert_eq!(data(&f)["user_id"], "u1");
        assert_eq!(data(&f)["user_info"]["n"], 1);
        assert_eq!(data(&member_removed("presence-a", "u1"))["user_id"], "u1");
        assert_eq!(json(&cache_miss("cache-a"))["event"], "pusher:cache_miss");
        assert_eq!(data(&subscription_count("a", 7))["subscription_count"], 7);
        let f = signin_success(r#"{"id":"u1"}"#);
        assert_eq!(json(&f)["data"]["user_data"], r#"{"id":"u1"}"#);
    }
}
