/*
 * common.js: what the Node `ws` clients in this folder share: a seeded
 * pseudo-random source, word text cut to a whole character, and a socket
 * whose messages queue until a test asks for the next one.
 */
'use strict';

/* xorshift32 from seed: no short cycles in the low bits. */
function xorshift32(seed) {
    return function rnd() {
        seed ^= seed << 13;
        seed >>>= 0;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        seed >>>= 0;
        return seed;
    };
}

/* Words from `words` in the order rnd picks, cut at n bytes, backing off
   to a whole character: text that compresses a few times, as text does. */
function wordsText(rnd, words, n) {
    const parts = [];
    for (let size = 0; size < n;) {
        const w = words[rnd() % words.length] + ' ';
        parts.push(w);
        size += Buffer.byteLength(w);
    }
    let b = Buffer.from(parts.join('')).subarray(0, n);
    while (b.length > 0 && (b[b.length - 1] & 0xc0) === 0x80)
        b = b.subarray(0, b.length - 1);
    if (b.length > 0 && b[b.length - 1] >= 0xc0)
        b = b.subarray(0, b.length - 1);
    return b.toString('utf8');
}

/* Resolves with ws once open: its messages queue in ws.inbox for next(),
   ws.closed resolves with {code, reason}. */
function opened(ws) {
    return new Promise((resolve, reject) => {
        ws.inbox = [];
        ws.waiters = [];
        ws.closed = new Promise((res) => {
            ws.on('close', (code, reason) =>
                res({ code, reason: reason.toString() }));
        });
        ws.on('message', (data, isBinary) => {
            const m = { data: Buffer.from(data), isBinary };
            const w = ws.waiters.shift();
            if (w)
                w(m);
            else
                ws.inbox.push(m);
        });
        ws.once('open', () => resolve(ws));
        ws.once('error', (e) => reject(e));
    });
}

/* The next message of an opened() socket; rejects after ms. */
function next(ws, what, ms) {
    if (ws.inbox.length > 0)
        return Promise.resolve(ws.inbox.shift());
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reply: ' + what)),
            ms);
        ws.waiters.push((m) => {
            clearTimeout(t);
            resolve(m);
        });
    });
}

module.exports = { xorshift32, wordsText, opened, next };
