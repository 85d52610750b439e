'use strict';
// server.js: Node's ws as a reference server for bench/compare, with the
// same routes as sockd's benchmark config:
//
//   /echo    every message back, text or binary, no compression
//   /z       the same with permessage-deflate (zlib level 1, memLevel 8,
//            messages under 64 bytes not compressed: sockd's defaults)
//   /probe   the part of tests/apps/probe.c the benchmark uses:
//            "sub TOPIC" -> "ok"; "rpub TOPIC TEXT" -> TEXT to every
//            subscriber of TOPIC (one Buffer, sliced from the request);
//            "echo TEXT" -> TEXT; binary is echoed; else "unknown"
//
//   node server.js --port PORT
//
// One process, one thread (ws runs on Node's event loop). Written the way
// ws's README does echo and broadcast, with bufferutil when it installed.
// Ends on SIGTERM or SIGINT, and when its parent dies (stdin closes, as
// bench/compare gives it a pipe).

const http = require('http');
const { WebSocketServer } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const port = Number(arg('--port', '0'));
if (!(port > 0 && port < 65536)) {
  console.error('usage: node server.js --port PORT');
  process.exit(2);
}

const plain = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const deflate = new WebSocketServer({
  noServer: true,
  perMessageDeflate: {
    zlibDeflateOptions: { level: 1, memLevel: 8 },
    threshold: 64,
  },
});

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

const topics = new Map(); // name -> Set of sockets

function unsubscribe(ws) {
  if (ws.topic !== undefined) {
    topics.get(ws.topic).delete(ws);
    ws.topic = undefined;
  }
}

function probe(ws) {
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.send(data, { binary: true });
      return;
    }
    // data is a Buffer; commands are ASCII up to the payload.
    const sp = data.indexOf(0x20);
    const cmd = sp < 0 ? data.toString() : data.toString('latin1', 0, sp);
    if (cmd === 'sub' && sp >= 0) {
      const name = data.toString('utf8', sp + 1);
      unsubscribe(ws);
      if (!topics.has(name)) topics.set(name, new Set());
      topics.get(name).add(ws);
      ws.topic = name;
      ws.send('ok');
    } else if (cmd === 'rpub' && sp >= 0) {
      const sp2 = data.indexOf(0x20, sp + 1);
      if (sp2 < 0) {
        ws.send('unknown');
        return;
      }
      const subs = topics.get(data.toString('utf8', sp + 1, sp2));
      if (subs === undefined) return;
      const text = data.subarray(sp2 + 1);
      for (const s of subs) s.send(text, { binary: false });
    } else if (cmd === 'echo' && sp >= 0) {
      ws.send(data.subarray(sp + 1), { binary: false });
    } else {
      ws.send('unknown');
    }
  });
  ws.on('close', () => unsubscribe(ws));
}

const routes = {
  '/echo': [plain, echo],
  '/z': [deflate, echo],
  '/probe': [plain, probe],
};

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('WebSocket only\n');
});

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0];
  const route = routes[path];
  if (route === undefined) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const [wss, handler] = route;
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    handler(ws);
  });
});

server.listen(port, '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
