// The HTTP API's request signatures, as the `pusher` SDK makes them: a signed request is
// served; a wrong secret, a wrong key, an expired or future timestamp, a changed body and an
// unknown app are refused with Pusher's status codes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, server, answer, APP, WAIT } from './harness.mjs';

let hub;
before(async () => { hub = await startHub(); });
after(async () => { await hub?.stop(); });

/** A request signed by the SDK as if at `Date.now() + skewMs`, sent as is. */
async function signedAt(skewMs, {
  method = 'POST', path = `/apps/${APP.id}/events`,
  body = JSON.stringify({ name: 'ev', data: '{}', channel: 'sig-chan' }), params,
} = {}) {
  const sdk = server(hub.nodes[0]);
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs;
  let query;
  try {
    query = sdk.createSignedQueryString({ method, path, body, params });
  } finally {
    Date.now = realNow;
  }
  const res = await fetch(`${hub.nodes[0].url}${path}?${query}`, {
    method, body, headers: body ? { 'content-type': 'application/json' } : {},
    signal: AbortSignal.timeout(WAIT),
  });
  return { status: res.status, text: await res.text() };
}

test('a request signed by the SDK is served', async () => {
  const got = await answer(server(hub.nodes[0]).trigger('sig-chan', 'ev', { a: 1 }));
  assert.equal(got.status, 200, JSON.stringify(got));
  assert.deepEqual(got.body, {});
});

test('a wrong secret gets 401', async () => {
  const sdk = server(hub.nodes[0], { ...APP, secret: 'not-the-secret-0123456789' });
  const got = await answer(sdk.trigger('sig-chan', 'ev', { a: 1 }));
  assert.equal(got.status, 401, JSON.stringify(got));
  assert.match(got.body, /signature/i);
});

test('a wrong key gets 401', async () => {
  const sdk = server(hub.nodes[0], { ...APP, key: 'not-the-key' });
  const got = await answer(sdk.get({ path: '/channels' }));
  assert.equal(got.status, 401, JSON.stringify(got));
  assert.match(got.body, /auth_key/);
});

test('an unknown app gets 404', async () => {
  const sdk = server(hub.nodes[0], { ...APP, id: 'no-such-app' });
  const got = await answer(sdk.trigger('sig-chan', 'ev', { a: 1 }));
  assert.equal(got.status, 404, JSON.stringify(got));
});

test('timestamps more than 600 s away get 401; within the window they are served', async () => {
  for (const skew of [-700_000, 700_000]) {
    const got = await signedAt(skew);
    assert.equal(got.status, 401, `skew ${skew} ms: ${got.text}`);
    assert.match(got.text, /auth_timestamp/);
  }
  for (const skew of [-300_000, 300_000]) {
    const got = await signedAt(skew);
    assert.equal(got.status, 200, `skew ${skew} ms: ${got.text}`);
  }
});

test('a body changed after signing gets 401', async () => {
  const sdk = server(hub.nodes[0]);
  const path = `/apps/${APP.id}/events`;
  const body = JSON.stringify({ name: 'ev', data: '{}', channels: ['sig-chan'] });
  const query = sdk.createSignedQueryString({ method: 'POST', path, body });
  const res = await fetch(`${hub.nodes[0].url}${path}?${query}`, {
    method: 'POST', body: body.replace('sig-chan', 'sig-chaN'),
    headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(WAIT),
  });
  assert.equal(res.status, 401);
  assert.match(await res.text(), /body_md5/);
  // The same request unchanged is served.
  const ok = await fetch(`${hub.nodes[0].url}${path}?${query}`, {
    method: 'POST', body, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(WAIT),
  });
  assert.equal(ok.status, 200, await ok.text());
});

test('an unsigned request gets 401', async () => {
  const res = await fetch(`${hub.nodes[0].url}/apps/${APP.id}/channels`, { signal: AbortSignal.timeout(WAIT) });
  assert.equal(res.status, 401);
  assert.match(await res.text(), /auth_key/);
});
