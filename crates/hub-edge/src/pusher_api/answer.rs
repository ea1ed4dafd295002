//! The answer bodies of the Pusher HTTP API, as the Pusher SDKs read them.

use serde_json::{json, Map, Value};

/// What is known of one channel, for an `info` answer (absent fields were not asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Distinct users of a presence channel.
    pub user_count: Option<u64>,
    /// Connections subscribed to the channel.
    pub subscription_count: Option<u64>,
}

impl ChannelInfo {
    fn object(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if let Some(n) = self.user_count {
            map.insert("user_count".into(), n.into());
        }
        if let Some(n) = self.subscription_count {
            map.insert("subscription_count".into(), n.into());
        }
        map
    }
}

/// The answer without content: `{}` (events without `info`, terminate_connections).
pub const EMPTY: &str = "{}";

/// `{"channels":{NAME:{...},...}}`: the answer of `GET /channels`, and of `POST /events`
/// with `info`.
pub fn channels_body<'a>(channels: impl IntoIterator<Item = (&'a str, ChannelInfo)>) -> String {
    let map: Map<String, Value> = channels
        .into_iter()
        .map(|(name, info)| (name.to_owned(), Value::Object(info.object())))
        .collect();
    json!({ "channels": map }).to_string()
}

/// `{"batch":[{...},...]}`: the answer of `POST /batch_events` with `info` (one entry per
/// event, in order).
pub fn batch_body(infos: &[ChannelInfo]) -> String {
    let list: Vec<Value> = infos.iter().map(|i| Value::Object(i.object())).collect();
    json!({ "batch": list }).to_string()
}

/// `{"occupied":B,...}`: the answer of `GET /channels/{name}`.
pub fn channel_body(occupied: bool, info: ChannelInfo) -> String {
    let mut map = info.object();
    map.insert("occupied".into(), occupied.into());
    Value::Object(map).to_string()
}

/// `{"users":[{"id":ID},...]}`: the answer of `GET /channels/{name}/users`.
pub fn users_body<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    json!({ "users": list }).to_string()
}
