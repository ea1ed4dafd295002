// POST /apps/{id}/batch_events from the `pusher` SDK's triggerBatch: each event reaches its
// channel's subscribers on every node, in order, with its own socket_id exclusion and info.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, server, client, subscribe, nextEvent, record, warmUp, answer } from './harness.mjs';

let hub;
const clients = [];
before(async () => { hub = await startHub(); });
after(async () => {
  for (const c of clients) c.disconnect();
  await hub?.stop();
});

async function on(i) {
  const c = await client(hub.nodes[i % hub.nodes.length]);
  clients.push(c);
  return c;
}

test('a batch reaches each channel in order, with per-event exclusion and info', async () => {
  const a = await on(0);
  const b = await on(1);
  const aOne = record(await subscribe(a, 'batch-one'));
  const bOne = record(await subscribe(b, 'batch-one'));
  const bTwo = record(await subscribe(b, 'batch-two'));
  const sdk = server(hub.nodes[hub.nodes.length - 1]);
  await warmUp(sdk, 'batch-one', [aOne, bOne]);
  await warmUp(sdk, 'batch-two', [bTwo]);
  const res = await answer(sdk.triggerBatch([
    { channel: 'batch-one', name: 'first', data: { n: 1 } },
    { channel: 'batch-two', name: 'second', data: 'two', info: 'subscription_count' },
    { channel: 'batch-one', name: 'third', data: { n: 3 }, socket_id: a.connection.socket_id },
  ]));
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.deepEqual(res.body, { batch: [{}, { subscription_count: 1 }, {}] });
  const ends = [nextEvent(aOne, 'end'), nextEvent(bOne, 'end'), nextEvent(bTwo, 'end')];
  await sdk.trigger(['batch-one', 'batch-two'], 'end', {});
  await Promise.all(ends);
  assert.deepEqual(bOne.log, [['first', { n: 1 }], ['third', { n: 3 }], ['end', {}]]);
  assert.deepEqual(aOne.log, [['first', { n: 1 }], ['end', {}]], 'the excluded socket got "third"');
  assert.deepEqual(bTwo.log, [['second', 'two'], ['end', {}]]);
});

test('a batch without info answers {}; a bad entry refuses the whole batch with 400', async () => {
  const c = await on(2);
  const ch = record(await subscribe(c, 'batch-bad'));
  const sdk = server(hub.nodes[0]);
  await warmUp(sdk, 'batch-bad', [ch]);
  const ok = await answer(sdk.triggerBatch([{ channel: 'batch-bad', name: 'fine', data: {} }]));
  assert.deepEqual(ok, { status: 200, body: {} });
  const bad = await answer(sdk.post({
    path: '/batch_events',
    body: { batch: [{ channel: 'batch-bad', name: 'never', data: '{}' }, { channel: 'batch-bad', data: '{}' }] },
  }));
  assert.equal(bad.status, 400, JSON.stringify(bad));
  const end = nextEvent(ch, 'end');
  await sdk.trigger('batch-bad', 'end', {});
  await end;
  assert.deepEqual(ch.log.map(([e]) => e), ['fine', 'end'], 'part of a refused batch was delivered');
});
