#!/usr/bin/python3
"""Backpressure and big messages (DESIGN §3.4 1008 row, §6 send limits).

Assumptions:
- When an app's pushes take the send queue past send_hard_limit, sock_push
  fails and the connection is closed with 1008; a client that never reads
  then sees, once it does read, at most about the hard limit plus kernel
  socket buffers of data, then a 1008 close frame and/or EOF/RST. Which of
  those it sees depends on whether the close frame still fit; any is
  accepted, but never the whole 256 MB.
- With workers = 0 the sockd process is the worker, so its VmRSS is what
  the slow client costs.
- A 16 MiB message needs send_hard_limit above 16 MiB to be echoed in one
  push, so that route raises it to 64 MiB.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (OP_BINARY, OP_CLOSE, OP_TEXT, PeerClosed,  # noqa: E402
                       SockdTestCase, WSClient, build_frame, main,
                       sockd_is_sanitized)

PROBE_LIMITS = """
send_hard_limit = 1MiB
send_high_watermark = 256KiB
send_low_watermark = 64KiB
"""

BIG_ROUTE = """
[route /big]
app = echo
max_message_size = 32MiB
send_hard_limit = 64MiB
[route /bigframe]
app = echo
max_frame_size = 32MiB
max_message_size = 32MiB
send_hard_limit = 64MiB
"""

# ASan's shadow memory and free quarantine (256 MiB) blur RSS.
RSS_LIMIT_KIB = (384 if sockd_is_sanitized() else 64) * 1024


class SlowReader(SockdTestCase):
    SERVER_KW = dict(probe_extra=PROBE_LIMITS)

    def test_slow_client_closed_others_unaffected(self):
        srv = self.server
        rss0 = srv.rss_kib()
        a = WSClient(srv.port, rcvbuf=4096, timeout=10)
        self._clients.append(a)
        a.upgrade("/probe")
        b = self.client("/echo")
        a.send_text("push 4000 65536")    # 256 MB that A will not read
        t0 = time.monotonic()
        max_rss = rss0
        # B is served while A's queue is full and being cut off.
        for i in range(200):
            msg = b"b-%d-" % i + os.urandom(100)
            b.send_frame(OP_BINARY, msg)
            self.assertEqual(b.recv_message(timeout=5), (OP_BINARY, msg),
                             "echo %d on B while A is stuck" % i)
            if i % 10 == 0:
                max_rss = max(max_rss, srv.rss_kib())
            time.sleep(0.005)
        # Let the server give up on A (close_timeout defaults to 5 s).
        while time.monotonic() - t0 < 3:
            max_rss = max(max_rss, srv.rss_kib())
            time.sleep(0.1)
        self.assertLess(max_rss, RSS_LIMIT_KIB, "sockd RSS grew to %d KiB "
                        "(from %d) with a stuck client" % (max_rss, rss0))
        # Now A reads what is there: a bounded prefix, then the end.
        total, frames, close_code, how = self.drain(a, deadline=t0 + 12)
        sys.stderr.write("[A read %d bytes, %d frames, end=%s code=%s after "
                         "%.1f s; max RSS %d KiB] " % (
                             total, frames, how, close_code,
                             time.monotonic() - t0, max_rss))
        self.assertIsNotNone(how, "A not closed within ~12 s; read %d bytes "
                             "in %d frames" % (total, frames))
        self.assertLess(total, 64 << 20, "A received %d bytes: the server "
                        "queued far past send_hard_limit" % total)
        if close_code is not None:
            self.assertEqual(close_code, 1008)
        # And the server still works.
        self.assertEqual(self.echo(b, b"after"), b"after")
        c = self.client("/probe")
        self.assertEqual(c.command("echo fine"), "fine")

    def echo(self, c, data):
        c.send_frame(OP_TEXT, data)
        return c.recv_message(timeout=5)[1]

    def drain(self, a, deadline):
        """Reads A until EOF/RST or a close frame. Returns (bytes read,
        complete frames seen, close code or None, 'eof'|'close'|None)."""
        total = 0
        frames = 0
        a.sock.settimeout(1)
        pending = bytearray()
        while time.monotonic() < deadline:
            try:
                data = a.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return total, frames, None, "eof"
            if not data:
                return total, frames, None, "eof"
            total += len(data)
            pending += data
            # Walk complete frames; keep a partial one.
            while True:
                if len(pending) < 2:
                    break
                n = pending[1] & 0x7F
                pos = 2
                if n == 126:
                    if len(pending) < 4:
                        break
                    n = struct.unpack_from("!H", pending, 2)[0]
                    pos = 4
                elif n == 127:
                    if len(pending) < 10:
                        break
                    n = struct.unpack_from("!Q", pending, 2)[0]
                    pos = 10
                if len(pending) < pos + n:
                    break
                op = pending[0] & 0x0F
                payload = bytes(pending[pos:pos + n])
                del pending[:pos + n]
                frames += 1
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] \
                        if len(payload) >= 2 else None
                    return total, frames, code, "close"
                self.assertEqual(op, OP_BINARY)
        return total, frames, None, None

    def test_writable_flag(self):
        c = self.client("/probe")
        self.assertEqual(c.command("writable"), "1")


class BigMessages(SockdTestCase):
    SERVER_KW = dict(extra=BIG_ROUTE)

    def test_16mib_in_one_byte_fragments(self):
        n = 16 << 20
        key = b"\x5a\x5a\x5a\x5a"
        x = bytes([ord("x") ^ 0x5A])
        first = bytes([0x02, 0x81]) + key + x        # binary, fin = 0
        middle = bytes([0x00, 0x81]) + key + x       # continuation, fin = 0
        last = bytes([0x80, 0x81]) + key + x         # continuation, fin = 1
        data = first + middle * (n - 2) + last
        self.assertEqual(len(data), 7 * n)
        c = WSClient(self.server.port, timeout=60)
        self._clients.append(c)
        c.upgrade("/big")
        t0 = time.monotonic()
        err = []

        def sender():
            try:
                c.send_raw(data, timeout=60)
            except Exception as e:       # reported below
                err.append(e)

        th = threading.Thread(target=sender, daemon=True)
        th.start()
        try:
            f = c.recv_frame(timeout=max(1, 60 - (time.monotonic() - t0)))
        except PeerClosed as e:
            th.join(5)
            self.fail("server closed: %s (send error: %r)" % (e, err))
        th.join(10)
        took = time.monotonic() - t0
        self.assertEqual(err, [])
        self.assertEqual(f.opcode, OP_BINARY, f.payload[:40])
        self.assertTrue(f.fin)
        self.assertEqual(len(f.payload), n)
        self.assertTrue(f.payload == b"x" * n, "payload corrupted")
        self.assertLess(took, 60)
        sys.stderr.write("[16 MiB in 1-byte fragments echoed in %.1f s] "
                         % took)

    def test_16mib_over_default_frame_limit_1009(self):
        # /big keeps max_frame_size at its 8 MiB default.
        c = WSClient(self.server.port, timeout=10)
        self._clients.append(c)
        c.upgrade("/big")
        hdr = bytes([0x82, 0xFF]) + (16 << 20).to_bytes(8, "big") + \
            b"\x00" * 4
        c.send_raw(hdr)
        c.expect_close(1009)

    def test_16mib_single_frame(self):
        data = os.urandom(16 << 20)
        c = WSClient(self.server.port, timeout=30)
        self._clients.append(c)
        c.upgrade("/bigframe")
        th = threading.Thread(target=c.send_raw, args=(
            build_frame(OP_BINARY, data), 30), daemon=True)
        th.start()
        f = c.recv_frame(timeout=30)
        th.join(5)
        self.assertEqual((f.opcode, len(f.payload)), (OP_BINARY, len(data)),
                         f.payload[:40])
        self.assertTrue(f.payload == data)


if __name__ == "__main__":
    main()
