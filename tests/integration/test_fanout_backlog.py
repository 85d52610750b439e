#!/usr/bin/python3
"""[server] max_fanout_backlog: a publisher is not read while the fan-out
it caused waits to be written (conn_recv.c conn_fan_pause).

A publish of 2000 bytes to 40 subscribers queues 80 KB. A client can
send a read buffer's worth of such publishes at once. Unbounded, a
worker would queue hundreds of megabytes and fall behind everyone (the
1000-subscriber broadcast at 8000 publishes/s did: 1.2 GB and 4 s
latency). Instead, after a publish that takes the backlog over the limit,
the rest of the publisher's input waits until the worker has written the
backlog down to half. Checked here:
- a flood of publishes, each over the limit alone, is paused after every
  publish (sock_fanout_pauses_total), and every subscriber still gets
  every message, in order; the publisher's own reply comes after them and
  its close handshake completes;
- the backlog gauge (sock_fanout_backlog_bytes) and the input held for
  the paused publisher (sock_partial_bytes) go back to 0;
- a subscriber that does not read does not count: its queue waits for
  its peer, not for the worker, so the publisher is not held for it and
  the others get everything;
- callback subscribers (`sub`) whose handle_info pushes nothing leave no
  backlog behind;
- across 2 workers, a publisher with no subscribers on its own worker:
  the other worker stops reading the bus while its backlog is over
  (sock_fanout_pauses_total there), and its subscribers still get every
  message in order;
- with fanout_interval, the same flood completes (the backlog is
  written at the ticks);
- a publisher on wss:// (decrypted input held inside OpenSSL is fed on
  resume) floods and every subscriber gets every message.
"""

import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import (AdminMaster, conns_on_slots, metrics,  # noqa: E402
                     wait_metric)
from sockdtest import (OP_TEXT, SockdTestCase, build_frame,  # noqa: E402
                       free_port, main)
from mastertest import MasterTestCase, wait_until  # noqa: E402
from tlstest import Pki, TLSWSClient, client_context  # noqa: E402

APORT = free_port()
TLS_PORT = free_port()
LIMIT = 64 * 1024
SIZE = 2000        # bytes per publish: SUBS x SIZE is over LIMIT alone
SUBS = 40
N = 150            # publishes: N x SIZE fits a subscriber's socket buffers


def payload(i):
    head = "%06d:" % i
    return head + "x" * (SIZE - len(head))


def flood(n, topic="t", start=0):
    return b"".join(build_frame(OP_TEXT,
                                ("rpub %s %s" % (topic, payload(i)))
                                .encode())
                    for i in range(start, start + n))


def subscribers(case, n, cmd="subf t", rcvbuf=None, server=None):
    """n /probe connections of case (a SockdTestCase), each sent cmd."""
    subs = []
    for _ in range(n):
        s = case.raw(server=server, rcvbuf=rcvbuf)
        s.upgrade("/probe")
        subs.append(s)
    for s in subs:
        case.assertEqual(s.command(cmd), "ok")
    return subs


def expect_all(case, subs, first, n):
    """Every one of subs gets payload(first) .. payload(first + n - 1)."""
    for k, s in enumerate(subs):
        for i in range(first, first + n):
            case.assertEqual(s.recv_text(timeout=10), payload(i),
                             "subscriber %d, message %d" % (k, i))


def flood_and_check(case, subs, pub):
    """pub floods N publishes and an echo: subs get all, pub its echo."""
    pub.send_raw(flood(N) + build_frame(OP_TEXT, b"echo done"))
    expect_all(case, subs, 0, N)
    case.assertEqual(pub.recv_text(timeout=10), "done")


class FanoutBacklog(SockdTestCase):
    SERVER_KW = dict(server_extra="max_fanout_backlog = 64KiB\n",
                     probe_extra="send_hard_limit = 64MiB\n"
                                 "send_high_watermark = 32MiB\n",
                     extra="[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def metric(self, name):
        return metrics(APORT).get(name, 0)

    def subscribers(self, n, **kw):
        return subscribers(self, n, **kw)

    def expect_all(self, subs, first, n):
        expect_all(self, subs, first, n)

    def settled(self):
        wait_metric(APORT, "sock_fanout_backlog_bytes", lambda v: v == 0, 5)
        wait_metric(APORT, "sock_partial_bytes", lambda v: v == 0, 5)

    def test_flood_paused_per_publish_nothing_lost(self):
        subs = self.subscribers(SUBS, rcvbuf=1 << 20)
        pub = self.client("/probe")
        pauses = self.metric("sock_fanout_pauses_total")
        flood_and_check(self, subs, pub)
        paused = self.metric("sock_fanout_pauses_total") - pauses
        # Every publish takes the backlog over alone; one whose fan-out
        # met a full socket counts less, so allow some slack.
        self.assertGreaterEqual(paused, N // 2)
        self.assertLessEqual(paused, N)
        self.settled()
        pub.send_close(1000)
        pub.expect_close(1000, timeout=5)
        for s in subs:
            s.send_close(1000)
            s.expect_close(1000, timeout=5)

    def test_a_paused_publisher_still_closes(self):
        subs = self.subscribers(SUBS, rcvbuf=1 << 20)
        pub = self.client("/probe")
        pub.send_raw(flood(N) + build_frame(OP_TEXT, b"close 4001 bye"))
        pub.expect_close(4001, timeout=10)
        self.expect_all(subs, 0, N)
        self.settled()

    def test_the_clients_close_after_a_flood(self):
        # The close frame waits behind the publishes, in the kept input.
        subs = self.subscribers(SUBS, rcvbuf=1 << 20)
        pub = self.client("/probe")
        pub.send_raw(flood(N) + build_frame(0x8, b"\x03\xe8"))
        pub.expect_close(1000, timeout=10)
        pub.expect_tcp_close(timeout=5)
        self.expect_all(subs, 0, N)
        self.settled()

    def test_a_subscriber_that_does_not_read_holds_nobody(self):
        stuck = self.subscribers(1, rcvbuf=4096)[0]
        subs = self.subscribers(4)
        pub = self.client("/probe")
        # 40 x 2000 bytes per round: past the stuck one's socket buffers
        # within the first rounds, and 600 KB in all, which it must hold
        # (send_hard_limit 64 MiB) while the others get everything.
        for r in range(10):
            pub.send_raw(flood(30, start=30 * r))
            self.expect_all(subs, 30 * r, 30)
        pub.send_text("echo done")
        self.assertEqual(pub.recv_text(timeout=10), "done")
        self.settled()
        self.assertFalse(stuck.is_closed_now())
        self.assertEqual(stuck.recv_text(timeout=10), payload(0))

    def test_callback_subscribers_that_push_nothing(self):
        subs = self.subscribers(SUBS, cmd="sub q")
        pub = self.client("/probe")
        self.assertEqual(pub.command("pubn q 1000", timeout=10), "sent:1000")
        for s in subs:  # infos arrive from the idle watcher, in batches
            wait_until(lambda: s.command("count", timeout=10).split(":")[:4]
                       == ["count", "1000", "0", "0"], 10,
                       what="1000 infos in order")
        self.settled()


class FanoutBacklogHeld(SockdTestCase):
    """With fanout_interval the backlog waits for the tick: the paused
    publisher resumes after it, and nothing stalls."""
    SERVER_KW = dict(server_extra="max_fanout_backlog = 64KiB\n"
                                  "fanout_interval = 20ms\n",
                     probe_extra="send_hard_limit = 64MiB\n"
                                 "send_high_watermark = 32MiB\n")

    def test_flood_with_interval(self):
        subs = subscribers(self, SUBS, rcvbuf=1 << 20)
        flood_and_check(self, subs, self.client("/probe"))


class FanoutBacklogBus(MasterTestCase):
    def test_other_worker_pauses_the_bus(self):
        srv = AdminMaster(workers=2,
                          server_extra="max_fanout_backlog = 64KiB\n",
                          probe_extra="send_hard_limit = 64MiB\n"
                                      "send_high_watermark = 32MiB\n")
        self._servers.append(srv)
        self.addCleanup(srv.stop)
        srv.start()
        on = conns_on_slots(srv.port, {0: 1, 1: SUBS})
        for cs in on.values():
            for c in cs:
                self.addCleanup(c.close)
        subs = [c.ws for c in on[1]]
        pub = on[0][0].ws
        for s in subs:
            self.assertEqual(s.command("subf t"), "ok")
        time.sleep(0.2)  # subscriptions are local: nothing to wait for
        before = metrics(srv.aport).get("sock_fanout_pauses_total", 0)
        pub.send_raw(flood(N) + build_frame(OP_TEXT, b"echo done"))
        self.assertEqual(pub.recv_text(timeout=10), "done")
        for k, s in enumerate(subs):
            for i in range(N):
                self.assertEqual(s.recv_text(timeout=10), payload(i),
                                 "subscriber %d, message %d" % (k, i))
        m = metrics(srv.aport)
        self.assertGreater(m.get("sock_fanout_pauses_total", 0), before)
        self.assertEqual(m.get("sock_infos_dropped_total", 0), 0)
        wait_metric(srv.aport, "sock_fanout_backlog_bytes",
                    lambda v: v == 0, 5)


class FanoutBacklogTLS(SockdTestCase):
    """The pause over TLS: OpenSSL may hold decrypted input the socket no
    longer shows (read-ahead), which must be fed on resume."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki_dir = tempfile.TemporaryDirectory(prefix="sockfan-")
        cls.pki = Pki(cls.pki_dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.pki_dir.cleanup()
        super().tearDownClass()

    def test_tls_flood(self):
        srv = self.start_server(
            server_extra="max_fanout_backlog = 64KiB\n",
            probe_extra="send_hard_limit = 64MiB\n"
                        "send_high_watermark = 32MiB\n",
            extra="[listen 127.0.0.1:%d]\ntls_certificate = %s\n"
                  "tls_key = %s\n" % (TLS_PORT, self.pki.cert_a,
                                      self.pki.key_a))
        subs = subscribers(self, SUBS, rcvbuf=1 << 20, server=srv)
        pub = TLSWSClient(TLS_PORT, client_context(self.pki.ca))
        self._clients.append(pub)
        pub.upgrade("/probe")
        flood_and_check(self, subs, pub)


if __name__ == "__main__":
    main()
