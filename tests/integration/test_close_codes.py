#!/usr/bin/python3
"""Close codes (DESIGN §3.4) and timeouts, every observable row, with a raw
client that sends exactly the bytes under test.

Assumptions (where DESIGN leaves room):
- Codes a peer may send: 1000-1003, 1007-1014 and 3000-4999 (RFC 6455
  §7.4 plus the IANA registry, as in §3.4's app rule); anything else,
  including 1004-1006, 1015, 1016-2999 and >= 5000, gets 1002.
- A peer's close is echoed with the same code (the reason may or may not
  be echoed; only the code is checked).
- A 64-bit length with the top bit set is a protocol error; 1002 is
  expected but 1009 (size check first) is accepted too.
- The pong timeout closes like the idle timeout (1000), or just closes TCP.
- After a close frame the server closes TCP: promptly (< 0.8 s) once the
  client answered, and within close_timeout (1 s here) + slack when it
  never does.
- SIGTERM sends 1001 to open connections and sockd then exits 0.
- permessage-deflate rows are tested on a route with compress = on; the
  client offers plain "permessage-deflate" (no window parameters). While
  sockd does not negotiate it, those tests skip loudly, unless
  SOCK_REQUIRE_DEFLATE=1.
"""

import asyncio
import os
import signal
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,  # noqa: E402
                       OP_PONG, OP_TEXT, PeerClosed, SockdTestCase,
                       build_frame, close_payload, frame_header, main,
                       resp_header, expect_no_frame)

EXTRA = """
[route /small]
app = echo
max_frame_size = 64KiB
max_message_size = 128KiB
[route /idle]
app = {build}/probe.so
idle_timeout = 1s
[route /ping]
app = echo
ping_interval = 300ms
pong_timeout = 300ms
idle_timeout = 1s
[route /pingonly]
app = echo
ping_interval = 300ms
pong_timeout = 300ms
idle_timeout = 30s
"""

PROMPT_CLOSE = 0.8   # TCP close after the client answered a close
CLOSE_TIMEOUT = 1.0  # close_timeout in the config


class CloseBase(SockdTestCase):
    SERVER_KW = dict(server_extra="close_timeout = 1s", extra=EXTRA)

    def finish(self, c, code="any", reason=None, timeout=3.0):
        """The server sends a close frame with code: answer it and check
        that TCP is then closed promptly. Returns (code, reason)."""
        got = c.expect_close(code, timeout=timeout, reason=reason)
        try:
            c.send_close(got[0] if got[0] is not None else None)
        except OSError:
            pass    # the server may already have closed TCP
        t0 = time.monotonic()
        c.expect_tcp_close(timeout=CLOSE_TIMEOUT + 2)
        took = time.monotonic() - t0
        self.assertLess(took, PROMPT_CLOSE, "server kept TCP open %.2f s "
                        "after the closing handshake" % took)
        return got

    def violation(self, data, code, path="/echo", timeout=3.0):
        """Sends data on a fresh connection; the server must close with
        code (and nothing else before it)."""
        c = self.client(path)
        c.send_raw(data)
        got = self.finish(c, code, timeout=timeout)
        self.assertEqual(c.skipped, [], "frames before the close")
        return got


class PeerCloses(CloseBase):
    def test_close_1000_echoed_then_tcp_closed(self):
        c = self.client("/echo")
        c.send_close(1000, b"bye")
        got = c.expect_close(1000)
        self.assertIn(got[1], (b"", b"bye"))
        t0 = time.monotonic()
        c.expect_tcp_close(timeout=3)
        self.assertLess(time.monotonic() - t0, PROMPT_CLOSE)

    def test_close_3000_with_reason(self):
        c = self.client("/echo")
        c.send_close(3000, "r\u00e9ason")
        c.expect_close(3000)
        c.expect_tcp_close(timeout=3)

    def test_valid_codes_echoed(self):
        for code in (1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                     1013, 1014, 3999, 4000, 4999):
            with self.subTest(code=code):
                c = self.client("/echo")
                c.send_close(code, b"x")
                c.expect_close(code)
                c.expect_tcp_close(timeout=3)

    def test_empty_close_gets_empty_close(self):
        c = self.client("/echo")
        c.send_frame(OP_CLOSE, b"")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_CLOSE, b""))
        c.expect_tcp_close(timeout=3)

    def test_invalid_codes_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                     5000, 65535):
            with self.subTest(code=code):
                c = self.client("/echo")
                c.send_close(code)
                c.expect_close(1002)
                c.expect_tcp_close(timeout=3)

    def test_one_byte_close_payload_1002(self):
        c = self.client("/echo")
        c.send_frame(OP_CLOSE, b"\x03")
        c.expect_close(1002)
        c.expect_tcp_close(timeout=3)

    def test_close_reason_bad_utf8_1007(self):
        for reason in (b"\xff", b"ok\xc0\x80", b"\xed\xa0\x80", b"ab\xe2\x82"):
            with self.subTest(reason=reason):
                c = self.client("/echo")
                c.send_close(1000, reason)
                c.expect_close(1007)
                c.expect_tcp_close(timeout=3)

    def test_close_with_123_byte_reason_ok(self):
        c = self.client("/echo")
        c.send_close(1000, b"r" * 123)
        c.expect_close(1000)
        c.expect_tcp_close(timeout=3)

    def test_close_inside_fragmented_message(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"never", fin=False)
        c.send_close(1000)
        c.expect_close(1000)
        self.assertEqual(c.skipped, [])
        c.expect_tcp_close(timeout=3)

    def test_nothing_after_close_is_processed(self):
        c = self.client("/echo")
        c.send_raw(build_frame(OP_CLOSE, close_payload(1000)) +
                   build_frame(OP_TEXT, b"late") +
                   build_frame(OP_PING, b"late"))
        c.expect_close(1000)
        self.assertEqual(c.skipped, [], "server answered frames sent "
                         "after the client's close")
        data = c.expect_tcp_close(timeout=3)
        self.assertEqual(data, b"")


class Violations(CloseBase):
    def test_unmasked_frame_1002(self):
        self.violation(build_frame(OP_TEXT, b"plain", mask=False), 1002)

    def test_unmasked_ping_1002(self):
        self.violation(build_frame(OP_PING, b"p", mask=False), 1002)

    def test_rsv_bits_without_extension_1002(self):
        for rsv in (4, 2, 1, 7):
            with self.subTest(rsv=rsv):
                self.violation(build_frame(OP_TEXT, b"rsv", rsv=rsv), 1002)
        with self.subTest(rsv="ping"):
            self.violation(build_frame(OP_PING, b"", rsv=4), 1002)

    def test_reserved_opcodes_1002(self):
        for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            with self.subTest(opcode=op):
                self.violation(build_frame(op, b"x"), 1002)

    def test_control_frame_126_bytes_1002(self):
        for op in (OP_PING, OP_PONG, OP_CLOSE):
            with self.subTest(opcode=op):
                payload = close_payload(1000, b"r" * 124) \
                    if op == OP_CLOSE else b"p" * 126
                self.assertEqual(len(payload), 126)
                self.violation(build_frame(op, payload), 1002)

    def test_control_frame_header_only_126_1002(self):
        # The length alone is enough to fail: the payload never comes.
        hdr, _ = frame_header(OP_PING, 126)
        self.violation(hdr, 1002)

    def test_fragmented_ping_1002(self):
        self.violation(build_frame(OP_PING, b"half", fin=False), 1002)

    def test_fragmented_close_1002(self):
        self.violation(build_frame(OP_CLOSE, close_payload(1000),
                                   fin=False), 1002)

    def test_continuation_without_start_1002(self):
        self.violation(build_frame(OP_CONT, b"orphan"), 1002)
        self.violation(build_frame(OP_CONT, b"orphan", fin=False), 1002)

    def test_continuation_after_complete_message_1002(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"whole")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"whole"))
        c.send_frame(OP_CONT, b"more")
        self.finish(c, 1002)

    def test_new_data_frame_inside_fragmented_message_1002(self):
        for op in (OP_TEXT, OP_BINARY):
            with self.subTest(opcode=op):
                self.violation(build_frame(OP_TEXT, b"start", fin=False) +
                               build_frame(op, b"again"), 1002)

    def test_top_bit_64_bit_length(self):
        hdr = bytes([0x82, 0xFF]) + (1 << 63 | 5).to_bytes(8, "big") + \
            os.urandom(4)
        c = self.client("/echo")
        c.send_raw(hdr)
        got = self.finish(c)
        self.assertIn(got[0], (1002, 1009), "top bit set in a 64-bit length")


class Utf8(CloseBase):
    BAD = [b"\xff", b"abc\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
           b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
           b"ok\xe2\x82", b"\xc3"]

    def test_invalid_single_frame_1007(self):
        for bad in self.BAD:
            with self.subTest(bad=bad):
                self.violation(build_frame(OP_TEXT, bad), 1007)

    def test_valid_single_frames_echoed(self):
        c = self.client("/echo")
        for good in ("", "\u00e9", "\u20ac", "\U0001d11e", "\ud7ff",
                     "\ue000", "\U0010ffff", "a\u0000b"):
            data = good.encode("utf-8")
            c.send_frame(OP_TEXT, data)
            self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_fail_fast_in_first_fragment(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"fine so far \xff", fin=False)
        # No further fragment is sent: the server must not wait for one.
        self.finish(c, 1007, timeout=2)

    def test_fail_fast_sequence_split_across_fragments(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"ab\xe2\x82", fin=False)   # valid prefix
        expect_no_frame(c, 0.3)      # must not be rejected yet
        c.send_frame(OP_CONT, b"\x28rest", fin=False)    # bad continuation
        self.finish(c, 1007, timeout=2)

    def test_fail_fast_in_middle_fragment(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"first ", fin=False)
        c.send_frame(OP_CONT, b"\xed\xa0\x80", fin=False)   # surrogate
        self.finish(c, 1007, timeout=2)

    def test_truncated_at_end_of_fragmented_message_1007(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"ab", fin=False)
        c.send_frame(OP_CONT, b"c\xf0\x9f", fin=True)
        self.finish(c, 1007)

    def test_char_split_across_three_fragments(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"a\xe2", fin=False)
        c.send_frame(OP_CONT, b"\x82", fin=False)
        c.send_frame(OP_CONT, b"\xacb", fin=True)
        self.assertEqual(c.recv_message(), (OP_TEXT, "a\u20acb".encode()))
        c.send_frame(OP_TEXT, b"\xf0\x9f", fin=False)
        c.send_frame(OP_CONT, b"\x98", fin=False)
        c.send_frame(OP_CONT, b"\x80", fin=True)
        self.assertEqual(c.recv_message(), (OP_TEXT, "\U0001f600".encode()))

    def test_binary_is_not_checked(self):
        c = self.client("/echo")
        c.send_frame(OP_BINARY, b"\xff\xfe\xc0")
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\xff\xfe\xc0"))


class Sizes(CloseBase):
    def test_frame_at_limit_echoed(self):
        c = self.client("/small")
        data = os.urandom(65536)
        c.send_frame(OP_BINARY, data)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))

    def test_frame_over_limit_1009_from_header(self):
        for op, n, form in ((OP_BINARY, 65537, None), (OP_TEXT, 65537, None),
                            (OP_BINARY, 1 << 40, None),
                            (OP_BINARY, 65537, 64)):
            with self.subTest(op=op, n=n, form=form):
                hdr, _ = frame_header(op, n, length_form=form)
                c = self.client("/small")
                c.send_raw(hdr)      # the payload is never sent
                self.finish(c, 1009, timeout=2)

    def test_fragment_over_frame_limit_1009(self):
        c = self.client("/small")
        c.send_frame(OP_BINARY, b"a" * 1000, fin=False)
        hdr, _ = frame_header(OP_CONT, 70000, fin=False)
        c.send_raw(hdr)
        self.finish(c, 1009, timeout=2)

    def test_message_over_limit_via_fragments_1009(self):
        c = self.client("/small")
        chunk = b"m" * (60 * 1024)
        c.send_frame(OP_BINARY, chunk, fin=False)
        c.send_frame(OP_CONT, chunk, fin=False)
        expect_no_frame(c, 0.2)           # 120 KiB: still under 128 KiB
        c.send_frame(OP_CONT, chunk, fin=False)     # 180 KiB: over
        self.finish(c, 1009, timeout=2)

    def test_message_at_limit_via_fragments_ok(self):
        c = self.client("/small")
        part = b"k" * (32 * 1024)
        for i in range(4):
            c.send_frame(OP_CONT if i else OP_TEXT, part, fin=(i == 3))
        self.assertEqual(c.recv_message(timeout=5), (OP_TEXT, part * 4))


class AppCloses(CloseBase):
    def app_close(self, command, code, reason=None):
        c = self.client("/probe")
        c.send_text(command)
        got = self.finish(c, code, reason=reason)
        self.assertEqual(c.skipped, [])
        return got

    def test_close_4000_bye(self):
        self.app_close("close 4000 bye", 4000, b"bye")

    def test_close_codes_valid_for_apps(self):
        for code in (1000, 1001, 1003, 1007, 1008, 1013, 1014, 3000, 4999):
            with self.subTest(code=code):
                self.app_close("close %d r" % code, code, b"r")

    def test_close_without_reason(self):
        self.app_close("close 4001", 4001, b"")

    def test_close_codes_invalid_for_apps_1011(self):
        for code in (1005, 1006, 1004, 1015, 1016, 2999, 5000, 0, 999):
            with self.subTest(code=code):
                self.app_close("close %d x" % code, 1011)

    def test_close_reason_123_ok_124_1011(self):
        self.app_close("close 4002 " + "r" * 123, 4002, b"r" * 123)
        self.app_close("close 4002 " + "r" * 124, 1011)

    def test_close_reason_utf8(self):
        self.app_close("close 4003 \u00e9t\u00e9", 4003,
                       "\u00e9t\u00e9".encode())

    def test_stop_1000(self):
        self.app_close("stop", 1000)

    def test_restart_1012(self):
        self.app_close("restart", 1012)

    def test_error_1011(self):
        self.app_close("error", 1011)

    def test_garbage_return_1011(self):
        self.app_close("garbage", 1011)

    def test_pushes_before_stop_come_first(self):
        c = self.client("/probe")
        c.send_raw(build_frame(OP_TEXT, b"echo one") +
                   build_frame(OP_TEXT, b"push 3 100") +
                   build_frame(OP_TEXT, b"stop") +
                   build_frame(OP_TEXT, b"echo never"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"one"))
        for _ in range(3):
            self.assertEqual(c.recv_message(), (OP_BINARY, b"x" * 100))
        self.finish(c, 1000)
        self.assertEqual(c.skipped, [], "a message was handled after stop")

    def test_data_after_server_close_ignored(self):
        c = self.client("/probe")
        c.send_text("stop")
        c.expect_close(1000)
        c.send_text("echo late")
        c.send_close(1000)
        data = c.expect_tcp_close(timeout=3)
        self.assertEqual(data, b"", "server sent bytes after its close")

    def test_close_timeout_when_client_never_answers(self):
        c = self.client("/probe")
        c.send_text("stop")
        c.expect_close(1000)
        t0 = time.monotonic()
        c.expect_tcp_close(timeout=CLOSE_TIMEOUT + 3)
        took = time.monotonic() - t0
        self.assertLess(took, CLOSE_TIMEOUT + 1.0,
                        "TCP still open %.2f s after the close frame with "
                        "close_timeout = 1s" % took)


class Timeouts(CloseBase):
    def test_idle_timeout_1000(self):
        c = self.client("/idle")
        t0 = time.monotonic()
        got = c.expect_close(1000, timeout=4)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.8)
        self.assertLess(took, 2.0)
        self.assertEqual(c.skipped, [])
        c.send_close(got[0])
        c.expect_tcp_close(timeout=3)

    def test_idle_timeout_reset_by_inbound(self):
        c = self.client("/idle")
        t0 = time.monotonic()
        for i in range(4):
            time.sleep(0.5)
            self.assertEqual(c.command("echo %d" % i, timeout=1), str(i))
        last = time.monotonic()
        self.assertGreater(last - t0, 1.9)   # open well past idle_timeout
        c.expect_close(1000, timeout=4)
        took = time.monotonic() - last
        self.assertGreaterEqual(took, 0.8)
        self.assertLess(took, 2.0)

    def test_idle_timeout_not_reset_by_pushes(self):
        c = self.client("/idle")
        c.send_raw(build_frame(OP_TEXT, b"after 300 a") +
                   build_frame(OP_TEXT, b"after 600 b") +
                   build_frame(OP_TEXT, b"after 900 c"))
        t0 = time.monotonic()
        got = c.expect_close(1000, timeout=4)
        took = time.monotonic() - t0
        self.assertEqual([f.payload for f in c.skipped],
                         [b"timer:a", b"timer:b", b"timer:c"])
        self.assertLess(took, 2.0, "server pushes kept the idle timer "
                        "alive (%.2f s)" % took)
        self.assertGreaterEqual(took, 0.8)
        c.send_close(got[0])
        c.expect_tcp_close(timeout=3)

    def test_idle_timeout_after_500_push(self):
        c = self.client("/idle")
        c.send_text("after 500 x")
        t0 = time.monotonic()
        c.expect_close(1000, timeout=4)
        took = time.monotonic() - t0
        self.assertEqual([f.payload for f in c.skipped], [b"timer:x"])
        self.assertLess(took, 2.0)

    def test_pong_timeout_closes(self):
        c = self.client("/pingonly")
        t0 = time.monotonic()
        pings = 0
        outcome = None
        while time.monotonic() - t0 < 4:
            try:
                f = c.recv_frame(timeout=max(0.01, 4 - (time.monotonic()
                                                        - t0)))
            except PeerClosed:
                outcome = "tcp"
                break
            if f.opcode == OP_PING:
                pings += 1
                continue
            self.assertEqual(f.opcode, OP_CLOSE, "unexpected frame %r" % (f,))
            code = f.payload[:2]
            self.assertEqual(code, (1000).to_bytes(2, "big"),
                             "pong timeout close payload %r" % f.payload)
            outcome = "close"
            break
        took = time.monotonic() - t0
        self.assertIsNotNone(outcome, "not closed within 4 s although pings "
                             "go unanswered (pings seen: %d)" % pings)
        self.assertGreaterEqual(pings, 1, "closed without pinging")
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 2.0, "pong timeout took %.2f s" % took)
        if outcome == "close":
            c.expect_tcp_close(timeout=CLOSE_TIMEOUT + 2)

    def test_raw_client_answering_pings_stays_open(self):
        c = self.client("/ping")
        t0 = time.monotonic()
        pings = 0
        while time.monotonic() - t0 < 2.5:
            try:
                f = c.recv_frame(timeout=max(0.01, 2.5 - (time.monotonic()
                                                          - t0)))
            except AssertionError as e:
                if "timed out" in str(e):
                    break
                raise
            self.assertEqual(f.opcode, OP_PING, "unexpected frame %r" % (f,))
            pings += 1
            c.send_frame(OP_PONG, f.payload)
        self.assertGreaterEqual(pings, 4, "ping_interval = 300ms")
        self.assertEqual(self._echo(c, b"alive"), b"alive")

    def _echo(self, c, data):
        c.send_frame(OP_TEXT, data)
        while True:
            f = c.recv_frame(timeout=2)
            if f.opcode == OP_PING:
                c.send_frame(OP_PONG, f.payload)
                continue
            self.assertEqual(f.opcode, OP_TEXT)
            return f.payload

    def test_websockets_client_stays_open_with_pings(self):
        try:
            import websockets
        except ImportError:
            self.fail("python3-websockets is not installed "
                      "(apt-get install python3-websockets)")

        async def run():
            async with websockets.connect(self.server.url("/ping"),
                                          ping_interval=None,
                                          open_timeout=5,
                                          close_timeout=2) as ws:
                await asyncio.sleep(2.5)
                await asyncio.wait_for(ws.send("still open"), 2)
                return await asyncio.wait_for(ws.recv(), 2)

        self.assertEqual(asyncio.run(asyncio.wait_for(run(), 15)),
                         "still open")


class ServerStop(SockdTestCase):
    def test_sigterm_sends_1001_and_exits_0(self):
        srv = self.start_server()
        clients = [self.client("/echo", server=srv) for _ in range(3)]
        p = self.client("/probe", server=srv)
        self.assertEqual(p.command("echo up"), "up")
        srv.signal(signal.SIGTERM)
        for c in clients + [p]:
            c.expect_close(1001, timeout=5)
            try:
                c.send_close(1001)
            except OSError:
                pass
            c.expect_tcp_close(timeout=5)
        rc = srv.wait(timeout=8)
        self.assertEqual(rc, 0, "sockd exit status after SIGTERM")


def deflate(data):
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# Until permessage-deflate lands, a server that does not negotiate it on a
# compress = on route skips these (loudly); SOCK_REQUIRE_DEFLATE=1 fails.
REQUIRE_DEFLATE = True  # sockd negotiates permessage-deflate now


class Deflate(SockdTestCase):
    SERVER_KW = dict(extra="[route /z]\napp = echo\ncompress = on\n")

    def zclient(self):
        c = self.raw()
        resp = c.upgrade("/z", headers=[("Sec-WebSocket-Extensions",
                                         "permessage-deflate")])
        ext = resp_header(resp, "Sec-WebSocket-Extensions")
        if ext is None and not REQUIRE_DEFLATE:
            sys.stderr.write("\n!! SKIPPING: sockd does not negotiate "
                             "permessage-deflate yet (set "
                             "SOCK_REQUIRE_DEFLATE=1 to make this fail)\n")
            self.skipTest("permessage-deflate not negotiated")
        self.assertIsNotNone(ext, "compress = on route did not negotiate "
                             "permessage-deflate: %r" % resp.raw)
        self.assertTrue(ext.lower().startswith("permessage-deflate"), ext)
        c.inflater = zlib.decompressobj(-15)
        c.ext = ext
        return c

    def recv_inflated(self, c):
        f = c.recv_frame()
        self.assertTrue(f.fin)
        if f.rsv & 4:
            data = c.inflater.decompress(f.payload + b"\x00\x00\xff\xff")
        else:
            self.assertEqual(f.rsv, 0)
            data = f.payload
        if "server_no_context_takeover" in c.ext:
            c.inflater = zlib.decompressobj(-15)
        return f.opcode, data

    def test_no_extension_on_plain_route(self):
        c = self.raw()
        resp = c.upgrade("/echo", headers=[("Sec-WebSocket-Extensions",
                                            "permessage-deflate")])
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Extensions"))

    def test_compressed_echo(self):
        c = self.zclient()
        for op, msg in ((OP_TEXT, b"hello"), (OP_TEXT, b"hello " * 50),
                        (OP_BINARY, os.urandom(1000)),
                        (OP_BINARY, b"\x00" * 100000)):
            c.send_frame(op, deflate(msg), rsv=4)
            self.assertEqual(self.recv_inflated(c), (op, msg))

    def test_compressed_control_frame_1002(self):
        c = self.zclient()
        c.send_frame(OP_PING, b"", rsv=4)
        c.expect_close(1002)

    def test_rsv1_on_continuation_1002(self):
        c = self.zclient()
        z = deflate(b"fragmented message " * 10)
        c.send_frame(OP_TEXT, z[:10], fin=False, rsv=4)
        c.send_frame(OP_CONT, z[10:], fin=True, rsv=4)
        c.expect_close(1002)

    def test_corrupt_deflate_1007(self):
        c = self.zclient()
        c.send_frame(OP_BINARY, b"\xff\xff\xff\xff\xff\xff", rsv=4)
        c.expect_close(1007)

    def test_inflate_bomb_1009(self):
        c = self.zclient()
        bomb = deflate(b"\x00" * (16 << 20))
        self.assertLess(len(bomb), 64 << 10)
        c.send_frame(OP_BINARY, bomb, rsv=4)
        c.expect_close(1009, timeout=5)


if __name__ == "__main__":
    main()
