// SPDX-License-Identifier: Apache-2.0
// The engine of a WebAssembly function: one per instance, started by /husk/wasm-run on the
// first call, inside the function's sandbox. It compiles the module once and runs each call
// on a fresh instance of it (fresh linear memory, fresh WASI state) through Node's node:wasi,
// one call at a time. What the module may reach is only what WASI gives it: the call's
// stdin/stdout/stderr, its arguments and environment, and the directories the deploy granted.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const { WASI } = require('node:wasi');

const SOCKET = '/tmp/.husk-wasm.sock';
const cfg = JSON.parse(process.env.HUSK_WASM_CONFIG || '{}');
const READY = 3; // the starting call waits on this pipe: "ready", or why not

function tell(text) {
    try {
        fs.writeSync(READY, text);
        fs.closeSync(READY);
    } catch (e) {
        // the starting call is gone: nothing to tell
    }
}

let mod;
try {
    mod = new WebAssembly.Module(fs.readFileSync(cfg.module));
} catch (e) {
    tell(`the module does not compile: ${e.message}`);
    process.exit(1);
}

// WAGI: argv[0] is the path below the function, then the query's '&'-separated parts,
// percent-decoded ('+' is a space); the stdio contract passes no arguments.
function wagiArgs(env) {
    const args = [env.PATH_INFO || '/'];
    for (const part of (env.QUERY_STRING || '').split('&')) {
        if (part === '') continue;
        try {
            args.push(decodeURIComponent(part.replace(/\+/g, ' ')));
        } catch (e) {
            args.push(part);
        }
    }
    return args;
}

// One call: "PID IN OUT ERR\0K=V\0K=V\0...": the caller's pipes for the module's stdio, opened
// through /proc (then "opened\n"), and the call's environment. The answer: "STATUS\n", or
// "70\n" and why the engine could not run it.
function run(conn, request) {
    const fields = request.toString('utf8').split('\0');
    const [pid, ...ends] = fields[0].split(' ').map((v) => Number.parseInt(v, 10));
    const env = {};
    for (const kv of fields.slice(1)) {
        const eq = kv.indexOf('=');
        if (eq > 0 && !kv.startsWith('HUSK_WASM_')) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const fds = [];
    try {
        const modes = [fs.constants.O_RDONLY, fs.constants.O_WRONLY, fs.constants.O_WRONLY];
        modes.forEach((m, i) => fds.push(fs.openSync(`/proc/${pid}/fd/${ends[i]}`, m)));
    } catch (e) {
        fds.forEach((fd) => fs.closeSync(fd));
        return `70\nopen the call's stdio: ${e.message}`;
    }
    conn.write('opened\n');
    let status;
    try {
        const wasi = new WASI({
            version: 'preview1',
            args: cfg.wagi ? wagiArgs(env) : [cfg.name],
            env,
            preopens: cfg.dirs || {},
            stdin: fds[0],
            stdout: fds[1],
            stderr: fds[2],
            returnOnExit: true,
        });
        const instance = new WebAssembly.Instance(mod, wasi.getImportObject());
        status = wasi.start(instance);
    } catch (e) {
        // a trap (unreachable, out of bounds, stack exhausted), or an instantiation failure
        try {
            fs.writeSync(fds[2], `husk-wasm: ${e.name}: ${e.message}\n`);
        } catch (e2) {
            // stderr is gone: the status says it
        }
        status = 134;
    }
    fds.forEach((fd) => fs.closeSync(fd));
    return `${status & 0xff}\n`;
}

try {
    fs.unlinkSync(SOCKET); // an engine that died leaves its socket
} catch (e) {
    // none
}
const server = net.createServer((conn) => {
    const parts = [];
    conn.on('data', (d) => parts.push(d));
    conn.on('end', () => conn.end(run(conn, Buffer.concat(parts))));
    conn.on('error', () => conn.destroy());
});
server.on('error', (e) => {
    tell(`listen on ${SOCKET}: ${e.message}`);
    process.exit(1);
});
server.listen(SOCKET, () => tell('ready'));
