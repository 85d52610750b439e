"""permessage-deflate (RFC 7692) against clients nobody here wrote.

python3-websockets (compression on) and Node's ws (perMessageDeflate with
each window setting) exchange text and binary messages of 0 B to 4 MiB,
whole and fragmented, with a compress = on route; both directions are
compressed and checked byte for byte. A broadcast to 1000 subscribers on a
route that forces server_no_context_takeover compresses each message once
(counted by /metrics). Raw-socket protocol cases (RSV1 rules, bombs,
corrupt data) live in test_close_codes.py.
"""
import asyncio
import os
import random
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from sockdtest import SockdTestCase, free_port  # noqa: E402

import websockets  # noqa: E402

SOURCE = os.environ.get("SOCK_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_DIR = os.path.join(SOURCE, "tests", "node")
ROUTES = ("[route /z]\napp = echo\ncompress = on\n"
          "max_message_size = 16MiB\nsend_hard_limit = 64MiB\n"
          "[route /bc]\napp = {build}/probe.so\ncompress = on\n"
          "compress_threshold = 0\nserver_no_context_takeover = on\n"
          "[route /zn]\napp = echo\ncompress = on\n"
          "server_no_context_takeover = on\nmax_message_size = 16MiB\n"
          "send_hard_limit = 64MiB\n")


WORDS = ("sock", "deflate", "frame", "window", "é", "context", "zlib",
         "message", "takeover", "ratio", "server", "client", "bits")


def payloads():
    """Realistic data: words in a random order compress a few times, as
    text does. (Runs of one repeated phrase would inflate over the route's
    max_inflate_ratio of 25 past 1 MiB, and are refused as bombs.)"""
    rnd = random.Random(7)
    for n in (0, 1, 100, 1000, 65536, 1 << 20, 4 << 20):
        words = []
        size = 0
        while size < n:
            w = rnd.choice(WORDS)
            words.append(w)
            size += len(w.encode()) + 1
        text = " ".join(words).encode()[:n].decode("utf-8", "ignore")
        data = bytes(rnd.getrandbits(8) & 0x3f for _ in range(n))
        yield text, data


class Python(SockdTestCase):
    SERVER_KW = dict(extra=ROUTES)

    def test_websockets_compressed_echo(self):
        async def run():
            url = self.server.url("/z")
            async with websockets.connect(url, max_size=None,
                                          compression="deflate") as ws:
                names = [type(e).__name__ for e in ws.extensions]
                self.assertIn("PerMessageDeflate", names)
                for text, data in payloads():
                    for msg in (text, data):
                        await ws.send(msg)
                        self.assertEqual(await ws.recv(), msg)
                        # Fragmented: an iterable is sent as fragments.
                        if len(msg) >= 3:
                            third = len(msg) // 3
                            await ws.send([msg[:third], msg[third:2 * third],
                                           msg[2 * third:]])
                            self.assertEqual(await ws.recv(), msg)
        asyncio.run(asyncio.wait_for(run(), 120))

    def test_interleaved_without_context_takeover(self):
        """Under server_no_context_takeover the worker compresses every
        connection's messages with one shared stream: messages of several
        connections, interleaved, must each come back intact."""
        async def run():
            url = self.server.url("/zn")
            conns = [await websockets.connect(url, max_size=None,
                                              compression="deflate")
                     for _ in range(3)]
            try:
                for ws in conns:
                    ext = ws.extensions[0]
                    self.assertTrue(ext.remote_no_context_takeover)
                for text, data in payloads():
                    for k, ws in enumerate(conns):
                        await ws.send(text if k % 2 == 0 else data)
                    for k, ws in enumerate(conns):
                        self.assertEqual(await ws.recv(),
                                         text if k % 2 == 0 else data)
            finally:
                for ws in conns:
                    await ws.close()
        asyncio.run(asyncio.wait_for(run(), 120))

    def test_uncompressed_client_on_compress_route(self):
        async def run():
            async with websockets.connect(self.server.url("/z"),
                                          compression=None) as ws:
                self.assertEqual(ws.extensions, [])
                await ws.send("plain")
                self.assertEqual(await ws.recv(), "plain")
        asyncio.run(asyncio.wait_for(run(), 20))


@unittest.skipUnless(shutil.which("node") and os.path.isdir(
    os.path.join(NODE_DIR, "node_modules", "ws")),
    "Node or tests/node/node_modules/ws missing (tools/dev deps installs "
    "them)")
class Node(SockdTestCase):
    SERVER_KW = dict(extra=ROUTES)

    def run_node(self, opts):
        p = subprocess.run(["node", os.path.join(NODE_DIR,
                                                 "deflate_client.js"),
                            self.server.url("/z"), opts],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "node ws %s:\n%s%s"
                         % (opts, p.stdout, p.stderr))
        return p.stdout

    def test_each_window_setting(self):
        for opts in ('{}',
                     '{"serverMaxWindowBits": 9}',
                     '{"serverMaxWindowBits": 12}',
                     '{"clientMaxWindowBits": 9}',
                     '{"clientMaxWindowBits": true}',
                     '{"serverNoContextTakeover": true}',
                     '{"clientNoContextTakeover": true}',
                     '{"serverNoContextTakeover": true, '
                     '"clientNoContextTakeover": true, '
                     '"serverMaxWindowBits": 10, "clientMaxWindowBits": 11}'):
            with self.subTest(opts=opts):
                out = self.run_node(opts)
                self.assertIn("permessage-deflate", out)
                if "serverMaxWindowBits\": 9" in opts:
                    self.assertRegex(out, r'"server_max_window_bits":9')


class SharedBroadcast(SockdTestCase):
    """1000 subscribers with compression on a route that forces
    server_no_context_takeover: each message is compressed once."""

    def setUp(self):
        super().setUp()
        self.admin_port = free_port()
        self.srv = self.start_server(
            extra=ROUTES + "[admin]\nlisten = 127.0.0.1:%d\n"
            % self.admin_port)

    def metrics(self):
        return metrics(self.admin_port)

    def test_thousand_subscribers_one_compression(self):
        n, msgs = 1000, 5

        async def run():
            url = self.srv.url("/bc")
            subs = []
            for i in range(0, n, 100):
                subs += await asyncio.gather(*[
                    websockets.connect(url, compression="deflate",
                                       max_size=None)
                    for _ in range(100)])
            for ws in subs:
                self.assertIn("server_no_context_takeover",
                              ws.response_headers["Sec-WebSocket-Extensions"])
                await ws.send("sub news")
            for ws in subs:
                self.assertEqual(await ws.recv(), "ok")
            before = self.metrics()
            pub = subs[0]
            body = "breaking: " + "x" * 500
            for k in range(msgs):
                await pub.send("rpub news %s %d" % (body, k))
            for ws in subs:
                for k in range(msgs):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 30),
                                     "%s %d" % (body, k))
            after = self.metrics()
            for ws in subs:
                await ws.close()
            return before, after

        before, after = asyncio.run(asyncio.wait_for(run(), 120))
        compressed = (after["sock_deflate_messages_total"]
                      - before["sock_deflate_messages_total"])
        shared = (after["sock_deflate_shared_total"]
                  - before["sock_deflate_shared_total"])
        sys.stderr.write("\n[shared deflate] %d messages to %d subscribers: "
                         "%d compressions (%d shared)\n"
                         % (msgs, n, compressed, shared))
        self.assertEqual(shared, msgs)
        self.assertEqual(compressed, msgs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
