//! The producer HTTP API of PROTOCOL.md: routing and body parsing, and the answer bodies.
//!
//! The runtime reads the request (refusing bodies over [`MAX_API_BODY`] and checking the API
//! key with [`crate::auth::api_key_ok`]), calls [`parse_api`], turns the [`ApiRequest`] into a
//! node command, and answers with [`delivered_body`], [`online_body`] or
//! [`disconnected_body`] — or with the [`ApiError`]'s status and [`ApiError::body`].
//! Payloads (`data`) stay raw JSON text, exactly as sent, `null` included.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Largest request body the producer API accepts (1 MiB).
pub const MAX_API_BODY: usize = 1 << 20;

/// Longest room name, client id or user id in an API call, in bytes (as over gRPC, and the
/// core's default `max_name_len`).
pub const MAX_NAME_LEN: usize = 256;

/// A parsed producer API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    /// `POST /api/emit {"to":ID,"data":D}`: deliver to one client.
    Emit {
        /// The receiving client id.
        to: String,
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `POST /api/emit_user {"user":U,"data":D}`: deliver to every connection of a user.
    EmitUser {
        /// The receiving user id.
        user: String,
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `POST /api/publish {"room":R,"data":D}`: deliver to every member of a room.
    Publish {
        /// The room.
        room: String,
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `POST /api/broadcast {"data":D}`: deliver to every connection.
    Broadcast {
        /// The payload, as raw JSON text.
        data: String,
    },
    /// `GET /api/online/{id}`: where a client is connected.
    Online {
        /// The client id (percent-decoded).
        client: String,
    },
    /// `POST /api/disconnect {"to":ID}`: close a client's connection.
    Disconnect {
        /// The client id.
        to: String,
    },
    /// `GET /api/history/{room}?since=N&epoch=E&limit=L`: the kept messages of a room.
    History {
        /// The room (percent-decoded).
        room: String,
        /// The offset and epoch the caller left off at.
        since: Option<(u64, String)>,
        /// Most messages to answer with.
        limit: usize,
    },
    /// `GET /api/position/{room}`: a room's last offset and its epoch.
    Position {
        /// The room (percent-decoded).
        room: String,
    },
    /// `GET /api/presence/{room}`: who is in a room, cluster-wide.
    Presence {
        /// The room (percent-decoded).
        room: String,
    },
    /// `GET /api/presence/{room}/count`: how many are in a room, cluster-wide.
    PresenceCount {
        /// The room (percent-decoded).
        room: String,
    },
}

impl ApiRequest {
    /// The payload a delivery carries (none for `online` and `disconnect`).
    pub fn data(&self) -> Option<&str> {
        match self {
            Self::Emit { data, .. }
            | Self::EmitUser { data, .. }
            | Self::Publish { data, .. }
            | Self::Broadcast { data } => Some(data),
            Self::Online { .. }
            | Self::Disconnect { .. }
            | Self::History { .. }
            | Self::Position { .. }
            | Self::Presence { .. }
            | Self::PresenceCount { .. } => None,
        }
    }
}

/// A refused API call: the HTTP status and a message for `{"error":M}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status code (400, 401, 404, 405, 413).
    pub status: u16,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// 401 Unauthorized (missing or wrong API key).
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "missing or wrong API key (expected Authorization: Bearer KEY)",
        )
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::new(404, "no such API endpoint")
    }

    /// 413 Payload Too Large.
    pub fn too_large() -> Self {
        Self::new(
            413,
            format!("request body larger than {MAX_API_BODY} bytes"),
        )
    }

    /// The answer body: `{"error":M}`.
    pub fn body(&self) -> String {
        format!(r#"{{"error":{}}}"#, json_string(&self.message))
    }
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// The routes: path, method, and how to build the request from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Emit,
    EmitUser,
    Publish,
    Broadcast,
    Online,
    Disconnect,
    History,
    Position,
    Presence,
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/api/emit" => Route::Emit,
        "/api/emit_user" => Route::EmitUser,
        "/api/publish" => Route::Publish,
        "/api/broadcast" => Route::Broadcast,
        "/api/disconnect" => Route::Disconnect,
        _ if path.starts_with("/api/online/") => Route::Online,
        _ if path.starts_with("/api/history/") => Route::History,
        _ if path.starts_with("/api/position/") => Route::Position,
        _ if path.starts_with("/api/presence/") => Route::Presence,
        _ => return None,
    })
}

/// The path without its query string or fragment.
fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The one method a known API path accepts (for the `Allow` header of a 405), if any.
pub fn allowed_method(path: &str) -> Option<&'static str> {
    match route(path_only(path))? {
        Route::Online | Route::History | Route::Position | Route::Presence => Some("GET"),
        _ => Some("POST"),
    }
}

/// Whether `path` belongs to the producer API (`/api` or below).
pub fn is_api_path(path: &str) -> bool {
    let path = path_only(path);
    path == "/api" || path.starts_with("/api/")
}

/// The JSON body of the POST routes; a present field is `Some`, even when `null`.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    to: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    user: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    room: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

/// Wraps a present field in `Some` (serde's `Option` would turn `null` into `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A required, non-empty string field.
fn name_field(raw: Option<&RawValue>, field: &str) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request(format!("missing field \"{field}\"")))?;
    let value: String = serde_json::from_str(raw.get())
        .map_err(|_| ApiError::bad_request(format!("field \"{field}\" must be a string")))?;
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "field \"{field}\" must be 1 to {MAX_NAME_LEN} bytes long"
        )));
    }
    if field == "room" && hub_core::ids::is_reserved_room(&value) {
        return Err(ApiError::bad_request(
            "room names starting with U+001F are reserved",
        ));
    }
    Ok(value)
}

/// The required `data` field, as raw JSON text (`null` included).
fn data_field(raw: Option<&RawValue>) -> Result<String, ApiError> {
    raw.map(|d| d.get().to_owned())
        .ok_or_else(|| ApiError::bad_request("missing field \"data\""))
}

fn parse_body(body: &[u8]) -> Result<Body<'_>, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("expected a JSON object body"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("expected a JSON object body: {e}")))
}

/// Decodes `%XX` escapes of a path segment; `None` when an escape is bad or not UTF-8.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn online_client(path: &str) -> Result<String, ApiError> {
    let raw = path.strip_prefix("/api/online/").unwrap_or_default();
    if raw.contains('/') {
        return Err(ApiError::not_found());
    }
    let client = percent_decode(raw)
        .ok_or_else(|| ApiError::bad_request("client id is not valid percent-encoded UTF-8"))?;
    if client.is_empty() || client.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "client id must be 1 to {MAX_NAME_LEN} bytes long"
        )));
    }
    Ok(client)
}

/// `/api/presence/{room}` or `/api/presence/{room}/count` (a `/` in the room name is sent
/// as `%2F`).
fn presence_request(path: &str) -> Result<ApiRequest, ApiError> {
    let raw = path.strip_prefix("/api/presence/").unwrap_or_default();
    let (raw, count) = match raw.strip_suffix("/count") {
        Some(room) => (room, true),
        None => (raw, false),
    };
    if raw.contains('/') {
        return Err(ApiError::not_found());
    }
    let room = percent_decode(raw)
        .ok_or_else(|| ApiError::bad_request("room is not valid percent-encoded UTF-8"))?;
    if room.is_empty() || room.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "room must be 1 to {MAX_NAME_LEN} bytes long"
        )));
    }
    Ok(if count {
        ApiRequest::PresenceCount { room }
    } else {
        ApiRequest::Presence { room }
    })
}

/// Routes and parses one producer API call (`path` may carry a query string: the history
/// route reads it, the others ignore it).
pub fn parse_api(method: &str, path: &str, body: &[u8]) -> Result<ApiRequest, ApiError> {
    let full = path;
    let path = path_only(path);
    let Some(route) = route(path) else {
        return Err(ApiError::not_found());
    };
    let allowed = allowed_method(path).unwrap_or("POST");
    if method != allowed {
        return Err(ApiError::new(
            405,
            format!("method {method:.16} not allowed here; use {allowed}"),
        ));
    }
    match route {
        Route::Online => return online_client(path).map(|client| ApiRequest::Online { client }),
        Route::History => {
            let query = full.split('#').next().unwrap_or("").split_once('?');
            let query = query.map_or("", |(_, q)| q);
            return crate::history_api::parse_history(path, query);
        }
        Route::Position => return crate::history_api::parse_position(path),
        _ => {}
    }
    if route == Route::Presence {
        return presence_request(path);
    }
    if body.len() > MAX_API_BODY {
        return Err(ApiError::too_large());
    }
    let b = parse_body(body)?;
    Ok(match route {
        Route::Emit => ApiRequest::Emit {
            to: name_field(b.to, "to")?,
            data: data_field(b.data)?,
        },
        Route::EmitUser => ApiRequest::EmitUser {
            user: name_field(b.user, "user")?,
            data: data_field(b.data)?,
        },
        Route::Publish => ApiRequest::Publish {
            room: name_field(b.room, "room")?,
            data: data_field(b.data)?,
        },
        Route::Broadcast => ApiRequest::Broadcast {
            data: data_field(b.data)?,
        },
        Route::Disconnect | Route::Online | Route::History | Route::Position | Route::Presence => {
            ApiRequest::Disconnect {
                to: name_field(b.to, "to")?,
            }
        }
    })
}

/// `{"delivered":N}`.
pub fn delivered_body(n: u64) -> String {
    format!(r#"{{"delivered":{n}}}"#)
}

/// `{"online":true,"node":"N"}` when connected on node N, else `{"online":false}`.
pub fn online_body(node: Option<&str>) -> String {
    match node {
        Some(node) => format!(r#"{{"online":true,"node":{}}}"#, json_string(node)),
        None => r#"{"online":false}"#.to_owned(),
    }
}

/// One member in [`presence_body`]: client id, user id, information (JSON text).
pub type PresenceEntry<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// `{"clients":[{"id":ID,"user":U},...]}`: `user` is `null` for a member without one, and
/// `info` (JSON text) is there only for a member with some.
pub fn presence_body<'a>(members: impl IntoIterator<Item = PresenceEntry<'a>>) -> String {
    let mut out = String::from(r#"{"clients":["#);
    for (i, (id, user, info)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"id":"#);
        out.push_str(&json_string(id));
        out.push_str(r#","user":"#);
        match user {
            Some(user) => out.push_str(&json_string(user)),
            None => out.push_str("null"),
        }
        if let Some(info) = info {
            out.push_str(r#","info":"#);
            out.push_str(info);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// `{"rooms":[{"room":R,"clients":N,"users":M},...]}`.
pub fn presence_rooms_body<'a>(rooms: impl IntoIterator<Item = (&'a str, u64, u64)>) -> String {
    let mut out = String::from(r#"{"rooms":["#);
    for (i, (room, clients, users)) in rooms.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"room":"#);
        out.push_str(&json_string(room));
        out.push_str(&format!(r#","clients":{clients},"users":{users}}}"#));
    }
    out.push_str("]}");
    out
}

/// `{"clients":N,"users":M}`.
pub fn presence_count_body(clients: u64, users: u64) -> String {
    format!(r#"{{"clients":{clients},"users":{users}}}"#)
}

/// `{"disconnected":true}` or `{"disconnected":false}`.
pub fn disconnected_body(yes: bool) -> String {
    format!(r#"{{"disconnected":{yes}}}"#)
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
