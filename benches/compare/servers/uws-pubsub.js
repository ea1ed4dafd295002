// uWebSockets.js topic pub/sub server for benches/compare/run.sh (hubbub-load --protocol uws).
//
// A client sends {"type":"join","room":R}: it is subscribed to topic R and answered
// {"type":"joined","room":R}. A client sends {"type":"publish","room":R,"data":D}: D is
// published to topic R as a text frame (uWS pub/sub: one publish, the library fans out).
// Anything else is ignored. Default uWS settings otherwise (no compression).
//
//   node uws-pubsub.js PORT              (listens on 127.0.0.1:PORT, path any)
'use strict';
const path = require('path');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node uws-pubsub.js PORT');
  process.exit(2);
}

// Load the native binary itself: the package would otherwise fall back to a pure-JS
// implementation on an unsupported Node, and we would measure the wrong thing.
const pkg = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const binary = path.join(
  pkg,
  'binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`
);
let uWS;
try {
  uWS = require(binary);
} catch (e) {
  console.error(`uws-pubsub: no native uWebSockets.js for this Node (${binary}): ${e.message}`);
  process.exit(1);
}

const decoder = new TextDecoder();
const app = uWS.App();
app.ws('/*', {
  compression: uWS.DISABLED,
  message: (ws, message, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(decoder.decode(message));
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.room !== 'string') return;
    if (msg.type === 'join') {
      ws.subscribe(msg.room);
      ws.send(JSON.stringify({ type: 'joined', room: msg.room }), false);
    } else if (msg.type === 'publish' && typeof msg.data === 'string') {
      app.publish(msg.room, msg.data, false);
    }
  },
});
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`uws-pubsub: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`uws-pubsub listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
