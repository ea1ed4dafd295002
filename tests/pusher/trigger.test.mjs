// POST /apps/{id}/events from the `pusher` SDK: an event reaches pusher-js subscribers on
// every node, to one channel or several, the sender's socket_id is left out, `info` answers
// counts, and data over the node's limit gets 413.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, server, client, subscribe, nextEvent, record, warmUp, answer,
} from './harness.mjs';

let hub;
const clients = [];
before(async () => { hub = await startHub({ flags: ['--max-message-size', '64KiB'] }); });
after(async () => {
  for (const c of clients) c.disconnect();
  await hub?.stop();
});

/** A pusher-js client on node `i` (modulo the nodes there are). */
async function on(i, options) {
  const c = await client(hub.nodes[i % hub.nodes.length], options);
  clients.push(c);
  return c;
}

test('an event triggered on one node reaches subscribers on every node, data as sent', async () => {
  const subs = [await on(0), await on(1), await on(2)];
  const chans = await Promise.all(subs.map((c) => subscribe(c, 'news')));
  const sdk = server(hub.nodes[hub.nodes.length - 1]);
  await warmUp(sdk, 'news', chans);
  const got = chans.map((ch) => nextEvent(ch, 'headline'));
  const res = await answer(sdk.trigger('news', 'headline', { title: 'Hello', n: 1 }));
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.deepEqual(res.body, {});
  for (const data of await Promise.all(got)) assert.deepEqual(data, { title: 'Hello', n: 1 });
  // A string that is not JSON arrives as that string.
  const plain = chans.map((ch) => nextEvent(ch, 'plain'));
  await sdk.trigger('news', 'plain', 'just text');
  for (const data of await Promise.all(plain)) assert.equal(data, 'just text');
});

test('one event to several channels reaches each channel once', async () => {
  const c = await on(1);
  const a = record(await subscribe(c, 'multi-a'));
  const b = record(await subscribe(c, 'multi-b'));
  const sdk = server(hub.nodes[0]);
  await warmUp(sdk, 'multi-a', [a]);
  await warmUp(sdk, 'multi-b', [b]);
  const gotA = nextEvent(a, 'both');
  const gotB = nextEvent(b, 'both');
  const res = await answer(sdk.trigger(['multi-a', 'multi-b'], 'both', { x: 1 }));
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.deepEqual(await gotA, { x: 1 });
  assert.deepEqual(await gotB, { x: 1 });
  // An event after it on each channel: had `both` come twice, it would be in the log first.
  const endA = nextEvent(a, 'end');
  const endB = nextEvent(b, 'end');
  await sdk.trigger(['multi-a', 'multi-b'], 'end', {});
  await endA;
  await endB;
  assert.deepEqual(a.log.map(([e]) => e), ['both', 'end']);
  assert.deepEqual(b.log.map(([e]) => e), ['both', 'end']);
});

test('the socket_id given is left out, on its node and across nodes', async () => {
  const sender = await on(0);
  const other = await on(1);
  const chSender = record(await subscribe(sender, 'excl'));
  const chOther = record(await subscribe(other, 'excl'));
  const sdk = server(hub.nodes[hub.nodes.length > 1 ? 2 : 0]);
  await warmUp(sdk, 'excl', [chSender, chOther]);
  const socketId = sender.connection.socket_id;
  assert.match(socketId, /^\d+\.\d+$/);
  const otherGot = nextEvent(chOther, 'said');
  const res = await answer(sdk.trigger('excl', 'said', { by: 'sender' }, { socket_id: socketId }));
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.deepEqual(await otherGot, { by: 'sender' });
  // The next event without exclusion reaches the sender, and nothing came before it.
  const senderEnd = nextEvent(chSender, 'end');
  await sdk.trigger('excl', 'end', {});
  await senderEnd;
  assert.deepEqual(chSender.log.map(([e]) => e), ['end'], 'the excluded socket got the event');
  // A socket_id of no connection excludes nobody.
  const both = [nextEvent(chSender, 'all'), nextEvent(chOther, 'all')];
  await sdk.trigger('excl', 'all', {}, { socket_id: '999999.999999' });
  await Promise.all(both);
});

test('info=subscription_count answers the count of each channel', async () => {
  const c1 = await on(0);
  const c2 = await on(1);
  const chans = [await subscribe(c1, 'counted'), await subscribe(c2, 'counted')];
  const sdk = server(hub.nodes[0]);
  await warmUp(sdk, 'counted', chans);
  const res = await answer(sdk.trigger('counted', 'ev', {}, { info: 'subscription_count' }));
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.deepEqual(res.body, { channels: { counted: { subscription_count: 2 } } });
});

test('data over --max-message-size gets 413; bad calls get 400', async () => {
  const sdk = server(hub.nodes[0]);
  const big = await answer(sdk.trigger('news', 'big', 'x'.repeat(65 * 1024)));
  assert.equal(big.status, 413, JSON.stringify(big).slice(0, 300));
  assert.match(big.body, /max-message-size/);
  // Data up to the limit is accepted (Pusher's own limit is 10 KiB).
  const ok = await answer(sdk.trigger('news', 'big', 'x'.repeat(60 * 1024)));
  assert.equal(ok.status, 200, JSON.stringify(ok).slice(0, 300));
  const noName = await answer(sdk.post({ path: '/events', body: { data: '{}', channels: ['news'] } }));
  assert.equal(noName.status, 400, JSON.stringify(noName));
  const reserved = await answer(sdk.post({ path: '/events', body: { name: 'pusher:x', data: '{}', channel: 'news' } }));
  assert.equal(reserved.status, 400, JSON.stringify(reserved));
  const badSocket = await answer(sdk.post({ path: '/events', body: { name: 'e', data: '{}', channel: 'news', socket_id: 'x' } }));
  assert.equal(badSocket.status, 400, JSON.stringify(badSocket));
  const badChannel = await answer(sdk.post({ path: '/events', body: { name: 'e', data: '{}', channel: 'bad channel!' } }));
  assert.equal(badChannel.status, 400, JSON.stringify(badChannel));
  const wrongMethod = await answer(sdk.get({ path: '/events' }));
  assert.equal(wrongMethod.status, 405, JSON.stringify(wrongMethod));
  const unknown = await answer(sdk.get({ path: '/nothing-here' }));
  assert.equal(unknown.status, 404, JSON.stringify(unknown));
});
