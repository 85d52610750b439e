#!/usr/bin/env node
/*
 * tls_client.js: Node's `ws` over wss:// as a client of sockd, run by
 * tests/integration/test_tls.py.
 *
 *   node tls_client.js wss://127.0.0.1:PORT CA_PEM
 *
 * 1. Without the test CA (rejectUnauthorized stays true) the connection
 *    must fail certificate verification: proves the checks are real.
 * 2. With ca = CA_PEM and rejectUnauthorized: true, on /echo without
 *    permessage-deflate and on /z with it (threshold 0, so ws compresses
 *    everything it sends): text and binary messages of 0 B .. 4 MiB must
 *    come back equal.
 * Prints one JSON line per connection ({path, protocol, fingerprint256,
 * extensions}) and "tls_client: ok"; exits 0, or 1 with a message on
 * stderr at the first difference or after 60 s.
 *
 *   node tls_client.js bench URL CA_PEM SECONDS SIZE CONNS INFLIGHT
 *
 * A figure, not a test: CONNS connections to URL (ws:// or wss://, /echo)
 * each keep INFLIGHT binary messages of SIZE bytes in flight for SECONDS;
 * every echo is checked for length. Prints one JSON line {url, size,
 * conns, inflight, secs, msgs, msgs_per_sec, mb_per_sec}.
 */
'use strict';

const fs = require('fs');
const WebSocket = require('ws');
const { xorshift32, wordsText, opened, next: nextMessage } =
    require('./common');

const bench = process.argv[2] === 'bench';
const [base, caPath] = process.argv.slice(bench ? 3 : 2);
if (!base || !caPath) {
    console.error('usage: node tls_client.js wss://127.0.0.1:PORT CA_PEM\n' +
                  '       node tls_client.js bench URL CA_PEM SECONDS ' +
                  'SIZE CONNS INFLIGHT');
    process.exit(2);
}
const ca = fs.readFileSync(caPath);
const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20];

setTimeout(() => fail('timed out after 60 s'), 60000).unref();

function fail(msg) {
    console.error('tls_client: FAIL: ' + msg);
    process.exit(1);
}

/* Words in a pseudo-random order: text that compresses a few times, as
   text does (not so much that sockd's max_inflate_ratio refuses it). */
const WORDS = ['sock', 'tls', 'frame', 'window', 'é', 'record', 'ticket',
               'message', 'session', 'cipher', 'server', 'client', 'wss'];
const rnd = xorshift32(11);
function textOf(n) {
    return wordsText(rnd, WORDS, n);
}
function binaryOf(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++)
        b[i] = rnd() & 0xff;
    return b;
}

function open(path, opts) {
    return opened(new WebSocket(base + path, Object.assign({
        handshakeTimeout: 5000,
        maxPayload: 64 << 20,
    }, opts)));
}

function next(ws, what) {
    return nextMessage(ws, what, 15000);
}

async function refusesUnknownCa() {
    try {
        const ws = await open('/echo', { perMessageDeflate: false });
        ws.terminate();
    } catch (e) {
        const code = e && e.code ? e.code : String(e);
        console.log(JSON.stringify({ unverified: code }));
        if (!/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/.test(code))
            fail('without the CA: expected a certificate error, got ' +
                 code);
        return;
    }
    fail('connected without the test CA: verification is not happening');
}

async function echoes(path, deflate) {
    const ws = await open(path, {
        ca,
        rejectUnauthorized: true,
        perMessageDeflate: deflate ? { threshold: 0 } : false,
    });
    const sock = ws._socket;
    const info = {
        path,
        protocol: sock.getProtocol(),
        authorized: sock.authorized,
        fingerprint256: sock.getPeerCertificate().fingerprint256,
        extensions: ws.extensions,
    };
    console.log(JSON.stringify(info));
    if (!sock.authorized)
        fail(`${path}: socket not authorized: ${sock.authorizationError}`);
    if (deflate !== /permessage-deflate/.test(ws.extensions))
        fail(`${path}: extensions "${ws.extensions}" (deflate ${deflate})`);
    for (const n of SIZES) {
        const text = textOf(n);
        ws.send(text);
        let m = await next(ws, `${path} text ${n}`);
        if (m.isBinary || m.data.toString('utf8') !== text)
            fail(`${path}: text of ${n} bytes came back as ` +
                 `${m.isBinary ? 'binary' : 'text'} of ${m.data.length}`);
        const bin = binaryOf(n);
        ws.send(bin);
        m = await next(ws, `${path} binary ${n}`);
        if (!m.isBinary || !m.data.equals(bin))
            fail(`${path}: binary of ${n} bytes came back different ` +
                 `(${m.data.length} bytes)`);
    }
    ws.close(1000, 'done');
    const c = await ws.closed;
    if (c.code !== 1000)
        fail(`${path}: close: expected 1000, got ${c.code}`);
}

async function runBench(secs, size, conns, inflight) {
    const payload = binaryOf(size);
    const socks = [];
    for (let i = 0; i < conns; i++)
        socks.push(await new Promise((resolve, reject) => {
            const ws = new WebSocket(base, {
                ca, rejectUnauthorized: true, perMessageDeflate: false,
                handshakeTimeout: 5000, maxPayload: 64 << 20,
            });
            ws.once('open', () => resolve(ws));
            ws.once('error', reject);
        }));
    let msgs = 0;
    let counting = false;
    let stop = false;
    for (const ws of socks) {
        ws.on('message', (data) => {
            if (data.length !== size)
                fail(`bench: echo of ${size} came back as ${data.length}`);
            if (counting)
                msgs++;
            if (!stop)
                ws.send(payload);
        });
        for (let k = 0; k < inflight; k++)
            ws.send(payload);
    }
    await new Promise((r) => setTimeout(r, 300));       /* warm-up */
    counting = true;
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, secs * 1000));
    counting = false;
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    stop = true;
    const n = msgs;
    for (const ws of socks)
        ws.terminate();
    console.log(JSON.stringify({
        url: base, size, conns, inflight, secs: dt, msgs: n,
        msgs_per_sec: n / dt, mb_per_sec: n * size / dt / 1e6,
    }));
}

async function main() {
    if (bench) {
        const [secs, size, conns, inflight] =
            process.argv.slice(5, 9).map(Number);
        await runBench(secs, size, conns, inflight);
    } else {
        await refusesUnknownCa();
        await echoes('/echo', false);
        await echoes('/z', true);
        console.log('tls_client: ok');
    }
    process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
