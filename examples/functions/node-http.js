// SPDX-License-Identifier: Apache-2.0
// An http function in Node.js: a server on $PORT that answers JSON.
//   husk pack -f erofs -o node.erofs /usr/bin/node $PWD/node-http.js
//   husk fn deploy web --image $PWD/node.erofs --contract http -- /usr/bin/node $PWD/node-http.js
'use strict';
const http = require('http');
const crypto = require('crypto');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ hello: 'node', path: req.url, id: crypto.randomUUID() }) + '\n');
});
server.listen(Number(process.env.PORT || 8080), '127.0.0.1');
