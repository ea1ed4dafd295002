// Node `ws` broadcast server for benches/compare/run.sh (hubbub-load --protocol broadcast).
//
// The plain broadcast loop of the ws README: every text message a client sends is sent
// on to every open client (the sender included). No rooms, no framing of our own.
//
//   node ws-broadcast.js PORT            (listens on 127.0.0.1:PORT, path any)
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node ws-broadcast.js PORT');
  process.exit(2);
}

// perMessageDeflate is off by default in ws 8; say so anyway, every server here runs without it.
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

wss.on('connection', (socket) => {
  socket.on('error', () => {});
  socket.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});

wss.on('listening', () => console.log(`ws-broadcast listening on 127.0.0.1:${port}`));
wss.on('error', (e) => {
  console.error(`ws-broadcast: ${e.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
