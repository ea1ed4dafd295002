// hubbub.js: the JavaScript client of Hubbub's client protocol, served by every node at
// GET /hubbub.js. One ES module with no dependencies, for browsers and Node >= 20.
//
//   Browser:  <script type="module">
//               import { connect } from "/hubbub.js";
//               const hub = connect("/ws", { id: "alice" });
//             </script>
//   Node:     import { connect } from "./hubbub.js";
//             import WebSocket from "ws"; // Node >= 22 has a global WebSocket instead
//             const hub = connect("ws://127.0.0.1:8080/ws", { id: "alice", WebSocket });
//
//   hub.on("message", (m) => console.log(m.room, m.from, m.data));
//   await hub.join("lobby");
//   await hub.publish("lobby", { text: "hello" });
//
// connect(url, options) returns a Client that connects at once and keeps reconnecting.
//   url: the node's WebSocket endpoint: ws:, wss:, or http:/https: (turned into ws:/wss:);
//     in a browser it may be relative to the page ("/ws", the default there). An array of
//     endpoints (the nodes of a cluster) is tried in turn: every reconnect moves to the
//     next one, so clients of a node that died come back on the others.
//   options.id: the client id. Without one the node picks it, and the client keeps the id
//     of its first welcome across reconnects (unless it connects with a token).
//   options.user: the user id (nodes without a JWT secret).
//   options.token: a JWT, or a function returning one (or a Promise of one), called before
//     every connection attempt so that a fresh token can be used.
//   options.WebSocket: the WebSocket constructor (default: globalThis.WebSocket).
//   options.reconnect: false to never reconnect (default true).
//   options.backoff: { min: 500, max: 30000 } ms. Attempt n waits min * 2^n, at most max,
//     times a random factor in [0.5, 1) so that many clients do not come back at once.
//   options.ping: { interval: 25000, timeout: 10000 } ms. After `interval` with no frame
//     from the node the client sends {"type":"ping"}; with no frame for `timeout` more it
//     drops the connection (close code 4001) and reconnects. interval 0 turns this off.
//   options.connectTimeout: 10000 ms from the attempt to the node's welcome (else the
//     attempt is dropped, code 4001, and the next one scheduled).
//   options.maxQueue: 1000 requests kept while offline (more are refused, code "offline").
//
// Client methods. Requests return a Promise, resolved by the node's `ack` (or, for a join
// of a room with history, its `joined` frame) and rejected by its `error` with an Error
// whose `code` is the protocol's error code (bad_request, forbidden, bad_name, ...) or the
// client's own: offline, disconnected, closed, left (leave() before the join was answered),
// bad_data (data that JSON.stringify refuses):
//   join(room): joins now, and again after every reconnect until leave(room). A rejoin of
//     a room whose messages carry offsets sends since: {offset, epoch} of the last message
//     seen, so a node with history replays what was missed.
//   leave(room)
//   publish(room, data), emit(to, data), broadcast(data): sent at once when connected,
//     else queued and sent after the next welcome. A request sent on a connection that
//     closes before the answer is rejected with code "disconnected": it may or may not
//     have been delivered.
//   on(event, fn) returns a function that removes fn; off(event, fn); close().
//   Properties: id, node, state ("connecting" | "open" | "reconnecting" | "closed"), rooms.
//
// Events (fn gets one object):
//   open          the WebSocket opened (the welcome follows)
//   welcome       {id, node, reconnected}: the node greeted; rooms are being rejoined
//   message       the frame: {room?, from?, data, offset?, epoch?}
//   joined        the node's joined frame: {room, offset, epoch, recovered?}
//   presence      the node's presence frame: {room, join | leave}
//   gap           {room, reason, after, offset, epoch}: messages of a room were missed.
//                 reason "offset": a live message skipped offsets after+1 .. offset-1;
//                 "epoch": the room's history was lost (its epoch changed);
//                 "not_recovered": a rejoin could not replay what was missed
//                 (joined.recovered false). The app reloads that room's state.
//   error         an Error from the node that no request was waiting for (code, message)
//   close         {code, reason, reconnect}: the connection closed; reconnect says whether
//                 the client will try again. It does not after 4000 (replaced by a newer
//                 connection with the same id), 4003 (disconnected by the backend through
//                 the producer API), 1008 (refused by policy), close(), or
//                 with reconnect: false; the client is then closed for good.
//   reconnecting  {attempt, delay}: the next attempt starts in delay ms

const OPEN = 1;
/** Close codes after which the client stays closed: replaced (4000), disconnected by the API (4003), refused (1008). */
export const FINAL_CLOSE_CODES = Object.freeze([4000, 4003, 1008]);

/** An error answered by the node (`code` is its error code) or raised by the client. */
export class HubbubError extends Error {
  constructor(code, message, room) {
    super(message || code);
    this.name = "HubbubError";
    this.code = code;
    if (room !== undefined) this.room = room;
  }
}

/** Connects to a node; see the header of this file. */
export function connect(url, options) {
  return new Client(url, options);
}

/**
 * What a room message with `offset` and `epoch` does to the last position seen in that
 * room: `{pos, gap, duplicate}`. `gap` is the gap event's detail or null; a duplicate (an
 * offset already seen in the same epoch) is not delivered again.
 */
export function advance(pos, room, offset, epoch) {
  const next = { offset, epoch: String(epoch) };
  if (!pos) return { pos: next, gap: null, duplicate: false };
  if (pos.epoch !== next.epoch) {
    const gap = { room, reason: "epoch", after: pos.offset, offset, epoch: next.epoch };
    return { pos: next, gap, duplicate: false };
  }
  if (offset <= pos.offset) return { pos, gap: null, duplicate: true };
  const gap =
    offset === pos.offset + 1 ? null : { room, reason: "offset", after: pos.offset, offset, epoch: next.epoch };
  return { pos: next, gap, duplicate: false };
}

/**
 * What a `joined` frame does to the last position seen in its room: `{pos, gap}`. A
 * recovered join keeps the old position (the replay follows, from there); any other
 * joined frame starts from the room's current offset.
 */
export function afterJoined(pos, joined) {
  const { room, offset, epoch, recovered } = joined;
  const carries = typeof offset === "number" && epoch != null;
  const next = carries && (recovered !== true || !pos) ? { offset, epoch: String(epoch) } : pos;
  const gap =
    recovered === false
      ? { room, reason: "not_recovered", after: pos ? pos.offset : null, offset, epoch: carries ? String(epoch) : epoch }
      : null;
  return { pos: next, gap };
}

function wsUrl(url) {
  const page = globalThis.location && globalThis.location.href;
  let u;
  try {
    u = new URL(url == null ? "/ws" : String(url), page);
  } catch (e) {
    throw new TypeError(`hubbub: bad url ${JSON.stringify(url)} (want ws://HOST:PORT/ws)`);
  }
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`hubbub: bad url ${JSON.stringify(url)} (want ws: or wss:)`);
  }
  return u.href;
}

function ms(value, fallback) {
  return typeof value === "number" && value >= 0 && Number.isFinite(value) ? value : fallback;
}

/** A connection to a Hubbub node that reconnects by itself; made by {@link connect}. */
export class Client {
  #WS;
  #urls; // the endpoints, tried in turn
  #at = 0; // the one in use
  #token;
  #user;
  #fixedId;
  #reconnect;
  #backoff;
  #ping;
  #connectTimeout;
  #maxQueue;
  #ws = null;
  #ready = false; // welcomed on the current socket
  #welcomed = false; // ever welcomed
  #tries = 0;
  #retry = 0; // the reconnect timer
  #beat = 0; // the heartbeat timer (one at a time, never reset per frame)
  #frames = 0; // frames received on the current socket
  #seen = 0; // when the last one arrived (ms)
  #pinged = -1; // #frames when the outstanding ping went out, or -1
  #ref = 0;
  #inflight = new Map(); // ref -> request
  #queue = []; // requests waiting for a connection
  #rooms = new Map(); // room -> {pos, joined, waiters: [{resolve, reject}]}
  #listeners = new Map();

  constructor(url, options = {}) {
    const WS = options.WebSocket || globalThis.WebSocket;
    if (typeof WS !== "function") {
      throw new TypeError("hubbub: no WebSocket here: pass options.WebSocket (e.g. the ws package's)");
    }
    this.#WS = WS;
    const urls = Array.isArray(url) ? url : [url];
    if (urls.length === 0) throw new TypeError("hubbub: no url");
    this.#urls = urls.map(wsUrl);
    this.#token = options.token;
    this.#user = options.user == null ? null : String(options.user);
    this.#fixedId = options.id != null;
    this.#reconnect = options.reconnect !== false;
    const b = options.backoff || {};
    this.#backoff = { min: Math.max(10, ms(b.min, 500)), max: ms(b.max, 30000) };
    const p = options.ping || {};
    this.#ping = { interval: ms(p.interval, 25000), timeout: ms(p.timeout, 0) || 10000 };
    this.#connectTimeout = ms(options.connectTimeout, 0) || 10000;
    this.#maxQueue = ms(options.maxQueue, 1000);
    /** The client id (given, or from the node's welcome). */
    this.id = this.#fixedId ? String(options.id) : null;
    /** The node of the current connection (from its welcome). */
    this.node = null;
    /** "connecting", "open", "reconnecting" or "closed". */
    this.state = "connecting";
    this.#open();
  }

  /** The rooms joined (and rejoined after every reconnect). */
  get rooms() {
    return [...this.#rooms.keys()];
  }

  /** Adds a listener; returns a function that removes it. */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** Removes a listener. */
  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
  }

  /** Joins a room, now and after every reconnect. */
  join(room) {
    room = String(room);
    if (this.state === "closed") return Promise.reject(this.#closedError());
    let r = this.#rooms.get(room);
    if (r && r.joined) return Promise.resolve();
    if (!r) this.#rooms.set(room, (r = { pos: null, joined: false, sent: false, waiters: [] }));
    return new Promise((resolve, reject) => {
      r.waiters.push({ resolve, reject });
      if (this.#ready && !r.sent) this.#sendJoin(room, r);
    });
  }

  /** Leaves a room (and stops rejoining it). */
  leave(room) {
    room = String(room);
    const r = this.#rooms.get(room);
    this.#rooms.delete(room);
    if (r) this.#settle(r, new HubbubError("left", `left ${room} before it was joined`, room));
    if (!this.#ready) return Promise.resolve();
    return this.#request({ type: "leave", room }, "leave");
  }

  /** Publishes data (any JSON value) to a room. */
  publish(room, data) {
    return this.#request({ type: "publish", room: String(room), data }, "send");
  }

  /** Sends data to one client id, wherever it is connected. */
  emit(to, data) {
    return this.#request({ type: "emit", to: String(to), data }, "send");
  }

  /** Sends data to every connection (the node must allow client broadcasts). */
  broadcast(data) {
    return this.#request({ type: "broadcast", data }, "send");
  }

  /** Closes the connection for good (code 1000); pending requests are rejected. */
  close() {
    if (this.state === "closed") return;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch (e) {}
    }
    this.#closed(1000, "closed by the client", true);
  }

  #emit(event, detail) {
    for (const fn of [...(this.#listeners.get(event) || [])]) {
      try {
        fn(detail);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #closedError() {
    return new HubbubError("closed", "the client is closed");
  }

  async #open() {
    this.#retry = 0;
    let token = this.#token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch (e) {
        this.#emit("error", e instanceof Error ? e : new Error(String(e)));
        if (this.state !== "closed") this.#closed(1006, "no token");
        return;
      }
      if (this.state === "closed") return;
    }
    const u = new URL(this.#urls[this.#at]);
    // Under a JWT the id comes from the token: a remembered id would be refused.
    if (this.id != null && (this.#fixedId || token == null)) u.searchParams.set("id", this.id);
    if (this.#user != null) u.searchParams.set("user", this.#user);
    if (token != null) u.searchParams.set("token", String(token));
    let ws;
    try {
      ws = new this.#WS(u.href);
    } catch (e) {
      this.#emit("error", e);
      this.#closed(1006, String(e && e.message));
      return;
    }
    this.#ws = ws;
    this.#frames = 0;
    this.#pinged = -1;
    this.#arm(ws, this.#connectTimeout);
    ws.onopen = () => {
      if (this.#ws === ws) this.#emit("open", {});
    };
    ws.onmessage = (ev) => {
      if (this.#ws === ws) this.#frame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#closed(ev.code, ev.reason || "");
    };
    // Always listened to (the ws package throws on an unheard error); the close follows.
    ws.onerror = () => {};
  }

  #arm(ws, wait) {
    clearTimeout(this.#beat);
    this.#beat = setTimeout(() => this.#check(ws), wait);
  }

  // The heartbeat: no welcome within connectTimeout, or no frame within ping.timeout of a
  // ping sent after ping.interval of silence, drops the socket.
  #check(ws) {
    if (this.#ws !== ws) return;
    if (!this.#ready) return this.#drop(ws, "no welcome from the node");
    const { interval, timeout } = this.#ping;
    const now = Date.now();
    if (this.#pinged >= 0) {
      if (this.#frames === this.#pinged) return this.#drop(ws, "no answer to ping");
      this.#pinged = -1;
    }
    const quiet = now - this.#seen;
    if (quiet < interval) return this.#arm(ws, interval - quiet);
    this.#pinged = this.#frames;
    this.#raw(ws, JSON.stringify({ type: "ping" }));
    this.#arm(ws, timeout);
  }

  #drop(ws, why) {
    this.#ws = null;
    try {
      ws.close(4001, why);
    } catch (e) {}
    this.#closed(4001, why);
  }

  #raw(ws, text) {
    try {
      if (!ws || ws.readyState !== OPEN) return false;
      ws.send(text);
      return true;
    } catch (e) {
      return false;
    }
  }

  #request(frame, kind) {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") return reject(this.#closedError());
      const req = { frame, kind, resolve, reject };
      if (this.#ready) this.#send(req);
      else if (this.#queue.length >= this.#maxQueue) {
        reject(new HubbubError("offline", `not connected and ${this.#maxQueue} requests already wait`));
      } else this.#queue.push(req);
    });
  }

  #send(req) {
    const ref = ++this.#ref;
    let text;
    try {
      text = JSON.stringify({ ...req.frame, ref });
    } catch (e) {
      return req.reject(new HubbubError("bad_data", `not JSON: ${e.message}`));
    }
    this.#inflight.set(ref, req);
    if (!this.#raw(this.#ws, text)) {
      this.#inflight.delete(ref);
      this.#queue.push(req);
    }
  }

  #sendJoin(room, r) {
    const frame = { type: "join", room };
    if (r.pos) frame.since = { offset: r.pos.offset, epoch: r.pos.epoch };
    r.sent = true;
    this.#send({
      frame,
      kind: "join",
      room,
      resolve: (joined) => {
        if (this.#rooms.get(room) !== r) return;
        r.joined = true;
        r.sent = false;
        this.#settle(r, null, joined);
      },
      reject: (err) => {
        if (this.#rooms.get(room) !== r) return;
        this.#rooms.delete(room);
        err.room = room;
        if (!r.waiters.length) this.#emit("error", err);
        this.#settle(r, err);
      },
    });
  }

  #settle(r, err, value) {
    const waiters = r.waiters.splice(0);
    for (const w of waiters) err ? w.reject(err) : w.resolve(value);
  }

  #frame(text) {
    this.#frames++;
    this.#seen = Date.now();
    let m;
    try {
      m = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!m || typeof m !== "object") return;
    switch (m.type) {
      case "welcome":
        return this.#welcome(m);
      case "message":
        return this.#message(m);
      case "ack":
        return this.#answer(m.ref, null);
      case "error": {
        const err = new HubbubError(m.code || "error", m.message);
        if (m.ref == null || !this.#inflight.has(m.ref)) this.#emit("error", err);
        else this.#answer(m.ref, err);
        return;
      }
      case "joined":
        return this.#joined(m);
      case "presence":
        return this.#emit("presence", m);
      default:
        return; // pong, and frames of later protocol versions
    }
  }

  #answer(ref, err, value) {
    const req = this.#inflight.get(ref);
    if (!req) return;
    this.#inflight.delete(ref);
    err ? req.reject(err) : req.resolve(value);
  }

  #welcome(m) {
    this.id = String(m.id);
    this.node = m.node;
    this.#tries = 0;
    this.#ready = true;
    this.state = "open";
    if (this.#ping.interval) this.#arm(this.#ws, this.#ping.interval);
    else clearTimeout(this.#beat);
    const reconnected = this.#welcomed;
    this.#welcomed = true;
    for (const [room, r] of this.#rooms) this.#sendJoin(room, r);
    for (const req of this.#queue.splice(0)) this.#send(req);
    this.#emit("welcome", { id: this.id, node: this.node, reconnected });
  }

  #message(m) {
    const r = m.room != null ? this.#rooms.get(m.room) : undefined;
    if (r && typeof m.offset === "number" && m.epoch != null) {
      const step = advance(r.pos, m.room, m.offset, m.epoch);
      r.pos = step.pos;
      if (step.duplicate) return;
      if (step.gap) this.#emit("gap", step.gap);
    }
    this.#emit("message", m);
  }

  #joined(m) {
    const r = this.#rooms.get(m.room);
    if (!r) return this.#emit("joined", m);
    const step = afterJoined(r.pos, m);
    r.pos = step.pos;
    // The join this frame answers needs no ack any more.
    for (const [ref, req] of this.#inflight) {
      if (req.kind === "join" && req.room === m.room) {
        this.#answer(ref, null, m);
        break;
      }
    }
    this.#emit("joined", m);
    if (step.gap) this.#emit("gap", step.gap);
  }

  #closed(code, reason, byClient = false) {
    clearTimeout(this.#beat);
    this.#ready = false;
    for (const [, req] of this.#inflight) {
      // A join is sent again after the reconnect; a leave is done (the connection is gone).
      if (req.kind === "send") {
        req.reject(new HubbubError("disconnected", "the connection closed before the node answered"));
      } else if (req.kind === "leave") req.resolve();
    }
    this.#inflight.clear();
    for (const r of this.#rooms.values()) r.joined = r.sent = false;
    const again = !byClient && this.#reconnect && this.state !== "closed" && !FINAL_CLOSE_CODES.includes(code);
    if (!again) this.state = "closed";
    this.#emit("close", { code, reason, reconnect: again });
    if (!again) {
      clearTimeout(this.#retry);
      const err = this.#closedError();
      for (const req of this.#queue.splice(0)) req.reject(err);
      for (const r of this.#rooms.values()) this.#settle(r, err);
      return;
    }
    const { min, max } = this.#backoff;
    const delay = Math.round(Math.min(max, min * 2 ** this.#tries) * (0.5 + Math.random() / 2));
    this.#tries = Math.min(this.#tries + 1, 30);
    this.#at = (this.#at + 1) % this.#urls.length;
    this.state = "reconnecting";
    this.#emit("reconnecting", { attempt: this.#tries, delay });
    this.#retry = setTimeout(() => this.#open(), delay);
  }
}
