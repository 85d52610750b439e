"""wss:// (issue 6): TLS listeners against real clients and bad ones.

Certificates come from the `openssl` command line, made per run in a
temporary directory: a CA of our own and two server certificates for
DNS:localhost and IP:127.0.0.1 (tlstest.Pki). Every client verifies the
server against that CA.

- Echo: python3-websockets and Node's `ws` (tests/node/tls_client.js,
  rejectUnauthorized with ca = our CA) echo text and binary messages of
  0 B .. 4 MiB over wss://, on /echo without and on /z with
  permessage-deflate (compress = on). Without the CA, both refuse the
  server: the verification is real.
- Refusals, while TLS clients on both workers keep echoing (each echo
  under 1 s): a plain WebSocket client on the TLS port (a clear 400),
  clients that stop in the middle of the TLS handshake, never start it, or
  finish it and send no request (closed by handshake_timeout = 1s), TLS
  1.0 and 1.1 only clients (a protocol_version alert), bytes that are
  neither TLS nor HTTP. TLS 1.2 and 1.3 are served.
- Backpressure: 4 MiB pushed at a slow TLS reader with a small receive
  buffer arrives whole and in order.
- The 400 to a plain client ends with a FIN, not a reset: the server
  reads the rest of the request before it closes.
- Reload (workers = 2, drain_timeout = 5s): a reload with a key that does
  not match is refused; after the files are replaced with the second
  certificate, new connections see it (peer fingerprint) and an old
  connection keeps echoing until its drain closes it with 1012.
- Resumption (workers = 2): a session from one worker resumes on the
  other (TLS 1.3 tickets, and TLS 1.2 with an SSLSession), and across a
  reload (the master keeps the ticket keys).
- sockd -t: a missing key, a garbage certificate and a key of another
  pair each exit non-zero with "FILE:LINE: PATH: reason".
- Figures (printed, never asserted; see test_zz_figures): handshakes/s
  and echo throughput over TLS next to plain TCP on the same server in the
  same run. wsload has no wss:// yet, so TLS is driven by `openssl
  s_time`, a sequential Python loop and Node's ws, each also on the plain
  port; wsload's plain-TCP figures are printed for scale.

Loopback only; every wait has a deadline; sockd dies with the test.
"""
import asyncio
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (BUILD_DIR, OP_BINARY, OP_CLOSE, OP_TEXT,  # noqa: E402
                       REPO, SOCKD, WSClient, free_port, parse_close)
from mastertest import (Master, MasterTestCase, id_generation,  # noqa: E402
                        id_slot)
from tlstest import (ALERT_PROTOCOL_VERSION, REC_ALERT, Pki,  # noqa: E402
                     TLSWSClient, client_context, client_hello,
                     fingerprint_der, handmade_hello,
                     hello_versions, old_tls_context, raw_exchange,
                     tls_records)

import websockets  # noqa: E402

NODE_DIR = os.environ.get("SOCK_NODE_DIR") or os.path.join(REPO, "tests",
                                                           "node")
WSLOAD = os.path.join(BUILD_DIR, "wsload")

ROUTES = ("[route /z]\napp = echo\ncompress = on\n"
          "max_message_size = 16MiB\nsend_hard_limit = 64MiB\n")
SIZES = (0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20)
WORDS = ("sock", "tls", "frame", "window", "é", "record", "ticket",
         "message", "session", "cipher", "server", "client", "wss")

PKI = None
_pki_dir = None


def setUpModule():
    global PKI, _pki_dir
    _pki_dir = tempfile.TemporaryDirectory(prefix="socktls-")
    PKI = Pki(_pki_dir.name)


def tearDownModule():
    if _pki_dir is not None:
        _pki_dir.cleanup()


def tls_lines(cert, key):
    return "tls_certificate = %s\ntls_key = %s\n" % (cert, key)


def text_of(n, rnd):
    """Text that compresses like text (a few times), cut at n bytes."""
    words, size = [], 0
    while size < n:
        w = rnd.choice(WORDS)
        words.append(w)
        size += len(w.encode()) + 1
    return " ".join(words).encode()[:n].decode("utf-8", "ignore")


def conf_line(conf_text, prefix):
    """1-based number of the first line of conf_text starting with
    prefix."""
    for i, line in enumerate(conf_text.split("\n"), 1):
        if line.startswith(prefix):
            return i
    raise AssertionError("no line %r in config" % prefix)


class TLSServer(MasterTestCase):
    """One class-wide sockd (workers = 2, handshake_timeout = 1s) with a
    TLS listener ({port}) and a plain one (self.plain_port), same routes
    on both. The TLS listener has reuseport = on: the kernel then spreads
    connections over both workers by their ports, where a shared socket
    can give one worker dozens in a row (the tests need both workers
    within a bounded number of connections; Reload runs the default)."""

    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain_port = free_port()
        cls.server = Master(
            workers=cls.WORKERS, server_extra="handshake_timeout = 1s",
            listen_extra=tls_lines(PKI.cert_a, PKI.key_a) +
            "reuseport = on\n",
            extra=ROUTES + "[listen 127.0.0.1:%d]\n" % cls.plain_port,
            name="sockd-tls").start()

    def tls(self, path="/echo", ctx=None, **kw):
        c = TLSWSClient(self.server.port, ctx or client_context(PKI.ca),
                        **kw)
        self._clients.append(c)
        if path is not None:
            c.upgrade(path)
        return c

    def url(self, path, host="127.0.0.1"):
        return "wss://%s:%d%s" % (host, self.server.port, path)


class Echo(TLSServer):

    def websockets_echo(self, path, compression, host):
        rnd = random.Random(5)
        ctx = client_context(PKI.ca)

        async def run():
            async with websockets.connect(
                    self.url(path), ssl=ctx, server_hostname=host,
                    compression=compression, max_size=None,
                    open_timeout=5, close_timeout=5) as ws:
                sslobj = ws.transport.get_extra_info("ssl_object")
                info = (sslobj.version(), sslobj.getpeercert(True),
                        [type(e).__name__ for e in ws.extensions])
                for n in SIZES:
                    for msg in (text_of(n, rnd), rnd.randbytes(n)):
                        await ws.send(msg)
                        got = await asyncio.wait_for(ws.recv(), 20)
                        self.assertEqual(type(got), type(msg))
                        self.assertTrue(got == msg, "%s: %s of %d bytes "
                                        "came back different (%d bytes)"
                                        % (path, type(msg).__name__, n,
                                           len(got)))
                return info
        return asyncio.run(asyncio.wait_for(run(), 60))

    def test_python_websockets_echo_verified(self):
        for path, comp, host in (("/echo", None, "127.0.0.1"),
                                 ("/z", "deflate", "localhost")):
            with self.subTest(path=path, compression=comp, sni=host):
                version, der, exts = self.websockets_echo(path, comp, host)
                self.assertIn(version, ("TLSv1.3", "TLSv1.2"))
                self.assertEqual(fingerprint_der(der), PKI.fp_a)
                self.assertEqual(exts, ["PerMessageDeflate"] if comp
                                 else [])

    def test_pipelined_records(self):
        """Thousands of small TLS records in a burst, one frame each: with
        read-ahead OpenSSL takes many at once from the socket, and what it
        holds is invisible to epoll. Every message must come back, in
        order, without the client sending anything more."""
        c = self.tls()
        n = 20000
        for i in range(n):
            c.send_text("m%d" % i)    # one TLS record per frame
        for i in range(n):
            op, payload = c.recv_message(20)
            self.assertEqual(payload, b"m%d" % i)

    def test_python_refuses_server_without_the_ca(self):
        # The system store does not know our CA: verification must fail.
        ctx = ssl.create_default_context()

        async def run():
            async with websockets.connect(self.url("/echo"), ssl=ctx,
                                          open_timeout=5):
                pass
        with self.assertRaises(ssl.SSLCertVerificationError):
            asyncio.run(asyncio.wait_for(run(), 10))
        # And the server is fine after the client's alert.
        self.assertEqual(self.tls().command("x"), "x")

    def test_node_ws_echo_verified(self):
        node = shutil.which("node")
        script = os.path.join(NODE_DIR, "tls_client.js")
        if node is None or not os.path.isdir(os.path.join(
                NODE_DIR, "node_modules", "ws")):
            self.skipTest("node or tests/node/node_modules/ws missing "
                          "(npm ci in tests/node)")
        try:
            p = subprocess.run([node, script, self.url(""), PKI.ca],
                               cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=70)
        except subprocess.TimeoutExpired as e:
            self.fail("node tls_client.js ran over 70 s: %r %r"
                      % (e.stdout, e.stderr))
        self.assertEqual(p.returncode, 0, "node tls_client.js:\n%s%s"
                         % (p.stdout, p.stderr))
        self.assertIn("tls_client: ok", p.stdout)
        fps = re.findall(r'"fingerprint256":"([0-9A-F:]+)"', p.stdout)
        self.assertEqual(len(fps), 2, p.stdout)
        for fp in fps:
            self.assertEqual(fp.replace(":", "").lower(), PKI.fp_a)
        self.assertIn('"authorized":true', p.stdout)

    def test_tls_versions(self):
        for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                        (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(version=name):
                c = self.tls(ctx=client_context(PKI.ca, min_version=v,
                                                max_version=v))
                self.assertEqual(c.version, name)
                self.assertEqual(c.command("v " + name), "v " + name)
        for v, wire in ((ssl.TLSVersion.TLSv1, 0x0301),
                        (ssl.TLSVersion.TLSv1_1, 0x0302)):
            with self.subTest(version=v.name):
                self.assert_old_tls_refused(v, wire)

    def assert_old_tls_refused(self, v, wire):
        """A client that offers only TLS 1.0/1.1 gets a protocol_version
        alert and a closed connection: a hand-made ClientHello always,
        and the ssl module's own (security level 0) when the local
        OpenSSL still builds one."""
        hellos = [("hand-made", handmade_hello(wire))]
        try:
            hellos.append(("ssl module", client_hello(
                min_version=v, max_version=v,
                ciphers="DEFAULT:@SECLEVEL=0")))
        except ssl.SSLError as e:       # this OpenSSL will not offer it
            sys.stderr.write("\n[tls] local OpenSSL offers no %s: %s\n"
                             % (v.name, e))
        for origin, hello in hellos:
            # What the client really offers: that version, none newer.
            legacy, supported = hello_versions(hello)
            self.assertEqual(legacy, wire, origin)
            self.assertTrue(all(s <= wire for s in supported),
                            (origin, supported))
            data, how, secs = raw_exchange(self.server.port, hello,
                                           timeout=5)
            recs = tls_records(data)
            self.assertTrue(recs, "no TLS record in answer to a %s %s "
                            "hello (%s after %.2f s, %r)"
                            % (origin, v.name, how, secs, data))
            ctype, _ver, payload = recs[-1]
            self.assertEqual((ctype, payload[1:2]),
                             (REC_ALERT, bytes([ALERT_PROTOCOL_VERSION])),
                             "answer to a %s %s hello: %r"
                             % (origin, v.name, recs))
            self.assertIn(how, ("eof", "reset"), "connection left open "
                          "after refusing %s" % v.name)
        if len(hellos) < 2:
            return
        # The ssl module's own handshake fails on the server's alert.
        with socket.create_connection(("127.0.0.1", self.server.port),
                                      timeout=5) as s:
            with self.assertRaises(ssl.SSLError) as cm:
                old_tls_context(v).wrap_socket(s).close()
        self.assertRegex(str(cm.exception), r"(?i)protocol.version",
                         "%s: %s" % (v.name, cm.exception))

    def test_bad_clients_refused_while_others_served(self):
        port = self.server.port
        stop = threading.Event()
        good = []

        def serve_good(rec):
            try:
                c = TLSWSClient(port, client_context(PKI.ca))
                c.upgrade("/probe")
                rec["slot"] = id_slot(int(c.command("id")))
                payload = os.urandom(4096)
                deadline = time.monotonic() + 30
                while not stop.is_set() and time.monotonic() < deadline:
                    t0 = time.monotonic()
                    c.send_frame(OP_BINARY, payload)
                    op, got = c.recv_message(timeout=5)
                    t1 = time.monotonic()
                    if (op, got) != (OP_BINARY, payload):
                        raise AssertionError("echo differs: op %d, %d "
                                             "bytes" % (op, len(got)))
                    rec["times"].append(t1)
                    rec["max"] = max(rec["max"], t1 - t0)
                    time.sleep(0.005)
                c.send_close(1000)
                c.expect_close(1000, timeout=5)
                c.close()
            except BaseException as e:     # reported by the main thread
                rec["error"] = repr(e)

        # Good clients until one is on each worker (bounded).
        threads = []
        for _ in range(20):
            rec = {"times": [], "max": 0.0, "error": None, "slot": None}
            t = threading.Thread(target=serve_good, args=(rec,),
                                 daemon=True)
            good.append(rec)
            threads.append(t)
            t.start()
            deadline = time.monotonic() + 5
            while rec["slot"] is None and rec["error"] is None and \
                    time.monotonic() < deadline:
                time.sleep(0.01)
            if len(threads) >= 3 and len({r["slot"] for r in good}) >= 2:
                break

        stuck = {}

        def run_stuck(name, data):
            stuck[name] = raw_exchange(port, data, timeout=6)

        def run_tls_no_request(name):
            t0 = time.monotonic()
            how = "timeout"
            try:
                c = TLSWSClient(port, client_context(PKI.ca), timeout=6)
                try:
                    c.sock.settimeout(6)
                    while c.sock.recv(4096):
                        pass
                    how = "eof"
                except (ConnectionResetError, ssl.SSLEOFError):
                    how = "reset"
                except socket.timeout:
                    pass
                finally:
                    c.close()
            except BaseException as e:
                how = repr(e)
            stuck[name] = (b"", how, time.monotonic() - t0)

        hello = client_hello()
        stuck_threads = [threading.Thread(target=run_stuck, args=(
            "half hello %d" % i, hello[:len(hello) // 2]), daemon=True)
            for i in range(4)]
        stuck_threads.append(threading.Thread(
            target=run_stuck, args=("record header only", hello[:5]),
            daemon=True))
        stuck_threads.append(threading.Thread(
            target=run_stuck, args=("nothing sent", b""), daemon=True))
        stuck_threads.append(threading.Thread(
            target=run_tls_no_request, args=("TLS done, no HTTP",),
            daemon=True))
        t_stuck = time.monotonic()
        for t in stuck_threads:
            t.start()

        # Meanwhile, the quick refusals.
        # 1. A plain WebSocket client on the TLS port: a 400 in clear.
        w = WSClient(port)
        self._clients.append(w)
        resp = w.handshake("/echo", timeout=5)
        self.assertEqual(resp.status, 400, resp.raw)
        self.assertEqual(resp.body, b"This port speaks TLS: use wss://.\r\n")
        w.expect_tcp_close(timeout=5)
        request = w.request("/echo")
        data, plain_how, _ = raw_exchange(port, request, timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertIn(plain_how, ("eof", "reset"))
        # 2. TLS 1.0 and 1.1 only.
        self.assert_old_tls_refused(ssl.TLSVersion.TLSv1, 0x0301)
        self.assert_old_tls_refused(ssl.TLSVersion.TLSv1_1, 0x0302)
        # 3. Neither TLS nor HTTP.
        data, how, secs = raw_exchange(port, b"\x00\x01hello there\r\n"
                                       * 4, timeout=5)
        self.assertIn(how, ("eof", "reset"), "garbage: %r" % data)
        self.assertLess(secs, 0.9, "garbage should be refused at once, "
                        "not by the handshake timeout")

        for t in stuck_threads:
            t.join(timeout=10)
        t_done = time.monotonic()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=10)

        sys.stderr.write("\n[tls refusals] plain client on the TLS port: "
                         "400 then %s; stuck clients closed after: %s\n"
                         % (plain_how, ", ".join(
                             "%s %s %.2fs" % (k, v[1], v[2])
                             for k, v in sorted(stuck.items()))))
        self.assertEqual(len(stuck), len(stuck_threads), stuck)
        for name, (data, how, secs) in stuck.items():
            self.assertIn(how, ("eof", "reset"), "%s: not closed (%s after "
                          "%.2f s)" % (name, how, secs))
            self.assertEqual(data, b"", name)
            self.assertTrue(0.8 <= secs <= 2.5, "%s closed after %.2f s; "
                            "handshake_timeout is 1 s" % (name, secs))
        for i, rec in enumerate(good):
            self.assertIsNone(rec["error"], "good client %d" % i)
            during = [t for t in rec["times"] if t_stuck < t < t_done]
            self.assertGreater(len(during), 10, "good client %d (slot %s) "
                               "echoed %d times while the bad ones were "
                               "around" % (i, rec["slot"], len(during)))
            self.assertLess(rec["max"], 1.0, "good client %d: an echo "
                            "took %.2f s" % (i, rec["max"]))
        self.assertEqual({r["slot"] for r in good}, {0, 1},
                         "good clients did not cover both workers")
        # Still serving afterwards.
        self.assertEqual(self.tls().command("after"), "after")

    def test_slow_reader_backpressure(self):
        """4 MiB pushed at a client with a 16 KiB receive buffer that
        reads in bursts: the server's TLS writes block and resume (the
        same record offered again) many times; every byte arrives, in
        order, and the connection still answers afterwards."""
        c = self.tls("/probe", rcvbuf=16384, timeout=10)
        n, size = 64, 65536
        c.send_text("push %d %d" % (n, size))
        c.send_text("echo after-push")
        for i in range(n):
            if i % 8 == 0:
                time.sleep(0.05)     # let the server hit a full socket
            op, data = c.recv_message(timeout=10)
            self.assertEqual((op, len(data)), (OP_BINARY, size),
                             "message %d" % i)
            self.assertEqual(data, b"x" * size, "message %d" % i)
        self.assertEqual(c.recv_text(timeout=10), "after-push")
        self.assertEqual(c.command("echo still"), "still")
    def test_plain_http_400_then_fin_not_reset(self):
        """SERVER BUG (worker/conn.c, conn_tls_handshake, the plain-HTTP
        branch): the 400 is sent and the socket closed while the rest of
        the request (all but the 5 bytes OpenSSL read as a record header)
        is still unread, so the kernel answers with RST instead of FIN.
        Over a real network an RST can destroy the 400 in the client's
        buffers before it is read (RFC 9112 §9.6, "tear-down"); a
        client still sending its head gets EPIPE/ECONNRESET instead of
        the answer. On loopback the 400 still arrives first (asserted in
        test_bad_clients_refused_while_others_served). Expected: a half
        close (shutdown SHUT_WR) and the request drained before close."""
        w = WSClient(self.server.port)
        self._clients.append(w)
        data, how, _ = raw_exchange(self.server.port, w.request("/echo"),
                                    timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertEqual(how, "eof", "the 400 was followed by a TCP reset")

    # zz: runs last in the class, after the correctness tests.
    def test_zz_figures(self):
        """Printed, never asserted. wsload has no wss:// yet, so TLS is
        measured with other clients, each next to plain TCP on the same
        server in the same run:
        - handshakes/s, sequential, C clients: `openssl s_time` (TLS
          handshake, or handshake + GET /echo, then close) next to
          `wsload connect -c 1` (TCP + upgrade + close); server CPU per
          handshake from the workers' /proc times;
        - handshakes/s, the same sequential Python loop on both ports
          (connect + [TLS] + upgrade + close): client-bound;
        - echo throughput: Node's ws on ws:// and wss:// (4 connections x
          8 messages in flight), and wsload on ws:// for scale."""
        tls_port, plain_port = self.server.port, self.plain_port
        pids = self.server.children()
        tick = os.sysconf("SC_CLK_TCK")
        out = []

        def server_cpu():
            """utime + stime of the workers in seconds (10 ms ticks)."""
            total = 0
            for pid in pids:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        rest = f.read().rsplit(")", 1)[1].split()
                    total += int(rest[11]) + int(rest[12])
                except (OSError, IndexError, ValueError):
                    pass
            return total / tick

        def run(argv, timeout=20, cwd=None):
            c0, t0 = server_cpu(), time.monotonic()
            try:
                p = subprocess.run(argv, capture_output=True, text=True,
                                   timeout=timeout, cwd=cwd,
                                   stdin=subprocess.DEVNULL)
                rc, text = p.returncode, p.stdout + p.stderr
            except subprocess.TimeoutExpired:
                rc, text = None, "timed out"
            return rc, text, time.monotonic() - t0, server_cpu() - c0

        # 1. Handshakes, C clients, one at a time.
        out.append("handshakes/s, sequential C clients (server CPU per "
                   "handshake, both workers):")
        for label, extra in (("TLS 1.3 full", ["-new"]),
                             ("TLS 1.2 full", ["-new", "-tls1_2"]),
                             ("TLS 1.2 resumed (ticket)",
                              ["-reuse", "-tls1_2"]),
                             ("TLS 1.3 full + GET /echo",
                              ["-new", "-www", "/echo"])):
            rc, text, wall, cpu = run(
                ["openssl", "s_time", "-connect", "127.0.0.1:%d" % tls_port,
                 "-CAfile", PKI.ca, "-time", "1"] + extra)
            m = re.search(r"(\d+) connections in [\d.]+s;", text)
            if rc != 0 or not m:
                out.append("  s_time %-26s failed: %s %r"
                           % (label, rc, text[-200:]))
                continue
            n = int(m.group(1))
            out.append("  openssl s_time %-26s ~%6.0f /s  server %4.0f "
                       "us/handshake" % (label, n / wall, cpu / n * 1e6))
        if os.access(WSLOAD, os.X_OK):
            rc, text, _, _ = run([WSLOAD, "echo", "--url",
                                  "wss://127.0.0.1:%d/echo" % tls_port])
            out.append("  (wsload on wss://: exit %s, %s)"
                       % (rc, text.strip().splitlines()[:1]))
            for conns in ("1", "8"):
                rc, text, _, _ = run(
                    [WSLOAD, "connect", "--url", "ws://127.0.0.1:%d/echo"
                     % plain_port, "-c", conns, "-d", "1", "-w", "0.3",
                     "--server-pid", str(self.server.pid)])
                r = dict(re.findall(r"(\w+)=(\S+)", (re.findall(
                    r"(?m)^RESULT .*$", text) or [""])[0]))
                out.append("  wsload connect -c %s plain TCP        %6s /s  "
                           "server %s handshakes/CPU-s (master included)"
                           % (conns, r.get("msgs_per_sec", "?"),
                              r.get("msgs_per_server_cpu_s", "?")))

        # 2. Handshakes, the same Python loop on both ports.
        ctx13 = client_context(PKI.ca)
        ctx12 = client_context(PKI.ca, max_version=ssl.TLSVersion.TLSv1_2)
        first = TLSWSClient(tls_port, ctx13)
        first.upgrade("/echo")
        first.command("warm")
        sess13 = first.session
        first.close()
        out.append("handshakes/s, sequential Python loop (connect + TLS + "
                   "upgrade + close; client-bound):")
        for label, make in (
                ("plain TCP", lambda: WSClient(plain_port)),
                ("TLS 1.3 full", lambda: TLSWSClient(tls_port, ctx13)),
                ("TLS 1.3 resumed", lambda: TLSWSClient(
                    tls_port, ctx13, session=sess13)),
                ("TLS 1.2 full", lambda: TLSWSClient(tls_port, ctx12))):
            n, c0, t0 = 0, server_cpu(), time.monotonic()
            while time.monotonic() - t0 < 1.0:
                c = make()
                c.upgrade("/echo")
                c.close()
                n += 1
            wall, cpu = time.monotonic() - t0, server_cpu() - c0
            out.append("  python %-18s %6.0f /s  server %4.0f us/handshake"
                       % (label, n / wall, cpu / n * 1e6))

        # 3. Echo throughput.
        node = shutil.which("node")
        if node and os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                               "ws")):
            out.append("echo, Node ws client, 4 connections x 8 in flight, "
                       "binary, 1 s (MB/s one way):")
            for size in (64, 16384, 262144):
                for url in ("ws://127.0.0.1:%d/echo" % plain_port,
                            "wss://127.0.0.1:%d/echo" % tls_port):
                    rc, text, _, cpu = run(
                        [node, os.path.join(NODE_DIR, "tls_client.js"),
                         "bench", url, PKI.ca, "1", str(size), "4", "8"],
                        timeout=30, cwd=NODE_DIR)
                    m = re.search(r'"msgs_per_sec":([\d.]+),'
                                  r'"mb_per_sec":([\d.]+)', text)
                    out.append("  node %-4s %6d B  %s" % (
                        url.split(":")[0], size,
                        "%8.0f msg/s %7.1f MB/s  (server CPU %.2f s "
                        "over the run)" % (float(m.group(1)),
                                           float(m.group(2)), cpu)
                        if rc == 0 and m else "failed: %s %r"
                        % (rc, text[-300:])))
        if os.access(WSLOAD, os.X_OK):
            out.append("echo, wsload on plain TCP only, for scale:")
            for args in (["-c", "4", "-k", "8", "-s", "64"],
                         ["-c", "4", "-k", "8", "-s", "16384", "--binary"],
                         ["-c", "4", "-k", "8", "-s", "262144",
                          "--binary"]):
                rc, text, _, _ = run(
                    [WSLOAD, "echo", "--url", "ws://127.0.0.1:%d/echo"
                     % plain_port, "-d", "1", "-w", "0.3",
                     "--server-pid", str(self.server.pid)] + args)
                r = dict(re.findall(r"(\w+)=(\S+)", (re.findall(
                    r"(?m)^RESULT .*$", text) or [""])[0]))
                try:
                    mbs = "%.1f" % (float(r["msgs_per_sec"]) *
                                    int(args[5]) / 1e6)
                except (KeyError, ValueError):
                    mbs = "?"
                out.append("  wsload ws %6s B  %8s msg/s %7s MB/s  "
                           "p99 %s us" % (args[5], r.get("msgs_per_sec",
                                                         "?"), mbs,
                                          r.get("p99_us", "?")))
        sys.stderr.write("\n[tls figures] server workers=%d, loopback, "
                         "this machine (%d CPUs), one run:\n%s\n"
                         % (self.WORKERS, os.cpu_count(),
                            "\n".join("  " + line for line in out)))


class Resumption(TLSServer):
    """Session tickets are encrypted with keys the master made once: a
    session from one worker resumes on the other, and on the next
    generation."""

    def connect_probe(self, ctx, session=None):
        c = TLSWSClient(self.server.port, ctx, session=session)
        try:
            c.upgrade("/probe")
            sid = int(c.command("id"))
            out = (id_slot(sid), id_generation(sid), c.session_reused,
                   c.session, c.version)
            c.send_close(1000)
            c.expect_close(1000, timeout=5)
        finally:
            c.close()
        return out

    def resume_on_other_worker(self, ctx, version):
        slot0, gen0, reused0, sess, got = self.connect_probe(ctx)
        self.assertEqual(got, version)
        self.assertFalse(reused0, "a first connection cannot be resumed")
        self.assertTrue(sess is not None and sess.has_ticket,
                        "no session ticket from the server")
        tries = []
        for _ in range(60):
            slot, gen, reused, _s, got = self.connect_probe(ctx, sess)
            tries.append((slot, reused))
            self.assertEqual(got, version)
            if slot != slot0:
                break
        sys.stderr.write("\n[tls resumption] %s: first on slot %d, then "
                         "(slot, reused): %s\n" % (version, slot0, tries))
        self.assertNotEqual(tries[-1][0], slot0, "60 connections all landed "
                            "on slot %d: cannot test across workers"
                            % slot0)
        self.assertTrue(tries[-1][1], "%s session from slot %d was not "
                        "resumed on slot %d" % (version, slot0,
                                                tries[-1][0]))
        self.assertEqual([r for _, r in tries], [True] * len(tries),
                         "every reconnection offered the session")
        return sess

    def test_a_resume_across_workers(self):
        for v, name in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
                        (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
            with self.subTest(version=name):
                ctx = client_context(PKI.ca, min_version=v, max_version=v)
                self.resume_on_other_worker(ctx, name)

    def test_b_resume_across_reload(self):
        ctx = client_context(PKI.ca)
        _slot, gen0, _r, sess, _v = self.connect_probe(ctx)
        r = self.server.ctl("reload")
        self.assertEqual(r.rc, 0, "reload: %r %r" % (r.out, r.err))
        _slot, gen, reused, _s, _v = self.connect_probe(ctx, sess)
        self.assertGreater(gen, gen0)
        self.assertTrue(reused, "a session from generation %d was not "
                        "resumed on generation %d" % (gen0, gen))


class Reload(MasterTestCase):
    def test_reload_new_certificate_old_connection_drains(self):
        certdir = tempfile.TemporaryDirectory(prefix="socktls-reload-")
        self.addCleanup(certdir.cleanup)
        cert = os.path.join(certdir.name, "cert.pem")
        key = os.path.join(certdir.name, "key.pem")

        def install(src_cert, src_key):
            for src, dst in ((src_cert, cert), (src_key, key)):
                shutil.copyfile(src, dst + ".tmp")
                os.rename(dst + ".tmp", dst)

        install(PKI.cert_a, PKI.key_a)
        srv = self.start_master(
            workers=2, server_extra="drain_timeout = 5s\n"
            "drain_spread = 1s\n", listen_extra=tls_lines(cert, key))
        ctx = client_context(PKI.ca)

        def connect():
            c = TLSWSClient(srv.port, ctx)
            self._clients.append(c)
            c.upgrade("/probe")
            c.id = int(c.command("id"))
            return c

        old = [connect() for _ in range(2)]
        for c in old:
            self.assertEqual(c.fingerprint, PKI.fp_a)
            self.assertEqual(id_generation(c.id), 1)

        # A key that belongs to another certificate: refused, A still
        # served by generation 1.
        install(PKI.cert_b, PKI.key_a)
        r = srv.ctl("reload")
        listen_line = conf_line(srv.conf_text, "[listen")
        self.assertNotEqual(r.rc, 0, "reload with a mismatched key: %r"
                            % (r.out,))
        self.assertIn("%s:%d:" % (srv.conf, listen_line), r.err + r.out)
        self.assertIn(key, r.err + r.out)
        c = connect()
        self.assertEqual((c.fingerprint, id_generation(c.id)),
                         (PKI.fp_a, 1), "after a refused reload")
        c.close()

        install(PKI.cert_b, PKI.key_b)
        r = srv.ctl("reload")
        t_reload = time.monotonic()
        self.assertEqual(r.rc, 0, "reload: %r %r" % (r.out, r.err))
        self.assertRegex(r.out, r"generation 2 ready")
        fresh = [connect() for _ in range(6)]
        self.assertEqual([(c.fingerprint == PKI.fp_b, id_generation(c.id))
                          for c in fresh], [(True, 2)] * 6,
                         "new connections after the reload")
        for c in fresh:
            c.close()

        # The old connections keep echoing (with certificate A) until
        # their worker drains them: 1012 after drain_timeout (5 s) plus up
        # to drain_spread (1 s).
        results = {}

        def keep_echoing(i, c):
            n, code = 0, None
            deadline = t_reload + 15
            try:
                while time.monotonic() < deadline:
                    c.send_text("echo tick %d" % n)
                    f = c.recv_frame(timeout=5)
                    while f.opcode not in (OP_TEXT, OP_CLOSE):
                        f = c.recv_frame(timeout=5)
                    if f.opcode == OP_CLOSE:
                        code = parse_close(f.payload)[0]
                        break
                    if f.payload != b"tick %d" % n:
                        raise AssertionError("echo %d: %r" % (n, f.payload))
                    n += 1
                    results[i] = (n, None, time.monotonic() - t_reload,
                                  None)
                    time.sleep(0.1)
                t_close = time.monotonic() - t_reload
                c.send_close(1012)
                tail = c.read_until_eof(timeout=5)
                results[i] = (n, code, t_close, tail)
            except BaseException as e:
                results[i] = (n, "error %r" % e,
                              time.monotonic() - t_reload, None)

        threads = [threading.Thread(target=keep_echoing, args=(i, c),
                                    daemon=True) for i, c in enumerate(old)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=25)
        sys.stderr.write("\n[tls reload] old connections (echoes, close "
                         "code, seconds after reload): %s\n"
                         % {i: r[:3] for i, r in results.items()})
        for i, c in enumerate(old):
            n, code, secs, _tail = results[i]
            self.assertEqual(code, 1012, "old connection %d: %r"
                             % (i, results[i]))
            self.assertTrue(4.5 <= secs <= 9.0, "old connection %d closed "
                            "%.2f s after the reload (drain_timeout 5 s, "
                            "drain_spread 1 s)" % (i, secs))
            self.assertGreater(n, 20, "old connection %d echoed %d times"
                               % (i, n))
            self.assertEqual(c.fingerprint, PKI.fp_a)
        fp, sid = probe_fp_gen(srv.port, ctx)
        self.assertEqual((fp, id_generation(sid)), (PKI.fp_b, 2))


def probe_fp_gen(port, ctx):
    c = TLSWSClient(port, ctx)
    try:
        c.upgrade("/probe")
        return c.fingerprint, int(c.command("id"))
    finally:
        c.close()


class ConfigTest(unittest.TestCase):
    """sockd -t names the config FILE:LINE and the file at fault."""

    def check(self, cert, key):
        d = tempfile.TemporaryDirectory(prefix="socktls-t-")
        self.addCleanup(d.cleanup)
        conf = os.path.join(d.name, "sockd.conf")
        text = ("[server]\nworkers = 0\nruntime_dir = %s\n\n"
                "[listen 127.0.0.1:%d]\n%s"
                "[route /echo]\napp = echo\n"
                % (d.name, free_port(), tls_lines(cert, key)))
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.run([SOCKD, "-t", "-c", conf], capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        return p, conf, text

    def test_good_pair_passes(self):
        p, _, _ = self.check(PKI.cert_a, PKI.key_a)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_bad_files_named_with_file_and_line(self):
        missing = os.path.join(PKI.dir, "no-such.key")
        cases = (("missing key", PKI.cert_a, missing, missing,
                  r"No such file"),
                 ("garbage certificate", PKI.garbage, PKI.key_a,
                  PKI.garbage, r"certificate"),
                 ("key of another pair", PKI.cert_a, PKI.other_key,
                  PKI.other_key, r"does not match"))
        for name, cert, key, culprit, why in cases:
            with self.subTest(name):
                p, conf, text = self.check(cert, key)
                out = p.stderr + p.stdout
                sys.stderr.write("\n[sockd -t %s] exit %d: %s"
                                 % (name, p.returncode, p.stderr.strip()))
                self.assertNotEqual(p.returncode, 0, out)
                lines = {conf_line(text, "[listen"),
                         conf_line(text, "tls_certificate"),
                         conf_line(text, "tls_key")}
                m = re.search(r"(?m)^%s:(\d+): (.*)$" % re.escape(conf),
                              p.stderr)
                self.assertIsNotNone(m, "no %s:LINE: in %r" % (conf, out))
                self.assertIn(int(m.group(1)), lines, m.group(0))
                self.assertTrue(m.group(2).startswith(culprit + ":"),
                                "%r does not start with the path %s"
                                % (m.group(2), culprit))
                self.assertRegex(m.group(2), why)


if __name__ == "__main__":
    unittest.main(verbosity=2)
