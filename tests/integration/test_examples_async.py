#!/usr/bin/python3
"""The two examples of async app work, on a real sockd.

examples/authredis (built in), against a real redis-server started on a
free loopback port:
- a token Redis knows ("alice news sports") upgrades after the reply, and
  the connection joined its topics (a publish to "news" from another
  user's connection and from `sockctl`-style admin reaches it);
- an unknown token: 403 "unknown token"; none: 401;
- redis-server stopped (SIGSTOP) longer than handshake_timeout: 503
  "upgrade decision timed out" from the server, and after SIGCONT the
  late reply is harmless (sockd serves the next valid token);
- redis-server killed: 503 "auth backend unavailable" at once, and after
  it starts again on the same port the app reconnects and tokens work;
- sockd exits 0 after SIGTERM (teardown frees the connection).

examples/threadwork (as a module, threads = 2, delay_ms = 300): four
clients' jobs overlap on the pool (all four results within about two
delays, not four), and an echo client is answered at once meanwhile.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import BUILD_DIR, Server, WSClient, free_port, main  # noqa
from sockdtest import SockdTestCase  # noqa: E402
from bustest import admin_request  # noqa: E402
from test_redis import RedisServer, resp  # noqa: E402

THREADWORK_SO = os.path.join(BUILD_DIR, "threadwork.so")


class Case(SockdTestCase):
    def close_clients(self):
        for c in self._clients:
            c.close()


class AuthRedis(Case):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.cleanup)
        resp(self.redis.port, "SET", "tok:alice-1", "alice news sports")
        resp(self.redis.port, "SET", "tok:bob-1", "bob news")
        self.aport = free_port()
        self.srv = Server(server_extra="handshake_timeout = 700ms", extra=(
            "[route /auth]\napp = authredis\n"
            "option.redis = 127.0.0.1:%d\noption.key_prefix = tok:\n"
            "[admin]\nlisten = 127.0.0.1:%d\n"
            % (self.redis.port, self.aport)))
        self._servers.append(self.srv)
        self.addCleanup(self.srv.stop)
        self.srv.start()
        self.wait_connected()

    def wait_connected(self, timeout=10):
        deadline = time.monotonic() + timeout
        while "event=redis_connected" not in self.srv.log():
            self.assertLess(time.monotonic(), deadline,
                            "authredis never connected:\n" + self.srv.log())
            time.sleep(0.05)

    def connect(self, token):
        c = WSClient(self.srv.port)
        self._clients.append(c)
        return c, c.handshake("/auth?token=" + token)

    def test_tokens(self):
        a, r = self.connect("alice-1")
        self.assertEqual(r.status, 101)
        self.assertEqual(a.recv_text(),
                         '{"user":"alice","topics":["news","sports"]}')
        b, r = self.connect("bob-1")
        self.assertEqual(r.status, 101)
        self.assertEqual(b.recv_text(), '{"user":"bob","topics":["news"]}')
        b.send_text("news hello from bob")
        want = '{"from":"bob","topic":"news","text":"hello from bob"}'
        self.assertEqual(a.recv_text(), want)
        self.assertEqual(b.recv_text(), want)
        b.send_text("sports not joined")   # bob is not in sports: dropped
        st, _ = admin_request(self.aport, "POST", "/publish?topic=sports",
                              "score")
        self.assertEqual(st, 202)
        self.assertEqual(a.recv_text(), "score")
        _, r = self.connect("nobody")
        self.assertEqual((r.status, r.body), (403, b"unknown token\n"))
        _, r = self.connect("")
        self.assertEqual(r.status, 401)
        self.close_clients()
        self.srv.stop_clean()

    def test_slow_backend_times_out(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            _, r = self.connect("alice-1")
            took = time.monotonic() - t0
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        self.assertEqual((r.status, r.body),
                         (503, b"upgrade decision timed out\n"))
        self.assertGreater(took, 0.6)
        self.assertLess(took, 3.0)
        time.sleep(0.2)  # the late reply arrives and is told -EPIPE
        a, r = self.connect("alice-1")
        self.assertEqual(r.status, 101)
        self.assertEqual(a.recv_text(),
                         '{"user":"alice","topics":["news","sports"]}')
        self.close_clients()
        self.srv.stop_clean()

    def test_backend_down_and_back(self):
        port = self.redis.port
        self.redis.kill()
        deadline = time.monotonic() + 5
        while "event=redis_lost" not in self.srv.log():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        _, r = self.connect("alice-1")
        self.assertEqual((r.status, r.body),
                         (503, b"auth backend unavailable\n"))
        self.redis = RedisServer(port=port).start()
        self.addCleanup(self.redis.cleanup)
        resp(port, "SET", "tok:alice-1", "alice news")
        deadline = time.monotonic() + 10
        while True:
            c, r = self.connect("alice-1")
            if r.status == 101 or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.1)
        self.assertEqual(r.status, 101)
        self.assertEqual(c.recv_text(), '{"user":"alice","topics":["news"]}')
        self.close_clients()
        self.srv.stop_clean()


class ThreadWork(Case):
    def test_jobs_overlap_and_loop_stays_free(self):
        srv = self.start_server(extra=(
            "[route /work]\napp = %s\noption.threads = 2\n"
            "option.delay_ms = 300\n" % THREADWORK_SO))
        clients = [srv.client("/work") for _ in range(4)]
        self._clients.extend(clients)
        echo = srv.client("/echo")
        self._clients.append(echo)
        t0 = time.monotonic()
        for i, c in enumerate(clients):
            c.send_text("job%d" % i)
        t_echo = time.monotonic()
        self.assertEqual(echo.command("ping?"), "ping?")
        echo_took = time.monotonic() - t_echo
        got = [c.recv_text(timeout=5) for c in clients]
        took = time.monotonic() - t0
        self.assertEqual(got, ['{"job":1,"bytes":4,"reversed":"%dboj"}' % i
                               for i in range(4)])
        self.assertLess(echo_took, 0.2)
        self.assertGreater(took, 0.55)   # 4 jobs on 2 threads: 2 rounds
        self.assertLess(took, 1.2)       # not 4 rounds in a row
        self.close_clients()
        srv.stop_clean()


if __name__ == "__main__":
    main()
