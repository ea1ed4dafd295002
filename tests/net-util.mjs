// Loopback helpers shared by the Node-based tests (tests/jsclient, tests/browser,
// tests/faults): a free port, a sleep, and a wait for a port to accept connections.

import net from 'node:net';

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A loopback port nothing listens on right now. */
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

/** Waits until `port` accepts a TCP connection; throws after `ms`, naming `what`. */
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

/** A TCP proxy on a free loopback port in front of `target` (a port): `drop()` ends every
 * connection through it; while `refusing`, new connections are ended as soon as they are
 * accepted; `cut()` ends every connection and stops listening (connections are refused)
 * until `restore()` listens again on the same port. */
export class Proxy {
  constructor(target) {
    this.target = target;
    this.port = 0;
    this.refusing = false;
    this.sockets = new Set();
    this.server = null;
  }

  /** Starts listening (on a free port the first time, then on the same one). */
  async start() {
    this.server = net.createServer((down) => {
      if (this.refusing) return down.destroy();
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
      return undefined;
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
  }

  /** Ends every connection through the proxy. */
  drop() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Ends every connection and stops listening until `restore()`. */
  cut() {
    this.server?.close();
    this.server = null;
    this.drop();
  }

  /** Listens again on the same port after `cut()`. */
  restore() {
    return this.start();
  }

  /** Stops the proxy. */
  close() {
    this.cut();
  }
}
