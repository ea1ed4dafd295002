// What every Pusher test file shares: starting real `hubbub serve` nodes (one node, or a
// three-node cluster with a Redis registry, with the gRPC or the Redis bus), the app they
// serve, the `pusher` server SDK and `pusher-js` clients pointed at them, and bounded waits.
//
// Environment:
//   HUBBUB_BIN               the node binary (run.sh sets it)
//   HUBBUB_PUSHER_TOPOLOGY   single (default) | cluster | cluster-redis-bus
//   HUBBUB_*                 passed on to the nodes, e.g. HUBBUB_RUNTIME=smol

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { freePort, sleep } from '../net-util.mjs';

const require = createRequire(import.meta.url);
/** The `pusher` server SDK (Node). */
export const PusherServer = require('pusher');
/** `pusher-js`, its Node build. */
export const PusherClient = require('pusher-js');

const here = path.dirname(fileURLToPath(import.meta.url));
/** The node binary. */
export const BIN = process.env.HUBBUB_BIN || path.resolve(here, '../../target/debug/hubbub');
/** `single`, `cluster` (Redis registry, gRPC bus) or `cluster-redis-bus`. */
export const TOPOLOGY = process.env.HUBBUB_PUSHER_TOPOLOGY || 'single';
/** Any single wait for a node, a client or an answer. */
export const WAIT = 10_000;
/** The shared secret of the test clusters (at least 32 bytes). */
const CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef';

/** The app every test node serves (`--pusher-app ID:KEY:SECRET`). */
export const APP = { id: 'test-app', key: 'test-key', secret: 'test-secret-0123456789abcdef' };

export { sleep, freePort };

let helpText = null;
/**
 * Fails, naming what is missing, when the binary lacks one of `flags` (the Pusher features
 * are checked this way before anything starts, so a test never passes or skips silently).
 */
export function requireFlags(...flags) {
  if (!fs.existsSync(BIN)) throw new Error(`no hubbub binary at ${BIN}: cargo build -p hubbub, or set HUBBUB_BIN`);
  if (helpText === null) {
    const out = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
    helpText = `${out.stdout}${out.stderr}`;
  }
  const missing = flags.filter((f) => !helpText.includes(f));
  if (missing.length) {
    throw new Error(`hubbub serve has no ${missing.join(', ')} flag: not implemented yet in ${BIN}`);
  }
}

/** Polls `fn` until it returns a truthy value (returned) or `ms` pass (then throws `what`). */
export async function eventually(what, fn, ms = WAIT) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`${what}: not within ${ms / 1000}s (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function launch(cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const proc = { child, log: '', exited: null };
  child.on('exit', (code, signal) => { proc.exited = { code, signal }; });
  child.on('error', (err) => { proc.exited = { error: err.message }; });
  child.stdout.on('data', (d) => { proc.log = (proc.log + d).slice(-20_000); });
  child.stderr.on('data', (d) => { proc.log = (proc.log + d).slice(-20_000); });
  return proc;
}

function stop(proc, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!proc || proc.exited) return resolve();
    const kill = setTimeout(() => { try { proc.child.kill('SIGKILL'); } catch {} }, 5000);
    proc.child.once('exit', () => { clearTimeout(kill); resolve(); });
    proc.child.kill(signal);
  });
}

const running = new Set();
process.on('exit', () => {
  for (const p of running) { try { p.child.kill('SIGKILL'); } catch {} }
});

async function startRedis() {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = launch('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    running.add(proc);
    const ok = await eventually('redis-server', () => new Promise((resolve) => {
      if (proc.exited) return resolve('exited');
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => resolve(false));
      s.on('data', (d) => { s.destroy(); resolve(String(d).startsWith('+PONG')); });
      s.on('connect', () => s.write('PING\r\n'));
    })).catch(() => false);
    if (ok === true) return { proc, url: `redis://127.0.0.1:${port}` };
    await stop(proc, 'SIGKILL');
    running.delete(proc);
    if (attempt >= 3) throw new Error(`redis-server would not start: ${proc.log}`);
  }
}

async function startNode(flags, env, name) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = launch(BIN, ['serve', '--listen', `127.0.0.1:${port}`, ...flags], {
      HUBBUB_LOG: process.env.HUBBUB_LOG || 'warn',
      ...env,
    });
    running.add(proc);
    const node = { name, port, proc, host: '127.0.0.1', url: `http://127.0.0.1:${port}` };
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !proc.exited) {
      try {
        const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200 || res.status === 503) return node;
      } catch {}
      await sleep(50);
    }
    await stop(proc, 'SIGKILL');
    running.delete(proc);
    if (proc.exited && attempt < 3 && !/error|invalid|unexpected/i.test(proc.log)) continue;
    throw new Error(`hubbub (${name}) did not start on port ${port} (${JSON.stringify(proc.exited)}):\n${proc.log}`);
  }
}

/**
 * Starts the topology under test: `{nodes, stop()}`. Every node serves `APP` (plus `flags`,
 * and `env` for its environment); a cluster has three nodes and is returned once each sees
 * the other two.
 */
export async function startHub({ flags = [], env = {} } = {}) {
  requireFlags('--pusher-app');
  const appFlags = ['--pusher-app', `${APP.id}:${APP.key}:${APP.secret}`, ...flags];
  const hub = { nodes: [], redis: null };
  hub.stop = async () => {
    await Promise.all(hub.nodes.map((n) => stop(n.proc)));
    if (hub.redis) await stop(hub.redis.proc);
  };
  if (TOPOLOGY === 'single') {
    hub.nodes.push(await startNode(appFlags, env, 'n0'));
    return hub;
  }
  if (TOPOLOGY !== 'cluster' && TOPOLOGY !== 'cluster-redis-bus') {
    throw new Error(`HUBBUB_PUSHER_TOPOLOGY=${TOPOLOGY}: expected single, cluster or cluster-redis-bus`);
  }
  hub.redis = await startRedis();
  const bus = TOPOLOGY === 'cluster' ? 'grpc' : hub.redis.url;
  for (let i = 0; i < 3; i++) {
    const grpc = await freePort();
    hub.nodes.push(await startNode([
      '--node-id', `n${i}`, '--grpc-listen', `127.0.0.1:${grpc}`, '--cluster-secret', CLUSTER_SECRET,
      '--registry', hub.redis.url, '--bus', bus, '--lease-ttl', '2s', '--shards', '2', ...appFlags,
    ], env, `n${i}`));
  }
  for (const n of hub.nodes) {
    await eventually(`node ${n.name} sees its two peers`, async () => {
      const stats = await (await fetch(`${n.url}/stats`, { signal: AbortSignal.timeout(2000) })).json();
      return stats.status === 'ok' && stats.peers?.length === 2;
    }, 20_000);
  }
  return hub;
}

/** The `pusher` server SDK pointed at `node`, for `app` (default `APP`). */
export function server(node, app = APP) {
  return new PusherServer({
    appId: app.id, key: app.key, secret: app.secret,
    host: node.host, port: String(node.port), useTLS: false, timeout: WAIT,
  });
}

/**
 * A `pusher-js` client connected to `node` (options are passed on); resolves once connected,
 * with `client.events` recording `[channel, event, data]` of everything it receives.
 */
export async function client(node, options = {}, key = APP.key) {
  const c = new PusherClient(key, {
    wsHost: node.host, wsPort: node.port, forceTLS: false, enabledTransports: ['ws'],
    disableStats: true, cluster: 'hubbub', ...options,
  });
  c.events = [];
  c.bind_global((event, data) => c.events.push(['(global)', event, data]));
  await eventually(`pusher-js connects to ${node.name}`, () => {
    if (c.connection.state === 'failed' || c.connection.state === 'unavailable') {
      throw new Error(`pusher-js connection ${c.connection.state}`);
    }
    return c.connection.state === 'connected';
  });
  return c;
}

/** Subscribes `c` to `name`; resolves with the channel once subscription succeeded. */
export function subscribe(c, name) {
  return new Promise((resolve, reject) => {
    const ch = c.subscribe(name);
    const timer = setTimeout(() => reject(new Error(`no subscription_succeeded on ${name} within ${WAIT / 1000}s`)), WAIT);
    ch.bind('pusher:subscription_succeeded', () => { clearTimeout(timer); resolve(ch); });
    ch.bind('pusher:subscription_error', (e) => { clearTimeout(timer); reject(new Error(`subscription to ${name} failed: ${JSON.stringify(e)}`)); });
  });
}

/** The next `event` on channel `ch` (of pusher-js) for which `pred` holds. */
export function nextEvent(ch, event, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ch.unbind(event, handler); reject(new Error(`no ${event} on ${ch.name} within ${WAIT / 1000}s`)); }, WAIT);
    function handler(data) {
      if (!pred(data)) return;
      clearTimeout(timer);
      ch.unbind(event, handler);
      resolve(data);
    }
    ch.bind(event, handler);
  });
}

/** Whether nothing matching `pred` arrives on `ch` as `event` while `settle()` resolves. */
export async function nothingArrives(ch, event, settle) {
  const got = [];
  const handler = (data) => got.push(data);
  ch.bind(event, handler);
  await settle();
  ch.unbind(event, handler);
  return got;
}

/** A signed SDK request whose answer is returned as `{status, body}` (errors included). */
export async function answer(promise) {
  try {
    const res = await promise;
    return { status: res.status, body: await res.json() };
  } catch (e) {
    if (e.status) return { status: e.status, body: e.body };
    throw e;
  }
}

/**
 * Publishes warm-up events (`warm-up`) on `channel` through `sdk` until
 * every channel object in `subscribed` has received one: room interest reaches the other
 * nodes of a cluster asynchronously, so the first publish after a subscription may miss
 * them. What a test checks afterwards is then independent of that delay.
 */
export async function warmUp(sdk, channel, subscribed) {
  const seen = new Set();
  const handlers = subscribed.map((ch, i) => {
    const h = () => seen.add(i);
    ch.bind('warm-up', h);
    return [ch, h];
  });
  try {
    await eventually(`warm-up events on ${channel} reach ${subscribed.length} subscriber(s)`, async () => {
      if (seen.size === subscribed.length) return true;
      await sdk.trigger(channel, 'warm-up', {});
      await sleep(100);
      return seen.size === subscribed.length;
    }, 15_000);
  } finally {
    for (const [ch, h] of handlers) ch.unbind('warm-up', h);
  }
}

/** Records the events (name, data) `ch` receives, in order, as `ch.log`. */
export function record(ch) {
  ch.log = [];
  ch.bind_global((event, data) => { if (!event.startsWith('pusher:') && event !== 'warm-up') ch.log.push([event, data]); });
  return ch;
}

/**
 * A small HTTP server answering pusher-js's channel authorization (`POST /auth`, signed with
 * the SDK's `authorizeChannel`; presence members are `?user=ID`) and user authentication
 * (`POST /user-auth?user=ID`, the SDK's `authenticateUser`). `{url, requests, close()}`.
 */
export async function authServer(sdk) {
  const http = await import('node:http');
  const requests = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const user = url.searchParams.get('user');
      requests.push({ path: url.pathname, socketId, channel: form.get('channel_name'), user });
      let answer;
      try {
        if (url.pathname === '/auth') {
          const channel = form.get('channel_name');
          const presence = channel.startsWith('presence-')
            ? { user_id: user, user_info: { name: `name of ${user}` } }
            : undefined;
          answer = sdk.authorizeChannel(socketId, channel, presence);
        } else if (url.pathname === '/user-auth') {
          answer = sdk.authenticateUser(socketId, { id: user, name: `name of ${user}` });
        } else {
          res.writeHead(404).end();
          return;
        }
      } catch (e) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e.message));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${srv.address().port}`;
  return { url, requests, close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }) };
}

/** pusher-js options authorizing channels (and signing in as `user`) at `auth`. */
export function authOptions(auth, user) {
  const q = user ? `?user=${encodeURIComponent(user)}` : '';
  return {
    channelAuthorization: { endpoint: `${auth.url}/auth${q}`, transport: 'ajax' },
    userAuthentication: { endpoint: `${auth.url}/user-auth${q}`, transport: 'ajax' },
  };
}
