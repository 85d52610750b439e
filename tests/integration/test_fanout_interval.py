#!/usr/bin/python3
"""[server] fanout_interval: fan-out coalescing (worker.c
worker_fanout_later), through the probe app.

With an interval set, the first publish after a quiet interval reaches
its subscribers at once; publishes that follow within the interval are
held and leave together at the next tick, for frame-mode subscribers
(`subf`) and callback subscribers (`sub`, whose handle_info pushes) alike.
Any other output of a connection (an echo reply, a close) does not wait:
it leaves at once and takes the held frames with it, in order.
Publishes spaced wider than the interval are never delayed. Without the
key, nothing is held.
"""

import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import metrics  # noqa: E402
from sockdtest import (BUILD_DIR, OP_TEXT, SockdTestCase,  # noqa: E402
                       build_frame, expect_no_frame, free_port, main)

APORT = free_port()
WSLOAD = os.path.join(BUILD_DIR, "wsload")

INTERVAL = 0.6   # the configured fanout_interval
PROMPT = 0.25    # "at once": well under the interval


class FanoutInterval(SockdTestCase):
    SERVER_KW = dict(server_extra="fanout_interval = 600ms\n")

    def subscribers(self):
        ft, cb, pub = (self.client("/probe") for _ in range(3))
        self.assertEqual(ft.command("subf t"), "ok")
        self.assertEqual(cb.command("sub t"), "ok")
        # Let any interval opened by an earlier test run out.
        time.sleep(INTERVAL + 0.1)
        return ft, cb, pub

    def test_first_at_once_then_held_until_the_tick(self):
        ft, cb, pub = self.subscribers()
        t0 = time.monotonic()
        pub.send_text("pub t one")
        self.assertEqual(ft.recv_text(PROMPT), "one")
        self.assertEqual(cb.recv_text(PROMPT), "topic:t:one")
        pub.send_text("pub t two")
        pub.send_text("pub t three")
        # Held: nothing before the tick (INTERVAL after "one" left).
        expect_no_frame(ft, 0.3)
        expect_no_frame(cb, 0.01)
        self.assertEqual(ft.recv_text(2), "two")
        t_two = time.monotonic() - t0
        self.assertEqual(ft.recv_text(PROMPT), "three")
        self.assertEqual(cb.recv_text(PROMPT), "topic:t:two")
        self.assertEqual(cb.recv_text(PROMPT), "topic:t:three")
        self.assertGreaterEqual(t_two, INTERVAL - 0.1)
        self.assertLess(t_two, INTERVAL + 0.5)
        for c in (ft, cb, pub):
            expect_no_frame(c, 0.1)

    def test_a_reply_takes_the_held_frames_along(self):
        ft, cb, pub = self.subscribers()
        pub.send_text("pub t one")
        self.assertEqual(ft.recv_text(PROMPT), "one")
        self.assertEqual(cb.recv_text(PROMPT), "topic:t:one")
        pub.send_text("pub t two")
        expect_no_frame(ft, 0.1)
        t = time.monotonic()
        ft.send_text("echo now")
        cb.send_text("echo now")
        self.assertEqual(ft.recv_text(PROMPT), "two")
        self.assertEqual(ft.recv_text(PROMPT), "now")
        self.assertEqual(cb.recv_text(PROMPT), "topic:t:two")
        self.assertEqual(cb.recv_text(PROMPT), "now")
        self.assertLess(time.monotonic() - t, PROMPT)

    def test_a_close_is_not_held(self):
        ft, cb, pub = self.subscribers()
        pub.send_text("pub t one")
        self.assertEqual(ft.recv_text(PROMPT), "one")
        pub.send_text("pub t two")
        expect_no_frame(ft, 0.1)
        ft.send_text("close 4001 bye")
        self.assertEqual(ft.recv_text(PROMPT), "two")
        f = ft.recv_frame(PROMPT)
        self.assertEqual(f.opcode, 8)
        self.assertEqual(f.payload, b"\x0f\xa1bye")

    def test_spaced_publishes_are_not_delayed(self):
        ft, cb, pub = self.subscribers()
        for i in range(3):
            pub.send_text("pub t n%d" % i)
            self.assertEqual(ft.recv_text(PROMPT), "n%d" % i)
            self.assertEqual(cb.recv_text(PROMPT), "topic:t:n%d" % i)
            time.sleep(INTERVAL + 0.1)

    def test_many_publishes_all_arrive_in_order(self):
        ft, cb, pub = self.subscribers()
        n = 500
        for i in range(n):
            pub.send_text("pub t m%d" % i)
        for i in range(n):
            self.assertEqual(ft.recv_text(3), "m%d" % i)
        for i in range(n):
            self.assertEqual(cb.recv_text(3), "topic:t:m%d" % i)


class FanoutIntervalLateDelivery(SockdTestCase):
    """Callback subscribers push when their info is delivered, which under
    load comes after the tick the publish armed. Their held frames must
    still leave at a tick, not wait for the next publish or other output:
    the last publishes of a burst reach everyone with nothing after them."""
    SERVER_KW = dict(server_extra="fanout_interval = 5ms\n")

    def test_burst_tail_arrives(self):
        subs = []
        for i in range(150):
            c = self.client("/probe", timeout=30)
            self.assertEqual(c.command("subf t" if i % 5 == 0 else "sub t"),
                             "ok")
            subs.append(c)
        pub = self.client("/probe")
        n = 300
        pub.send_raw(b"".join(build_frame(OP_TEXT, b"rpub t e%04d" % i)
                              for i in range(n)))
        for k, c in enumerate(subs):
            for i in range(n):
                self.assertEqual(c.recv_text(10), "e%04d" % i,
                                 "subscriber %d" % k)


class FanoutIntervalOff(SockdTestCase):
    """0: every publish leaves before the next poll."""
    SERVER_KW = dict(server_extra="fanout_interval = 0\n")

    def test_back_to_back_publishes_at_once(self):
        ft, pub = self.client("/probe"), self.client("/probe")
        self.assertEqual(ft.command("subf t"), "ok")
        for i in range(3):
            pub.send_text("pub t b%d" % i)
        for i in range(3):
            self.assertEqual(ft.recv_text(PROMPT), "b%d" % i)


class FanoutIntervalAuto(SockdTestCase):
    """auto, the default: no hold while the worker is lightly loaded; a
    hold of up to 10 ms while it is busy, gone again once it is not."""
    SERVER_KW = dict(extra="[admin]\nlisten = 127.0.0.1:%d\n" % APORT)

    def hold(self):
        return metrics(APORT).get("sock_fanout_hold_microseconds", 0)

    def test_1_light_load_holds_nothing(self):
        subs = [self.client("/probe") for _ in range(5)]
        for i, c in enumerate(subs):
            self.assertEqual(c.command("subf t" if i % 2 else "sub t"), "ok")
        pub = self.client("/probe")
        for i in range(20):
            pub.send_text("rpub t s%d" % i)
            for c in subs:
                self.assertEqual(c.recv_text(PROMPT), "s%d" % i)
            time.sleep(0.03)
        self.assertEqual(self.hold(), 0)

    def test_2_busy_holds_then_lets_go(self):
        """wsload's broadcast (400 subscribers, 4000 publishes/s for 2 s)
        keeps the worker busy: the hold engages, at most 10 ms, every
        subscriber is served without error, and once the load is gone the
        hold is too."""
        if not os.path.exists(WSLOAD):
            self.fail("wsload not built in %s" % BUILD_DIR)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], self.hold())
                except (OSError, AssertionError):
                    pass
                time.sleep(0.01)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            p = subprocess.run(
                [WSLOAD, "broadcast", "--url", self.server.url("/probe"),
                 "-c", "400", "--pub-rate", "4000", "-s", "64",
                 "--sub-msg", "sub t", "--pub-fmt", "rpub t ", "-d", "2"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=120)
        finally:
            done.set()
            t.join(5)
        out = p.stdout.decode("utf-8", "replace")
        result = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(len(result), 1, out)
        kv = dict(tok.partition("=")[::2] for tok in result[0].split()[1:])
        self.assertEqual(kv["errors"], "0", result[0])
        self.assertGreater(int(kv["delivered"]), 0, result[0])
        # 1 ms, doubled while busy, up to 10 ms.
        self.assertGreaterEqual(peak[0], 1000, "the hold never engaged: "
                                + result[0])
        self.assertLessEqual(peak[0], 10000)
        deadline = time.monotonic() + 5
        while self.hold() != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.hold(), 0, "the hold stayed after the load")
        # And a publish now leaves at once again.
        self.test_1_light_load_holds_nothing()


if __name__ == "__main__":
    main()
