//! The producer service's history calls (`History`, `Position`): requests checked and mapped
//! onto router commands, replies onto the wire (PROTOCOL.md, "History and recovery").

use hub_core::history::Since;
use hub_core::node::{Command, Reply};
use hub_core::RoomName;
use hub_edge::history_api::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use hub_proto::pb;
use tonic::Status;

use crate::grpc::name;

fn not_found() -> Status {
    Status::not_found("this room keeps no history (rooms with history are set with --history)")
}

/// The router command of a `History` call, or INVALID_ARGUMENT.
pub(crate) fn history_command(r: pb::HistoryRequest) -> Result<Command, Status> {
    let room = name("room", r.room)?;
    let since = match (r.since, r.epoch) {
        (Some(offset), Some(epoch)) => Some(Since { offset, epoch }),
        (None, None) => None,
        _ => {
            return Err(Status::invalid_argument(
                "since and epoch go together (from a message or a position)",
            ))
        }
    };
    let limit = match r.limit as usize {
        0 => DEFAULT_HISTORY_LIMIT,
        n if n <= MAX_HISTORY_LIMIT => n,
        _ => {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_HISTORY_LIMIT}"
            )))
        }
    };
    Ok(Command::History {
        room: RoomName::from(room),
        since,
        limit,
    })
}

/// The `History` answer, or NOT_FOUND for a room without history.
pub(crate) fn history_reply(reply: Reply) -> Result<pb::HistoryReply, Status> {
    let Reply::History(page) = reply else {
        return Err(Status::internal("unexpected reply"));
    };
    let page = page.ok_or_else(not_found)?;
    Ok(pb::HistoryReply {
        epoch: page.position.epoch.to_string(),
        offset: page.position.offset,
        recovered: page.recovered,
        messages: page
            .messages
            .iter()
            .map(|m| pb::HistoryMessage {
                offset: m.offset,
                data: String::from_utf8_lossy(&m.data).into_owned(),
            })
            .collect(),
    })
}

/// The `Position` answer, or NOT_FOUND for a room without history.
pub(crate) fn position_reply(reply: Reply) -> Result<pb::PositionReply, Status> {
    let Reply::Position(position) = reply else {
        return Err(Status::internal("unexpected reply"));
    };
    let position = position.ok_or_else(not_found)?;
    Ok(pb::PositionReply {
        epoch: position.epoch.to_string(),
        offset: position.offset,
    })
}

/// Carries the router's history commands to Redis and the answers back. Appends run one at
/// a time, in the order the router issued them (a client's publishes keep their order);
/// reads run concurrently.
pub(crate) async fn history_task(
    url: String,
    op_timeout: std::time::Duration,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<hub_core::node::HistoryCommand>,
    sink: crate::InputSink,
) {
    use hub_core::history::{HistoryMessage, HistoryPage, Position};
    use hub_core::node::{HistoryAnswer, HistoryCommand, Input};
    let store = match hub_cluster::RedisHistory::open(&url, op_timeout) {
        Ok(store) => std::sync::Arc::new(store),
        Err(e) => {
            tracing::error!(error = %e, "history store unusable; history rooms get no messages");
            return;
        }
    };
    while let Some(command) = rx.recv().await {
        match command {
            HistoryCommand::Append {
                room,
                head,
                data,
                max_len,
                ttl,
                id,
            } => {
                let done = store.append(&room, &head, &data, max_len, ttl).await;
                if let Err(e) = &done {
                    tracing::warn!(error = %e, %room, "history append failed: message not delivered");
                }
                let ok = done.is_ok();
                sink(Input::History(HistoryAnswer::Appended { id, ok }));
            }
            HistoryCommand::Read {
                room,
                since,
                limit,
                ttl,
                purpose,
            } => {
                let store = store.clone();
                let sink = sink.clone();
                tokio::spawn(async move {
                    let since_ref = since.as_ref().map(|s| (s.offset, s.epoch.as_str()));
                    let read = store.read(&room, since_ref, limit, ttl).await;
                    let (page, texts) = match read {
                        Ok(page) => {
                            let texts = page.messages.iter().map(|m| m.json.clone()).collect();
                            let page = HistoryPage {
                                position: Position {
                                    offset: page.offset,
                                    epoch: page.epoch.into(),
                                },
                                recovered: page.recovered,
                                messages: page
                                    .messages
                                    .into_iter()
                                    .map(|m| HistoryMessage {
                                        offset: m.offset,
                                        data: m.data,
                                    })
                                    .collect(),
                            };
                            (Some(page), texts)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %room, "history read failed");
                            (None, Vec::new())
                        }
                    };
                    sink(Input::History(HistoryAnswer::Read {
                        room,
                        purpose,
                        page,
                        texts,
                    }));
                });
            }
        }
    }
}
