#!/usr/bin/python3
"""Messaging between connections (DESIGN §3.2, §5) through the probe app:
directed infos, topics, broadcast, timers, pause/resume.

Assumptions:
- All connections live on the one in-process worker (workers = 0).
- An info is delivered after the sender's callback returns, never inside
  it, and FIFO per sender/receiver pair (§5.2).
- sock_set_active(c, false) stops reading at once, also for bytes the
  server already read but has not parsed yet (sock.h: "While paused nothing
  is read: no messages, and pings go unanswered").
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (OP_PING, OP_PONG, OP_TEXT, SockdTestCase,  # noqa: E402
                       build_frame, expect_no_frame, main)


class Messaging(SockdTestCase):
    SERVER_KW = dict()

    def probe(self):
        return self.client("/probe")

    def ident(self, c):
        s = c.command("id")
        self.assertTrue(s.isdigit(), "id is not decimal: %r" % s)
        self.assertNotEqual(int(s), 0, "0 is never a connection id")
        return int(s)

    def test_ids_distinct(self):
        ids = {self.ident(self.probe()) for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_id_stable(self):
        a = self.probe()
        self.assertEqual(self.ident(a), self.ident(a))

    def test_send_reaches_other_exactly_once(self):
        a, b = self.probe(), self.probe()
        aid, bid = self.ident(a), self.ident(b)
        a.send_text("send %d hello" % bid)
        self.assertEqual(b.recv_text(timeout=3), "info:%d:hello" % aid)
        expect_no_frame(b, 0.3)
        expect_no_frame(a, 0.05)

    def test_send_empty_and_spaces(self):
        a, b = self.probe(), self.probe()
        aid, bid = self.ident(a), self.ident(b)
        a.send_text("send %d " % bid)
        self.assertEqual(b.recv_text(), "info:%d:" % aid)
        a.send_text("send %d two  words " % bid)
        self.assertEqual(b.recv_text(), "info:%d:two  words " % aid)

    def test_1000_sends_in_order(self):
        a, b = self.probe(), self.probe()
        aid, bid = self.ident(a), self.ident(b)
        a.send_raw(b"".join(build_frame(OP_TEXT, b"send %d m%d" % (bid, i))
                            for i in range(1000)))
        deadline = time.monotonic() + 20
        for i in range(1000):
            got = b.recv_text(timeout=max(0.1, deadline - time.monotonic()))
            self.assertEqual(got, "info:%d:m%d" % (aid, i))
        expect_no_frame(b, 0.2)

    def test_both_directions(self):
        a, b = self.probe(), self.probe()
        aid, bid = self.ident(a), self.ident(b)
        a.send_text("send %d ping" % bid)
        b.send_text("send %d pong" % aid)
        self.assertEqual(b.recv_text(), "info:%d:ping" % aid)
        self.assertEqual(a.recv_text(), "info:%d:pong" % bid)

    def test_self_send_not_reentrant(self):
        a = self.probe()
        aid = self.ident(a)
        a.send_text("self x")
        self.assertEqual(a.recv_text(), "sent",
                         "the info ran inside the sender's callback")
        self.assertEqual(a.recv_text(), "info:%d:x" % aid)
        expect_no_frame(a, 0.1)

    def test_publish_reaches_subscribers_only(self):
        a, b, c = self.probe(), self.probe(), self.probe()
        self.assertEqual(a.command("sub t"), "ok")
        self.assertEqual(c.command("sub t"), "ok")
        self.assertEqual(c.command("unsub t"), "ok")
        self.assertEqual(b.command("sub other"), "ok")
        b.send_text("pub t m")
        self.assertEqual(a.recv_text(timeout=3), "topic:t:m")
        expect_no_frame(b, 0.3)
        expect_no_frame(c, 0.05)
        expect_no_frame(a, 0.05)
        # The publisher gets its own message when subscribed.
        a.send_text("pub t m2")
        self.assertEqual(a.recv_text(), "topic:t:m2")
        expect_no_frame(b, 0.2)
        expect_no_frame(c, 0.05)

    def test_publish_many_subscribers(self):
        subs = [self.probe() for _ in range(10)]
        for s in subs:
            self.assertEqual(s.command("sub room"), "ok")
        pub = self.probe()
        pub.send_text("pub room hi all")
        for s in subs:
            self.assertEqual(s.recv_text(timeout=3), "topic:room:hi all")
        for s in subs:
            expect_no_frame(s, 0.02)

    def test_topic_gone_after_close(self):
        a, b = self.probe(), self.probe()
        self.assertEqual(a.command("sub gone"), "ok")
        a.send_close(1000)
        a.expect_close(1000)
        a.expect_tcp_close(timeout=3)
        b.send_text("pub gone x")
        self.assertEqual(b.command("echo still ok"), "still ok")

    def test_broadcast_reaches_all_once(self):
        conns = [self.probe() for _ in range(3)]
        conns[1].send_text("bcast hello")
        for c in conns:
            self.assertEqual(c.recv_text(timeout=3), "bcast:hello")
        for c in conns:
            expect_no_frame(c, 0.1)

    def test_after_timer(self):
        a = self.probe()
        t0 = time.monotonic()
        a.send_text("after 100 hi")
        self.assertEqual(a.recv_text(timeout=3), "timer:hi")
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)

    def test_timers_in_deadline_order(self):
        a = self.probe()
        a.send_raw(build_frame(OP_TEXT, b"after 300 c") +
                   build_frame(OP_TEXT, b"after 100 a") +
                   build_frame(OP_TEXT, b"after 200 b") +
                   build_frame(OP_TEXT, b"echo now"))
        got = [a.recv_text(timeout=3) for _ in range(4)]
        self.assertEqual(got, ["now", "timer:a", "timer:b", "timer:c"])

    def test_timer_cancelled_by_close(self):
        a = self.probe()
        a.send_text("after 200 never")
        a.send_close(1000)
        a.expect_close(1000)
        self.assertEqual(a.skipped, [])
        time.sleep(0.3)
        b = self.probe()
        self.assertEqual(b.command("echo alive"), "alive")

    def check_paused(self, a, t0, then):
        """After `pause 300` at t0: nothing until "resumed" (>= 0.28 s),
        then the answer to what was sent while paused."""
        f = a.recv_frame(timeout=3)
        took = time.monotonic() - t0
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"resumed"),
                         "answered while paused (after %.3f s)" % took)
        self.assertGreaterEqual(took, 0.28)
        f = a.recv_frame(timeout=3)
        self.assertEqual((f.opcode, f.payload), then)

    def test_pause_ping_not_answered_until_resumed(self):
        a = self.probe()
        t0 = time.monotonic()
        a.send_text("pause 300")
        time.sleep(0.05)
        a.send_frame(OP_PING, b"p")
        self.check_paused(a, t0, (OP_PONG, b"p"))

    def test_pause_ping_in_same_segment(self):
        a = self.probe()
        t0 = time.monotonic()
        a.send_raw(build_frame(OP_TEXT, b"pause 300") +
                   build_frame(OP_PING, b"q"))
        self.check_paused(a, t0, (OP_PONG, b"q"))

    def test_pause_messages_wait(self):
        a = self.probe()
        t0 = time.monotonic()
        a.send_raw(build_frame(OP_TEXT, b"pause 300") +
                   build_frame(OP_TEXT, b"echo later"))
        self.check_paused(a, t0, (OP_TEXT, b"later"))

    def test_pause_kept_input_goes_before_newer(self):
        # Kept from the read that paused: "echo one" and half of "echo
        # two". The rest arrives while paused and waits in the socket. On
        # resume the kept bytes must go first, or the frame is spliced.
        a = self.probe()
        two = build_frame(OP_TEXT, b"echo two")
        t0 = time.monotonic()
        a.send_raw(build_frame(OP_TEXT, b"pause 300") +
                   build_frame(OP_TEXT, b"echo one") + two[:5])
        time.sleep(0.1)
        a.send_raw(two[5:] + build_frame(OP_TEXT, b"echo three"))
        self.check_paused(a, t0, (OP_TEXT, b"one"))
        self.assertEqual(a.recv_text(timeout=3), "two")
        self.assertEqual(a.recv_text(timeout=3), "three")

    def test_send_to_closed_connection_dropped(self):
        a, b = self.probe(), self.probe()
        bid = self.ident(b)
        b.send_close(1000)
        b.expect_close(1000)
        b.expect_tcp_close(timeout=3)
        time.sleep(0.1)
        a.send_text("send %d lost" % bid)
        a.send_text("send 0 nobody")
        a.send_text("send 18446744073709551615 nobody")
        self.assertEqual(a.command("echo ok"), "ok")
        expect_no_frame(a, 0.2)
        fresh = [self.probe() for _ in range(3)]
        for c in fresh:
            expect_no_frame(c, 0.1)
        # Still working: new ids never reuse the dead one.
        for c in fresh:
            self.assertNotEqual(self.ident(c), bid)
        c = fresh[0]
        aid, cid = self.ident(a), self.ident(c)
        a.send_text("send %d found" % cid)
        self.assertEqual(c.recv_text(), "info:%d:found" % aid)


if __name__ == "__main__":
    main()
