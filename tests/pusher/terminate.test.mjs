// POST /apps/{id}/users/{user}/terminate_connections (the SDK's terminateUserConnections):
// every connection signed in as that user, on every node, is closed; others stay. And the
// SDK's sendToUser reaches the user's connections only.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, server, client, authServer, authOptions, eventually, answer, sleep } from './harness.mjs';

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

/** A pusher-js client on node `i`, signed in as `user`. */
async function signedIn(i, user) {
  const c = await client(hub.nodes[i % hub.nodes.length], authOptions(auth, user));
  clients.push(c);
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}: no pusher:signin_success`)), 10_000);
    c.bind('pusher:signin_success', () => { clearTimeout(timer); resolve(); });
  });
  c.signin();
  await done;
  return c;
}

test('sendToUser reaches every connection of the user and no one else', async () => {
  const sdk = server(hub.nodes[hub.nodes.length - 1]);
  const a1 = await signedIn(0, 'alice');
  const a2 = await signedIn(1, 'alice');
  const b = await signedIn(2, 'bob');
  const got = { a1: [], a2: [], b: [] };
  a1.user.bind('note', (d) => got.a1.push(d));
  a2.user.bind('note', (d) => got.a2.push(d));
  b.user.bind('note', (d) => got.b.push(d));
  await eventually('both of alice\'s connections get a note', async () => {
    const res = await answer(sdk.sendToUser('alice', 'note', { hi: 1 }));
    if (res.status !== 200) throw new Error(JSON.stringify(res));
    await sleep(100);
    return got.a1.length > 0 && got.a2.length > 0;
  });
  assert.deepEqual(got.a1[0], { hi: 1 });
  // Bob's connection gets its own note and nothing of alice's.
  await eventually('bob gets his note', async () => {
    await sdk.sendToUser('bob', 'note', { for: 'bob' });
    await sleep(100);
    return got.b.length > 0;
  });
  assert.ok(got.b.every((d) => d.for === 'bob'), JSON.stringify(got.b));
});

test('terminate_connections closes the user\'s connections on every node, and only those', async () => {
  const c1 = await signedIn(0, 'carol');
  const c2 = await signedIn(1, 'carol');
  const d = await signedIn(2, 'dave');
  const sdk = server(hub.nodes[0]);
  const res = await answer(sdk.terminateUserConnections('carol'));
  assert.deepEqual(res, { status: 200, body: {} });
  await eventually('carol\'s connections are closed', () =>
    c1.connection.state !== 'connected' && c2.connection.state !== 'connected');
  assert.equal(d.connection.state, 'connected');
  // Nobody signed in as that user: still 200 and {}.
  const none = await answer(sdk.terminateUserConnections('nobody'));
  assert.deepEqual(none, { status: 200, body: {} });
});
