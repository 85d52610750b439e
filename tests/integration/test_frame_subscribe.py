#!/usr/bin/python3
"""Frame-mode topic subscriptions (sock.h sock_subscribe_frames) through
the probe app (`subf TOPIC` text, `subfb TOPIC` binary).

Checked, byte for byte and by opcode and header form:
- a publish reaches every frame-mode subscriber as exactly one frame of
  the chosen opcode carrying exactly the published bytes (sizes across the
  7-, 16- and 64-bit length forms and the 256-byte copy/reference line),
  while a callback subscriber on the same topic still gets its
  handle_info wording and an unsubscribed connection gets nothing;
- switching modes, and unsub leaving frame mode;
- frame subscribers over the send queue's hard limit are closed with 1008
  as for sock_push, and the others still get every frame;
- across 2 workers (bus): a publish on either worker reaches the frame
  subscribers of both, in order;
- with permessage-deflate (server_no_context_takeover) 200 frame
  subscribers get the exact payloads and each message is compressed once.
"""

import asyncio
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import (AdminMaster, admin_request,  # noqa: E402
                     conns_on_slots, metrics, recv_texts)
from mastertest import MasterTestCase  # noqa: E402
from sockdtest import (OP_BINARY, OP_TEXT, SockdTestCase,  # noqa: E402
                       WSClient, build_frame, expect_no_frame,
                       free_port)

try:
    import websockets
except ImportError:  # pragma: no cover - the test below then skips
    websockets = None


def form_of(n):
    return 7 if n < 126 else 16 if n < 65536 else 64


class FrameSubscribe(SockdTestCase):
    SERVER_KW = dict(probe_extra="send_hard_limit = 1048576\n")

    def probe(self):
        return self.client("/probe")

    def test_exact_frames_beside_callback_and_unsubscribed(self):
        ft, fb, cb, none, pub = (self.probe() for _ in range(5))
        self.assertEqual(ft.command("subf news"), "ok")
        self.assertEqual(fb.command("subfb news"), "ok")
        self.assertEqual(cb.command("sub news"), "ok")
        sizes = (1, 100, 125, 126, 255, 256, 1000, 65535, 65536, 200000)
        for n in sizes:
            body = ("%d:" % n + "abcdefghij" * (n // 10 + 1))[:n]
            pub.send_text("pub news " + body)
            for c, op in ((ft, OP_TEXT), (fb, OP_BINARY)):
                f = c.recv_frame(timeout=5)
                self.assertTrue(f.fin)
                self.assertEqual(f.rsv, 0)
                self.assertEqual(f.opcode, op, "size %d" % n)
                self.assertEqual(f.length_form, form_of(n), "size %d" % n)
                self.assertEqual(f.payload, body.encode(), "size %d" % n)
            self.assertEqual(cb.recv_text(timeout=5), "topic:news:" + body)
        for c in (ft, fb, cb, none, pub):
            expect_no_frame(c, 0.2)

    def test_switch_modes_and_leave(self):
        a, pub = self.probe(), self.probe()
        self.assertEqual(a.command("sub t"), "ok")
        pub.send_text("pub t one")
        self.assertEqual(a.recv_text(5), "topic:t:one")
        self.assertEqual(a.command("subf t"), "ok")   # switch, not a 2nd sub
        pub.send_text("pub t two")
        self.assertEqual(a.recv_text(5), "two")
        expect_no_frame(a, 0.2)
        self.assertEqual(a.command("subfb t"), "ok")
        pub.send_text("pub t three")
        self.assertEqual(a.recv_message(5), (OP_BINARY, b"three"))
        self.assertEqual(a.command("sub t"), "ok")
        pub.send_text("pub t four")
        self.assertEqual(a.recv_text(5), "topic:t:four")
        self.assertEqual(a.command("subf t"), "ok")
        self.assertEqual(a.command("unsub t"), "ok")
        pub.send_text("pub t five")
        expect_no_frame(a, 0.3)
        self.assertEqual(a.command("subf"), "error")  # no topic: -EINVAL

    def test_many_publishes_in_order_from_one_handler(self):
        subs = [self.probe() for _ in range(3)]
        pub = self.probe()
        for s in subs:
            self.assertEqual(s.command("subf q"), "ok")
        pub.send_raw(b"".join(build_frame(OP_TEXT, b"pub q m%d" % i)
                              for i in range(2000)))
        for s in subs:
            self.assertEqual(recv_texts(s, 2000, 20),
                             ["m%d" % i for i in range(2000)])
            expect_no_frame(s, 0.1)

    def test_hard_limit_closes_1008(self):
        # A subscriber that never reads, with a small receive buffer,
        # fills its queue past send_hard_limit (1 MiB here) once the socket
        # buffers (a few MiB on loopback) are full.
        slow = WSClient(self.server.port, rcvbuf=4096, timeout=10)
        self.addCleanup(slow.close)
        slow.upgrade("/probe")
        fast = self.probe()
        pub = self.probe()
        self.assertEqual(slow.command("subfb big"), "ok")
        self.assertEqual(fast.command("subfb big"), "ok")
        body = "y" * 60000
        n = 200                  # 12 MB: past the limit and the kernel buffers
        for i in range(n):
            pub.send_text("pub big %03d%s" % (i, body))
            op, data = fast.recv_message(10)
            self.assertEqual((op, data[:3], len(data)),
                             (OP_BINARY, b"%03d" % i, 60003))
        slow.expect_close(1008, timeout=10)


class FrameSubscribeBus(MasterTestCase):
    def test_two_workers_both_ways(self):
        srv = AdminMaster(workers=2)
        self._servers.append(srv)
        self.addCleanup(srv.stop)
        srv.start()
        on = conns_on_slots(srv.port, {0: 3, 1: 3})
        for cs in on.values():
            for c in cs:
                self.addCleanup(c.close)
        subs = on[0][:2] + on[1][:2]
        for c in subs:
            self.assertEqual(c.ws.command("subf x"), "ok")
        for k in range(50):
            on[k % 2][2].ws.send_text("pub x from%d-%d" % (k % 2, k))
        want = ["from%d-%d" % (k % 2, k) for k in range(50)]
        for c in subs:
            got = recv_texts(c.ws, 50, 10)
            # FIFO per publisher; the two publishers interleave freely.
            for s in (0, 1):
                self.assertEqual([g for g in got if g.startswith("from%d" % s)],
                                 [w for w in want if w.startswith("from%d" % s)],
                                 "subscriber on slot %d" % c.slot)
            expect_no_frame(c.ws, 0.2)
        for c in (on[0][2], on[1][2]):
            expect_no_frame(c.ws, 0.05)


@unittest.skipIf(websockets is None, "python3-websockets missing")
class FrameSubscribeDeflate(SockdTestCase):
    ROUTE = ("[route /bc]\napp = {build}/probe.so\ncompress = on\n"
             "compress_threshold = 0\nserver_no_context_takeover = on\n")

    def setUp(self):
        super().setUp()
        self.admin_port = free_port()
        self.srv = self.start_server(
            extra=self.ROUTE + "[admin]\nlisten = 127.0.0.1:%d\n"
            % self.admin_port)

    def metrics(self):
        return metrics(self.admin_port)

    def test_compressed_once_exact(self):
        n, msgs = 200, 5

        async def run():
            url = self.srv.url("/bc")
            subs = await asyncio.gather(*[
                websockets.connect(url, compression="deflate", max_size=None)
                for _ in range(n)])
            for ws in subs:
                await ws.send("subf news")
            for ws in subs:
                self.assertEqual(await ws.recv(), "ok")
            before = self.metrics()
            body = "breaking: " + "x y z " * 100
            for k in range(msgs):
                await subs[0].send("rpub news %s %d" % (body, k))
            for ws in subs:
                for k in range(msgs):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 30),
                                     "%s %d" % (body, k))
            after = self.metrics()
            for ws in subs:
                await ws.close()
            return before, after

        before, after = asyncio.run(asyncio.wait_for(run(), 120))
        delta = {k: after[k] - before[k] for k in
                 ("sock_deflate_messages_total", "sock_deflate_shared_total")}
        self.assertEqual(delta["sock_deflate_shared_total"], msgs)
        self.assertEqual(delta["sock_deflate_messages_total"], msgs)


class FrameSubscribeRouteMetrics(SockdTestCase):
    """Frames fanned out count in their route's messages out, like pushes:
    sock_route_messages_out_total{route=...} (labels matter here)."""

    def setUp(self):
        super().setUp()
        self.admin_port = free_port()
        self.srv = self.start_server(
            extra="[route /fs]\napp = {build}/probe.so\n"
                  "[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port)

    def route_out(self):
        status, body = admin_request(self.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        out = {}
        for line in body.decode().splitlines():
            m = re.match(r'sock_route_messages_out_total\{route="([^"]*)"\} '
                         r'(\d+)$', line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def test_frames_count_per_route(self):
        subs = [self.client("/fs", server=self.srv) for _ in range(3)]
        pub = self.client("/probe", server=self.srv)
        for i, c in enumerate(subs):
            self.assertEqual(c.command("subf t" if i else "subfb t"), "ok")
        before = self.route_out()
        for k in range(4):
            pub.send_text("rpub t m%d" % k)
        for c in subs:
            for k in range(4):
                self.assertEqual(c.recv_message(5)[1], b"m%d" % k)
        after = self.route_out()
        self.assertEqual(after["/fs"] - before["/fs"], 12)
        self.assertEqual(after.get("/probe", 0) - before.get("/probe", 0), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
