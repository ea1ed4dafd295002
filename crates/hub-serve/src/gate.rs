//! What a node does with each HTTP request: upgrade it to a WebSocket (after the origin, token
//! and name checks), serve an endpoint, call the producer API, or refuse it with a status.

use hub_core::{shard_for, ClientId, OpenParams, RoomName, ShardId, UserId};
use hub_edge::api::{parse_api, ApiError, ApiRequest};
use hub_edge::auth::{api_key_ok, JwtVerifier, OriginPolicy};
use hub_wire::http::{RequestHead, Response};

use crate::settings::Settings;

/// The node's answer to a request head.
#[derive(Debug)]
pub enum Decision {
    /// Upgrade to a WebSocket and open a connection with `params` on `shard`.
    Upgrade {
        /// What the connection is opened with.
        params: OpenParams,
        /// The shard that must own it (by client id), or none for the least loaded.
        shard: Option<ShardId>,
        /// The `Sec-WebSocket-Key` to answer.
        key: String,
    },
    /// `GET /healthz`.
    Health,
    /// `GET /stats`.
    Stats,
    /// `GET /metrics`.
    Metrics,
    /// `GET /`: the demo page.
    Demo,
    /// `GET /hubbub.js`: the JavaScript client.
    Script,
    /// Upgrade to a WebSocket, write `frames` (ending with a close frame) and close: a
    /// protocol that refuses after the upgrade (Pusher's unknown app key, 4001).
    UpgradeAndClose {
        /// The `Sec-WebSocket-Key` to answer.
        key: String,
        /// The finished frames to send.
        frames: Vec<u8>,
    },
    /// A producer API call: read the body (Content-Length bytes), then [`Gate::api_request`].
    Api,
    /// A Pusher HTTP API call (`/apps/...`): read the body, then [`Gate::pusher`]'s
    /// [`PusherApi::call`](crate::pusher_api::PusherApi::call).
    PusherApi,
    /// Answer with this response.
    Respond(Response),
}

/// The request policy of a node: origins, client tokens, the API key, names.
pub struct Gate {
    origins: OriginPolicy,
    jwt: Option<JwtVerifier>,
    api_key: Option<String>,
    shard_count: u16,
    max_name_len: usize,
    max_data: usize,
    pusher: crate::pusher_api::PusherApi,
    pusher_apps: hub_pusher::Apps,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("jwt", &self.jwt.is_some())
            .field("api_key", &self.api_key.is_some())
            .finish()
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(
        status,
        ApiError {
            status,
            message: message.to_owned(),
        }
        .body(),
    )
}

/// Whether a Content-Type is `application/json` (parameters such as `charset` allowed).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Gate {
    /// The policy of a node with these settings. With `--jwks-url`, the key set is fetched
    /// here (blocking, bounded by [`crate::jwks::FETCH_TIMEOUT`]) and refreshed in the
    /// background; the error is one line naming the flag.
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let jwt = if let Some(secret) = &settings.jwt_secret {
            Some(JwtVerifier::new(secret.as_bytes()))
        } else if let Some(pem) = &settings.jwt_public_key_pem {
            Some(
                JwtVerifier::from_public_key_pem(pem.as_bytes())
                    .map_err(|e| format!("--jwt-public-key-file: {e}"))?,
            )
        } else if let Some(url) = &settings.jwks_url {
            let keys = crate::jwks::load_jwks(url)?;
            crate::jwks::refresh_in_background(url.clone(), keys.clone(), settings.jwks_refresh);
            Some(JwtVerifier::from_jwks(keys))
        } else {
            None
        };
        Ok(Self {
            origins: OriginPolicy::new(settings.allowed_origins.clone()),
            jwt,
            api_key: settings.api_key.clone(),
            shard_count: settings.shards,
            max_name_len: settings.core_config(hub_core::Seed::default()).max_name_len,
            max_data: settings.max_producer_data(),
            pusher: crate::pusher_api::PusherApi::new(
                settings.pusher_apps().apps,
                settings.max_producer_data(),
            ),
            pusher_apps: settings.pusher_apps().apps,
        })
    }

    /// Decides what to do with `head`; `now_unix` is the wall-clock time for token expiry.
    pub fn decide(&self, head: &RequestHead, now_unix: u64) -> Decision {
        let path = head.path.as_str();
        if path == "/ws" || path.starts_with("/ws/") {
            return self.upgrade(head, now_unix);
        }
        if let Some(app_key) = path.strip_prefix("/app/") {
            return self.pusher_upgrade(head, app_key);
        }
        if path.starts_with("/api/") || path == "/api" {
            // A browser page of another origin must not drive the API: its requests carry
            // an Origin, checked like the WebSocket upgrade's.
            if !self
                .origins
                .check(head.header("origin"), head.header("host"))
            {
                return Decision::Respond(error(403, "origin not allowed"));
            }
            if !api_key_ok(self.api_key.as_deref(), head.header("authorization")) {
                return Decision::Respond(
                    error(401, "missing or wrong API key (Authorization: Bearer KEY)")
                        .with_header("WWW-Authenticate", "Bearer"),
                );
            }
            // Browsers send an Origin with every POST. A page of an allowed origin (its own,
            // say) still cannot post a form or a no-cors fetch: those cannot carry
            // application/json without a preflight. Requests without an Origin come from
            // programs (curl -d, SDKs), whose content type is not checked, as before.
            if head.method == "POST"
                && head.header("origin").is_some()
                && !is_json(head.header("content-type"))
            {
                return Decision::Respond(error(
                    415,
                    "POST bodies must be sent with Content-Type: application/json",
                ));
            }
            return Decision::Api;
        }
        if hub_edge::pusher_api::is_pusher_path(path) {
            // Signed by the app secret (checked once the body is read); no API key or Origin.
            return Decision::PusherApi;
        }
        let endpoint = match path {
            // Browsers ask for it on every page load: answer "no icon" rather than 404.
            "/favicon.ico" => {
                return Decision::Respond(Response::new(204, "image/x-icon", Vec::new()))
            }
            "/healthz" => Decision::Health,
            "/stats" => Decision::Stats,
            "/metrics" => Decision::Metrics,
            "/" | "/index.html" => Decision::Demo,
            "/hubbub.js" => Decision::Script,
            _ => return Decision::Respond(error(404, "no such endpoint")),
        };
        if head.method != "GET" && head.method != "HEAD" {
            return Decision::Respond(error(405, "method not allowed").with_header("Allow", "GET"));
        }
        endpoint
    }

    /// The Pusher HTTP API of the node's apps.
    pub fn pusher(&self) -> &crate::pusher_api::PusherApi {
        &self.pusher
    }

    /// Parses a producer API call whose body has been read.
    /// `data` larger than [`Settings::max_producer_data`] is refused with 413.
    pub fn api_request(&self, head: &RequestHead, body: &[u8]) -> Result<ApiRequest, Response> {
        // The history route reads its query (since, epoch, limit); others ignore it.
        let parsed = if head.query.is_empty() {
            parse_api(&head.method, &head.path, body)
        } else {
            let target = format!("{}?{}", head.path, head.query);
            parse_api(&head.method, &target, body)
        };
        let request = parsed.map_err(|e| Response::json(e.status, e.body()))?;
        match request.data() {
            Some(data) if data.len() > self.max_data => Err(error(
                413,
                &format!(
                    "data is {} bytes; this node accepts at most {} (--max-message-size)",
                    data.len(),
                    self.max_data
                ),
            )),
            _ => Ok(request),
        }
    }

    /// `GET /app/{key}?protocol=7`: a Pusher client. An unknown key, a disabled app or a
    /// missing or older protocol version is refused after the upgrade, as Pusher does
    /// (`pusher:error`, then a close with the same code: 4001, 4003, 4007).
    fn pusher_upgrade(&self, head: &RequestHead, app_key: &str) -> Decision {
        let key = match self.websocket_checks(head) {
            Ok(key) => key,
            Err(refusal) => return Decision::Respond(refusal),
        };
        let refuse = |code: u16, message: &str| {
            let mut frames = hub_pusher::frame::error(Some(code), message).to_vec();
            frames.extend_from_slice(&hub_core::frame::close(code, message));
            Decision::UpgradeAndClose {
                key: key.clone(),
                frames,
            }
        };
        let app = percent_decode(app_key).and_then(|k| self.pusher_apps.by_key(&k).cloned());
        let Some(app) = app else {
            return refuse(
                hub_pusher::frame::code::APP_NOT_FOUND,
                "App key does not exist",
            );
        };
        let version = head
            .query_param("protocol")
            .and_then(|v| v.parse::<u32>().ok());
        if version.is_none_or(|v| v < 7) {
            return refuse(
                hub_pusher::frame::code::UNSUPPORTED_PROTOCOL,
                "Unsupported protocol version: 7 or later is needed (query protocol=7)",
            );
        }
        if !app.enabled {
            return refuse(hub_pusher::frame::code::APP_DISABLED, "App is disabled");
        }
        let params = OpenParams {
            protocol: Some(hub_core::ClientProtocol::Pusher),
            app: Some(app.id.as_str().into()),
            ..OpenParams::default()
        };
        Decision::Upgrade {
            params,
            shard: None,
            key,
        }
    }

    /// The checks of every upgrade: a WebSocket upgrade request with a key, from an allowed
    /// origin. Gives the key, or the refusal.
    fn websocket_checks(&self, head: &RequestHead) -> Result<String, Response> {
        if !head.is_websocket_upgrade() {
            return Err(error(
                426,
                "this endpoint takes WebSocket upgrades (GET with Upgrade: websocket)",
            )
            .with_header("Upgrade", "websocket"));
        }
        let Some(key) = head.websocket_key() else {
            return Err(error(400, "missing Sec-WebSocket-Key"));
        };
        if !self
            .origins
            .check(head.header("origin"), head.header("host"))
        {
            return Err(error(403, "origin not allowed"));
        }
        Ok(key.to_owned())
    }

    fn upgrade(&self, head: &RequestHead, now_unix: u64) -> Decision {
        let key = match self.websocket_checks(head) {
            Ok(key) => key,
            Err(refusal) => return Decision::Respond(refusal),
        };
        let mut params = OpenParams::default();
        let asked_id = head.query_param("id");
        match &self.jwt {
            Some(jwt) => {
                let token = head
                    .query_param("token")
                    .or_else(|| head.bearer_token().map(str::to_owned));
                let Some(token) = token else {
                    return Decision::Respond(error(
                        401,
                        "a token is required (query token= or Authorization: Bearer)",
                    ));
                };
                let claims = match jwt.verify(&token, now_unix) {
                    Ok(claims) => claims,
                    Err(e) => return Decision::Respond(error(401, &format!("token refused: {e}"))),
                };
                // With tokens, an id belongs to its holder: it comes from the token's `cid`
                // or is generated, never from the query alone.
                if asked_id.is_some() && asked_id != claims.client_id {
                    return Decision::Respond(error(
                        403,
                        "the id query parameter must equal the token's cid (without a cid, the id is generated)",
                    ));
                }
                params.user = Some(UserId::from(claims.sub));
                params.client = claims.client_id.map(ClientId::from);
                if let Some(rooms) = claims.rooms {
                    let rooms: Vec<RoomName> = rooms.into_iter().map(RoomName::from).collect();
                    params.rooms = rooms.clone();
                    params.allowed_rooms = Some(rooms);
                }
            }
            None => {
                params.user = head.query_param("user").map(UserId::from);
                params.client = asked_id.map(ClientId::from);
            }
        }
        if let Some(room) = head.path.strip_prefix("/ws/") {
            match percent_decode(room) {
                Some(room) if !room.is_empty() => {
                    let room = RoomName::from(room);
                    if params
                        .allowed_rooms
                        .as_ref()
                        .is_some_and(|allowed| !allowed.contains(&room))
                    {
                        return Decision::Respond(error(
                            403,
                            "the token does not allow the room in the path",
                        ));
                    }
                    params.rooms.push(room);
                }
                _ => return Decision::Respond(error(400, "bad room name in path")),
            }
        }
        let max = self.max_name_len;
        let bad = |s: &str| s.is_empty() || s.len() > max;
        if params.client.as_ref().is_some_and(|c| bad(c.as_str()))
            || params.user.as_ref().is_some_and(|u| bad(u.as_str()))
            || params.rooms.iter().any(|r| bad(r.as_str()))
        {
            return Decision::Respond(error(
                400,
                &format!("ids and room names must be 1 to {max} bytes long"),
            ));
        }
        if params
            .rooms
            .iter()
            .any(|r| hub_core::ids::is_reserved_room(r.as_str()))
        {
            return Decision::Respond(error(400, "room names starting with U+001F are reserved"));
        }
        let shard = params
            .client
            .as_ref()
            .map(|c| shard_for(c.as_str(), self.shard_count));
        Decision::Upgrade { params, shard, key }
    }
}
