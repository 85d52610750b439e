#!/usr/bin/env node
/*
 * echo_client.js: Node's `ws` as a client of sockd, run by
 * tests/integration/test_clients.py.
 *
 *   node echo_client.js ws://127.0.0.1:PORT
 *
 * On /echo: text and binary messages of 0 B .. 1 MiB come back equal.
 * On /probe: the subprotocol probe.v1 is chosen, a ping reaches the app's
 * handle_control ("ping-seen"), `stop` closes with 1000 and
 * `close 4000 bye` with 4000 "bye". Exits 0 when all of it held, 1 (with a
 * message on stderr) on the first difference or after 60 s.
 */
'use strict';

const WebSocket = require('ws');
const { opened, next: nextMessage } = require('./common');

const base = process.argv[2];
if (!base) {
    console.error('usage: node echo_client.js ws://127.0.0.1:PORT');
    process.exit(2);
}

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

setTimeout(() => fail('timed out after 60 s'), 60000).unref();

function fail(msg) {
    console.error('echo_client: FAIL: ' + msg);
    process.exit(1);
}

function textOf(n) {
    return 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(n / 36 + 1)
        .slice(0, n);
}

function binaryOf(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++)
        b[i] = (i * 31 + 7) & 0xff;
    return b;
}

function open(path, protocols) {
    return opened(new WebSocket(base + path, protocols, {
        perMessageDeflate: false,
        handshakeTimeout: 5000,
    }));
}

function next(ws, what) {
    return nextMessage(ws, what, 10000);
}

async function echoes() {
    const ws = await open('/echo');
    for (const n of SIZES) {
        const text = textOf(n);
        ws.send(text);
        let m = await next(ws, 'text ' + n);
        if (m.isBinary || m.data.toString('utf8') !== text)
            fail(`text of ${n} bytes came back as ${m.isBinary ? 'binary' :
                'text'} of ${m.data.length}`);
        const bin = binaryOf(n);
        ws.send(bin);
        m = await next(ws, 'binary ' + n);
        if (!m.isBinary || !m.data.equals(bin))
            fail(`binary of ${n} bytes came back different ` +
                `(${m.data.length} bytes)`);
    }
    const uni = 'h\u00e9llo \u20ac \ud834\udd1e';
    ws.send(uni);
    const m = await next(ws, 'unicode');
    if (m.data.toString('utf8') !== uni)
        fail('unicode text changed');
    ws.close(1000, 'done');
    const c = await ws.closed;
    if (c.code !== 1000)
        fail(`echo close: expected 1000, got ${c.code}`);
}

async function probeStop() {
    const ws = await open('/probe', ['probe.v1']);
    if (ws.protocol !== 'probe.v1')
        fail(`subprotocol: expected probe.v1, got "${ws.protocol}"`);
    ws.send('echo hi');
    let m = await next(ws, 'echo hi');
    if (m.data.toString() !== 'hi')
        fail(`echo hi: got ${m.data.toString()}`);
    const pong = new Promise((res) => ws.once('pong', (d) => res(d)));
    ws.ping('count');
    const p = await pong;
    if (p.toString() !== 'count')
        fail(`pong payload: ${p.toString()}`);
    m = await next(ws, 'ping-seen');
    if (m.data.toString() !== 'ping-seen')
        fail(`after ping: got ${m.data.toString()}`);
    ws.send('stop');
    const c = await ws.closed;
    if (c.code !== 1000)
        fail(`stop: expected close 1000, got ${c.code}`);
}

async function probeCloseCode() {
    const ws = await open('/probe');
    if (ws.protocol !== '')
        fail(`no subprotocol offered but got "${ws.protocol}"`);
    ws.send('close 4000 bye');
    const c = await ws.closed;
    if (c.code !== 4000 || c.reason !== 'bye')
        fail(`close 4000 bye: got ${c.code} "${c.reason}"`);
}

(async () => {
    await echoes();
    await probeStop();
    await probeCloseCode();
    console.log('echo_client: ok');
    process.exit(0);
})().catch((e) => fail(e && e.stack ? e.stack : String(e)));
