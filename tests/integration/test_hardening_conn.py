#!/usr/bin/python3
"""What a client can make a worker hold is bounded (issue 11, items 1, 2, 8).

Assumptions (documented in docs/sockd.conf.5 and docs/operations.md):
- Pongs: at most 16 may sit unwritten in a connection's send queue; a
  ping beyond them is answered later by one pong carrying the latest
  ping's payload (RFC 6455 §5.5.3). Every frame the server queues counts
  against send_hard_limit as app pushes do: a pong over it closes with
  1008; the close frame is the one frame queued past the limit.
- message_timeout: a frame or message must complete within that long of
  the read that began it, else 1008. Each message gets its own time.
- max_partial_bytes: a worker holds at most that many bytes of unfinished
  input (reassembly buffers, sized by doubling from 256 bytes, so a
  message of 32 KiB holds exactly 32 KiB); past it, the connection
  holding the most (the oldest among equals) is closed with 1009.
  sock_partial_bytes shows what is held.
- A request head that can no longer become an HTTP/1.1 request is answered
  at once (400; 505 for a finished request line of another version) and
  the server closes TCP, long before handshake_timeout.
- With workers = 0 the sockd process is the worker, so its VmRSS is what
  an attack costs.
"""

import os
import random
import socket
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from mastertest import wait_until  # noqa: E402
from sockdtest import (OP_BINARY, OP_CONT, OP_PING, OP_PONG,  # noqa: E402
                       OP_TEXT, PeerClosed, SockdTestCase, WSClient,
                       build_frame, free_port, frame_header, main,
                       mask_bytes, sockd_is_sanitized)

# ASan's shadow memory and quarantine blur RSS.
RSS_GROWTH_KIB = (256 if sockd_is_sanitized() else 48) * 1024


def admin_extra(aport):
    return "[admin]\nlisten = 127.0.0.1:%d\n" % aport


def read_all_frames(c, until, timeout):
    """Frames from c until until(frame) holds; returns them all."""
    deadline = time.monotonic() + timeout
    out = []
    while True:
        f = c.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
        out.append(f)
        if until(f):
            return out


# ---- 1: pongs and the server's own frames ----------------------------------

PING_ROUTES = """
[route /small]
app = {build}/probe.so
send_hard_limit = 1MiB
send_high_watermark = 256KiB
send_low_watermark = 64KiB
"""


class Pongs(SockdTestCase):
    APORT = free_port()
    SERVER_KW = dict(extra=PING_ROUTES + admin_extra(APORT))

    def metric(self, name):
        return metrics(self.APORT).get(name)

    def test_pongs_coalesce_while_queue_is_blocked(self):
        # 12.5 MiB the client does not read: more than the kernel buffers
        # take, so the pongs wait in the send queue behind it.
        before = self.metric("sock_pongs_coalesced_total")
        c = WSClient(self.server.port, rcvbuf=4096, timeout=10)
        self._clients.append(c)
        c.upgrade("/probe")
        c.send_text("push 200 65536")
        pings = [b"p%03d" % i for i in range(100)]
        c.send_raw(b"".join(build_frame(OP_PING, p) for p in pings))
        time.sleep(0.3)
        frames = read_all_frames(c, lambda f: f.opcode == OP_PONG and
                                 f.payload == pings[-1], timeout=30)
        data = [f for f in frames if f.opcode == OP_BINARY]
        pongs = [f.payload for f in frames if f.opcode == OP_PONG]
        self.assertEqual(len(data), 200)
        self.assertTrue(all(len(f.payload) == 65536 for f in data))
        # The first 16 at once, then one for the latest of the other 84.
        self.assertEqual(pongs, pings[:16] + [pings[-1]])
        self.assertEqual(self.metric("sock_pongs_coalesced_total") - before,
                         83)
        # Nothing else is owed, and the connection still works.
        c.send_frame(OP_PING, b"after")
        f = c.recv_frame(timeout=5)
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"after"))
        self.assertEqual(c.command("echo ok"), "ok")

    def test_ping_flood_without_reading_is_bounded(self):
        srv = self.server
        c = WSClient(srv.port, rcvbuf=4096, timeout=10)
        self._clients.append(c)
        c.upgrade("/echo")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        rss0 = max_rss = srv.rss_kib()
        payload = os.urandom(117)
        batch = b"".join(build_frame(OP_PING, payload + b"%08d" % i)
                         for i in range(1000))
        sent = 0
        t0 = time.monotonic()
        # About 2 s of pings (131 bytes each), never reading.
        while time.monotonic() - t0 < 2.0 and sent < 2000000:
            c.send_raw(batch, timeout=10)
            sent += 1000
            if sent % 50000 == 0:
                max_rss = max(max_rss, srv.rss_kib())
        last = payload + b"%08d" % 999
        max_rss = max(max_rss, srv.rss_kib())
        sys.stderr.write("[%d pings in %.1f s; RSS %d -> %d KiB] "
                         % (sent, time.monotonic() - t0, rss0, max_rss))
        self.assertLess(max_rss - rss0, RSS_GROWTH_KIB,
                        "sockd grew by %d KiB under a ping flood"
                        % (max_rss - rss0))
        # Reading now: what the kernel held, then the answer to the
        # latest ping; far fewer pongs than pings.
        frames = read_all_frames(c, lambda f: f.opcode == OP_PONG and
                                 f.payload == last, timeout=30)
        self.assertTrue(all(f.opcode == OP_PONG for f in frames))
        self.assertLess(len(frames), sent // 2)
        c.send_frame(OP_TEXT, b"still here")
        self.assertEqual(c.recv_message(timeout=5), (OP_TEXT, b"still here"))

    def test_ping_flood_while_reading_answers_the_latest(self):
        # A guard: a client that reads gets pongs in order, none twice,
        # the last for its last ping.
        c = WSClient(self.server.port, timeout=10)
        self._clients.append(c)
        c.upgrade("/echo")
        got, err = [], []

        def reader():
            try:
                while True:
                    f = c.recv_frame(timeout=15)
                    got.append(f)
                    if f.payload == b"final":
                        return
            except Exception as e:      # reported below
                err.append(e)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        batch_no = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0 and batch_no < 2000:
            c.send_raw(b"".join(build_frame(OP_PING, b"%010d" % (
                batch_no * 200 + i)) for i in range(200)))
            batch_no += 1
        c.send_frame(OP_PING, b"final")
        th.join(20)
        self.assertEqual(err, [])
        self.assertEqual(got[-1].payload, b"final")
        nums = [int(f.payload) for f in got[:-1]]
        self.assertTrue(all(f.opcode == OP_PONG for f in got))
        self.assertEqual(nums, sorted(set(nums)), "pongs out of order or "
                         "twice")
        self.assertGreater(len(nums), 0)

    def test_pong_over_hard_limit_1008(self):
        # One read: a push that leaves /small's 1 MiB limit 125 bytes to
        # spare, then a 125-byte ping: the pong fits. With 124 to spare it
        # does not: 1008, and the close frame still goes out after the
        # queued message.
        for spare, fits in ((125, True), (124, False)):
            with self.subTest(spare=spare):
                size = (1 << 20) - spare - 10   # 10: the frame header
                c = WSClient(self.server.port, timeout=10)
                self._clients.append(c)
                c.upgrade("/small")
                c.send_raw(build_frame(OP_TEXT, b"push 1 %d" % size) +
                           build_frame(OP_PING, b"y" * 125))
                f = c.recv_frame(timeout=10)
                self.assertEqual((f.opcode, len(f.payload)),
                                 (OP_BINARY, size))
                if fits:
                    f = c.recv_frame(timeout=5)
                    self.assertEqual((f.opcode, f.payload),
                                     (OP_PONG, b"y" * 125))
                    self.assertEqual(c.command("echo fine"), "fine")
                    continue
                c.expect_close(1008, timeout=5)
                self.assertEqual(c.skipped, [], "a pong went past the "
                                 "limit")
                c.expect_tcp_close(timeout=5)


# ---- 2: unfinished messages --------------------------------------------------

PARTIAL_SERVER = """
max_partial_bytes = 1MiB
max_message_size = 512KiB
"""

PARTIAL_ROUTES = """
[route /slow]
app = echo
message_timeout = 1s
[route /hold]
app = echo
message_timeout = 0
[route /pslow]
app = {build}/probe.so
message_timeout = 1s
[route /zhold]
app = echo
compress = on
message_timeout = 0
"""


def first_fragment(data, op=OP_BINARY):
    return build_frame(op, data, fin=False)


def partial_frame(total, data, op=OP_BINARY, key=b"\x11\x22\x33\x44"):
    """The header of a frame of `total` payload bytes and its first bytes
    (data), masked with key; returns (bytes, key)."""
    hdr, key = frame_header(op, total, mask_key=key)
    return hdr + mask_bytes(data, key), key


def masked_tail(data, key, offset):
    """data masked as the bytes of a payload from offset on."""
    rot = key[offset % 4:] + key[:offset % 4]
    return mask_bytes(data, rot)


class PartialMessages(SockdTestCase):
    APORT = free_port()
    SERVER_KW = dict(server_extra=PARTIAL_SERVER,
                     extra=PARTIAL_ROUTES + admin_extra(APORT))

    def metric(self, name):
        return metrics(self.APORT).get(name)

    def wait_held(self, value, timeout=5):
        wait_until(lambda: self.metric("sock_partial_bytes") == value,
                   timeout, what="sock_partial_bytes == %d (now %s)"
                   % (value, self.metric("sock_partial_bytes")))

    def setUp(self):
        super().setUp()
        self.wait_held(0)

    # message_timeout

    def expect_timeout_close(self, c, t0):
        c.expect_close(1008, timeout=5)
        took = time.monotonic() - t0
        self.assertGreater(took, 0.9)
        self.assertLess(took, 2.5)
        c.expect_tcp_close(timeout=5)

    def dripping(self, c, pieces, interval=0.2):
        """Sends pieces one by one, interval apart, from a thread that
        stops at the first send error or when the returned event is set."""
        stop = threading.Event()

        def drip():
            for piece in pieces:
                if stop.wait(interval):
                    return
                try:
                    c.sock.sendall(piece)
                except OSError:
                    return
        th = threading.Thread(target=drip, daemon=True)
        th.start()
        self.addCleanup(th.join, 5)
        self.addCleanup(stop.set)
        return stop

    def test_fragmented_message_trickled_1008(self):
        before = self.metric("sock_message_timeouts_total")
        c = self.client("/slow")
        t0 = time.monotonic()
        c.send_raw(first_fragment(b"a", OP_TEXT))
        # One fragment every 200 ms: the connection is never idle.
        self.dripping(c, [build_frame(OP_CONT, b"b", fin=False)] * 20)
        self.expect_timeout_close(c, t0)
        self.assertEqual(self.metric("sock_message_timeouts_total") - before,
                         1)
        self.wait_held(0)

    def test_single_frame_trickled_1008(self):
        c = self.client("/slow")
        t0 = time.monotonic()
        data = b"z" * 1000
        head, key = partial_frame(len(data), data[:10])
        c.send_raw(head)
        self.dripping(c, [masked_tail(data[i:i + 1], key, i)
                          for i in range(10, 30)])
        self.expect_timeout_close(c, t0)

    def test_partial_header_1008(self):
        c = self.client("/slow")
        t0 = time.monotonic()
        c.send_raw(b"\x82")
        self.expect_timeout_close(c, t0)

    def test_slow_messages_each_in_time_delivered(self):
        # Four 300 KiB messages, each sent in 4 pieces over ~0.4 s (1.6 s
        # in all): every message has its own second.
        c = self.client("/slow", timeout=10)
        for n in range(4):
            msg = bytes([65 + n]) * (300 << 10)
            wire = build_frame(OP_BINARY, msg)
            step = len(wire) // 4 + 1
            for i in range(0, len(wire), step):
                c.send_raw(wire[i:i + step])
                time.sleep(0.1)
            self.assertEqual(c.recv_message(timeout=5), (OP_BINARY, msg))
        # And a fragmented one sent at once.
        c.send_raw(first_fragment(b"x" * 1000) +
                   build_frame(OP_CONT, b"y" * 1000))
        self.assertEqual(c.recv_message(timeout=5),
                         (OP_BINARY, b"x" * 1000 + b"y" * 1000))

    def test_paused_app_not_timed_out(self):
        # The probe stops reading for 1.5 s in the middle of a message (a
        # ping "pause MS" may come between fragments): the client is not
        # to blame, so message_timeout (1 s) waits for reading to resume.
        c = self.client("/pslow")
        c.send_raw(first_fragment(b"part-") +
                   build_frame(OP_PING, b"pause 1500"))
        f = c.recv_frame(timeout=5)
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"pause 1500"))
        self.assertEqual(c.recv_message(timeout=5), (OP_TEXT, b"resumed"))
        c.send_frame(OP_CONT, b"end", fin=True)
        self.assertEqual(c.recv_message(timeout=5),
                         (OP_BINARY, b"part-end"))

    # max_partial_bytes

    def test_inflated_bytes_held_and_released(self):
        # A compressed message's first fragment: what it inflates to is
        # held (and counted) until the message ends.
        c = self.client("/zhold", headers=[("Sec-WebSocket-Extensions",
                                            "permessage-deflate")])
        data = random.Random(5).randbytes(200 << 10)
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
        self.assertEqual(body[-4:], b"\x00\x00\xff\xff")
        c.send_frame(OP_BINARY, body[:-4], fin=False, rsv=4)
        wait_until(lambda: (self.metric("sock_partial_bytes") or 0) >=
                   200 << 10, 5, what="the inflated bytes held")
        self.assertLessEqual(self.metric("sock_partial_bytes"), 512 << 10)
        c.send_frame(OP_CONT, b"", fin=True)
        f = c.recv_frame(timeout=5)
        self.assertEqual((f.opcode, f.fin, f.rsv), (OP_BINARY, True, 4))
        d = zlib.decompressobj(-15)
        self.assertTrue(d.decompress(f.payload + b"\x00\x00\xff\xff") ==
                        data)
        self.wait_held(0)

    def test_budget_closes_biggest_holders_1009(self):
        # 40 connections each hold 32 KiB of an unfinished message, half
        # as a partial frame, half as fragments: 32 fit in 1 MiB, and each
        # one after that closes the oldest full holder.
        before = self.metric("sock_partial_budget_closes_total")
        conns, keys = [], []
        part = 32 << 10
        for i in range(40):
            c = self.client("/hold", timeout=10)
            conns.append(c)
            body = bytes([48 + i % 10]) * (part - 1)
            if i % 2:
                head, key = partial_frame(part, body)
                keys.append(key)
                c.send_raw(head)
            else:
                keys.append(None)
                c.send_raw(first_fragment(body[:part // 2]) +
                           build_frame(OP_CONT, body[part // 2:], fin=False))
            self.wait_held(min(i + 1, 32) * part)
        self.assertEqual(self.metric("sock_partial_budget_closes_total") -
                         before, 8)
        for c in conns[:8]:
            c.expect_close(1009, timeout=5)
            c.expect_tcp_close(timeout=5)
        # The others finish their messages and get them back.
        for i, c in enumerate(conns[8:], 8):
            body = bytes([48 + i % 10]) * (part - 1)
            if i % 2:
                c.send_raw(masked_tail(b"!", keys[i], part - 1))
            else:
                c.send_frame(OP_CONT, b"!", fin=True)
            self.assertEqual(c.recv_message(timeout=5),
                             (OP_BINARY, body + b"!"), "connection %d" % i)
        self.wait_held(0)
        # A message of the largest size still goes through quickly.
        big = os.urandom(512 << 10)
        c = self.client("/hold", timeout=10)
        c.send_frame(OP_BINARY, big)
        self.assertEqual(c.recv_message(timeout=10), (OP_BINARY, big))

    def test_budget_counts_the_biggest_not_the_newest(self):
        # One connection holds 512 KiB, others 256 KiB and 128 KiB (and
        # 128 KiB more): a 256-byte start pushes the worker over, and the
        # 512 KiB holder goes, not the newcomer.
        before = self.metric("sock_partial_budget_closes_total")
        small = self.client("/hold")
        small.send_raw(first_fragment(b"s" * (128 << 10)))
        self.wait_held(128 << 10)
        big = self.client("/hold")
        big.send_raw(partial_frame(512 << 10, b"b" * ((512 << 10) - 1))[0])
        self.wait_held((128 + 512) << 10)
        mid = self.client("/hold")
        mid.send_raw(first_fragment(b"m" * (256 << 10)))
        small2 = self.client("/hold")
        small2.send_raw(first_fragment(b"t" * (128 << 10)))
        self.wait_held(1 << 20)
        late = self.client("/hold")
        late.send_raw(first_fragment(b"l"))
        big.expect_close(1009, timeout=5)
        self.wait_held(((128 + 256 + 128) << 10) + 256)
        self.assertEqual(self.metric("sock_partial_budget_closes_total") -
                         before, 1)
        late.send_frame(OP_CONT, b"ate", fin=True)
        self.assertEqual(late.recv_message(timeout=5), (OP_BINARY, b"late"))
        small.send_frame(OP_CONT, b"", fin=True)
        self.assertEqual(small.recv_message(timeout=5),
                         (OP_BINARY, b"s" * (128 << 10)))



# ---- 8: heads that cannot become a request ---------------------------------

GARBAGE = [
    ("random bytes", bytes([0x8f]) + random.Random(11).randbytes(63), 400),
    ("TLS ClientHello", bytes.fromhex("160301020001000200fc0303") +
     random.Random(12).randbytes(40), 400),
    ("bare LF request", b"GET /echo HTTP/1.1\nHost: a\nUpgrade: websocket\n"
     b"\n", 400),
    ("bare LF, unfinished", b"GET /echo HTTP/1.1\nHost", 400),
    ("CR without LF", b"GET /echo HTTP/1.1\rHost: a", 400),
    ("SSH banner", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 400),
    ("HTTP/2 preface, first line", b"PRI * HTTP/2.0\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("lowercase method", b"get /echo HTTP/1.1\r\nHost: a\r\n", 400),
    ("space in a header name", b"GET /echo HTTP/1.1\r\nHo st: a\r\n", 400),
    ("control byte in target", b"GET /\x01 HTTP/1.1\r\n", 400),
    ("not HTTP", b"GET /echo FTP/1.1\r\n", 400),
    ("HTTP/2.0 request line", b"GET /echo HTTP/2.0\r\nHost: a\r\n", 505),
]

GARBAGE_SERVER = "handshake_timeout = 30s\n"


class Garbage(SockdTestCase):
    SERVER_KW = dict(server_extra=GARBAGE_SERVER)

    def test_garbage_answered_at_once(self):
        for name, data, status in GARBAGE:
            with self.subTest(name):
                c = self.raw(timeout=5)
                t0 = time.monotonic()
                c.send_raw(data)
                resp = c.read_response(timeout=2)
                self.assertEqual(resp.status, status, resp.raw)
                c.expect_tcp_close(timeout=2)
                self.assertLess(time.monotonic() - t0, 2.0)

    def test_garbage_after_a_valid_start(self):
        # A valid prefix waits; the first byte that cannot follow it is
        # answered.
        c = self.raw(timeout=5)
        c.send_raw(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        time.sleep(0.3)
        self.assertFalse(c.is_closed_now())
        self.assertEqual(bytes(c.buf), b"")
        c.send_raw(b"\x16\x03\x01")
        resp = c.read_response(timeout=2)
        self.assertEqual(resp.status, 400)
        c.expect_tcp_close(timeout=2)

    def test_valid_requests_split_byte_by_byte_upgrade(self):
        # A guard: no prefix of a valid request is refused.
        for lead in (b"", b"\r\n"):
            for path in ("/echo", "/echo?x=1&y=%20"):
                with self.subTest(lead=lead, path=path):
                    c = self.raw(timeout=5)
                    wire = lead + c.request(path, headers=[
                        ("X-Tab", "a\tb"), ("X-Empty", "")])
                    for i in range(len(wire)):
                        c.sock.send(wire[i:i + 1])
                        time.sleep(0.001)
                    resp = c.read_response(timeout=5)
                    self.assertEqual(resp.status, 101, resp.raw)
                    c.send_frame(OP_TEXT, b"hi")
                    self.assertEqual(c.recv_message(), (OP_TEXT, b"hi"))
        c = self.raw(timeout=5)
        wire = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
        for i in range(len(wire)):
            c.sock.send(wire[i:i + 1])
            time.sleep(0.001)
        self.assertEqual(c.read_response(timeout=5).status, 426)


if __name__ == "__main__":
    main()
