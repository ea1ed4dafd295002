// The demo page over https:// in a real Chromium: `hubbub serve --tls-cert --tls-key` with a
// certificate of a CA made for this run (openssl), the browser told to ignore that it does
// not know the CA. The page loads, connects over wss:// and a message comes back.
//
//   HUBBUB_BIN=/path/to/hubbub node --test tls.test.mjs
//
// Environment: HUBBUB_BIN, CHROMIUM_PATH as for demo.test.mjs; HUBBUB_* passed to the node.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, sleep } from '../net-util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.HUBBUB_BIN || path.resolve(here, '../../target/debug/hubbub');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = 10_000;

let node = null;
let nodeLog = '';
let context = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hubbub-browser-tls-'));

const watchdog = setTimeout(() => {
  console.error('# watchdog: tls.test.mjs ran longer than 90s, giving up');
  try { node?.kill('SIGKILL'); } catch {}
  process.exit(1);
}, 90_000);
watchdog.unref();
process.on('exit', () => { try { node?.kill('SIGKILL'); } catch {} });



// A CA and a certificate it signs for localhost and 127.0.0.1 (EC P-256), as PEM files.
function makeCertificates() {
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=hubbub browser test CA']);
  run(['req', ...ec, '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=localhost']);
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  run(['x509', '-req', '-in', 'node.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'node.pem', '-days', '2', '-extfile', 'ext']);
  return { cert: path.join(dir, 'node.pem'), key: path.join(dir, 'node.key'), ca: path.join(dir, 'ca.pem') };
}

after(async () => {
  if (context) await context.close().catch(() => {});
  if (node) {
    node.kill('SIGTERM');
    await sleep(200);
    try { node.kill('SIGKILL'); } catch {}
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the demo page loads over https and chats over wss', { timeout: 60_000 }, async () => {
  assert.ok(fs.existsSync(BIN), `no hubbub binary at ${BIN}: cargo build -p hubbub`);
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium`);
  const files = makeCertificates();
  const port = await freePort();
  const base = `https://127.0.0.1:${port}`;
  node = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--tls-cert', files.cert, '--tls-key', files.key], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HUBBUB_LOG: process.env.HUBBUB_LOG || 'info' },
  });
  node.stdout.on('data', (d) => { nodeLog += d; });
  node.stderr.on('data', (d) => { nodeLog += d; });

  // The node answers on TLS only: wait for a TCP connection, the browser does the rest.
  const deadline = Date.now() + WAIT;
  let up = false;
  while (!up && Date.now() < deadline) {
    up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (!up) await sleep(100);
  }
  assert.ok(up, `hubbub did not listen on ${port}\n${nodeLog}`);

  const profile = fs.mkdtempSync(path.join(dir, 'profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    timeout: WAIT * 3,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const res = await page.goto(`${base}/`);
  assert.equal(res.status(), 200, `GET / over https\n${nodeLog}`);
  assert.equal(await page.title(), 'Hubbub demo');
  assert.equal(await page.evaluate(() => location.protocol), 'https:');

  await page.locator('#name').fill('carol');
  await page.locator('#room').fill('secure');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.waitForFunction(
    (want) => document.getElementById('st').textContent === want,
    `online as carol on node-${port}`,
    { timeout: WAIT, polling: 100 },
  );
  assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith(`wss://127.0.0.1:${port}/`)),
    `the page connected over wss: ${sockets.join(', ')}`);

  const text = 'over tls';
  await page.locator('#text').fill(text);
  await page.locator('#text').press('Enter');
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#log li')].some((li) => li.textContent.includes(t)),
    text,
    { timeout: WAIT, polling: 100 },
  );

  // The node's /healthz over https too (Node's fetch, trusting the run's CA).
  const https = await import('node:https');
  const health = await new Promise((resolve, reject) => {
    https.get(`${base}/healthz`, { ca: fs.readFileSync(files.ca), servername: 'localhost' }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => resolve({ status: r.statusCode, body }));
    }).on('error', reject);
  });
  assert.equal(health.status, 200);
  assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
});
