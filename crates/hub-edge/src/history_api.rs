//! The producer API's history routes: `GET /api/history/{room}?since=N&epoch=E&limit=L` and
//! `GET /api/position/{room}` (PROTOCOL.md, "History and recovery"), and their answer bodies.

use crate::api::{json_string, percent_decode, ApiError, ApiRequest, MAX_NAME_LEN};

/// Messages a history answer holds when the query gives no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Most messages one history answer holds (a larger `limit` is refused).
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// The room of `/api/history/{room}` or `/api/position/{room}` (percent-decoded).
fn room_of(path: &str, prefix: &str) -> Result<String, ApiError> {
    let raw = path.strip_prefix(prefix).unwrap_or_default();
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
    Ok(room)
}

/// Parses `GET /api/position/{room}` (`path` without its query).
pub(crate) fn parse_position(path: &str) -> Result<ApiRequest, ApiError> {
    room_of(path, "/api/position/").map(|room| ApiRequest::Position { room })
}

/// Parses `GET /api/history/{room}?since=N&epoch=E&limit=L`: `since` and `epoch` go
/// together; `limit` is 1 to [`MAX_HISTORY_LIMIT`] (default [`DEFAULT_HISTORY_LIMIT`]).
pub(crate) fn parse_history(path: &str, query: &str) -> Result<ApiRequest, ApiError> {
    let room = room_of(path, "/api/history/")?;
    let (mut since, mut epoch, mut limit) = (None, None, DEFAULT_HISTORY_LIMIT);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " ")).ok_or_else(|| {
            ApiError::bad_request(format!("{key:.16} is not valid percent-encoded UTF-8"))
        })?;
        match key {
            "since" => {
                since = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request("since must be a whole number (an offset)")
                })?)
            }
            "epoch" => epoch = Some(value),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a whole number from 1 to {MAX_HISTORY_LIMIT}"
                        ))
                    })?
            }
            _ => {}
        }
    }
    let since = match (since, epoch) {
        (Some(offset), Some(epoch)) => Some((offset, epoch)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "since and epoch go together (since=N&epoch=E from a message or a position)",
            ))
        }
    };
    Ok(ApiRequest::History { room, since, limit })
}

/// 404 for a room that keeps no history.
pub fn no_history() -> ApiError {
    ApiError::new(
        404,
        "this room keeps no history (rooms with history are set with --history)",
    )
}

/// `{"epoch":E,"offset":N}`.
pub fn position_body(epoch: &str, offset: u64) -> String {
    format!(r#"{{"epoch":{},"offset":{offset}}}"#, json_string(epoch))
}

/// `{"epoch":E,"offset":N,"recovered":bool,"messages":[{"offset":N,"data":D},...]}`; each
/// `data` is JSON text, written as it is.
pub fn history_body<'a>(
    epoch: &str,
    offset: u64,
    recovered: bool,
    messages: impl Iterator<Item = (u64, &'a [u8])>,
) -> String {
    let mut out = format!(
        r#"{{"epoch":{},"offset":{offset},"recovered":{recovered},"messages":["#,
        json_string(epoch)
    );
    for (i, (offset, data)) in messages.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"offset":{offset},"data":"#));
        out.push_str(&String::from_utf8_lossy(data));
        out.push('}');
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_api;

    #[test]
    fn history_queries_parse_and_bad_ones_get_400() {
        let q = |path: &str| parse_api("GET", path, b"");
        assert_eq!(
            q("/api/history/chat%3A1?since=5&epoch=ab&limit=10"),
            Ok(ApiRequest::History {
                room: "chat:1".into(),
                since: Some((5, "ab".into())),
                limit: 10
            })
        );
        assert_eq!(
            q("/api/history/r"),
            Ok(ApiRequest::History {
                room: "r".into(),
                since: None,
                limit: DEFAULT_HISTORY_LIMIT
            })
        );
        assert_eq!(
            q("/api/position/r"),
            Ok(ApiRequest::Position { room: "r".into() })
        );
        for bad in [
            "/api/history/r?since=1",
            "/api/history/r?epoch=e",
            "/api/history/r?since=-1&epoch=e",
            "/api/history/r?limit=0",
            "/api/history/r?limit=1001",
            "/api/history/",
            "/api/position/%ff",
        ] {
            assert_eq!(q(bad).map_err(|e| e.status), Err(400), "{bad}");
        }
        assert_eq!(q("/api/history/a/b").map_err(|e| e.status), Err(404));
        let post = parse_api("POST", "/api/history/r", b"{}");
        assert_eq!(post.map_err(|e| e.status), Err(405));
    }

    #[test]
    fn bodies_are_json() {
        let body = history_body(
            "e\"",
            7,
            true,
            [(6u64, &b"{\"a\":1}"[..]), (7, b"2")].into_iter(),
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["epoch"], "e\"");
        assert_eq!(v["messages"][0]["data"]["a"], 1);
        assert_eq!(v["messages"][1]["offset"], 7);
        let v: serde_json::Value = serde_json::from_str(&position_body("e", 3)).expect("json");
        assert_eq!(v["offset"], 3);
    }
}
