// The short form of the fault suite (tests/faults/faults.mjs) with assertions: a node
// killed with SIGKILL, and a rolling restart, in a real three-node cluster with a Redis
// registry. History off: survivors lose nothing; nothing is duplicated; every subscriber
// that missed messages saw its connection close (the loss is not silent); the killed
// node's client reads offline on the other nodes. History on (in Redis): the killed node's
// subscribers rejoin elsewhere with `since` and miss nothing, duplicate nothing.
//
//   HUBBUB_BIN=target/debug/hubbub node --test tests/faults/short.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario } from './faults.mjs';

const SMALL = { messages: 900, rate: 150, subscribers: 6 };

test('kill -9 of a node: survivors lose nothing, the moved subscribers know what they lost', async () => {
  const r = await runScenario({ scenario: 'kill', ...SMALL });
  assert.equal(r.acknowledged, r.messages, JSON.stringify(r));
  assert.equal(r.duplicated_total, 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.silent_loss_subscribers, 0, JSON.stringify(r.per_subscriber));
  for (const p of r.per_subscriber) {
    if (p.node !== 2) assert.equal(p.missing, 0, `survivor ${p.id} lost messages: ${JSON.stringify(p)}`);
    else assert.ok(p.reconnects > 0, `${p.id} of the killed node did not reconnect: ${JSON.stringify(p)}`);
  }
  assert.ok(r.offline_ms != null, 'the killed node\'s client never read offline');
});

test('rolling restart: every subscriber comes back, nothing is duplicated, no loss is silent', async () => {
  const r = await runScenario({ scenario: 'rolling', ...SMALL });
  assert.equal(r.duplicated_total, 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.silent_loss_subscribers, 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.reconnected, r.subscribers, JSON.stringify(r.per_subscriber));
});

test('kill -9 with history: the moved subscribers recover everything, exactly once', async () => {
  const r = await runScenario({ scenario: 'kill', history: true, ...SMALL });
  assert.equal(r.acknowledged, r.messages, JSON.stringify(r));
  assert.ok(r.reconnected > 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.missing_total, 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.duplicated_total, 0, JSON.stringify(r.per_subscriber));
  assert.equal(r.recovered, r.reconnected, JSON.stringify(r.per_subscriber));
});
