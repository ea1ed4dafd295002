// Channel and user queries of the HTTP API, asked of any node about subscribers on every
// node: GET /channels (prefix filter, user_count), GET /channels/{name} (occupied,
// subscription_count, user_count), GET /channels/{name}/users.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, server, client, subscribe, authServer, authOptions, eventually, answer,
} from './harness.mjs';

let hub;
let auth;
const clients = [];
before(async () => {
  hub = await startHub();
  auth = await authServer(server(hub.nodes[0]));
});
after(async () => {
  for (const c of clients) c.disconnect();
  await hub?.stop();
  await auth?.close();
});

async function on(i, user) {
  const c = await client(hub.nodes[i % hub.nodes.length], authOptions(auth, user));
  clients.push(c);
  return c;
}

/** The answer of a GET through the SDK on node `i`, once `pred` holds of it. */
async function getWhen(i, path, params, pred) {
  const sdk = server(hub.nodes[i % hub.nodes.length]);
  return eventually(`GET ${path} ${JSON.stringify(params)} on node ${i}`, async () => {
    const res = await answer(sdk.get({ path, params }));
    if (res.status !== 200) throw new Error(`status ${res.status}: ${JSON.stringify(res.body)}`);
    return pred(res.body) && res.body;
  });
}

test('GET /channels lists the occupied channels of every node, filtered by prefix', async () => {
  const a = await on(0, 'u-a');
  const b = await on(1, 'u-b');
  await subscribe(a, 'lobby');
  await subscribe(b, 'private-room');
  await subscribe(a, 'presence-team');
  await subscribe(b, 'presence-team');
  const c = await on(2, 'u-a'); // the same user again, on a third connection
  await subscribe(c, 'presence-team');
  const all = await getWhen(2, '/channels', {}, (body) => Object.keys(body.channels).length === 3);
  assert.deepEqual(all, { channels: { lobby: {}, 'private-room': {}, 'presence-team': {} } });
  const presence = await getWhen(0, '/channels', { filter_by_prefix: 'presence-', info: 'user_count' },
    (body) => body.channels['presence-team']?.user_count === 2);
  assert.deepEqual(presence, { channels: { 'presence-team': { user_count: 2 } } });
  const priv = await getWhen(1, '/channels', { filter_by_prefix: 'private-' }, () => true);
  assert.deepEqual(priv, { channels: { 'private-room': {} } });
  // user_count without a presence- prefix is refused, as Pusher refuses it.
  const bad = await answer(server(hub.nodes[0]).get({ path: '/channels', params: { info: 'user_count' } }));
  assert.equal(bad.status, 400, JSON.stringify(bad));
});

test('GET /channels/{name}: occupied and counts; unoccupied after the last leaves', async () => {
  const a = await on(0, 'one');
  const b = await on(1, 'two');
  await subscribe(a, 'presence-state');
  await subscribe(b, 'presence-state');
  const state = await getWhen(2, '/channels/presence-state', { info: 'user_count,subscription_count' },
    (body) => body.subscription_count === 2);
  assert.deepEqual(state, { occupied: true, user_count: 2, subscription_count: 2 });
  await subscribe(a, 'plain-state');
  const plain = await getWhen(1, '/channels/plain-state', { info: 'subscription_count' }, (body) => body.occupied);
  assert.deepEqual(plain, { occupied: true, subscription_count: 1 });
  a.unsubscribe('plain-state');
  const gone = await getWhen(2, '/channels/plain-state', {}, (body) => body.occupied === false);
  assert.deepEqual(gone, { occupied: false });
  const never = await getWhen(0, '/channels/never-used', {}, () => true);
  assert.deepEqual(never, { occupied: false });
  const bad = await answer(server(hub.nodes[0]).get({ path: '/channels/plain-state', params: { info: 'user_count' } }));
  assert.equal(bad.status, 400, JSON.stringify(bad));
});

test('GET /channels/{name}/users lists each user once, from every node', async () => {
  const conns = [await on(0, 'ann'), await on(1, 'bob'), await on(2, 'ann')];
  for (const c of conns) await subscribe(c, 'presence-users');
  const users = await getWhen(1, '/channels/presence-users/users', {}, (body) => body.users.length === 2);
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['ann', 'bob']);
  conns[1].disconnect();
  const after = await getWhen(0, '/channels/presence-users/users', {}, (body) => body.users.length === 1);
  assert.deepEqual(after, { users: [{ id: 'ann' }] });
  const notPresence = await answer(server(hub.nodes[0]).get({ path: '/channels/lobby/users' }));
  assert.equal(notPresence.status, 400, JSON.stringify(notPresence));
});
