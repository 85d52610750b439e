#!/usr/bin/env node
/*
 * deflate_client.js: Node's `ws` with permessage-deflate as a client of
 * sockd, run by tests/integration/test_deflate.py.
 *
 *   node deflate_client.js ws://127.0.0.1:PORT/z OPTIONS_JSON
 *
 * OPTIONS_JSON is ws's perMessageDeflate object (window bits, context
 * takeover). The extension must be agreed; text and binary messages of
 * 0 B .. 4 MiB, whole and sent in 3 fragments, must come back equal
 * (ws compresses what it sends with threshold 0, and inflates what it gets).
 * Prints the agreed extension; exits 0, or 1 with a message.
 */
'use strict';

const WebSocket = require('ws');
const { xorshift32, wordsText } = require('./common');

const [url, optJson] = process.argv.slice(2);
if (!url) {
    console.error('usage: node deflate_client.js URL [OPTIONS_JSON]');
    process.exit(2);
}
const opts = Object.assign({ threshold: 0 }, JSON.parse(optJson || '{}'));
const SIZES = [0, 1, 100, 1000, 65536, 1 << 20, 4 << 20];

setTimeout(() => fail('timed out after 90 s'), 90000).unref();

function fail(msg) {
    console.error('deflate_client: FAIL: ' + msg);
    process.exit(1);
}

/* Realistic data: words in a pseudo-random order (text compresses a few
   times, as text does; one phrase repeated for megabytes would inflate
   over sockd's max_inflate_ratio and be refused as a bomb). */
const WORDS = ['sock', 'deflate', 'frame', 'window', 'é', 'context', 'zlib',
               'message', 'takeover', 'ratio', 'server', 'client', 'bits'];
const rnd = xorshift32(7);
function payload(n, text) {
    if (text)
        return wordsText(rnd, WORDS, n);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++)
        b[i] = rnd() & 0x3f;
    return b;
}

const ws = new WebSocket(url, { perMessageDeflate: opts, maxPayload: 0 });
const inbox = [];
let waiter = null;
ws.on('message', (data, isBinary) => {
    const m = { data: Buffer.from(data), isBinary };
    if (waiter) { const w = waiter; waiter = null; w(m); } else inbox.push(m);
});
ws.on('error', (e) => fail('error: ' + e.message));
ws.on('close', (code) => { if (!done) fail('closed early with ' + code); });
let done = false;

function next() {
    return inbox.length ? Promise.resolve(inbox.shift())
                        : new Promise((res) => { waiter = res; });
}

function sendFragmented(data, binary) {
    const buf = Buffer.from(data);
    const a = Math.floor(buf.length / 3), b = Math.floor(2 * buf.length / 3);
    ws.send(buf.subarray(0, a), { binary, fin: false, compress: true });
    ws.send(buf.subarray(a, b), { binary, fin: false, compress: true });
    ws.send(buf.subarray(b), { binary, fin: true, compress: true });
}

ws.on('open', async () => {
    const ext = ws.extensions;
    if (!ext.includes('permessage-deflate'))
        fail('permessage-deflate not agreed: "' + ext + '"');
    /* ws keeps the agreed parameters on its extension object. */
    const pmd = ws._extensions && ws._extensions['permessage-deflate'];
    console.log('agreed: ' + ext + ' ' + JSON.stringify(pmd && pmd.params));
    for (const fragmented of [false, true]) {
        for (const text of [true, false]) {
            for (const n of SIZES) {
                const p = payload(n, text);
                if (fragmented)
                    sendFragmented(p, !text);
                else
                    ws.send(p, { binary: !text, compress: true });
                const m = await next();
                const want = Buffer.from(p);
                if (m.isBinary === text || !m.data.equals(want))
                    fail(`echo of ${n} ${text ? 'text' : 'binary'} bytes` +
                         `${fragmented ? ' (fragmented)' : ''} differs: ` +
                         `got ${m.data.length} bytes`);
            }
        }
    }
    done = true;
    ws.close(1000);
    ws.on('close', () => process.exit(0));
});
