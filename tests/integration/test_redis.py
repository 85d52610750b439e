#!/usr/bin/python3
"""The Redis bridge between machines (DESIGN §5.3).

A real redis-server on a free loopback port (no persistence, in a temp
dir) and two sockd "machines" on 127.0.0.1: node A (node_id = 1) and
node B (node_id = 2), two workers each, the same [redis] section. Probe
connections (tests/apps/probe.c) sit on both workers of both nodes, all
subscribed to topic "news". Checked:

- the channels in Redis are exactly the per-worker inboxes, the
  broadcast channel and the topic channel, and the last local
  unsubscribe of a worker unsubscribes its channel (and the first
  subscribes it again);
- a publish on A reaches every subscriber on A and on B exactly once;
- a directed info from A to an id on B arrives (and from B to A); one to
  a worker of B that does not exist is counted as unrouted;
- a broadcast reaches every connection on both nodes exactly once;
- admin POST /publish and /send on B reach A;
- envelopes written by hand into Redis (origin node 3) are delivered; one
  claiming node A's origin is dropped by A only; garbage, truncated
  envelopes and envelopes of the wrong type for their channel are
  counted as malformed and change nothing;
- with redis-server killed, each worker logs one warning, the publishes
  meanwhile are dropped and counted (and never arrive later); after
  redis-server starts again on the same port every worker reconnects,
  resubscribes, logs it, and messages flow again;
- a flood of publishes on A to 30 frame subscribers on B (each publish's
  fan-out over max_fanout_backlog alone): B stops reading Redis while it
  writes (sock_fanout_pauses_total) and every subscriber gets every
  message in order, none dropped;
- after a reload of B, its new generation's workers have their own
  inboxes, the old ones' are gone, and messages flow with A again;
- both sockd exit 0 after SIGTERM with no sanitizer report.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import (AdminMaster, admin_request, close_quietly,  # noqa: E402
                     conns_on_slots, drain, drain_nowait, metrics,
                     wait_metric)
from mastertest import MasterTestCase, wait_until  # noqa: E402
from sockdtest import OP_TEXT, build_frame, free_port, main  # noqa: E402

import ctypes  # noqa: E402

QUIET = 0.4          # seconds of silence that mean "nothing else comes"
PREFIX = "socktest%d:" % os.getpid()
REDIS_SERVER = "/usr/bin/redis-server"

_libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    sys.stderr.write("\n[redis] %s\n" % msg)
    sys.stderr.flush()


# ---- a raw RESP client ------------------------------------------------------

def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError("redis: short reply %r" % line)
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError("redis error: %s" % rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        return [_read_reply(f) for _ in range(int(rest))]
    raise AssertionError("redis: bad reply %r" % line)


def resp(port, *args, timeout=5.0):
    """One command to redis-server on 127.0.0.1:port; its reply."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        with s.makefile("rb") as f:
            return _read_reply(f)


class RedisServer:
    """redis-server on a loopback port: no persistence, dies with the
    test, killed (SIGKILL) or stopped (SIGTERM) with bounded waits."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="sockredis-")
        self.proc = None

    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.tmp.name, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.tmp.name,
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            cwd=self.tmp.name,
            preexec_fn=lambda: _libc.prctl(1, signal.SIGKILL))

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: %s"
                                     % self.log_text())
            try:
                return resp(self.port, "PING", timeout=1.0) == "PONG"
            except OSError:
                return False
        wait_until(up, timeout, what="redis-server on port %d" % self.port)
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.log.close()
        self.proc = None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()

    def log_text(self):
        with open(os.path.join(self.tmp.name, "redis.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def numsub(self, channel):
        return resp(self.port, "PUBSUB", "NUMSUB", channel)[1]

    def channels(self):
        return sorted(c.decode() for c in
                      resp(self.port, "PUBSUB", "CHANNELS", PREFIX + "*"))

    def publish(self, channel, data):
        return resp(self.port, "PUBLISH", channel, data)


def envelope(mtype, origin, app_type=0, frm=0, to=0, payload=b""):
    """The bridge's envelope (ipc/redis_wire.h), built by hand."""
    return (b"sk" + struct.pack("<BBHIQQ", 1, mtype, origin, app_type, frm,
                                to) + payload)


SEND, PUBLISH, BROADCAST = 1, 2, 3


# ---- the test ---------------------------------------------------------------

class RedisBridgeTest(MasterTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = RedisServer().start()
        cls.nodes = []
        try:
            extra = ("[redis]\naddress = 127.0.0.1:%d\nprefix = %s\n"
                     % (cls.redis.port, PREFIX))
            for node in (1, 2):
                # Short drains, for the reload at the end.
                m = AdminMaster(workers=2, server_extra="node_id = %d\n"
                                "drain_timeout = 200ms\ndrain_spread = 100ms\n"
                                "max_fanout_backlog = 64KiB" % node,
                                probe_extra="send_hard_limit = 64MiB\n"
                                "send_high_watermark = 32MiB",
                                extra=extra,
                                name="sockd-node%d" % node)
                cls.nodes.append(m)
                m.start()
            cls.a, cls.b = cls.nodes
            for n in cls.nodes:
                wait_metric(n.aport, "sock_redis_connected", lambda v: v == 2,
                            10, "both workers of %s connected" % n.name)
            # One connection per worker of each node, all on "news".
            cls.ca = conns_on_slots(cls.a.port, {0: 1, 1: 1})
            cls.cb = conns_on_slots(cls.b.port, {0: 1, 1: 1})
            cls.conns = [cls.ca[0][0], cls.ca[1][0], cls.cb[0][0],
                         cls.cb[1][0]]
            for c in cls.conns:
                if c.ws.command("sub news") != "ok":
                    raise AssertionError("sub news failed")
            wait_until(lambda: cls.redis.numsub(PREFIX + "t:news") == 4, 10,
                       what="4 workers subscribed to news")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        errors = []
        for c in getattr(cls, "conns", []):
            close_quietly(c)
        for n in cls.nodes:
            rc = n.stop()
            log_text = n.log()
            m = re.search(r"^.*(AddressSanitizer|LeakSanitizer|runtime error"
                          r"|UndefinedBehaviorSanitizer).*$", log_text, re.M)
            if m or rc != 0:
                errors.append("%s exited %s%s:\n%s" % (
                    n.name, rc, " with a sanitizer report" if m else "",
                    n.log_tail(80)))
        cls.redis.cleanup()
        super().tearDownClass()
        if errors:
            raise AssertionError("\n".join(errors))

    def setUp(self):
        super().setUp()
        self._servers.extend(self.nodes)   # logs printed on failure
        for c in self.conns:               # nothing left from earlier tests
            drain(c.ws, quiet=0.05, timeout=2)

    # -- helpers --------------------------------------------------------------

    def expect_each(self, conns, text, timeout=5.0):
        """Each conn gets exactly one message, text, and then nothing."""
        for c in conns:
            self.assertEqual(c.ws.recv_text(timeout), text, repr(c))
        self.silent(conns, "after %r" % text)

    def silent(self, conns, what=""):
        """Nothing (more) arrives on any of conns within QUIET seconds."""
        time.sleep(QUIET)
        for c in conns:
            self.assertEqual(drain_nowait(c.ws), [],
                             "unexpected messages %s on %r" % (what, c))

    def metric(self, node, name):
        return metrics(node.aport).get(name, 0)

    # -- tests ----------------------------------------------------------------

    def test_1_channels(self):
        self.assertEqual(self.redis.channels(), sorted(
            PREFIX + s for s in ("all", "t:news", "w:1:1:0", "w:1:1:1",
                                 "w:2:1:0", "w:2:1:1")))
        # The last local subscriber of a worker leaves: its channel goes.
        b0, b1 = self.cb[0][0], self.cb[1][0]
        self.assertEqual(b0.ws.command("unsub news"), "ok")
        wait_until(lambda: self.redis.numsub(PREFIX + "t:news") == 3, 5,
                   what="news down to 3 subscribers")
        self.assertEqual(b1.ws.command("unsub news"), "ok")
        wait_until(lambda: self.redis.numsub(PREFIX + "t:news") == 2, 5,
                   what="news down to 2 subscribers")
        self.ca[0][0].ws.send_text("pub news only-a")
        self.expect_each(self.conns[:2], "topic:news:only-a")
        self.silent([b0, b1])
        for c in (b0, b1):
            self.assertEqual(c.ws.command("sub news"), "ok")
        wait_until(lambda: self.redis.numsub(PREFIX + "t:news") == 4, 5,
                   what="news back to 4 subscribers")

    def test_2_publish(self):
        pa, pb = self.metric(self.a, "sock_redis_published_total"), \
            self.metric(self.b, "sock_redis_received_total")
        self.ca[1][0].ws.send_text("pub news from-a")
        self.expect_each(self.conns, "topic:news:from-a")
        # Published once (by the worker it started on), received once by
        # each worker of B; A's own copies were dropped, not delivered.
        self.assertEqual(self.metric(self.a, "sock_redis_published_total"),
                         pa + 1)
        self.assertEqual(self.metric(self.b, "sock_redis_received_total"),
                         pb + 2)
        self.cb[0][0].ws.send_text("pub news from-b")
        self.expect_each(self.conns, "topic:news:from-b")

    def test_3_directed(self):
        a0, a1 = self.ca[0][0], self.ca[1][0]
        b0, b1 = self.cb[0][0], self.cb[1][0]
        a0.ws.send_text("send %d hello-b1" % b1.id)
        self.assertEqual(b1.ws.recv_text(5), "info:%d:hello-b1" % a0.id)
        b0.ws.send_text("send %d hello-a1" % a1.id)
        self.assertEqual(a1.ws.recv_text(5), "info:%d:hello-a1" % b0.id)
        self.silent(self.conns)
        # Slot 7 of node B does not exist: Redis finds no subscriber.
        gone = (2 << 48) | (1 << 40) | (7 << 32) | 1
        before = self.metric(self.a, "sock_redis_unrouted_total")
        a0.ws.send_text("send %d nobody" % gone)
        wait_metric(self.a.aport, "sock_redis_unrouted_total",
                    lambda v: v == before + 1, 5)
        self.silent(self.conns)

    def test_4_broadcast(self):
        self.ca[1][0].ws.send_text("bcast everyone")
        self.expect_each(self.conns, "bcast:everyone")

    def test_5_admin(self):
        st, body = admin_request(self.b.aport, "POST", "/publish?topic=news",
                                 b"admin-news")
        self.assertEqual(st, 202, body)
        self.expect_each(self.conns, "topic:news:admin-news")
        a1 = self.ca[1][0]
        st, body = admin_request(self.b.aport, "POST", "/send?id=%d" % a1.id,
                                 b"admin-send")
        self.assertEqual(st, 202, body)
        self.assertEqual(a1.ws.recv_text(5), "info:0:admin-send")
        self.silent(self.conns)

    def test_6_from_outside(self):
        # A well-formed envelope from a third machine reaches everyone.
        n = self.redis.publish(PREFIX + "all",
                               envelope(BROADCAST, 3, payload=b"node3"))
        self.assertEqual(n, 4)
        self.expect_each(self.conns, "bcast:node3")
        # One claiming to come from node A: A delivered it already.
        self.redis.publish(PREFIX + "t:news",
                           envelope(PUBLISH, 1, payload=b"echo-of-a"))
        self.expect_each(self.conns[2:], "topic:news:echo-of-a")
        self.silent(self.conns[:2])
        # Directed, into B slot 0's inbox.
        b0 = self.cb[0][0]
        self.redis.publish(PREFIX + "w:2:1:0",
                           envelope(SEND, 3, frm=77, to=b0.id, payload=b"x"))
        self.assertEqual(b0.ws.recv_text(5), "info:77:x")
        self.silent(self.conns)

    def test_7_malformed(self):
        bad = [
            (PREFIX + "t:news", b"garbage"),
            (PREFIX + "t:news", envelope(PUBLISH, 3)[:25]),          # short
            (PREFIX + "t:news", b"SK" + envelope(PUBLISH, 3)[2:]),   # magic
            (PREFIX + "t:news", envelope(BROADCAST, 3, payload=b"x")),
            (PREFIX + "all", envelope(PUBLISH, 3, payload=b"x")),
            (PREFIX + "all", envelope(BROADCAST, 3, to=5)),
            (PREFIX + "t:news", b""),
        ]
        before = [self.metric(n, "sock_redis_malformed_total")
                  for n in self.nodes]
        for ch, data in bad:
            self.assertEqual(self.redis.publish(ch, data), 4)
        b1 = self.cb[1][0]
        # Into B slot 1's inbox: a send to B slot 0's id, and a broadcast.
        self.assertEqual(self.redis.publish(
            PREFIX + "w:2:1:1", envelope(SEND, 3, to=self.cb[0][0].id)), 1)
        self.assertEqual(self.redis.publish(
            PREFIX + "w:2:1:1", envelope(BROADCAST, 3)), 1)
        for n, was in zip(self.nodes, before):
            want = was + 2 * len(bad) + (2 if n is self.b else 0)
            wait_metric(n.aport, "sock_redis_malformed_total",
                        lambda v, w=want: v == w, 5)
        self.silent(self.conns)
        # Nothing crashed, everything still flows.
        self.assertEqual(b1.echo("alive"), "alive")
        self.ca[0][0].ws.send_text("pub news still-fine")
        self.expect_each(self.conns, "topic:news:still-fine")
        # One warning per worker, not one per message.
        for n in self.nodes:
            self.assertLessEqual(len(re.findall(r"event=redis_malformed",
                                                n.log())), 2, n.log_tail(40))

    def test_8_flood(self):
        subs = conns_on_slots(self.b.port, {0: 15, 1: 15})
        subs = subs[0] + subs[1]
        try:
            for c in subs:
                self.assertEqual(c.ws.command("subf flood"), "ok")
            wait_until(lambda: self.redis.numsub(PREFIX + "t:flood") == 2,
                       10, what="both workers of B on flood")
            pauses = self.metric(self.b, "sock_fanout_pauses_total")
            dropped = self.metric(self.a, "sock_redis_dropped_total")
            n = 150

            def body(i):
                return ("%06d:" % i) + "f" * 1993
            self.ca[0][0].ws.send_raw(b"".join(
                build_frame(OP_TEXT, ("rpub flood " + body(i)).encode())
                for i in range(n)))
            for k, c in enumerate(subs):
                for i in range(n):
                    self.assertEqual(c.ws.recv_text(10), body(i),
                                     "subscriber %d, message %d" % (k, i))
            self.assertGreater(self.metric(self.b, "sock_fanout_pauses_total"),
                               pauses)
            self.assertEqual(self.metric(self.a, "sock_redis_dropped_total"),
                             dropped)
            wait_metric(self.b.aport, "sock_fanout_backlog_bytes",
                        lambda v: v == 0, 5)
        finally:
            for c in subs:
                close_quietly(c)

    def test_9_outage(self):
        a0, b0 = self.ca[0][0], self.cb[0][0]
        dropped = [self.metric(n, "sock_redis_dropped_total")
                   for n in self.nodes]
        connects = [self.metric(n, "sock_redis_connects_total")
                    for n in self.nodes]
        t0 = time.monotonic()
        self.redis.kill()
        for n in self.nodes:
            wait_metric(n.aport, "sock_redis_connected", lambda v: v == 0, 5,
                        "%s noticed the outage" % n.name)
        # During the outage: local delivery only, and one drop each.
        a0.ws.send_text("pub news during-outage")
        self.expect_each(self.conns[:2], "topic:news:during-outage")
        st, _ = admin_request(self.b.aport, "POST", "/publish?topic=news",
                              b"b-during-outage")
        self.assertEqual(st, 202)
        self.expect_each(self.conns[2:], "topic:news:b-during-outage")
        for n, was in zip(self.nodes, dropped):
            self.assertEqual(self.metric(n, "sock_redis_dropped_total"),
                             was + 1, n.name)
        time.sleep(1.0)  # a few failed retries: still quiet in the log
        self.redis.start()
        for n, was in zip(self.nodes, connects):
            wait_metric(n.aport, "sock_redis_connected", lambda v: v == 2, 10,
                        "%s reconnected" % n.name)
            self.assertEqual(self.metric(n, "sock_redis_connects_total"),
                             was + 2)
        log("reconnected %.1f s after the kill" % (time.monotonic() - t0))
        wait_until(lambda: self.redis.numsub(PREFIX + "t:news") == 4, 5,
                   what="news resubscribed by 4 workers")
        self.assertEqual(len(self.redis.channels()), 6)
        a0.ws.send_text("pub news after-outage")
        self.expect_each(self.conns, "topic:news:after-outage")
        b0.ws.send_text("bcast after-outage")
        self.expect_each(self.conns, "bcast:after-outage")
        # One warning per worker for the outage, one line when it ended.
        for n in self.nodes:
            text = n.log()
            self.assertEqual(len(re.findall(r"event=redis_disconnected",
                                            text)), 2, n.log_tail(40))
            self.assertEqual(len(re.findall(r"event=redis_connect_failed",
                                            text)), 0, n.log_tail(40))
            self.assertEqual(len(re.findall(
                r"event=redis_connected .*down_ms=\d+ dropped=", text)), 2,
                n.log_tail(40))


    def test_z_reload(self):
        # Last: B's connections of generation 1 are closed by the drain.
        r = self.b.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        want = sorted(PREFIX + s for s in ("all", "t:news", "w:1:1:0",
                                           "w:1:1:1", "w:2:2:0", "w:2:2:1"))
        wait_until(lambda: self.redis.channels() == want, 15,
                   what="B's generation 2 inboxes only (%s)" % want)
        wait_metric(self.b.aport, "sock_redis_connected", lambda v: v == 2, 5)
        fresh = conns_on_slots(self.b.port, {0: 1})[0][0]
        self._clients.append(fresh.ws)
        self.assertEqual(fresh.generation, 2)
        self.assertEqual(fresh.ws.command("sub news"), "ok")
        wait_until(lambda: self.redis.numsub(PREFIX + "t:news") == 3, 5,
                   what="news: A's two workers and B's slot 0")
        a0 = self.ca[0][0]
        a0.ws.send_text("pub news after-reload")
        self.expect_each(self.conns[:2] + [fresh], "topic:news:after-reload")
        a0.ws.send_text("send %d to-gen2" % fresh.id)
        self.assertEqual(fresh.ws.recv_text(5), "info:%d:to-gen2" % a0.id)
        fresh.ws.send_text("bcast from-gen2")
        self.expect_each(self.conns[:2] + [fresh], "bcast:from-gen2")


if __name__ == "__main__":
    main()
