// The processes of a fault scenario: Redis, Hubbub nodes, a TCP proxy in front of one node's
// gRPC address; started on free loopback ports, every wait bounded.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until `port` accepts a TCP connection (or throws after `ms`). */
export async function waitPort(port, ms = 15_000, what = `port ${port}`) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not open within ${ms} ms`);
}

/** A child process that keeps its output and its exit. */
function child(cmd, args, env = {}) {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const p = { child: c, log: '', exited: null };
  c.on('exit', (code, signal) => { p.exited = { code, signal }; });
  c.on('error', (e) => { p.exited = { error: e.message }; });
  c.stdout.on('data', (d) => { p.log = (p.log + d).slice(-20_000); });
  c.stderr.on('data', (d) => { p.log = (p.log + d).slice(-20_000); });
  return p;
}

/** Sends `signal` and waits for the exit (SIGKILL after `ms`). */
export function stop(p, signal = 'SIGKILL', ms = 10_000) {
  return new Promise((resolve) => {
    if (!p || p.exited) return resolve();
    const t = setTimeout(() => { try { p.child.kill('SIGKILL'); } catch {} }, ms);
    p.child.once('exit', () => { clearTimeout(t); resolve(); });
    try { p.child.kill(signal); } catch { resolve(); }
  });
}

/** Redis on a free port, with its dump file in `dir` (saved only when asked). */
export class Redis {
  constructor(dir) {
    this.dir = dir;
    this.port = 0;
    this.proc = null;
  }

  async start() {
    this.port ||= await freePort();
    const bin = process.env.REDIS_SERVER || 'redis-server';
    this.proc = child(bin, ['--bind', '127.0.0.1', '--port', String(this.port), '--save', '',
      '--appendonly', 'no', '--protected-mode', 'no', '--dir', this.dir, '--dbfilename', 'dump.rdb']);
    await waitPort(this.port, 15_000, `redis-server (${bin})`);
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  /** SAVE: the dump a restart from snapshot comes back to. */
  save() {
    execFileSync(process.env.REDIS_CLI || 'redis-cli', ['-p', String(this.port), 'SAVE'], { stdio: 'ignore' });
  }

  kill(signal = 'SIGKILL') { return stop(this.proc, signal); }
}

/** A TCP proxy: listens on `port`, forwards to `target`; `cut()` drops every connection
 * and refuses new ones until `restore()`. */
export class Proxy {
  constructor(target) {
    this.target = target;
    this.port = 0;
    this.sockets = new Set();
    this.server = null;
  }

  async start() {
    this.port ||= await freePort();
    await this.listen();
  }

  listen() {
    this.server = net.createServer((down) => {
      const up = net.connect(this.target, '127.0.0.1');
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      down.pipe(up);
      up.pipe(down);
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
  }

  cut() {
    this.server?.close();
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore() { return this.listen(); }
}

/** One `hubbub serve` of the cluster. */
export class HubNode {
  constructor(bin, index, options) {
    this.bin = bin;
    this.index = index;
    this.id = `n${index}`;
    this.options = options; // {registry, bus, history, leaseTtl, advertise}
    this.port = 0;
    this.grpc = 0;
    this.proc = null;
  }

  async start() {
    this.port ||= await freePort();
    this.grpc ||= await freePort();
    const o = this.options;
    const args = ['serve', '--node-id', this.id, '--listen', `127.0.0.1:${this.port}`,
      '--grpc-listen', `127.0.0.1:${this.grpc}`, '--registry', o.registry, '--lease-ttl', o.leaseTtl];
    if (o.bus) args.push('--bus', o.bus);
    if (o.history) args.push('--history', o.history);
    if (o.advertise) args.push('--advertise', o.advertise);
    this.proc = child(this.bin, args, { HUBBUB_LOG: process.env.HUBBUB_LOG || 'warn' });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !this.proc.exited) {
      try {
        const res = await fetch(`${this.http}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {}
      await sleep(50);
    }
    throw new Error(`node ${this.id} did not start (${JSON.stringify(this.proc.exited)}):\n${this.proc.log}`);
  }

  get http() { return `http://127.0.0.1:${this.port}`; }
  get ws() { return `ws://127.0.0.1:${this.port}/ws`; }
  get alive() { return this.proc && !this.proc.exited; }

  kill(signal = 'SIGKILL') { return stop(this.proc, signal, 15_000); }
  pause() { this.proc.child.kill('SIGSTOP'); }
  resume() { this.proc.child.kill('SIGCONT'); }
}

/** A scratch directory removed at exit. */
export function scratch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hubbub-faults-'));
  process.on('exit', () => { try { fs.rmSync(dir, { recursive: true, force: true }); } catch {} });
  return dir;
}
