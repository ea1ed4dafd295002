//! Pusher's HTTP API on a node: the app of a call, its signature and parsing, and the router
//! commands its events become.
//!
//! The runtime reads the body of a `/apps/...` request (see [`crate::Decision::PusherApi`]),
//! calls [`PusherApi::call`], and runs the [`PusherCall`]: events with [`deliveries`], the
//! queries against presence. Errors are answered with Pusher's status codes and a JSON
//! `{"error":...}` body.

use std::sync::Arc;

use bytes::Bytes;
use hub_core::node::Command;
use hub_core::{ClientId, Target};
use hub_edge::api::ApiError;
use hub_edge::pusher_api::{self, PusherRequest, SignedRequest, Trigger};
use hub_pusher::{App, Apps};
use hub_wire::http::{RequestHead, Response};

/// A verified, parsed call for one app.
#[derive(Debug)]
pub struct PusherCall {
    /// The app named by the path.
    pub app: Arc<App>,
    /// What it asks.
    pub request: PusherRequest,
}

/// The apps whose HTTP API a node serves, and its data limit.
#[derive(Debug, Clone)]
pub struct PusherApi {
    apps: Apps,
    max_data: usize,
}

/// The JSON error answer of `e`.
pub fn error_response(e: &ApiError) -> Response {
    Response::json(e.status, e.body())
}

impl PusherApi {
    /// The API of `apps`; event data over `max_data` bytes is refused with 413.
    pub fn new(apps: Apps, max_data: usize) -> Self {
        Self { apps, max_data }
    }

    /// The apps served.
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    /// Finds the app of `head`'s path (404), checks the signature at Unix time `now_unix`
    /// (401) and parses the call (400, 404, 405, 413).
    pub fn call(
        &self,
        head: &RequestHead,
        body: &[u8],
        now_unix: u64,
    ) -> Result<PusherCall, Response> {
        let fail = |e: ApiError| error_response(&e);
        let (id, rest) = pusher_api::split_app(&head.path)
            .ok_or_else(|| fail(ApiError::new(404, "no such Pusher API endpoint")))?;
        let app = self
            .apps
            .by_id(id)
            .ok_or_else(|| fail(ApiError::new(404, format!("unknown app id {id:.64?}"))))?;
        let signed = SignedRequest {
            method: &head.method,
            path: &head.path,
            query: &head.query,
            body,
        };
        let query = pusher_api::verify(&signed, &app.key, app.secret.as_bytes(), now_unix)
            .map_err(|e| fail(ApiError::new(e.status(), e.to_string())))?;
        if !app.enabled {
            return Err(fail(ApiError::new(403, "this app is disabled")));
        }
        let request =
            pusher_api::parse(&head.method, rest, &query, body, self.max_data).map_err(|e| {
                let response = error_response(&e);
                match (e.status, pusher_api::request::allowed_method(rest)) {
                    (405, Some(allow)) => response.with_header("Allow", allow),
                    _ => response,
                }
            })?;
        Ok(PusherCall {
            app: app.clone(),
            request,
        })
    }
}

/// The router commands publishing `trigger` of `app`: one per channel, each frame encoded
/// once, the sender's `socket_id` left out.
pub fn deliveries(app: &App, trigger: &Trigger) -> Vec<Command> {
    // Pusher clients receive `data` as a JSON string, as the SDK sent it.
    let data = serde_json::to_string(&trigger.data).unwrap_or_else(|_| String::from("\"\""));
    trigger
        .channels
        .iter()
        .map(|channel| {
            let room = hub_pusher::room_name(&app.id, channel);
            let target = match &trigger.socket_id {
                Some(socket) => Target::RoomExcept {
                    room,
                    except: ClientId::from(socket.as_str()),
                },
                None => Target::Room(room),
            };
            let frame: Bytes = hub_pusher::frame::event(&trigger.name, channel, &data, None);
            Command::Deliver { target, frame }
        })
        .collect()
}

#[cfg(test)]
#[path = "pusher_api_tests.rs"]
mod tests;
