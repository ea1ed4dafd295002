// One fault scenario against a real three-node cluster (Redis registry), measured from the
// clients' side: subscribers on every node (the JavaScript client, given every node's
// endpoint so that it fails over), a publisher sending sequenced messages to one room at a
// fixed rate through the HTTP API, and one fault a third of the way in.
//
//   node tests/faults/faults.mjs --scenario kill [--history on] [--messages 30000]
//        [--rate 300] [--subscribers 24] [--bus redis] [--lease-ttl 3s]
//
// With --history on, the room keeps its messages in Redis (which needs the Redis bus, so
// --history on implies --bus redis) and the clients rejoin with `since`.
//
// Scenarios: kill (SIGKILL of a node), redis-restart (Redis killed and started empty),
// redis-snapshot (Redis killed and restarted from a snapshot taken earlier), link (the
// victim's advertised gRPC address goes through a TCP proxy, cut for 3 s), pause (SIGSTOP
// of a node past its lease, then SIGCONT), rolling (every node in turn: SIGTERM, start
// again). Prints one JSON object: per-subscriber loss and duplicates, whether every loss
// was visible to its client, recovery, and the times the fault took to heal.
//
// Environment: HUBBUB_BIN (default target/debug/hubbub), REDIS_SERVER, REDIS_CLI.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect } from '../../crates/hub-edge/src/hubbub.js';
import { HubNode, Proxy, Redis, freePort, scratch, sleep, stop } from './cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCENARIOS = ['kill', 'redis-restart', 'redis-snapshot', 'link', 'pause', 'rolling'];
const ROOM = 'faults';

const seconds = (text) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}`);
  return m[2] === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
};

/** A subscriber: the client and what it saw. */
function subscriber(i, nodes) {
  const own = i % nodes.length;
  const urls = nodes.map((_, k) => nodes[(own + k) % nodes.length].ws);
  const client = connect(urls, { id: `s${i}`, WebSocket, backoff: { min: 100, max: 1000 } });
  const s = { i, own, client, got: new Map(), gaps: 0, closes: 0, lastClose: 0, resumes: [] };
  client.on('message', (m) => {
    const seq = m.data?.seq;
    if (typeof seq !== 'number') return;
    s.got.set(seq, (s.got.get(seq) || 0) + 1);
    if (s.lastClose) {
      s.resumes.push(Date.now() - s.lastClose);
      s.lastClose = 0;
    }
  });
  client.on('gap', () => { s.gaps += 1; });
  client.on('close', () => {
    s.closes += 1;
    s.lastClose ||= Date.now();
  });
  client.on('error', () => {});
  return s;
}

/** Publishes `{seq}` 1..messages at `rate`/s, one request at a time, to the first live node;
 * calls `at(seq)` before each. Returns the acknowledged sequence numbers, the number of
 * requests not acknowledged, and how long it took (behind schedule when requests wait). */
async function publish(nodes, messages, rate, at) {
  const acked = new Set();
  let errors = 0;
  const start = Date.now();
  for (let seq = 1; seq <= messages; seq++) {
    at(seq);
    const due = start + (seq * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    // Another node is tried only when this one refuses the connection: a request that was
    // sent and not answered may have been delivered, and is not sent twice.
    let sent = false;
    for (const node of nodes) {
      if (!node.alive) continue;
      try {
        const res = await fetch(`${node.http}/api/publish`, {
          method: 'POST',
          body: JSON.stringify({ room: ROOM, data: { seq } }),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.ok) {
          acked.add(seq);
          sent = true;
        }
        break;
      } catch (e) {
        if (e?.cause?.code !== 'ECONNREFUSED') break;
      }
    }
    if (!sent) errors += 1;
  }
  return { acked, errors, seconds: (Date.now() - start) / 1000 };
}

/** How long until node `via` reads `id` offline (polls every 100 ms, gives up after `ms`). */
async function untilOffline(via, id, ms) {
  const start = Date.now();
  while (Date.now() - start < ms) {
    try {
      const res = await fetch(`${via.http}/api/online/${id}`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.json()).online === false) return Date.now() - start;
    } catch {}
    await sleep(100);
  }
  return null;
}

/** Carries out the scenario's fault on `victim` (and Redis); resolves when it is over. */
async function fault(scenario, { nodes, victim, redis, proxy, leaseMs }) {
  switch (scenario) {
    case 'kill':
      return victim.kill('SIGKILL');
    case 'redis-restart':
    case 'redis-snapshot':
      await redis.kill('SIGKILL');
      await sleep(1000);
      return redis.start();
    case 'link':
      proxy.cut();
      await sleep(3000);
      return proxy.restore();
    case 'pause':
      victim.pause();
      await sleep(leaseMs + 2000);
      return victim.resume();
    case 'rolling':
      for (const node of [...nodes].reverse()) {
        await node.kill('SIGTERM');
        await node.start();
        await sleep(1000);
      }
      return undefined;
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);

/** Runs one scenario; resolves with its figures. */
export async function runScenario(o) {
  const bin = o.bin || process.env.HUBBUB_BIN || path.resolve(here, '../../target/debug/hubbub');
  const leaseMs = seconds(o.leaseTtl || '3s');
  const dir = scratch();
  const redis = new Redis(dir);
  const nodes = [];
  const subs = [];
  let proxy = null;
  let probe = null;
  try {
    await redis.start();
    // History in a cluster lives in Redis and travels on the Redis bus.
    const redisBus = o.bus === 'redis' || Boolean(o.history);
    const options = {
      registry: redis.url,
      bus: redisBus ? redis.url : null,
      history: o.history ? `${ROOM}=1000/10m` : null, // the most a room may keep
      leaseTtl: o.leaseTtl || '3s',
    };
    for (let i = 0; i < 3; i++) nodes.push(new HubNode(bin, i, { ...options }));
    const victim = nodes[2];
    if (o.scenario === 'link') {
      victim.grpc = await freePort();
      proxy = new Proxy(victim.grpc);
      await proxy.start();
      victim.options.advertise = `127.0.0.1:${proxy.port}`;
    }
    for (const node of nodes) await node.start();
    await sleep(1500); // every node has met the others
    for (let i = 0; i < o.subscribers; i++) subs.push(subscriber(i, nodes));
    await Promise.all(subs.map((s) => s.client.join(ROOM)));
    if (['kill', 'pause'].includes(o.scenario)) {
      probe = connect(victim.ws, { id: 'probe', WebSocket, reconnect: false });
      probe.on('error', () => {});
      await new Promise((resolve) => probe.on('welcome', resolve));
    }
    await sleep(500);

    let faultDone = null;
    let faultAt = 0;
    let offline = null;
    const trigger = Math.ceil(o.messages / 3);
    const { acked, errors, seconds: took } = await publish(nodes, o.messages, o.rate, (seq) => {
      if (o.scenario === 'redis-snapshot' && seq === Math.ceil(o.messages / 4)) redis.save();
      if (seq !== trigger) return;
      faultAt = Date.now();
      faultDone = fault(o.scenario, { nodes, victim, redis, proxy, leaseMs });
      if (probe) offline = untilOffline(nodes[0], 'probe', leaseMs * 5 + 10_000);
    });
    await faultDone;
    const offlineMs = probe ? await offline : null;
    await sleep(3000); // the last messages and replays arrive

    const per = subs.map((s) => {
      let missing = 0;
      for (const seq of acked) if (!s.got.has(seq)) missing += 1;
      let duplicated = 0;
      for (const n of s.got.values()) duplicated += n - 1;
      const told = s.gaps > 0 || s.closes > 0;
      return { id: `s${s.i}`, node: s.own, missing, duplicated, gaps: s.gaps, reconnects: s.closes, silent: missing > 0 && !told, resumes: s.resumes };
    });
    const moved = per.filter((p) => p.reconnects > 0);
    const resumes = moved.flatMap((p) => p.resumes);
    return {
      scenario: o.scenario,
      history: Boolean(o.history),
      bus: o.bus === 'redis' || o.history ? 'redis' : 'grpc',
      messages: o.messages,
      rate: o.rate,
      published_seconds: Number(took.toFixed(1)),
      acknowledged: acked.size,
      publish_errors: errors,
      subscribers: per.length,
      missing_total: per.reduce((a, p) => a + p.missing, 0),
      duplicated_total: per.reduce((a, p) => a + p.duplicated, 0),
      subscribers_with_loss: per.filter((p) => p.missing > 0).length,
      silent_loss_subscribers: per.filter((p) => p.silent).length,
      reconnected: moved.length,
      recovered: moved.filter((p) => p.missing === 0 && p.duplicated === 0).length,
      offline_ms: offlineMs,
      resume_ms_median: median(resumes),
      resume_ms_max: resumes.length ? Math.max(...resumes) : null,
      per_subscriber: per.map(({ resumes: _r, ...p }) => p),
    };
  } finally {
    for (const s of subs) s.client.close();
    probe?.close();
    proxy?.close();
    for (const node of nodes) await stop(node.proc, 'SIGKILL');
    await redis.kill('SIGKILL');
  }
}

function args(argv) {
  const o = { scenario: 'kill', history: false, messages: 30000, rate: 300, subscribers: 24, bus: null, leaseTtl: '3s' };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    switch (k) {
      case '--scenario': o.scenario = v; i++; break;
      case '--history': o.history = v === 'on'; i++; break;
      case '--messages': o.messages = Number(v); i++; break;
      case '--rate': o.rate = Number(v); i++; break;
      case '--subscribers': o.subscribers = Number(v); i++; break;
      case '--bus': o.bus = v; i++; break;
      case '--lease-ttl': o.leaseTtl = v; i++; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!SCENARIOS.includes(o.scenario)) throw new Error(`--scenario: one of ${SCENARIOS.join(', ')}`);
  return o;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const o = args(process.argv.slice(2));
  runScenario(o).then(
    (r) => { console.log(JSON.stringify(r)); process.exit(0); },
    (e) => { console.error(e); process.exit(1); },
  );
}
