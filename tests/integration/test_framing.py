#!/usr/bin/python3
"""RFC 6455 §5 framing against a real sockd, with a raw client.

Assumptions:
- The echo app answers each message with one unfragmented frame of the same
  opcode and payload; the server writes lengths in the shortest form (§7)
  and never masks.
- The server answers a ping before it reads on, so a pong for a ping sent
  between fragments comes before the echo of the message.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (OP_BINARY, OP_CONT, OP_PING, OP_PONG,  # noqa: E402
                       OP_TEXT, SockdTestCase, build_frame, main)

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]


def text_of(n):
    """n bytes of valid UTF-8 (ASCII with a few 2-byte characters)."""
    unit = "abcdefghij\u00e9"          # 12 bytes
    s = (unit * (n // 12 + 1)).encode("utf-8")
    s = s[:n]
    while True:          # do not end inside a character
        try:
            s.decode("utf-8")
            return s
        except UnicodeDecodeError:
            s = s[:-1] + b"z"


def binary_of(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(min(n, 4096))) * \
        (n // 4096 + 1) if n else b""


def shortest_form(n):
    return 7 if n < 126 else 16 if n < 65536 else 64


class Framing(SockdTestCase):
    SERVER_KW = dict()

    def echo_once(self, c, opcode, payload, length_form=None):
        c.send_frame(opcode, payload, length_form=length_form)
        f = c.recv_frame(timeout=10)
        self.assertEqual(f.opcode, opcode)
        self.assertTrue(f.fin, "echo came fragmented")
        self.assertEqual(f.rsv, 0)
        self.assertEqual(len(f.payload), len(payload))
        self.assertTrue(f.payload == payload, "payload differs")
        self.assertEqual(f.length_form, shortest_form(len(payload)),
                         "server used a non-minimal length form")

    def test_echo_sizes_text_and_binary(self):
        c = self.client("/echo")
        for n in SIZES:
            with self.subTest(n=n, op="text"):
                self.echo_once(c, OP_TEXT, text_of(n))
            with self.subTest(n=n, op="binary"):
                self.echo_once(c, OP_BINARY, binary_of(n)[:n])

    def test_echo_non_minimal_length_forms(self):
        c = self.client("/echo")
        for n in SIZES:
            forms = [64] if n >= 65536 else [16, 64]
            for form in forms:
                with self.subTest(n=n, form=form):
                    self.echo_once(c, OP_BINARY, binary_of(n)[:n],
                                   length_form=form)
                    self.echo_once(c, OP_TEXT, text_of(n), length_form=form)

    def test_one_byte_at_a_time(self):
        c = self.client("/echo")
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = [(OP_TEXT, text_of(5)), (OP_BINARY, binary_of(200)[:200]),
                  (OP_TEXT, "\u20ac\U0001d11e".encode())]
        data = b"".join(build_frame(op, p) for op, p in frames)
        t0 = time.monotonic()
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            time.sleep(0.001)
            self.assertLess(time.monotonic() - t0, 20)
        for op, p in frames:
            self.assertEqual(c.recv_message(), (op, p))

    def test_handshake_and_frame_one_byte_at_a_time(self):
        c = self.raw()
        data = c.request("/echo") + build_frame(OP_TEXT, b"slow")
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            time.sleep(0.0005)
        resp = c.read_response()
        self.assertEqual(resp.status, 101)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"slow"))

    def test_fragmented_text_three_parts(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"Hel", fin=False)
        c.send_frame(OP_CONT, b"lo, ", fin=False)
        c.send_frame(OP_CONT, b"world", fin=True)
        f = c.recv_frame()
        self.assertEqual((f.fin, f.opcode, f.payload),
                         (True, OP_TEXT, b"Hello, world"))

    def test_fragmented_binary_with_empty_fragments(self):
        c = self.client("/echo")
        c.send_frame(OP_BINARY, b"", fin=False)
        c.send_frame(OP_CONT, b"\x00\xff", fin=False)
        c.send_frame(OP_CONT, b"", fin=False)
        c.send_frame(OP_CONT, b"\x01", fin=True)
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00\xff\x01"))

    def test_ping_pong_payload(self):
        c = self.client("/echo")
        for payload in (b"", b"abc", os.urandom(125)):
            with self.subTest(n=len(payload)):
                c.send_frame(OP_PING, payload)
                f = c.recv_frame()
                self.assertEqual((f.fin, f.opcode, f.payload),
                                 (True, OP_PONG, payload))

    def test_ping_between_fragments(self):
        c = self.client("/echo")
        c.send_frame(OP_TEXT, b"frag1-", fin=False)
        c.send_frame(OP_PING, b"mid")
        c.send_frame(OP_CONT, b"frag2", fin=True)
        f1 = c.recv_frame()
        self.assertEqual((f1.opcode, f1.payload), (OP_PONG, b"mid"),
                         "pong must come before the reassembled echo")
        f2 = c.recv_frame()
        self.assertEqual((f2.fin, f2.opcode, f2.payload),
                         (True, OP_TEXT, b"frag1-frag2"))

    def test_ping_between_fragments_answered_at_once(self):
        # The pong must not wait for the message to complete.
        c = self.client("/echo")
        c.send_frame(OP_BINARY, b"part", fin=False)
        c.send_frame(OP_PING, b"now")
        f = c.recv_frame(timeout=3)
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"now"))
        c.send_frame(OP_CONT, b"-end", fin=True)
        self.assertEqual(c.recv_message(), (OP_BINARY, b"part-end"))

    def test_many_frames_in_one_send(self):
        c = self.client("/echo")
        msgs = [(OP_TEXT if i % 2 else OP_BINARY, b"m%03d" % i)
                for i in range(100)]
        data = b"".join(build_frame(op, p) for op, p in msgs)
        data += build_frame(OP_PING, b"tail")
        c.send_raw(data)
        for op, p in msgs:
            self.assertEqual(c.recv_message(), (op, p))
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"tail"))

    def test_unsolicited_pong_ignored(self):
        c = self.client("/echo")
        c.send_frame(OP_PONG, b"unsolicited")
        c.send_frame(OP_PONG, b"")
        c.send_frame(OP_TEXT, b"after pong")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"after pong"))

    def test_probe_handle_control_sees_ping(self):
        c = self.client("/probe")
        c.send_frame(OP_PING, b"count")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"count"),
                         "the pong is queued before handle_control runs")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"ping-seen"))
        # Other pings do not push anything.
        c.send_frame(OP_PING, b"other")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"other"))
        self.assertEqual(c.command("echo x"), "x")

    def test_probe_binary_echo_and_commands(self):
        c = self.client("/probe")
        c.send_frame(OP_BINARY, b"\x00bin\xff")
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00bin\xff"))
        self.assertEqual(c.command("echo hello world"), "hello world")
        self.assertEqual(c.command("no-such-command"), "unknown")
        self.assertEqual(c.command("writable"), "1")

    def test_probe_push_many(self):
        c = self.client("/probe")
        c.send_text("push 50 1000")
        for _ in range(50):
            self.assertEqual(c.recv_message(), (OP_BINARY, b"x" * 1000))
        self.assertEqual(c.command("echo done"), "done")


if __name__ == "__main__":
    main()
