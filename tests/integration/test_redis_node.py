#!/usr/bin/python3
"""The Redis bridge's node registry and AUTH (issue 13).

A real redis-server on a free loopback port. Checked:

- a sockd registers its node_id: key PREFIX "node:" ID holds its instance
  name (host:master-pid:start-time) with a TTL of at most 30 s, the same
  for both workers; it logs no clash and counts none;
- a second sockd with the same node_id on the same Redis logs
  event=redis_node_id_clash (an error naming the holder) and counts it in
  sock_redis_node_id_clashes_total; the first one counts nothing; when the
  first stops and its entry is deleted, the second takes the key over
  (event=redis_node_id_clash_over);
- with `requirepass` on the server: `[redis] password` right → the bridge
  comes up (sock_redis_connected 2) and registers; wrong → every worker
  logs event=redis_auth_failed and the bridge stays down; no password →
  down too;
- `sockd -T` does not print the password.
"""

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import AdminMaster, metrics, wait_metric  # noqa: E402
from mastertest import SOCKD, MasterTestCase, wait_until  # noqa: E402
from sockdtest import main  # noqa: E402
from test_redis import (REDIS_SERVER, RedisServer,  # noqa: E402
                        _read_reply, resp)

_libc = ctypes.CDLL(None, use_errno=True)

PREFIX = "socknode%d:" % os.getpid()
PASSWORD = "s3cret-pw"


def die_with_parent():
    _libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def authed(port, *args):
    """One command after AUTH, on one connection; its reply."""
    out = b""
    for cmd in (("AUTH", PASSWORD), args):
        out += b"*%d\r\n" % len(cmd)
        for a in cmd:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(out)
        with s.makefile("rb") as f:
            if _read_reply(f) != "OK":
                raise AssertionError("AUTH refused")
            return _read_reply(f)


class AuthRedis(RedisServer):
    """redis-server with requirepass."""

    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.tmp.name, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.tmp.name,
             "--daemonize", "no", "--requirepass", PASSWORD],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            cwd=self.tmp.name, preexec_fn=die_with_parent)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: %s"
                                     % self.log_text())
            try:
                return authed(self.port, "PING") == "PONG"
            except OSError:
                return False
        wait_until(up, timeout, what="redis-server on port %d" % self.port)
        return self


class NodeRegistry(MasterTestCase):
    def setUp(self):
        super().setUp()
        if not os.access(REDIS_SERVER, os.X_OK):
            self.skipTest("redis-server missing")

    def node(self, redis_port, node_id, name, password=None, prefix=PREFIX):
        extra = "[redis]\naddress = 127.0.0.1:%d\nprefix = %s\n" % (
            redis_port, prefix)
        if password is not None:
            extra += "password = %s\n" % password
        m = AdminMaster(workers=2, server_extra="node_id = %d" % node_id,
                        extra=extra, name=name)
        self._servers.append(m)
        self.addCleanup(m.stop)
        m.start()
        return m

    def test_clash(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        key = PREFIX + "node:7"
        a = self.node(redis.port, 7, "sockd-a")
        wait_metric(a.aport, "sock_redis_connected", lambda v: v == 2, 10)
        holder = wait_until(lambda: resp(redis.port, "GET", key), 10,
                            what="the node key").decode()
        self.assertRegex(holder, r"^[^:]+:%d:\d+\.\d\d$" % a.pid)
        ttl = resp(redis.port, "TTL", key)
        self.assertTrue(0 < ttl <= 30, ttl)

        b = self.node(redis.port, 7, "sockd-b")
        wait_metric(b.aport, "sock_redis_node_id_clashes_total",
                    lambda v: v >= 2, 10, "both workers of b see the clash")
        m = b.wait_log(r"^<3>worker pid=\d+ slot=\d event="
                       r"redis_node_id_clash node=7 key=%s holder=\"%s\".*$"
                       % (re.escape(key), re.escape(holder)), 10)
        self.assertIn("give every node its own node_id", m.group(0))
        self.assertEqual(resp(redis.port, "GET", key).decode(), holder)
        self.assertEqual(metrics(a.aport).get(
            "sock_redis_node_id_clashes_total"), 0)
        self.assertNotIn("redis_node_id_clash", a.log())

        # a goes away; once its entry is gone b takes the id over.
        self.assertEqual(a.stop(), 0)
        resp(redis.port, "DEL", key)
        wait_until(lambda: re.match(r"^[^:]+:%d:" % b.pid, (resp(
                   redis.port, "GET", key) or b"").decode()), 15,
                   what="b to hold the node key")
        b.wait_log(r"event=redis_node_id_clash_over node=7", 15)

    def test_password(self):
        redis = AuthRedis().start()
        self.addCleanup(redis.cleanup)
        good = self.node(redis.port, 1, "sockd-good", password=PASSWORD)
        wait_metric(good.aport, "sock_redis_connected", lambda v: v == 2, 10)
        wait_until(lambda: authed(redis.port, "GET", PREFIX + "node:1"), 10,
                   what="node 1 registered")
        rc = subprocess.run([SOCKD, "-T", "-c", good.conf],
                            capture_output=True, text=True, timeout=10)
        self.assertEqual(rc.returncode, 0, rc.stderr)
        self.assertIn("# password: set, not shown\n", rc.stdout)
        self.assertNotIn(PASSWORD, rc.stdout)

        bad = self.node(redis.port, 2, "sockd-bad", password="wrong")
        for slot in (0, 1):
            bad.wait_log(r"slot=%d event=redis_auth_failed address=127\.0\.0"
                         r"\.1:%d role=\w+ error=\"[^\"]*(WRONGPASS|invalid)"
                         % (slot, redis.port), 10)
        self.assertEqual(metrics(bad.aport).get("sock_redis_connected"), 0)
        self.assertIsNone(authed(redis.port, "GET", PREFIX + "node:2"))


if __name__ == "__main__":
    main()
