// SPDX-License-Identifier: Apache-2.0
// The zygote of a Node.js function (`husk fn deploy --zygote`): run by the instance's agent as
//   node --single-threaded [OPTIONS] -e THIS SCRIPT [ARG...]
// with husk's preload library (zygote-preload.c) loaded and the agent's socket on fd 3. It
// loads the built-in modules SCRIPT requires, then reads fd 3: the library serves the agent's
// runs there and returns only in the processes it forks. A spare (header kind 0: forked while
// the zygote was idle, for the next run) touches ahead what a run's setup writes and reads
// again, for its run. A run's process has its header (its pid) and environment, fds 0-2
// already the run's: it takes them, draws a new Math.random state, and runs SCRIPT as
// `node SCRIPT` would. Only built-in modules are used: a
// packed root holds node and what the function requires, nothing more.
'use strict';
const fs = require('fs');
const Module = require('module');
const path = require('path');

const HDR = 16; // struct agent_msg
const MAX = 256 * 1024; // AGENT_MSG_MAX
const PRELOAD = 'HUSK_ZYGOTE_PRELOAD'; // AGENT_PRELOAD_ENV

function fail(why) {
  fs.writeSync(2, `husk zygote: ${why}\n`);
  process.exit(70);
}

// The built-in modules the script names in require() or import: loaded once, here. The
// function's own modules (and node_modules) still run their top level in each call.
function builtins(script) {
  let src;
  try {
    src = fs.readFileSync(script, 'utf8');
  } catch {
    return []; // the call meets the same error, as `node SCRIPT` would
  }
  const names = new Set();
  const re = /\brequire\s*\(\s*(['"])([^'"\n]+)\1\s*\)|\bfrom\s*(['"])([^'"\n]+)\3/g;
  for (const m of src.matchAll(re)) {
    const name = m[2] || m[4];
    if (Module.isBuiltin(name)) names.add(name);
  }
  return [...names];
}

function environment(block) {
  const env = {};
  for (const kv of block.split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

// Math.random's state was the zygote's, the same in every call: a new one, from the kernel's
// randomness (OpenSSL reseeds after a fork). xoshiro128**, 53 bits per number as V8 gives.
function reseed() {
  const s = new Uint32Array(4);
  require('crypto').randomFillSync(s);
  if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1;
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  const next = () => {
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  };
  Math.random = function random() {
    return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  };
}

// The options the function was deployed with: what child_process.fork passes on.
function userOptions() {
  const opts = process.execArgv.slice();
  const e = opts.indexOf('-e');
  if (e >= 0) opts.splice(e, 2);
  const st = opts.indexOf('--single-threaded');
  if (st >= 0) opts.splice(st, 1);
  return opts;
}

// A run ends as `node SCRIPT` would, its 'exit' listeners run and its exit code kept, but
// without Node's teardown: freeing the heap writes to the pages the run shares with the zygote,
// copying each. The first listener runs the others, then exits at once. process.exit() and an
// uncaught exception (reported after the 'exit' listeners) end in exit(3), which the preload
// library makes immediate.
let fatal = false;
function exitAtOnce(code) {
  if (fatal) return;
  for (const listener of process.listeners('exit'))
    if (listener !== exitAtOnce) listener.call(process, code);
  process.reallyExit(process.exitCode ?? code);
}

// A spare touches ahead what a run's setup writes (each page written is a page copied from
// the zygote), so that the run does not wait for those copies.
function warm() {
  const env = environment(Object.entries(process.env).map(([k, v]) => `${k}=${v}`).join('\0'));
  for (const k of Object.keys(env)) process.env[k] = env[k];
  require('crypto').randomFillSync(new Uint32Array(4));
  try {
    Module._resolveFilename(process.argv[1], null, true);
  } catch {
    // the run meets it
  }
}

function become(buf, n) {
  const pid = buf.readInt32LE(8);
  const env = environment(buf.toString('utf8', HDR, n));
  for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
  Object.assign(process.env, env);
  Object.defineProperty(process, 'pid', { value: pid, enumerable: true, configurable: true });
  process.execArgv = userOptions();
  process.on('exit', exitAtOnce);
  process.on('uncaughtExceptionMonitor', () => {
    fatal = process.listenerCount('uncaughtException') === 0;
  });
  reseed();
}

const script = process.argv[1];
if (!script) fail('no script');
if (process.env[PRELOAD] !== 'loaded')
  fail("husk's preload library was not loaded (does the root have glibc's dynamic loader?)");
// crypto draws each run's Math.random state; net, tty, stream and string_decoder make a run's
// process.stdin, stdout and stderr.
for (const name of ['crypto', 'net', 'tty', 'stream', 'string_decoder', ...builtins(script)]) {
  try {
    require(name);
  } catch {
    // the call meets the same error where the script requires it
  }
}
process.argv[1] = path.resolve(script);

// An http server's first request compiles (V8 compiles a function at its first call) what the
// server and its parser run: done once here, on an ephemeral loopback port of the zygote's
// own network, so that each fork starts with it compiled. Only Node's own code runs.
function warmHttp(then) {
  let http;
  try {
    http = require('http');
  } catch {
    return then();
  }
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '2' });
    res.end('{}');
  });
  const done = () => srv.close(() => then());
  srv.on('error', () => then());
  srv.listen(0, '127.0.0.1', () => {
    const req = http.request({ host: '127.0.0.1', port: srv.address().port, path: '/x?y=1',
      method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } },
    (res) => {
      res.resume();
      res.on('end', done);
    });
    req.on('error', done);
    req.end('{"warm":true}');
  });
}

function serve() {
  const buf = Buffer.allocUnsafe(HDR + MAX + 1);
  let n = fs.readSync(3, buf, 0, buf.length, null); // returns in a spare or a run's process
  while (buf.readUInt32LE(0) === 0) {
    warm();
    n = fs.readSync(3, buf, 0, buf.length, null);
  }
  become(buf, n);
  Module.runMain();
}

if (builtins(script).some((name) => name === 'http' || name === 'node:http')) warmHttp(serve);
else serve();
