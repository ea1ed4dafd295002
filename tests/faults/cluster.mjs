// The processes of a fault scenario: Redis and Hubbub nodes on free loopback ports (and,
// from ../net-util.mjs, the TCP proxy put in front of one node's gRPC address); every wait
// bounded.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Proxy, freePort, sleep, waitPort } from '../net-util.mjs';
import os from 'node:os';
import path from 'node:path';

export { Proxy, freePort, sleep, waitPort };

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
