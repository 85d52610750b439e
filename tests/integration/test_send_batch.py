#!/usr/bin/python3
"""[server] io_uring: a flush's writes made together, and without it.

Before each poll a worker writes every connection with output queued.
With io_uring = on (the default) those writes go to the kernel in one
io_uring_enter, each a nonblocking send whose result the worker takes
exactly as it takes send(2)'s; with off, one send(2) each. Both must give
every client every byte in order, whatever the sockets take: all, part
(a short write) or nothing (-EAGAIN). The same checks run against both:
- 120 clients pipelining echoes of mixed sizes, replies checked byte for
  byte;
- a client that does not read while its echoes pile up (short writes,
  then a full socket), next to one that does and is answered at once,
  then reads everything;
- 80 callback subscribers and 40 frame-mode ones, 150 publishes each in
  order;
- a client that closes with its queue unwritten: nobody else is hurt;
- the metrics: with on, sock_send_batches_total and
  sock_sends_batched_total count (unless the kernel refused io_uring,
  which the log then says); with off, both stay 0.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from sockdtest import (OP_BINARY, SockdTestCase,  # noqa: E402
                       build_frame, free_port, main)


def payload(i, n):
    """n bytes that differ per message i."""
    seed = ("%d:" % i).encode()
    return (seed * (n // len(seed) + 1))[:n]


class BatchChecks:
    """The checks; a subclass picks [server] io_uring."""
    APORT = None

    def metric(self, name):
        return metrics(self.APORT).get(name, 0)

    def test_1_pipelined_echo(self):
        clients = [self.raw() for _ in range(120)]
        for c in clients:
            c.upgrade("/echo")
        sizes = [1, 125, 126, 1000, 65535, 65536, 70000]
        sent = {}
        for k, c in enumerate(clients):
            msgs = [payload(k * 100 + j, sizes[(k + j) % len(sizes)]
                            if k % 10 == 0 else 20 + j)
                    for j in range(12)]
            sent[k] = msgs
            c.send_raw(b"".join(build_frame(OP_BINARY, m) for m in msgs))
        for k, c in enumerate(clients):
            for j, m in enumerate(sent[k]):
                op, data = c.recv_message(timeout=20)
                self.assertEqual(op, OP_BINARY)
                self.assertEqual(data, m, "client %d message %d" % (k, j))

    def test_2_reader_beside_nonreader(self):
        slow = self.raw(rcvbuf=4096)
        slow.upgrade("/probe")
        fast = self.client("/echo")
        n, size = 150, 65536
        slow.send_text("push %d %d" % (n, size))
        slow.send_text("echo end")
        # 9.8 MB against a 4 KiB window: the kernel takes a few MB, the
        # rest waits in the worker (short writes, then a full socket).
        deadline = time.monotonic() + 5
        while (self.metric("sock_send_queue_bytes") < (1 << 20) and
               time.monotonic() < deadline):
            time.sleep(0.02)
        self.assertGreater(self.metric("sock_send_queue_bytes"), 1 << 20)
        for j in range(20):
            t0 = time.monotonic()
            self.assertEqual(fast.command("ping %d" % j, timeout=5),
                             "ping %d" % j)
            self.assertLess(time.monotonic() - t0, 1.0)
        for j in range(n):
            self.assertEqual(slow.recv_message(timeout=20),
                             (OP_BINARY, b"x" * size), "message %d" % j)
        self.assertEqual(slow.recv_text(timeout=5), "end")
        self.assertEqual(fast.command("after", timeout=5), "after")

    def test_3_fanout_in_order(self):
        subs = []
        for k in range(120):
            c = self.client("/probe")
            self.assertEqual(c.command("subf t" if k % 3 == 0 else "sub t"),
                             "ok")
            subs.append(c)
        pub = self.client("/probe")
        n = 150
        for i in range(n):
            pub.send_text("rpub t m%04d" % i)
        for k, c in enumerate(subs):
            for i in range(n):
                self.assertEqual(c.recv_text(timeout=20), "m%04d" % i,
                                 "subscriber %d" % k)

    def test_4_close_with_queue(self):
        quitters = []
        for _ in range(10):
            c = self.raw(rcvbuf=4096)
            c.upgrade("/echo")
            c.send_raw(b"".join(build_frame(OP_BINARY, payload(j, 100000))
                                for j in range(10)))
            quitters.append(c)
        time.sleep(0.2)
        for c in quitters:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.sock.close()
        other = self.client("/echo")
        for j in range(50):
            self.assertEqual(other.command("x%d" % j, timeout=5), "x%d" % j)

        def drained():
            return self.metric("sock_send_queue_bytes") == 0
        deadline = time.monotonic() + 10
        while not drained() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(drained(), "queues of closed clients still held")

    def test_5_metrics(self):
        c = self.client("/echo")
        for j in range(30):
            self.assertEqual(c.command("m%d" % j), "m%d" % j)
        batches = self.metric("sock_send_batches_total")
        sends = self.metric("sock_sends_batched_total")
        self.check_metrics(batches, sends)


class BatchOn(BatchChecks, SockdTestCase):
    APORT = free_port()
    SERVER_KW = dict(extra="[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def check_metrics(self, batches, sends):
        if "event=io_uring_unavailable" in self.server.log():
            print("io_uring refused here: the batch path is not tested",
                  file=sys.stderr)
            self.assertEqual((batches, sends), (0, 0))
            return
        self.assertGreater(batches, 0)
        # Every batch made at least one write; the tests above made many
        # with more than one.
        self.assertGreater(sends, batches)


class BatchOff(BatchChecks, SockdTestCase):
    APORT = free_port()
    SERVER_KW = dict(server_extra="io_uring = off\n",
                     extra="[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def check_metrics(self, batches, sends):
        self.assertEqual((batches, sends), (0, 0))
        self.assertNotIn("io_uring_unavailable", self.server.log())


if __name__ == "__main__":
    main()
