// Webhooks (--pusher-webhook) received by a small HTTP server in the test and checked with
// the SDK's webhook(...).isValid(): channel_occupied once when the first subscriber anywhere
// joins, channel_vacated once when the last one anywhere leaves, member_added and
// member_removed once per user (not per connection), across the nodes of a cluster.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  startHub, server, client, subscribe, authServer, authOptions, eventually,
} from './harness.mjs';

let hub;
let auth;
let hooks;
const clients = [];

/** The webhook receiver: every valid request's events, in arrival order. */
async function receiver() {
  const r = { events: [], invalid: 0 };
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const check = server({ port: 1, host: '127.0.0.1' }).webhook({ headers: req.headers, rawBody: body });
      if (check.isValid()) r.events.push(...check.getEvents());
      else r.invalid += 1;
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${srv.address().port}/hooks`;
  r.close = () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); });
  return r;
}

before(async () => {
  hooks = await receiver();
  hub = await startHub({ flags: ['--pusher-webhook', hooks.url] });
  auth = await authServer(server(hub.nodes[0]));
});
after(async () => {
  for (const c of clients) c.disconnect();
  await hub?.stop();
  await auth?.close();
  await hooks?.close();
});

async function on(i, user) {
  const c = await client(hub.nodes[i % hub.nodes.length], authOptions(auth, user));
  clients.push(c);
  return c;
}

const named = (name, channel) => hooks.events.filter((e) => e.name === name && e.channel === channel);

/**
 * Waits until every node has delivered what it had queued before: a subscriber on each node
 * occupies a fresh channel (announced by that node), and each node's webhooks go out in order.
 */
async function flush(tag) {
  for (let i = 0; i < hub.nodes.length; i++) {
    const channel = `marker-${tag}-${i}`;
    const c = await on(i, `marker-${i}`);
    await subscribe(c, channel);
    await eventually(`the marker webhook of node ${i}`, () => named('channel_occupied', channel).length > 0, 15_000);
    c.disconnect();
  }
}

test('channel_occupied and channel_vacated once per cluster-wide transition', async () => {
  const a = await on(0, 'a');
  const b = await on(1, 'b');
  await subscribe(a, 'room-1');
  await eventually('channel_occupied', () => named('channel_occupied', 'room-1').length > 0, 15_000);
  await subscribe(b, 'room-1');
  a.unsubscribe('room-1');
  b.unsubscribe('room-1');
  await eventually('channel_vacated', () => named('channel_vacated', 'room-1').length > 0, 15_000);
  await flush('occupancy');
  assert.equal(named('channel_occupied', 'room-1').length, 1, JSON.stringify(hooks.events));
  assert.equal(named('channel_vacated', 'room-1').length, 1, JSON.stringify(hooks.events));
  assert.equal(hooks.invalid, 0, 'every webhook carried a valid signature');
});

test('member_added and member_removed once per user, whatever its connections', async () => {
  const u1 = await on(0, 'user-1');
  const u1again = await on(1, 'user-1');
  const u2 = await on(2, 'user-2');
  await subscribe(u1, 'presence-hooks');
  await subscribe(u1again, 'presence-hooks');
  await subscribe(u2, 'presence-hooks');
  await eventually('member_added of both users', () => named('member_added', 'presence-hooks').length >= 2, 15_000);
  u1.disconnect();
  u2.disconnect();
  await eventually('member_removed of user-2', () =>
    named('member_removed', 'presence-hooks').some((e) => e.user_id === 'user-2'), 15_000);
  u1again.disconnect();
  await eventually('member_removed of user-1', () =>
    named('member_removed', 'presence-hooks').some((e) => e.user_id === 'user-1'), 15_000);
  await flush('members');
  const added = named('member_added', 'presence-hooks').map((e) => e.user_id).sort();
  const removed = named('member_removed', 'presence-hooks').map((e) => e.user_id).sort();
  assert.deepEqual(added, ['user-1', 'user-2']);
  assert.deepEqual(removed, ['user-1', 'user-2']);
  assert.equal(named('channel_occupied', 'presence-hooks').length, 1);
  assert.equal(named('channel_vacated', 'presence-hooks').length, 1);
});
