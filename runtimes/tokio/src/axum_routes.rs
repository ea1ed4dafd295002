//! Hubbub's WebSocket endpoint as axum routes: [`routes`] serves `GET /ws` and
//! `GET /ws/{room}` in an axum application, deciding each upgrade as the node's own listener
//! does (tokens, origins, id rules) and handing the upgraded stream to the hub.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hubbub_tokio::hub_core::ClientProtocol;
//! use hubbub_tokio::{Server, Settings};
//!
//! let hub = Server::start_embedded(Settings::default(), None, ClientProtocol::Json).await?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my service" }))
//!     .merge(hubbub_tokio::axum::routes(hub)); // or .nest("/hub", ...)
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hub_wire::http::RequestHead;
use hub_wire::server::error_response;
use hyper_util::rt::TokioIo;

use crate::{Hub, ServeUpgraded};

/// `GET /ws` and `GET /ws/{room}` for the hub, to merge into (or nest in) an application.
pub fn routes(hub: Hub) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/ws/{*room}", get(upgrade))
        .with_state(hub)
}

/// Answers one upgrade request: 101 and the connection handed to the hub, or the refusal
/// the node's listener would send (400 for a request that is not a WebSocket upgrade).
pub async fn upgrade(State(hub): State<Hub>, request: Request) -> Response {
    let head = request_head(&request);
    let Some(key) = head.websocket_key().filter(|_| head.is_websocket_upgrade()) else {
        return answer(error_response(
            400,
            "expected a WebSocket upgrade (RFC 6455)",
        ));
    };
    let accept = hub_wire::http::websocket_accept(key);
    let params = match hub.admit(&head) {
        Ok(params) => params,
        Err(refusal) => return answer(refusal),
    };
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = hub.serve_upgraded(TokioIo::new(upgraded), params).await {
                    tracing::warn!(error = %e, "connection not opened");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The request as the node's gate reads it (the path as routed, so nesting works).
fn request_head(request: &Request) -> RequestHead {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    RequestHead {
        method: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        version: 1,
        headers,
    }
}

/// A hub-wire answer as an axum response.
fn answer(answer: hub_wire::http::Response) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}
