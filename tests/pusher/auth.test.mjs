// Private and presence channels authorized by an auth endpoint in the test that signs with
// the SDK's authorizeChannel; a signature made with another secret is refused. Presence
// members and member events across nodes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, server, client, subscribe, nextEvent, warmUp, authServer, authOptions, APP,
} from './harness.mjs';

let hub;
let auth;
let forged;
const clients = [];
before(async () => {
  hub = await startHub();
  auth = await authServer(server(hub.nodes[0]));
  forged = await authServer(server(hub.nodes[0], { ...APP, secret: 'another-secret-0123456789' }));
});
after(async () => {
  for (const c of clients) c.disconnect();
  await hub?.stop();
  await auth?.close();
  await forged?.close();
});

async function on(i, user, endpoint = auth) {
  const c = await client(hub.nodes[i % hub.nodes.length], authOptions(endpoint, user));
  clients.push(c);
  return c;
}

test('a private channel: authorized subscribers get events; a forged signature is refused', async () => {
  const good = await on(0, 'p1');
  const ch = await subscribe(good, 'private-secret');
  assert.ok(auth.requests.some((r) => r.channel === 'private-secret' && r.socketId === good.connection.socket_id));
  const sdk = server(hub.nodes[hub.nodes.length - 1]);
  await warmUp(sdk, 'private-secret', [ch]);
  const got = nextEvent(ch, 'classified');
  await sdk.trigger('private-secret', 'classified', { level: 3 });
  assert.deepEqual(await got, { level: 3 });
  const bad = await on(1, 'p2', forged);
  await assert.rejects(subscribe(bad, 'private-secret'), /subscription to private-secret failed/);
});

test('a presence channel: members across nodes, member_added and member_removed', async () => {
  const a = await on(0, 'amy');
  const chA = await subscribe(a, 'presence-room');
  assert.equal(chA.members.count, 1);
  assert.deepEqual(chA.members.me, { id: 'amy', info: { name: 'name of amy' } });
  const added = nextEvent(chA, 'pusher:member_added');
  const b = await on(1, 'ben');
  const chB = await subscribe(b, 'presence-room');
  assert.deepEqual(await added, { id: 'ben', info: { name: 'name of ben' } });
  const ids = [];
  chB.members.each((m) => ids.push(m.id));
  assert.deepEqual(ids.sort(), ['amy', 'ben']);
  const removed = nextEvent(chA, 'pusher:member_removed');
  b.disconnect();
  assert.deepEqual((await removed).id, 'ben');
});
