// A WebSocket client of the npm package `ws` (NODE_PATH): sends a text message and a 1 MiB
// binary one to argv[2], closes once both came back, and prints what it got as JSON.
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2]);
const got = [];
ws.on('open', () => {
  ws.send('hello');
  ws.send(Buffer.alloc(1 << 20, 7));
});
ws.on('message', (m, isBinary) => {
  got.push(isBinary ? `binary ${m.length} ${m.every((x) => x === 7)}` : `text ${m}`);
  if (got.length === 2) ws.close(1000, 'done');
});
ws.on('close', (code, reason) => {
  console.log(JSON.stringify({ got, code, reason: reason.toString() }));
});
ws.on('error', (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exitCode = 1;
});
