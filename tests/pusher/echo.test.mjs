// laravel-echo 2 over pusher-js against Hubbub: Echo.channel().listen(), Echo.private() and
// Echo.join().here().joining().leaving(), events triggered with the `pusher` SDK.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import {
  startHub, server, PusherClient, authServer, eventually, sleep, APP, WAIT,
} from './harness.mjs';

let hub;
let auth;
const echos = [];
before(async () => {
  hub = await startHub();
  auth = await authServer(server(hub.nodes[0]));
});
after(async () => {
  for (const e of echos) e.disconnect();
  await hub?.stop();
  await auth?.close();
});

/** An Echo instance connected to node `i`, authorizing as `user`. */
async function echo(i, user) {
  const node = hub.nodes[i % hub.nodes.length];
  const e = new Echo({
    broadcaster: 'pusher', Pusher: PusherClient, key: APP.key, cluster: 'hubbub',
    wsHost: node.host, wsPort: node.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: `${auth.url}/auth?user=${user}`, transport: 'ajax' },
  });
  echos.push(e);
  await eventually(`Echo (${user}) connects`, () => e.connector.pusher.connection.state === 'connected');
  return e;
}

/** Triggers `event` on `channel` until `seen()` holds (room interest crosses nodes async). */
async function triggerUntil(channel, event, data, seen) {
  const sdk = server(hub.nodes[hub.nodes.length - 1]);
  await eventually(`${event} on ${channel} is heard`, async () => {
    await sdk.trigger(channel, event, data);
    await sleep(150);
    return seen();
  }, WAIT);
}

test('Echo.channel().listen() hears SDK events', async () => {
  const e = await echo(0, 'x');
  const heard = [];
  e.channel('orders').listen('.OrderShipped', (d) => heard.push(d));
  await triggerUntil('orders', 'OrderShipped', { id: 7 }, () => heard.length > 0);
  assert.deepEqual(heard[0], { id: 7 });
  // Laravel's namespaced event names work as well.
  const namespaced = [];
  e.channel('orders').listen('OrderPaid', (d) => namespaced.push(d));
  await triggerUntil('orders', 'App\\Events\\OrderPaid', { id: 8 }, () => namespaced.length > 0);
  assert.deepEqual(namespaced[0], { id: 8 });
});

test('Echo.private() subscribes through the auth endpoint', async () => {
  const e = await echo(1, 'y');
  const heard = [];
  e.private('account.1').listen('.Updated', (d) => heard.push(d));
  await triggerUntil('private-account.1', 'Updated', { balance: 5 }, () => heard.length > 0);
  assert.deepEqual(heard[0], { balance: 5 });
  assert.ok(auth.requests.some((r) => r.channel === 'private-account.1'));
});

test('Echo.join(): here(), joining() and leaving() across nodes', async () => {
  const first = await echo(0, 'u1');
  const here = [];
  const joining = [];
  const leaving = [];
  first.join('chat.1')
    .here((users) => here.push(users))
    .joining((u) => joining.push(u))
    .leaving((u) => leaving.push(u));
  await eventually('here() is called', () => here.length > 0);
  assert.deepEqual(here[0].map((u) => u), [{ name: 'name of u1' }]);
  const second = await echo(1, 'u2');
  const hereSecond = [];
  second.join('chat.1').here((users) => hereSecond.push(users));
  await eventually('joining() is called', () => joining.length > 0);
  assert.deepEqual(joining[0], { name: 'name of u2' });
  await eventually('the second member sees both', () => hereSecond.length > 0);
  assert.equal(hereSecond[0].length, 2);
  second.leave('chat.1');
  await eventually('leaving() is called', () => leaving.length > 0);
  assert.deepEqual(leaving[0], { name: 'name of u2' });
});
