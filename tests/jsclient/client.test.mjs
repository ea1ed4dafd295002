// Drives the JavaScript client (crates/hub-edge/src/hubbub.js, served at /hubbub.js) from
// Node against a real `hubbub serve` started here, with the `ws` package's WebSocket:
// requests and their answers, two clients in a room, emits, a node killed and started again
// on the same port, a node that stops answering (SIGSTOP), a replaced connection, and a
// room with history recovered after a dropped connection (through a TCP proxy).
//
//   HUBBUB_BIN=/path/to/hubbub node --test client.test.mjs
//
// Environment:
//   HUBBUB_BIN   the node binary (default ../../target/debug/hubbub relative to this file)
//   HUBBUB_*     passed on to the node, e.g. HUBBUB_RUNTIME=smol
//
// Every wait is bounded; a watchdog kills everything if the whole file overruns.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect, advance, afterJoined, HubbubError } from '../../crates/hub-edge/src/hubbub.js';
import { Proxy, freePort, sleep } from '../net-util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.HUBBUB_BIN || path.resolve(here, '../../target/debug/hubbub');
const SOURCE = path.resolve(here, '../../crates/hub-edge/src/hubbub.js');

const WAIT = 10_000; // any single wait for the node or a client
const TOTAL = 180_000; // the whole file

let node = null; // {child, port, log}
const clients = []; // closed at the end

const watchdog = setTimeout(() => {
  console.error(`# watchdog: client.test.mjs ran longer than ${TOTAL / 1000}s, giving up`);
  try { node?.child.kill('SIGKILL'); } catch {}
  process.exit(1);
}, TOTAL);
watchdog.unref();
process.on('exit', () => { try { node?.child.kill('SIGKILL'); } catch {} });



// Starts the node on `port` (a free one when absent), with `extra` flags, and waits for
// /healthz.
async function startNode(port, extra = []) {
  for (let attempt = 1; ; attempt++) {
    const p = port ?? (await freePort());
    const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${p}`, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HUBBUB_LOG: process.env.HUBBUB_LOG || 'info' },
    });
    const n = { child, port: p, log: '', exited: null };
    child.on('exit', (code, signal) => { n.exited = { code, signal }; });
    child.on('error', (err) => { n.exited = { error: err.message }; });
    child.stdout.on('data', (d) => { n.log += d; });
    child.stderr.on('data', (d) => { n.log += d; });
    const deadline = Date.now() + WAIT;
    while (Date.now() < deadline && !n.exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${p}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return n;
      } catch {}
      await sleep(50);
    }
    try { child.kill('SIGKILL'); } catch {}
    // Another free port when it was taken in between; the same port (a restart) is retried.
    if (n.exited && attempt < 3) continue;
    throw new Error(`hubbub did not answer on port ${p} (${JSON.stringify(n.exited)})\n${n.log}`);
  }
}

function killNode(n, signal = 'SIGKILL') {
  return new Promise((resolve) => {
    if (n.exited) return resolve();
    n.child.once('exit', () => resolve());
    n.child.kill(signal);
  });
}

// A client of the node under test that records every event it emits.
function client(options = {}, url = `ws://127.0.0.1:${node.port}/ws`) {
  const c = connect(url, { WebSocket, ...options });
  c.events = [];
  for (const e of ['open', 'welcome', 'message', 'joined', 'presence', 'gap', 'error', 'close', 'reconnecting']) {
    c.on(e, (d) => c.events.push([e, d]));
  }
  clients.push(c);
  return c;
}

// The first `event` of `c` (from now on) for which `pred` holds.
function next(c, event, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${c.id}: no ${event} within ${WAIT / 1000}s; events: ${JSON.stringify(c.events)}`));
    }, WAIT);
    const off = c.on(event, (d) => {
      if (!pred(d)) return;
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });
}

const messageWith = (data) => (m) => JSON.stringify(m.data) === JSON.stringify(data);

async function rejects(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof HubbubError, `${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

async function online(id) {
  const res = await fetch(`http://127.0.0.1:${node.port}/api/online/${id}`, { signal: AbortSignal.timeout(WAIT) });
  return res.json();
}

async function apiDisconnect(to) {
  const res = await fetch(`http://127.0.0.1:${node.port}/api/disconnect`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to }),
    signal: AbortSignal.timeout(WAIT),
  });
  return res.json();
}

async function apiPublish(room, data, port = node.port) {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, data }),
    signal: AbortSignal.timeout(WAIT),
  });
  return res.json();
}

after(async () => {
  for (const c of clients) c.close();
  if (node) await killNode(node, 'SIGTERM');
});

test('setup: the node starts', async () => {
  assert.ok(fs.existsSync(BIN), `no hubbub binary at ${BIN}: cargo build -p hubbub, or set HUBBUB_BIN`);
  node = await startNode();
});

test('GET /hubbub.js serves this file as a cacheable JavaScript module', async () => {
  const res = await fetch(`http://127.0.0.1:${node.port}/hubbub.js`, { signal: AbortSignal.timeout(WAIT) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.match(res.headers.get('cache-control') || '', /max-age=\d+/);
  const body = await res.text();
  assert.equal(body, fs.readFileSync(SOURCE, 'utf8'));
  // What the node serves loads as a module and exports the API.
  const served = await import('data:text/javascript;base64,' + Buffer.from(body).toString('base64'));
  for (const name of ['connect', 'Client', 'HubbubError', 'advance', 'afterJoined']) {
    assert.equal(typeof served[name], 'function', name);
  }
});

test('connect: welcome with the given id, the node, and state open', async () => {
  const a = client({ id: 'welcome-a', user: 'u1' });
  assert.equal(a.state, 'connecting');
  const w = await next(a, 'welcome');
  assert.deepEqual(w, { id: 'welcome-a', node: `node-${node.port}`, reconnected: false });
  assert.equal(a.state, 'open');
  assert.equal(a.id, 'welcome-a');
  assert.equal(a.node, `node-${node.port}`);
  assert.deepEqual(a.events.map(([e]) => e), ['open', 'welcome']);
  assert.deepEqual(await online('welcome-a'), { online: true, node: `node-${node.port}` });

  // An http: URL works too, and without an id the node's generated one is kept.
  const g = client({}, `http://127.0.0.1:${node.port}/ws`);
  const wg = await next(g, 'welcome');
  assert.ok(wg.id.length > 0);
  assert.equal(g.id, wg.id);
  assert.deepEqual(await online(wg.id), { online: true, node: `node-${node.port}` });
  a.close();
  g.close();
  assert.equal(a.state, 'closed');
  assert.deepEqual(a.events.at(-1), ['close', { code: 1000, reason: 'closed by the client', reconnect: false }]);
});

test('connect refuses what cannot work, at once', () => {
  assert.throws(() => connect('ws://127.0.0.1:1/ws', { WebSocket: 'nope' }), /WebSocket/);
  assert.throws(() => connect('ftp://x/ws', { WebSocket }), /bad url/);
  assert.throws(() => connect('not a url', { WebSocket }), /bad url/);
});

test('join and publish: a round trip between two clients', async () => {
  const a = client({ id: 'alice' });
  const b = client({ id: 'bob' });
  await Promise.all([next(a, 'welcome'), next(b, 'welcome')]);
  assert.equal(await a.join('r1'), undefined);
  await b.join('r1');
  assert.deepEqual(a.rooms, ['r1']);
  const atB = next(b, 'message', messageWith({ n: 1 }));
  const atA = next(a, 'message', messageWith({ n: 1 }));
  await a.publish('r1', { n: 1 });
  assert.deepEqual(await atB, { type: 'message', room: 'r1', from: 'alice', data: { n: 1 } });
  assert.deepEqual(await atA, { type: 'message', room: 'r1', from: 'alice', data: { n: 1 } });

  // After leave, b no longer gets r1 messages; a still does (barrier: a's own copy).
  await b.leave('r1');
  assert.deepEqual(b.rooms, []);
  const own = next(a, 'message', messageWith('after leave'));
  await a.publish('r1', 'after leave');
  await own;
  const barrier = next(b, 'message', messageWith('barrier'));
  await a.emit('bob', 'barrier');
  await barrier;
  assert.ok(!b.events.some(([e, d]) => e === 'message' && d.data === 'after leave'), 'b left r1');
  a.close();
  b.close();
});

test('emit reaches one client by id, with from and no room', async () => {
  const a = client({ id: 'emit-a' });
  const b = client({ id: 'emit-b' });
  await Promise.all([next(a, 'welcome'), next(b, 'welcome')]);
  const got = next(b, 'message');
  await a.emit('emit-b', { hello: 'b' });
  assert.deepEqual(await got, { type: 'message', from: 'emit-a', data: { hello: 'b' } });
  // An emit to nobody is still acknowledged (delivery is at most once).
  await a.emit('nobody-here', 1);
  a.close();
  b.close();
});

test('requests resolve on ack and reject on error, by ref', async () => {
  const a = client({ id: 'errors' });
  await next(a, 'welcome');
  await rejects(a.broadcast('x'), 'forbidden'); // no --allow-client-broadcast
  await rejects(a.join('x'.repeat(300)), 'bad_name');
  assert.deepEqual(a.rooms, [], 'a refused join is not kept for rejoining');
  await rejects(a.publish('', 1), 'bad_name');
  await rejects(a.publish('ok', { n: 1n }), 'bad_data'); // a BigInt is not JSON
  // The connection is fine after errors, and nothing surfaced as an unanswered error.
  await a.join('ok');
  const own = next(a, 'message', messageWith('still here'));
  await a.publish('ok', 'still here');
  await own;
  assert.ok(!a.events.some(([e]) => e === 'error' || e === 'close'), JSON.stringify(a.events));
  a.close();
  await rejects(a.publish('ok', 1), 'closed');
  await rejects(a.join('ok'), 'closed');
});

test('requests made before the welcome wait for it', async () => {
  const c = client({ id: 'early' });
  const joined = c.join('early-room');
  const own = next(c, 'message', messageWith('early'));
  const published = c.publish('early-room', 'early');
  assert.equal(c.state, 'connecting');
  await joined;
  await published;
  assert.deepEqual(await own, { type: 'message', room: 'early-room', from: 'early', data: 'early' });
  c.close();
});

test('after the node is killed and started again, clients reconnect and rejoin by themselves', async () => {
  const fast = { backoff: { min: 50, max: 400 } };
  const a = client({ id: 'ra', ...fast });
  const b = client({ id: 'rb', ...fast });
  await Promise.all([next(a, 'welcome'), next(b, 'welcome')]);
  await a.join('rr');
  await b.join('rr');

  const lostA = next(a, 'close');
  const retryA = next(a, 'reconnecting');
  await killNode(node);
  const closed = await lostA;
  assert.equal(closed.reconnect, true);
  assert.equal(closed.code, 1006);
  assert.ok((await retryA).delay >= 0);
  assert.equal(a.state, 'reconnecting');

  // Asked while the node is down: kept and sent after the reconnect, after the rejoins.
  const queuedJoin = a.join('queued-room');
  const queuedOwn = next(a, 'message', messageWith('sent while down'));
  const queued = a.publish('queued-room', 'sent while down');

  const backA = next(a, 'welcome');
  const backB = next(b, 'welcome');
  node = await startNode(node.port);
  assert.deepEqual(await backA, { id: 'ra', node: `node-${node.port}`, reconnected: true });
  assert.deepEqual(await backB, { id: 'rb', node: `node-${node.port}`, reconnected: true });
  await queuedJoin;
  await queued;
  await queuedOwn;

  // Both are in rr again without joining it themselves: a publish from b reaches a, and
  // the producer API counts both members (b rejoined as well).
  const atA = next(a, 'message', messageWith('after restart'));
  await b.publish('rr', 'after restart');
  assert.equal((await atA).from, 'rb');
  assert.deepEqual(await apiPublish('rr', 'api'), { delivered: 2 });
  assert.deepEqual(a.rooms.sort(), ['queued-room', 'rr']);
  a.close();
  b.close();
});

test('several endpoints: a client whose node is gone comes back on the next one', async () => {
  // The first endpoint has nothing listening: the client moves on to the node under test.
  const dead = `ws://127.0.0.1:${await freePort()}/ws`;
  const c = client({ id: 'failover', backoff: { min: 20, max: 50 } }, [dead, `ws://127.0.0.1:${node.port}/ws`]);
  const welcome = await next(c, 'welcome');
  assert.equal(welcome.id, 'failover');
  assert.ok(c.events.some(([e]) => e === 'reconnecting'), JSON.stringify(c.events));
  await c.join('failover-room');
  const got = next(c, 'message', messageWith('here'));
  const res = await fetch(`http://127.0.0.1:${node.port}/api/publish`, {
    method: 'POST',
    body: JSON.stringify({ room: 'failover-room', data: 'here' }),
    signal: AbortSignal.timeout(WAIT),
  });
  assert.deepEqual(await res.json(), { delivered: 1 });
  await got;
  c.close();
});

test('a node that stops answering is noticed by the ping heartbeat, and the client comes back', async () => {
  // One connection attempt at a time while the node is stopped (connectTimeout), so that no
  // stale attempt replaces the live connection when the node resumes.
  const c = client({ id: 'hb', ping: { interval: 200, timeout: 1000 }, backoff: { min: 50, max: 100 }, connectTimeout: 30_000 });
  await next(c, 'welcome');
  await c.join('hb-room');
  const dead = next(c, 'close');
  const retry = next(c, 'reconnecting');
  node.child.kill('SIGSTOP');
  let resumed = false;
  try {
    const closed = await dead;
    assert.deepEqual(closed, { code: 4001, reason: 'no answer to ping', reconnect: true });
    await retry;
    const back = next(c, 'welcome');
    node.child.kill('SIGCONT');
    resumed = true;
    assert.equal((await back).reconnected, true);
  } finally {
    if (!resumed) node.child.kill('SIGCONT');
  }
  assert.equal(c.state, 'open');
  // Rejoined by itself: its publish goes out after the rejoin, and comes back to it.
  const own = next(c, 'message', messageWith('back'));
  await c.publish('hb-room', 'back');
  assert.equal((await own).room, 'hb-room');
  assert.deepEqual(await apiPublish('hb-room', 'api'), { delivered: 1 });
  c.close();
});

test('no reconnect after 4000: a newer connection with the same id replaced this one', async () => {
  const fast = { backoff: { min: 20, max: 40 } };
  const old = client({ id: 'dup', ...fast });
  await next(old, 'welcome');
  await old.join('dup-room');
  const replaced = next(old, 'close');
  const newer = client({ id: 'dup', ...fast });
  await next(newer, 'welcome');
  const closed = await replaced;
  assert.equal(closed.code, 4000);
  assert.equal(closed.reconnect, false);
  assert.equal(old.state, 'closed');
  await rejects(old.publish('dup-room', 1), 'closed');
  // Long enough for many backoff rounds: the old client stayed closed, the newer one was
  // never replaced in turn and still works.
  await sleep(500);
  assert.ok(!old.events.some(([e]) => e === 'reconnecting'), JSON.stringify(old.events));
  assert.ok(!newer.events.some(([e]) => e === 'close'), JSON.stringify(newer.events));
  await newer.join('dup-room');
  const own = next(newer, 'message', messageWith('still mine'));
  await newer.publish('dup-room', 'still mine');
  await own;
  assert.deepEqual(await online('dup'), { online: true, node: `node-${node.port}` });
  newer.close();
});

test('no reconnect after 4003: the backend disconnected this client through the API', async () => {
  const fast = { backoff: { min: 20, max: 40 } };
  const kicked = client({ id: 'kicked', ...fast });
  await next(kicked, 'welcome');
  const closing = next(kicked, 'close');
  assert.deepEqual(await apiDisconnect('kicked'), { disconnected: true });
  const closed = await closing;
  assert.equal(closed.code, 4003);
  assert.equal(closed.reconnect, false);
  // Long enough for many backoff rounds: the client stayed away.
  await sleep(500);
  assert.ok(!kicked.events.some(([e]) => e === 'reconnecting'), JSON.stringify(kicked.events));
  assert.deepEqual(await online('kicked'), { online: false });
});

test('history: a dropped client rejoins with since and gets exactly what it missed, in order; a lost history is a gap', async () => {
  const flags = ['--history', 'h:*=100/10m'];
  let hist = await startNode(undefined, flags);
  const proxy = new Proxy(hist.port);
  await proxy.start();
  try {
    const a = client({ id: 'hist-a', backoff: { min: 50, max: 200 } }, `ws://127.0.0.1:${proxy.port}/ws`);
    await next(a, 'welcome');
    const joined = await a.join('h:room');
    assert.equal(joined.offset, 0);
    assert.equal(typeof joined.epoch, 'string');
    const got = () => a.events.filter(([e, m]) => e === 'message' && m.room === 'h:room').map(([, m]) => m.data);
    const gaps = () => a.events.filter(([e]) => e === 'gap').map(([, g]) => g);
    for (const n of [1, 2]) await apiPublish('h:room', n, hist.port);
    const second = await next(a, 'message', messageWith(2));
    assert.deepEqual([second.offset, second.epoch], [2, joined.epoch]);

    // Away while 3..5 are published; back through the proxy, the rejoin replays them.
    proxy.refusing = true;
    const lost = next(a, 'close');
    proxy.drop();
    await lost;
    for (const n of [3, 4, 5]) await apiPublish('h:room', n, hist.port);
    const rejoined = next(a, 'joined', (j) => j.room === 'h:room');
    const fifth = next(a, 'message', messageWith(5));
    proxy.refusing = false;
    const j = await rejoined;
    assert.deepEqual([j.recovered, j.offset], [true, 5]);
    await fifth;
    await apiPublish('h:room', 6, hist.port);
    await next(a, 'message', messageWith(6));
    assert.deepEqual(got(), [1, 2, 3, 4, 5, 6], 'every message once, in order');
    assert.deepEqual(gaps(), []);

    // The node restarts: its history (memory) is gone, so the rejoin is not recovered and
    // the app hears of it as a gap.
    const gap = next(a, 'gap');
    await killNode(hist);
    hist = await startNode(hist.port, flags);
    const g = await gap;
    assert.equal(g.reason, 'not_recovered');
    assert.equal(g.after, 6);
    assert.notEqual(g.epoch, joined.epoch);
    a.close();
  } finally {
    proxy.close();
    await killNode(hist, 'SIGTERM');
  }
});

test('room offsets: the next one is delivered, a skipped one is a gap, a seen one a duplicate', () => {
  let s = advance(null, 'r', 7, 'e1');
  assert.deepEqual(s, { pos: { offset: 7, epoch: 'e1' }, gap: null, duplicate: false });
  s = advance(s.pos, 'r', 8, 'e1');
  assert.deepEqual(s, { pos: { offset: 8, epoch: 'e1' }, gap: null, duplicate: false });
  assert.deepEqual(advance(s.pos, 'r', 8, 'e1'), { pos: s.pos, gap: null, duplicate: true });
  assert.deepEqual(advance(s.pos, 'r', 3, 'e1').duplicate, true);
  assert.deepEqual(advance(s.pos, 'r', 11, 'e1'), {
    pos: { offset: 11, epoch: 'e1' },
    gap: { room: 'r', reason: 'offset', after: 8, offset: 11, epoch: 'e1' },
    duplicate: false,
  });
  assert.deepEqual(advance(s.pos, 'r', 1, 'e2'), {
    pos: { offset: 1, epoch: 'e2' },
    gap: { room: 'r', reason: 'epoch', after: 8, offset: 1, epoch: 'e2' },
    duplicate: false,
  });
});

test('joined: recovered keeps the position for the replay; not recovered is a gap and starts over', () => {
  const pos = { offset: 5, epoch: 'e1' };
  // Recovered: offsets 6..9 are replayed next, from the old position.
  assert.deepEqual(afterJoined(pos, { room: 'r', offset: 9, epoch: 'e1', recovered: true }), { pos, gap: null });
  let s = advance(pos, 'r', 6, 'e1');
  assert.equal(s.gap, null);
  // Not recovered: the app is told, and live messages continue from the room's offset.
  assert.deepEqual(afterJoined(pos, { room: 'r', offset: 40, epoch: 'e2', recovered: false }), {
    pos: { offset: 40, epoch: 'e2' },
    gap: { room: 'r', reason: 'not_recovered', after: 5, offset: 40, epoch: 'e2' },
  });
  // A plain join of a history room: start from its offset, no gap.
  assert.deepEqual(afterJoined(null, { room: 'r', offset: 12, epoch: 'e1' }), { pos: { offset: 12, epoch: 'e1' }, gap: null });
  s = advance({ offset: 12, epoch: 'e1' }, 'r', 13, 'e1');
  assert.equal(s.gap, null);
  // A node without history: nothing to track.
  assert.deepEqual(afterJoined(null, { room: 'r' }), { pos: null, gap: null });
});
