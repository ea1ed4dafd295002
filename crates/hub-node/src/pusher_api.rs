//! Runs Pusher HTTP API calls against the router: events become room deliveries (one frame
//! per channel, reaching every node), `terminate_connections` a user disconnect on every
//! node, and channel queries read cluster-wide presence.

use hub_core::node::{Command, Reply};
use hub_core::UserId;
use hub_edge::api::ApiError;
use hub_edge::pusher_api::answer::{self, ChannelInfo};
use hub_edge::pusher_api::webhook::WebhookEvent;
use hub_edge::pusher_api::{Info, PusherRequest, Trigger};
use hub_pusher::App;
use hub_serve::pusher_api::{deliveries, error_response, PusherCall};
use hub_wire::http::Response;

use crate::hub::Hub;

/// The answer to a verified Pusher API call.
pub(crate) async fn serve(hub: &Hub, call: PusherCall) -> Response {
    match run(hub, &call.app, call.request).await {
        Ok(body) => Response::json(200, body),
        Err(e) => error_response(&e),
    }
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(503, e.to_string())
}

async fn run(hub: &Hub, app: &App, request: PusherRequest) -> Result<String, ApiError> {
    match request {
        PusherRequest::Trigger(trigger) => {
            publish(hub, app, &trigger).await?;
            if !trigger.info.any() {
                return Ok(answer::EMPTY.to_owned());
            }
            let mut infos = Vec::with_capacity(trigger.channels.len());
            for channel in &trigger.channels {
                infos.push((
                    channel.as_str(),
                    channel_info(hub, app, channel, trigger.info).await?,
                ));
            }
            Ok(answer::channels_body(infos))
        }
        PusherRequest::Batch(events) => {
            // In order: each event's deliveries are handed to the router before the next's.
            for trigger in &events {
                publish(hub, app, trigger).await?;
            }
            if !events.iter().any(|t| t.info.any()) {
                return Ok(answer::EMPTY.to_owned());
            }
            let mut infos = Vec::with_capacity(events.len());
            for trigger in &events {
                let channel = trigger.channels.first().map_or("", String::as_str);
                infos.push(channel_info(hub, app, channel, trigger.info).await?);
            }
            Ok(answer::batch_body(&infos))
        }
        PusherRequest::TerminateUser { user } => {
            // A `pusher:signin` makes the signed-in user id the connection's user, as it is.
            let user = UserId::from(user);
            hub.command(Command::DisconnectUser { user })
                .await
                .map_err(unavailable)?;
            Ok(answer::EMPTY.to_owned())
        }
        PusherRequest::Channels { .. }
        | PusherRequest::Channel { .. }
        | PusherRequest::Users { .. } => Err(ApiError::new(
            501,
            "channel queries need cluster-wide presence, which this build does not have yet",
        )),
    }
}

/// Hands `trigger`'s deliveries to the router, one channel after another.
async fn publish(hub: &Hub, app: &App, trigger: &Trigger) -> Result<(), ApiError> {
    for command in deliveries(app, trigger) {
        match hub.command(command).await.map_err(unavailable)? {
            Reply::Delivered(_) => {}
            other => tracing::debug!(?other, "unexpected reply to a Pusher delivery"),
        }
    }
    Ok(())
}

/// What `info` asks about `channel`.
async fn channel_info(
    _hub: &Hub,
    _app: &App,
    _channel: &str,
    _info: Info,
) -> Result<ChannelInfo, ApiError> {
    Err(ApiError::new(
        501,
        "info needs cluster-wide presence, which this build does not have yet",
    ))
}

impl Hub {
    /// Queues a Pusher webhook event of app `app_id` for its `--pusher-webhook` URLs (nothing
    /// when none is configured). The WebSocket side reports `client_event`s here.
    pub fn pusher_webhook(&self, app_id: &str, event: &WebhookEvent) {
        if let Some(webhooks) = &self.inner.webhooks {
            webhooks.send(app_id, event);
        }
    }
}
