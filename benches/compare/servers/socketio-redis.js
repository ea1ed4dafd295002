// One socket.io node with the Redis adapter, for benches/compare/run.sh (cross-node case:
// run two of them on one Redis; hubbub-load --protocol socketio, subscribers on one node,
// the publisher on the other).
//
// Events (socket.io 4, namespace "/", WebSocket transport only):
//   "join" ROOM          the socket joins ROOM and is answered "joined" ROOM
//   "publish" ROOM DATA  io.to(ROOM).emit("message", DATA): through the Redis adapter,
//                        every member of ROOM on every node gets ["message", DATA]
//
//   node socketio-redis.js PORT REDIS_URL      (listens on 127.0.0.1:PORT)
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const port = Number(process.argv[2]);
const redisUrl = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !redisUrl) {
  console.error('usage: node socketio-redis.js PORT REDIS_URL');
  process.exit(2);
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (e) => console.error(`socketio-redis: redis: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);

  const server = http.createServer();
  const io = new Server(server, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    adapter: createAdapter(pub, sub),
  });
  io.on('connection', (socket) => {
    socket.on('join', (room) => {
      if (typeof room !== 'string') return;
      socket.join(room);
      socket.emit('joined', room);
    });
    socket.on('publish', (room, data) => {
      if (typeof room !== 'string') return;
      io.to(room).emit('message', data);
    });
  });
  server.on('error', (e) => {
    console.error(`socketio-redis: ${e.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () =>
    console.log(`socketio-redis listening on 127.0.0.1:${port}, adapter ${redisUrl}`)
  );
}

main().catch((e) => {
  console.error(`socketio-redis: ${e.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
