#!/usr/bin/python3
"""[server] max_deflate_memory: permessage-deflate with context takeover
keeps about 300 KB of zlib state per connection for its whole life (the
compressor's window and hash chains, the decompressor's window), so
clients that each open a compressing connection and exchange one message
could make a worker hold that times their number. Over the budget, new
connections agree to no context takeover both ways (RFC 7692 §7.1.1.1
and §7.1.1.2 let the server ask it): the server compresses with the
worker's shared stream and whole messages inflate with the pool's, so
they hold none of their own. Checked, with max_deflate_memory = 1MiB:
- the first connections get plain "permessage-deflate" and their state
  shows in sock_deflate_memory_bytes; once that is over the budget, the
  next responses carry server_no_context_takeover and
  client_no_context_takeover, counted in sock_deflate_no_takeover_total;
- every connection, either way, round-trips a compressed message exactly;
- a lean connection given a message in fragments keeps no stream after it;
- the gauge stops growing past the budget plus one connection's streams
  and the worker's shared ones.
"""

import os
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from sockdtest import (OP_TEXT, SockdTestCase, build_frame,  # noqa: E402
                       free_port, main, resp_header)

APORT = free_port()
BUDGET = 1 << 20
PER_CONN = 400 * 1024   # over one connection's streams (~300 KB)


def deflate(data):
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data):
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


class DeflateBudget(SockdTestCase):
    SERVER_KW = dict(server_extra="max_deflate_memory = 1MiB\n",
                     extra="[route /z]\napp = echo\ncompress = on\n"
                           "[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def metric(self, name):
        return metrics(APORT).get(name, 0)

    def test_budget_turns_off_takeover(self):
        before = self.metric("sock_deflate_no_takeover_total")
        lean, full = 0, 0
        for i in range(10):
            c = self.raw()
            resp = c.upgrade("/z", headers=[("Sec-WebSocket-Extensions",
                                             "permessage-deflate")])
            ext = resp_header(resp, "Sec-WebSocket-Extensions")
            self.assertTrue(ext.startswith("permessage-deflate"), ext)
            takeover_off = ("server_no_context_takeover" in ext and
                            "client_no_context_takeover" in ext)
            if takeover_off:
                lean += 1
            else:
                self.assertNotIn("no_context_takeover", ext)
                full += 1
            msg = ("message %d " % i + "abcdefgh" * 60).encode()
            c.send_raw(build_frame(OP_TEXT, deflate(msg), rsv=4))
            f = c.recv_frame(timeout=5)
            self.assertEqual(f.opcode, OP_TEXT)
            self.assertEqual(f.rsv, 4, "the echo is compressed")
            self.assertEqual(inflate(f.payload), msg)
            # The budget, the last connection let in under it, and the
            # worker's shared streams (made once, at the first lean one).
            mem = self.metric("sock_deflate_memory_bytes")
            self.assertLessEqual(mem, BUDGET + 2 * PER_CONN)
        self.assertGreaterEqual(full, 2)   # under the budget at first
        self.assertGreaterEqual(lean, 3)   # then over it
        self.assertEqual(self.metric("sock_deflate_no_takeover_total"),
                         before + lean)

    def test_lean_fragmented_messages_keep_nothing(self):
        # A message in fragments needs a stream of its own while it lasts;
        # on a lean connection it is given back at the end. 6 of them
        # kept would be ~240 KB.
        conns = []
        for _ in range(16):   # past the budget whatever the order of tests
            c = self.raw()
            resp = c.upgrade("/z", headers=[("Sec-WebSocket-Extensions",
                                             "permessage-deflate")])
            conns.append((c, resp_header(resp, "Sec-WebSocket-Extensions")))
            c.send_raw(build_frame(OP_TEXT, deflate(b"x" * 300), rsv=4))
            c.recv_frame(timeout=5)
        lean = [c for c, ext in conns if "client_no_context_takeover" in ext]
        self.assertGreaterEqual(len(lean), 6)
        mem = self.metric("sock_deflate_memory_bytes")
        for i, c in enumerate(lean[:6]):
            msg = ("fragmented %d " % i + "xyz" * 100).encode()
            body = deflate(msg)
            c.send_raw(build_frame(OP_TEXT, body[:7], fin=False, rsv=4) +
                       build_frame(0x0, body[7:]))
            f = c.recv_frame(timeout=5)
            self.assertEqual((f.opcode, f.rsv), (OP_TEXT, 4))
            self.assertEqual(inflate(f.payload), msg)
        self.assertLessEqual(self.metric("sock_deflate_memory_bytes"),
                             mem + 16 * 1024)


if __name__ == "__main__":
    main()
