//! Runs Pusher HTTP API calls against the router: events become room deliveries (one frame
//! per channel, reaching every node), `terminate_connections` a user disconnect on every
//! node, and channel queries read cluster-wide presence (every node holds the whole
//! cluster's, so no query asks another node).

use hub_core::node::{Command, Reply};
use hub_core::{PresenceCount, Scope, UserId};
use hub_edge::api::ApiError;
use hub_edge::pusher_api::answer::{self, ChannelInfo};
use hub_edge::pusher_api::webhook::WebhookEvent;
use hub_edge::pusher_api::{Info, PusherRequest, Trigger};
use hub_pusher::App;
use hub_serve::pusher_api::{deliveries, error_response, PusherCall};
use hub_wire::http::Response;

use crate::hub::Hub;
use crate::runtime::Runtime;
use hub_core::presence::{PresenceChange, PresenceEvent};
use tokio::sync::broadcast::error::RecvError;

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
        PusherRequest::Channels { prefix, info } => {
            let room_prefix = hub_pusher::room_name(&app.id, prefix.as_deref().unwrap_or(""));
            let rooms = hub
                .presence_rooms(room_prefix.as_str())
                .await
                .map_err(unavailable)?;
            let channels = rooms.iter().filter_map(|(room, count)| {
                let (_, channel) = hub_pusher::channel_of(room.as_str())?;
                Some((channel, counts(channel, *count, info)))
            });
            Ok(answer::channels_body(channels))
        }
        PusherRequest::Channel { channel, info } => {
            let count = room_count(hub, app, &channel).await?;
            Ok(answer::channel_body(
                count.clients > 0,
                counts(&channel, count, info),
            ))
        }
        PusherRequest::Users { channel } => {
            let room = hub_pusher::room_name(&app.id, &channel);
            let users = hub
                .presence_users(room.as_str())
                .await
                .map_err(unavailable)?;
            Ok(answer::users_body(users.iter().map(|(u, _)| u.as_str())))
        }
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

/// Connections and distinct users of `channel`, on every node.
async fn room_count(hub: &Hub, app: &App, channel: &str) -> Result<PresenceCount, ApiError> {
    let room = hub_pusher::room_name(&app.id, channel);
    hub.presence_count(room.as_str(), Scope::Cluster)
        .await
        .map_err(unavailable)
}

/// The counts `info` asks for about `channel` (`user_count` for presence channels only).
fn counts(channel: &str, count: PresenceCount, info: Info) -> ChannelInfo {
    let presence = channel.starts_with("presence-");
    ChannelInfo {
        user_count: (info.user_count && presence).then_some(count.users),
        subscription_count: info.subscription_count.then_some(count.clients),
    }
}

/// What `info` asks about `channel`.
async fn channel_info(
    hub: &Hub,
    app: &App,
    channel: &str,
    info: Info,
) -> Result<ChannelInfo, ApiError> {
    Ok(counts(channel, room_count(hub, app, channel).await?, info))
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

/// Forwards the cluster's occupancy and membership changes of Pusher channels to the
/// webhooks, each once per cluster (on the node that announces it), when webhooks are set.
pub(crate) fn spawn_webhook_pump<R: Runtime>(rt: &R, hub: &Hub) {
    if hub.inner.webhooks.is_none() {
        return;
    }
    let mut events = hub.presence_events();
    let hub = hub.clone();
    rt.spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some((app, webhook)) = webhook_of(&event) {
                        hub.pusher_webhook(app, &webhook);
                    }
                }
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(
                        lost,
                        "Pusher webhooks: presence events lost (too many at once)"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// The webhook a presence event of a Pusher channel makes, with its app id: only cluster-wide
/// changes this node announces, so each is sent once per cluster.
fn webhook_of(event: &PresenceEvent) -> Option<(&str, WebhookEvent)> {
    if event.scope != Scope::Cluster || !event.announce {
        return None;
    }
    let (app, channel) = hub_pusher::channel_of(event.room.as_str())?;
    let presence = channel.starts_with("presence-");
    let channel = channel.to_owned();
    let webhook = match &event.change {
        PresenceChange::Occupied => WebhookEvent::ChannelOccupied { channel },
        PresenceChange::Vacated => WebhookEvent::ChannelVacated { channel },
        PresenceChange::UserJoined { user, .. } if presence => WebhookEvent::MemberAdded {
            channel,
            user_id: user.to_string(),
        },
        PresenceChange::UserLeft { user } if presence => WebhookEvent::MemberRemoved {
            channel,
            user_id: user.to_string(),
        },
        _ => return None,
    };
    Some((app, webhook))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::RoomName;

    fn event(room: &str, scope: Scope, announce: bool, change: PresenceChange) -> PresenceEvent {
        PresenceEvent {
            room: RoomName::from(room),
            scope,
            change,
            announce,
        }
    }

    #[test]
    fn only_announced_cluster_changes_of_pusher_channels_make_webhooks() {
        let room = hub_pusher::room_name("app1", "news");
        let occupied = event(
            room.as_str(),
            Scope::Cluster,
            true,
            PresenceChange::Occupied,
        );
        assert_eq!(
            webhook_of(&occupied),
            Some((
                "app1",
                WebhookEvent::ChannelOccupied {
                    channel: "news".into()
                }
            ))
        );
        let vacated = event(room.as_str(), Scope::Cluster, true, PresenceChange::Vacated);
        assert!(matches!(
            webhook_of(&vacated),
            Some((_, WebhookEvent::ChannelVacated { .. }))
        ));
        for quiet in [
            event(room.as_str(), Scope::Node, true, PresenceChange::Occupied),
            event(
                room.as_str(),
                Scope::Cluster,
                false,
                PresenceChange::Occupied,
            ),
            event("lobby", Scope::Cluster, true, PresenceChange::Occupied),
            // Users of channels that are not presence channels are not members.
            event(
                room.as_str(),
                Scope::Cluster,
                true,
                PresenceChange::UserLeft {
                    user: UserId::from("u"),
                },
            ),
        ] {
            assert_eq!(webhook_of(&quiet), None, "{quiet:?}");
        }
    }

    #[test]
    fn members_of_presence_channels_carry_their_pusher_user_id() {
        let room = hub_pusher::room_name("app1", "presence-team");
        {
            let user = "alice";
            let joined = event(
                room.as_str(),
                Scope::Cluster,
                true,
                PresenceChange::UserJoined {
                    user: UserId::from(user),
                    info: None,
                },
            );
            assert_eq!(
                webhook_of(&joined),
                Some((
                    "app1",
                    WebhookEvent::MemberAdded {
                        channel: "presence-team".into(),
                        user_id: "alice".into()
                    }
                ))
            );
        }
        let left = event(
            room.as_str(),
            Scope::Cluster,
            true,
            PresenceChange::UserLeft {
                user: UserId::from("bob"),
            },
        );
        assert!(matches!(
            webhook_of(&left),
            Some((_, WebhookEvent::MemberRemoved { user_id, .. })) if user_id == "bob"
        ));
    }
}
