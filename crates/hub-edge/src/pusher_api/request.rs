//! Routing and parsing of Pusher HTTP API calls (after the signature is checked).
//!
//! Paths are `/apps/{id}` followed by one of `/events`, `/batch_events`, `/channels`,
//! `/channels/{name}`, `/channels/{name}/users`, `/users/{user}/terminate_connections`.
//! Errors are [`ApiError`]s with Pusher's status codes: 400 for a malformed call, 404 for an
//! unknown path, 405 for a wrong method, 413 for data over the node's limit.

use serde::Deserialize;

use super::signature::Query;
use crate::api::{percent_decode, ApiError};

/// Channels one event may name (Pusher's limit, which the SDKs check too).
pub const MAX_EVENT_CHANNELS: usize = 100;
/// Events one `batch_events` call may carry (Pusher allows 10).
pub const MAX_BATCH_EVENTS: usize = 100;
/// Longest event name, in bytes (Pusher's limit).
pub const MAX_EVENT_NAME: usize = 200;
/// Longest user id in a path, in bytes.
pub const MAX_USER_ID: usize = 256;

/// The attributes an `info` parameter asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Info {
    /// `user_count`: distinct users of a presence channel.
    pub user_count: bool,
    /// `subscription_count`: connections subscribed to the channel.
    pub subscription_count: bool,
}

impl Info {
    /// Parses a comma-separated `info` value; an unknown attribute is a 400.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        let mut info = Self::default();
        for attribute in value.unwrap_or_default().split(',').map(str::trim) {
            match attribute {
                "" => {}
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown info attribute {other:.64?} (user_count, subscription_count)"
                    )))
                }
            }
        }
        Ok(info)
    }

    /// Whether any attribute is asked for.
    pub fn any(self) -> bool {
        self.user_count || self.subscription_count
    }
}

/// One event to publish: `POST /events`, or one entry of `POST /batch_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The event name.
    pub name: String,
    /// The data, a string passed on as it is (Pusher clients parse it as JSON when they can).
    pub data: String,
    /// The channels it goes to (one for a batch entry).
    pub channels: Vec<String>,
    /// The connection not to deliver to (`socket_id` of the sender).
    pub socket_id: Option<String>,
    /// What to answer about each channel.
    pub info: Info,
}

/// A parsed Pusher HTTP API call for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PusherRequest {
    /// `POST /apps/{id}/events`.
    Trigger(Trigger),
    /// `POST /apps/{id}/batch_events`.
    Batch(Vec<Trigger>),
    /// `GET /apps/{id}/channels`: the occupied channels.
    Channels {
        /// Only channels whose name starts with this.
        prefix: Option<String>,
        /// What to answer about each.
        info: Info,
    },
    /// `GET /apps/{id}/channels/{name}`: one channel's state.
    Channel {
        /// The channel.
        channel: String,
        /// What to answer besides `occupied`.
        info: Info,
    },
    /// `GET /apps/{id}/channels/{name}/users`: the users of a presence channel.
    Users {
        /// The presence channel.
        channel: String,
    },
    /// `POST /apps/{id}/users/{user}/terminate_connections`.
    TerminateUser {
        /// The user id.
        user: String,
    },
}

/// Whether `path` (query string excluded) belongs to the Pusher HTTP API.
pub fn is_pusher_path(path: &str) -> bool {
    path.starts_with("/apps/")
}

/// Splits `/apps/{id}/rest` into the app id and `/rest`; `None` when it is not such a path.
pub fn split_app(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/apps/")?;
    let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
    (!id.is_empty()).then_some((id, rest))
}

/// Where a call goes, from the path after `/apps/{id}`.
enum Route<'a> {
    Events,
    Batch,
    Channels,
    Channel(&'a str),
    Users(&'a str),
    Terminate(&'a str),
}

impl Route<'_> {
    fn method(&self) -> &'static str {
        match self {
            Self::Events | Self::Batch | Self::Terminate(_) => "POST",
            Self::Channels | Self::Channel(_) | Self::Users(_) => "GET",
        }
    }
}

fn route(rest: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["events"] => Route::Events,
        ["batch_events"] => Route::Batch,
        ["channels"] => Route::Channels,
        ["channels", name] if !name.is_empty() => Route::Channel(name),
        ["channels", name, "users"] if !name.is_empty() => Route::Users(name),
        ["users", user, "terminate_connections"] if !user.is_empty() => Route::Terminate(user),
        _ => return None,
    })
}

/// The method a known API path takes (for the `Allow` header of a 405).
pub fn allowed_method(rest: &str) -> Option<&'static str> {
    route(rest).map(|r| r.method())
}

/// A path segment, percent-decoded; a 400 naming `what` when the escapes are bad.
fn segment(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_decode(raw)
        .ok_or_else(|| ApiError::bad_request(format!("{what} is not valid percent-encoded UTF-8")))
}

/// Checks a channel name as Pusher does; a 400 naming it otherwise.
fn channel_name(name: &str) -> Result<(), ApiError> {
    hub_pusher::parse_channel(name)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("invalid channel {name:.64?}: {e}")))
}

/// Whether `s` is a Pusher socket id (`digits.digits`).
pub fn valid_socket_id(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 20
            && b.len() <= 20
            && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

/// The JSON body of `/events`, and of each entry of `/batch_events`.
#[derive(Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<serde_json::Value>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody {
    batch: Option<Vec<EventBody>>,
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("expected a JSON object body"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("expected a JSON object body: {e}")))
}

impl EventBody {
    /// The event, checked: `batch` entries name one `channel`, others `channels` or `channel`.
    fn into_trigger(self, max_data: usize, batch: bool) -> Result<Trigger, ApiError> {
        let name = self
            .name
            .ok_or_else(|| ApiError::bad_request("missing field \"name\""))?;
        if name.is_empty() || name.len() > MAX_EVENT_NAME {
            return Err(ApiError::bad_request(format!(
                "event name must be 1 to {MAX_EVENT_NAME} bytes long"
            )));
        }
        if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
            return Err(ApiError::bad_request(
                "event names starting with pusher: or pusher_internal: are reserved",
            ));
        }
        let data = match self.data {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(ApiError::bad_request("field \"data\" must be a string")),
            None => return Err(ApiError::bad_request("missing field \"data\"")),
        };
        if data.len() > max_data {
            return Err(ApiError::new(
                413,
                format!(
                    "data is {} bytes; this node accepts at most {max_data} (--max-message-size)",
                    data.len()
                ),
            ));
        }
        let channels = match (self.channels, self.channel) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give either \"channels\" or \"channel\", not both",
                ))
            }
            (Some(list), None) if !batch => list,
            (None, Some(one)) => vec![one],
            (Some(_), None) => {
                return Err(ApiError::bad_request("a batch event names one \"channel\""))
            }
            (None, None) => return Err(ApiError::bad_request("missing field \"channels\"")),
        };
        if channels.is_empty() || channels.len() > MAX_EVENT_CHANNELS {
            return Err(ApiError::bad_request(format!(
                "an event goes to 1 to {MAX_EVENT_CHANNELS} channels"
            )));
        }
        for channel in &channels {
            channel_name(channel)?;
        }
        if let Some(id) = &self.socket_id {
            if !valid_socket_id(id) {
                return Err(ApiError::bad_request(format!(
                    "invalid socket_id {id:.64?} (expected digits.digits)"
                )));
            }
        }
        Ok(Trigger {
            name,
            data,
            channels,
            socket_id: self.socket_id,
            info: Info::parse(self.info.as_deref())?,
        })
    }
}

/// Routes and parses the call `method rest` of one app (`rest` is the path after
/// `/apps/{id}`, without the query), with its verified `query` and its `body`; event data
/// longer than `max_data` bytes is refused with 413.
pub fn parse(
    method: &str,
    rest: &str,
    query: &Query,
    body: &[u8],
    max_data: usize,
) -> Result<PusherRequest, ApiError> {
    let route = route(rest).ok_or_else(|| ApiError::new(404, "no such Pusher API endpoint"))?;
    if method != route.method() {
        return Err(ApiError::new(
            405,
            format!(
                "method {method:.16} not allowed here; use {}",
                route.method()
            ),
        ));
    }
    Ok(match route {
        Route::Events => {
            PusherRequest::Trigger(json::<EventBody>(body)?.into_trigger(max_data, false)?)
        }
        Route::Batch => {
            let events = json::<BatchBody>(body)?
                .batch
                .ok_or_else(|| ApiError::bad_request("missing field \"batch\""))?;
            if events.is_empty() || events.len() > MAX_BATCH_EVENTS {
                return Err(ApiError::bad_request(format!(
                    "a batch carries 1 to {MAX_BATCH_EVENTS} events"
                )));
            }
            let events = events
                .into_iter()
                .map(|e| e.into_trigger(max_data, true))
                .collect::<Result<_, _>>()?;
            PusherRequest::Batch(events)
        }
        Route::Channels => {
            let prefix = query.get("filter_by_prefix").map(str::to_owned);
            let info = Info::parse(query.get("info"))?;
            if info.user_count
                && !prefix
                    .as_deref()
                    .is_some_and(|p| p.starts_with("presence-"))
            {
                return Err(ApiError::bad_request(
                    "info=user_count needs filter_by_prefix=presence-",
                ));
            }
            PusherRequest::Channels { prefix, info }
        }
        Route::Channel(raw) => {
            let channel = segment(raw, "channel name")?;
            channel_name(&channel)?;
            let info = Info::parse(query.get("info"))?;
            if info.user_count && !channel.starts_with("presence-") {
                return Err(ApiError::bad_request(
                    "info=user_count is only for presence channels",
                ));
            }
            PusherRequest::Channel { channel, info }
        }
        Route::Users(raw) => {
            let channel = segment(raw, "channel name")?;
            channel_name(&channel)?;
            if !channel.starts_with("presence-") {
                return Err(ApiError::bad_request(
                    "users are listed for presence channels only",
                ));
            }
            PusherRequest::Users { channel }
        }
        Route::Terminate(raw) => {
            let user = segment(raw, "user id")?;
            if user.len() > MAX_USER_ID {
                return Err(ApiError::bad_request(format!(
                    "user id must be 1 to {MAX_USER_ID} bytes long"
                )));
            }
            PusherRequest::TerminateUser { user }
        }
    })
}
