//! Room history in Redis, shared by every node of a cluster.
//!
//! Keys of a room R: `hubbub:history:{R}:meta`, a hash with the room's epoch (`e`) and last
//! offset (`o`), and `hubbub:history:{R}:log`, a stream whose entry ids are the offsets
//! (`N-0`) and whose fields are the message's JSON text (`m`), the length of its `data` at
//! the end of it (`l`), and the server time in ms (`t`).
//!
//! - **Append** is one script: create the epoch when the room has none (the server's clock
//!   in µs, hex; a new epoch deletes any old log), increment the offset, build the `message`
//!   JSON with `offset` and `epoch`, `XADD` it (trimmed to the room's N), extend both keys'
//!   life to the TTL, and `PUBLISH` it on the bus channel of the room (as a finished text
//!   frame in a bus envelope whose origin is empty, so every node, the publishing one
//!   included, delivers it from its subscription: one order, Redis's). It never runs twice
//!   (at-most-once, like every publish).
//! - **Read** is one script: the epoch and offset (created when missing), and the entries
//!   after `since` when `since` is in this epoch and every entry after it is still kept and
//!   younger than the TTL (`recovered`), else none; without `since`, the newest kept.
//!
//! Epochs survive node restarts (they live in Redis) and change when Redis may have lost
//! the room: a flush, the TTL passing with no message and no read, and any restart of the
//! Redis server (its run id is kept beside the epoch): a server restored from an older
//! snapshot must not hand out offsets clients already saw under the same epoch.

use std::time::Duration;

use bytes::Bytes;
use hub_core::RoomName;
use redis::{Script, Value};

use crate::bus::channel;
use crate::redis_link::RedisLink;
use crate::ClusterError;

const KEY_PREFIX: &str = "hubbub:history:";

/// Shared by both scripts: the room's epoch, created (with a fresh log) when missing, or
/// when the server restarted since the epoch was made (its run id differs): a server that
/// came back from an older snapshot would hand out offsets clients already saw under the
/// same epoch, so any restart starts a new one.
const ENSURE: &str = r"
local function ensure(meta, log, ttl)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
  local e = redis.call('HGET', meta, 'e')
  if e and redis.call('HGET', meta, 'r') ~= run then e = nil end
  if not e then
    local t = redis.call('TIME')
    e = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
    redis.call('DEL', log)
    redis.call('HSET', meta, 'e', e, 'o', 0, 'r', run)
  end
  redis.call('PEXPIRE', meta, ttl)
  if redis.call('EXISTS', log) == 1 then redis.call('PEXPIRE', log, ttl) end
  return e
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// KEYS: meta, log. ARGV: ttl ms, max len, JSON head (`{"type":"message","room":R[,"from":F]`),
/// data (JSON), bus channel. Returns {offset, epoch}.
const APPEND: &str = r#"
local e = ensure(KEYS[1], KEYS[2], ARGV[1])
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local m = ARGV[3] .. ',"offset":' .. o .. ',"epoch":"' .. e .. '","data":' .. ARGV[4] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], o .. '-0', 'm', m, 'l', #ARGV[4], 't', now_ms())
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local n = #m
local head
if n < 126 then
  head = string.char(0x81, n)
elseif n < 65536 then
  head = string.char(0x81, 126, math.floor(n / 256), n % 256)
else
  local b = {0x81, 127}
  for i = 7, 0, -1 do b[#b + 1] = math.floor(n / (2 ^ (8 * i))) % 256 end
  head = string.char(unpack(b))
end
redis.call('PUBLISH', ARGV[5], string.char(1, 0, 0) .. head .. m)
return {o, e}
"#;

/// KEYS: meta, log. ARGV: ttl ms, since (-1: none), epoch, limit. Returns {epoch, offset,
/// recovered (0/1), {id, m, l, id, m, l, ...}}.
const READ: &str = r"
local ttl = tonumber(ARGV[1])
local e = ensure(KEYS[1], KEYS[2], ttl)
local o = tonumber(redis.call('HGET', KEYS[1], 'o'))
local since = tonumber(ARGV[2])
local limit = tonumber(ARGV[4])
local oldest = now_ms() - ttl
local out = {}
local function keep(entries)
  for _, entry in ipairs(entries) do
    local f = entry[2]
    local m, l, t
    for i = 1, #f, 2 do
      if f[i] == 'm' then m = f[i + 1] elseif f[i] == 'l' then l = f[i + 1] elseif f[i] == 't' then t = tonumber(f[i + 1]) end
    end
    if t and t >= oldest then
      out[#out + 1] = string.match(entry[1], '^(%d+)')
      out[#out + 1] = m
      out[#out + 1] = l
    end
  end
end
if since < 0 then
  if limit > 0 then
    local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
    local entries = {}
    for i = #newest, 1, -1 do entries[#entries + 1] = newest[i] end
    keep(entries)
  end
  return {e, o, 1, out}
end
if ARGV[3] ~= e or since > o then return {e, o, 0, out} end
if since == o or limit <= 0 then return {e, o, 1, out} end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', limit)
keep(entries)
if #out == 0 or tonumber(out[1]) ~= since + 1 then return {e, o, 0, {}} end
return {e, o, 1, out}
";

/// One kept message as read back: its offset, its JSON text and where its `data` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The offset.
    pub offset: u64,
    /// The `message` JSON text (offset and epoch included).
    pub json: Bytes,
    /// The `data` field: the JSON text's last bytes but its closing brace.
    pub data: Bytes,
}

/// What a read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPage {
    /// The room's epoch.
    pub epoch: String,
    /// The room's last offset.
    pub offset: u64,
    /// Whether `messages` are exactly those after `since` (always true without `since`).
    pub recovered: bool,
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// Room history on one Redis server.
pub struct RedisHistory {
    link: RedisLink,
    append: Script,
    read: Script,
}

impl std::fmt::Debug for RedisHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisHistory")
    }
}

fn keys(room: &RoomName) -> (String, String) {
    (
        format!("{KEY_PREFIX}{room}:meta"),
        format!("{KEY_PREFIX}{room}:log"),
    )
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn protocol_error(what: &str) -> ClusterError {
    ClusterError::Protocol(format!("unexpected history reply: {what}"))
}

impl RedisHistory {
    /// A history on `url`; connects on first use.
    pub fn open(url: &str, op_timeout: Duration) -> Result<RedisHistory, ClusterError> {
        Ok(RedisHistory {
            link: RedisLink::open(url, op_timeout)?,
            append: Script::new(&format!("{ENSURE}{APPEND}")),
            read: Script::new(&format!("{ENSURE}{READ}")),
        })
    }

    /// Appends a message to `room` and publishes it on the room's bus channel: `head` is
    /// the JSON of the `message` frame up to its `from` (`protocol::message_head`), `data`
    /// its payload. Returns the offset and the epoch. Never retried.
    pub async fn append(
        &self,
        room: &RoomName,
        head: &str,
        data: &[u8],
        max_len: usize,
        ttl: Duration,
    ) -> Result<(u64, String), ClusterError> {
        let (meta, log) = keys(room);
        let mut call = self.append.key(&meta);
        call.key(&log)
            .arg(ms(ttl))
            .arg(max_len)
            .arg(head)
            .arg(data)
            .arg(channel(Some(room)));
        let mut pipe = redis::pipe();
        pipe.load_script(&self.append).ignore();
        pipe.invoke_script(&call);
        let (offset, epoch): (u64, String) =
            self.link.query_once::<((u64, String),)>(&pipe).await?.0;
        Ok((offset, epoch))
    }

    /// The position of `room` and, with `since`, the messages after it (at most `limit`),
    /// or without it the newest `limit` kept.
    pub async fn read(
        &self,
        room: &RoomName,
        since: Option<(u64, &str)>,
        limit: usize,
        ttl: Duration,
    ) -> Result<StoredPage, ClusterError> {
        let (meta, log) = keys(room);
        let (since_arg, epoch) = match since {
            Some((offset, epoch)) => (i128::from(offset), epoch),
            None => (-1, ""),
        };
        let mut call = self.read.key(&meta);
        call.key(&log)
            .arg(ms(ttl))
            .arg(since_arg.to_string())
            .arg(epoch)
            .arg(limit);
        let mut pipe = redis::pipe();
        pipe.load_script(&self.read).ignore();
        pipe.invoke_script(&call);
        let (reply,): (Vec<Value>,) = self.link.query(&pipe).await?;
        parse_page(reply)
    }
}

fn text(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(&text(other)?).ok()?.parse().ok(),
    }
}

fn parse_page(reply: Vec<Value>) -> Result<StoredPage, ClusterError> {
    let [epoch, offset, recovered, entries] =
        <[Value; 4]>::try_from(reply).map_err(|_| protocol_error("not four values"))?;
    let epoch = text(&epoch)
        .and_then(|e| String::from_utf8(e).ok())
        .ok_or_else(|| protocol_error("epoch"))?;
    let offset = number(&offset).ok_or_else(|| protocol_error("offset"))?;
    let recovered = number(&recovered).ok_or_else(|| protocol_error("recovered"))? == 1;
    let Value::Array(entries) = entries else {
        return Err(protocol_error("entries"));
    };
    let mut messages = Vec::with_capacity(entries.len() / 3);
    for entry in entries.chunks_exact(3) {
        let offset = number(&entry[0]).ok_or_else(|| protocol_error("entry id"))?;
        let json = Bytes::from(text(&entry[1]).ok_or_else(|| protocol_error("entry"))?);
        let len = number(&entry[2]).ok_or_else(|| protocol_error("entry length"))? as usize;
        if json.len() < len + 1 {
            return Err(protocol_error("entry length"));
        }
        let data = json.slice(json.len() - 1 - len..json.len() - 1);
        messages.push(StoredMessage { offset, json, data });
    }
    Ok(StoredPage {
        epoch,
        offset,
        recovered,
        messages,
    })
}
