#!/usr/bin/python3
"""Real client libraries against sockd: Debian's python3-websockets (10.4,
asyncio) and Node's `ws` (tests/node, installed with `npm ci` there).

Assumptions:
- The /echo route keeps the default max_message_size (8 MiB), so 4 MiB
  messages pass.
- The Node test is skipped, loudly, only when `node` or
  tests/node/node_modules/ws is missing; any other problem fails.
"""

import asyncio
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import REPO, SockdTestCase, main  # noqa: E402

try:
    import websockets
    from websockets.exceptions import ConnectionClosed
except ImportError:          # reported by the tests that need it
    websockets = None

NODE_DIR = os.environ.get("SOCK_NODE_DIR") or os.path.join(REPO, "tests",
                                                           "node")
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 4 << 20]


def run(coro, timeout):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class PythonWebsockets(SockdTestCase):
    SERVER_KW = dict()

    def setUp(self):
        super().setUp()
        if websockets is None:
            self.fail("python3-websockets is missing "
                      "(apt-get install python3-websockets)")

    def connect(self, path, **kw):
        kw.setdefault("max_size", 16 << 20)
        kw.setdefault("open_timeout", 5)
        kw.setdefault("close_timeout", 5)
        kw.setdefault("ping_interval", None)
        kw.setdefault("compression", None)
        return websockets.connect(self.server.url(path), **kw)

    def test_echo_text_and_binary_up_to_4mib(self):
        async def go():
            async with self.connect("/echo") as ws:
                for n in SIZES:
                    text = ("\u00e9t\u00e9-" * (n // 8 + 1))
                    text = text.encode()[:n].decode("utf-8", "ignore")
                    await ws.send(text)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    self.assertIsInstance(got, str)
                    self.assertTrue(got == text, "text of %d bytes" % n)
                    data = os.urandom(n)
                    await ws.send(data)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    self.assertIsInstance(got, bytes)
                    self.assertTrue(got == data, "binary of %d bytes" % n)
            return ws.close_code

        self.assertEqual(run(go(), 60), 1000)

    def test_stop_closes_1000(self):
        async def go():
            async with self.connect("/probe",
                                    subprotocols=["probe.v1"]) as ws:
                self.assertEqual(ws.subprotocol, "probe.v1")
                await ws.send("echo ok")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "ok")
                await ws.send("stop")
                try:
                    extra = await asyncio.wait_for(ws.recv(), 5)
                    self.fail("message after stop: %r" % (extra,))
                except ConnectionClosed:
                    pass
                await asyncio.wait_for(ws.wait_closed(), 5)
                return ws.close_code, ws.close_reason

        code, reason = run(go(), 30)
        self.assertEqual(code, 1000)
        self.assertEqual(reason, "")

    def test_app_close_code_and_reason(self):
        async def go():
            async with self.connect("/probe") as ws:
                await ws.send("close 4321 see you")
                await asyncio.wait_for(ws.wait_closed(), 5)
                return ws.close_code, ws.close_reason

        self.assertEqual(run(go(), 30), (4321, "see you"))

    def test_fragmented_send(self):
        async def go():
            async with self.connect("/echo") as ws:
                await ws.send(["frag", "mented ", "text"])
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5),
                                 "fragmented text")
                await ws.send([b"\x00", b"\x01\x02"])
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5),
                                 b"\x00\x01\x02")

        run(go(), 30)

    def test_ping_pong(self):
        async def go():
            async with self.connect("/echo") as ws:
                waiter = await ws.ping(b"lib-ping")
                await asyncio.wait_for(waiter, 5)

        run(go(), 30)

    def test_50_concurrent_clients(self):
        n_clients, n_msgs = 50, 20

        async def one(i):
            async with self.connect("/echo") as ws:
                for j in range(n_msgs):
                    msg = "client %d message %d" % (i, j)
                    if j % 2:
                        await ws.send(msg)
                        got = await asyncio.wait_for(ws.recv(), 10)
                        if got != msg:
                            return "client %d: %r != %r" % (i, got, msg)
                    else:
                        await ws.send(msg.encode())
                        got = await asyncio.wait_for(ws.recv(), 10)
                        if got != msg.encode():
                            return "client %d: %r != %r" % (i, got, msg)
            if ws.close_code != 1000:
                return "client %d: close code %r" % (i, ws.close_code)
            return None

        async def go():
            return await asyncio.gather(*(one(i) for i in range(n_clients)),
                                        return_exceptions=True)

        results = run(go(), 60)
        errors = [r for r in results if r is not None]
        self.assertEqual(errors, [], "%d of %d clients failed"
                         % (len(errors), n_clients))


class NodeWs(SockdTestCase):
    SERVER_KW = dict()

    def test_node_ws_echo_client(self):
        node = shutil.which("node")
        script = os.path.join(NODE_DIR, "echo_client.js")
        ws_mod = os.path.join(NODE_DIR, "node_modules", "ws")
        if node is None or not os.path.isdir(ws_mod):
            why = ("node is not installed" if node is None else
                   "%s is missing (run `npm ci` in %s)" % (ws_mod, NODE_DIR))
            sys.stderr.write("\n" + "!" * 72 + "\n!! SKIPPING the Node ws "
                             "client test: %s\n" % why + "!" * 72 + "\n")
            self.skipTest(why)
        try:
            p = subprocess.run([node, script, "ws://127.0.0.1:%d"
                                % self.server.port],
                               cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=90)
        except subprocess.TimeoutExpired as e:
            self.fail("echo_client.js did not finish in 90 s: %r %r"
                      % (e.stdout, e.stderr))
        self.assertEqual(p.returncode, 0, "echo_client.js failed:\n%s%s"
                         % (p.stdout.decode(errors="replace"),
                            p.stderr.decode(errors="replace")))
        self.assertIn(b"echo_client: ok", p.stdout)


if __name__ == "__main__":
    main()
