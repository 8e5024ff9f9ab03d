// SPDX-License-Identifier: Apache-2.0
// A stdio function in Node.js: a JSON request on stdin, a JSON answer on stdout.
//   husk pack -f erofs -o node-json.erofs /usr/bin/node $PWD/node-json.js
//   husk fn deploy greet --image $PWD/node-json.erofs --zygote -- /usr/bin/node $PWD/node-json.js
'use strict';
const crypto = require('crypto');

let body = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => (body += chunk));
process.stdin.on('end', () => {
  const req = JSON.parse(body || '{}');
  const answer = { hello: req.name || 'world', method: process.env.Http_Method, id: crypto.randomUUID() };
  process.stdout.write(JSON.stringify(answer) + '\n');
});
