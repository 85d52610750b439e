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
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import SockdTestCase, expect_no_frame, main  # noqa: E402

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


class FanoutIntervalOff(SockdTestCase):
    """The default: every publish leaves before the next poll."""
    SERVER_KW = dict()

    def test_back_to_back_publishes_at_once(self):
        ft, pub = self.client("/probe"), self.client("/probe")
        self.assertEqual(ft.command("subf t"), "ok")
        for i in range(3):
            pub.send_text("pub t b%d" % i)
        for i in range(3):
            self.assertEqual(ft.recv_text(PROMPT), "b%d" % i)


if __name__ == "__main__":
    main()
