#!/usr/bin/python3
"""[server] max_send_bytes: all of a worker's send queues together are
bounded, not only each one (send_hard_limit).

Clients that do not read can each make the worker queue up to their
send_hard_limit: by echo requests, or, far cheaper, as subscribers of a
topic someone publishes to (a 64-byte publish is queued once per
subscriber). Many such clients would add up without end. Over
max_send_bytes the connection holding the most loses its queue and is
closed. The kernel's socket buffers take megabytes before anything waits
in the worker, so each client here sends several. Checked, with
max_send_bytes = 1 MiB and send_hard_limit = 512 KiB:
- 6 echo clients that send and never read: the worker's queued bytes
  (sock_send_queue_bytes) stay within the budget (plus the frame being
  queued) at every sample, connections are closed for it
  (sock_send_budget_closes_total), and a client that reads gets every
  echo;
- 6 subscribers that never read and one that does: the reader gets
  every publish in order, the publisher is not held up, and the
  non-readers are closed, by the budget or their own limit.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from sockdtest import (OP_BINARY, OP_TEXT, SockdTestCase,  # noqa: E402
                       build_frame, free_port, main)

APORT = free_port()
BUDGET = 1 << 20
FRAME = 64 * 1024


class Sampler:
    """The largest sock_send_queue_bytes seen while it runs."""

    def __init__(self):
        self.peak = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                v = metrics(APORT, timeout=2).get("sock_send_queue_bytes", 0)
                self.peak = max(self.peak, v)
            except (OSError, AssertionError):
                pass
            time.sleep(0.02)

    def done(self):
        self.stop.set()
        self.t.join(5)
        return self.peak


class SendBudget(SockdTestCase):
    SERVER_KW = dict(server_extra="max_send_bytes = 1MiB\n",
                     echo_extra="send_hard_limit = 512KiB\n"
                                "send_high_watermark = 256KiB\n",
                     probe_extra="send_hard_limit = 512KiB\n"
                                 "send_high_watermark = 256KiB\n",
                     extra="[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def metric(self, name):
        return metrics(APORT).get(name, 0)

    def silent(self, n, path):
        out = []
        for _ in range(n):
            c = self.raw(rcvbuf=4096)
            c.upgrade(path)
            out.append(c)
        return out

    def test_echo_clients_that_do_not_read(self):
        closes = self.metric("sock_send_budget_closes_total")
        hogs = self.silent(6, "/echo")
        good = self.client("/echo")
        sampler = Sampler()
        frame = build_frame(OP_BINARY, b"e" * FRAME)
        live = set(range(len(hogs)))
        try:
            for r in range(160):         # 10 MiB per client at most
                for i in sorted(live):
                    try:
                        hogs[i].send_raw(frame, timeout=2)
                    except (OSError, AssertionError):
                        live.discard(i)  # closed by the server
                good.send_text("round %d" % r)
                self.assertEqual(good.recv_text(timeout=10), "round %d" % r)
                if not live:
                    break
        finally:
            peak = sampler.done()
        self.assertLessEqual(peak, BUDGET + FRAME + 64)
        self.assertGreater(self.metric("sock_send_budget_closes_total"),
                           closes)
        self.assertLessEqual(self.metric("sock_send_queue_bytes"), BUDGET)
        self.assertIn("event=send_budget_close", self.server.log())

    def test_subscribers_that_do_not_read(self):
        hogs = self.silent(6, "/probe")
        for h in hogs:
            h.send_text("subf t")
        reader = self.client("/probe")
        self.assertEqual(reader.command("subf t"), "ok")
        pub = self.client("/probe")
        time.sleep(0.2)  # the silent ones' "subf" handled
        sampler = Sampler()
        body = "p" * 8000
        try:
            for i in range(1000):        # 8 MB to each subscriber
                pub.send_text("rpub t %05d%s" % (i, body))
                self.assertEqual(reader.recv_text(timeout=10),
                                 "%05d%s" % (i, body), "message %d" % i)
        finally:
            peak = sampler.done()
        self.assertLessEqual(peak, BUDGET + 8100)
        self.assertEqual(pub.command("echo done"), "done")
        for h in hogs:
            h.expect_tcp_close(timeout=10)
        self.assertIn("event=send_budget_close", self.server.log())


if __name__ == "__main__":
    main()
