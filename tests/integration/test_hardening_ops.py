#!/usr/bin/env python3
"""Hardening of the operator's surfaces (issue 11, items 3-7 and 9).

- runtime_dir: a symbolic link, a directory of another user, or one that
  group or others can write to is refused (clear message, non-zero exit,
  the link's target untouched); a fresh one is created 0750; what
  systemd's RuntimeDirectory= makes (0755 or 0700, owned by the service
  user) is accepted.
- The [admin] listener has a real accept queue: 200 concurrent requests
  are all answered, quickly.
- Admin input: /send ids are strict (sign, space, junk, overflow: 400),
  a decoded control character or NUL in a query value is 400 (never cut
  short), a Content-Length over the limit is 413 at once, a bad or
  duplicated one 400.
- An explicit max_connections over what RLIMIT_NOFILE allows is clamped
  (one warn line with both numbers) and the clients beyond it get 503,
  not a hang; and when an app takes every fd (EMFILE), waiting clients
  still get a 503 at once, the log line is rate-limited, nothing spins.
- A stop (TERM, or the master dying) closes the listening sockets at
  once: a new client is refused while the old ones still drain; a reload
  never refuses one.
- Sanitizer build: a worker's clean exit runs LeakSanitizer (a worker
  told to leak reports it).

Every wait has a deadline; every loop is bounded.
"""

import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import AdminMaster, admin_request  # noqa: E402
from mastertest import (SOCKD, MasterTestCase, ProbeConn,  # noqa: E402
                        _die_with_parent, free_port, pid_alive, wait_until)
from sockdtest import (WSClient, check_binaries,  # noqa: E402
                       sockd_is_sanitized)

NOBODY = 65534


def run_sockd_expect_exit(conf_text, timeout=10.0):
    """Runs `sockd -c` on conf_text (a config file in a fresh tmp dir);
    returns (rc, stderr). AssertionError if it is still running after
    timeout (it is then killed)."""
    check_binaries(need_probe=False)
    with tempfile.TemporaryDirectory(prefix="sockdh-") as tmp:
        conf = os.path.join(tmp, "sockd.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        p = subprocess.Popen([SOCKD, "-c", conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=tmp, preexec_fn=_die_with_parent)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate(timeout=10)
            raise AssertionError("sockd still running after %.0f s; it "
                                 "should have refused the config.\n"
                                 "stderr:\n%s" % (timeout, err.decode()))
        return p.returncode, (out + err).decode("utf-8", "replace")


def rt_config(runtime_dir, port, user=None):
    """A config with runtime_dir; port: a number, or "{port}" for a
    Master to fill in."""
    return ("[server]\nworkers = 1\nruntime_dir = %s\n%s"
            "[listen 127.0.0.1:%s]\n[route /echo]\napp = echo\n"
            % (runtime_dir, "user = %s\n" % user if user else "", port))


def http_raw(port, data, timeout=5.0):
    """Sends data, reads to EOF (or timeout); returns (status or None,
    seconds, raw bytes)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", got)
    return (int(m.group(1)) if m else None), time.monotonic() - t0, got


def connect_refused_within(port, limit):
    """(refused?, seconds): a connect to port is refused (ECONNREFUSED)
    within limit seconds; a connect that completes or hangs is not."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(limit)
    try:
        s.connect(("127.0.0.1", port))
        return False, time.monotonic() - t0
    except ConnectionRefusedError:
        return True, time.monotonic() - t0
    except (socket.timeout, OSError):
        return False, time.monotonic() - t0
    finally:
        s.close()


# ---- 3: runtime_dir ---------------------------------------------------------

class RuntimeDir(MasterTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="sockdrt-")
        self.addCleanup(self.tmp.cleanup)
        os.chmod(self.tmp.name, 0o755)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def assert_refused(self, rt, why, user=None):
        rc, err = run_sockd_expect_exit(rt_config(rt, free_port(), user))
        self.assertNotEqual(rc, 0, "sockd accepted runtime_dir %s:\n%s"
                            % (rt, err))
        self.assertIn("runtime_dir %s" % rt, err)
        self.assertIn(why, err)
        self.assertFalse(os.path.exists(os.path.join(rt, "ctl.sock")),
                         "ctl.sock made in a refused runtime_dir")
        return err

    def assert_echo(self, srv):
        with WSClient(srv.port) as c:
            c.upgrade("/echo")
            c.send_text("hi")
            self.assertEqual(c.recv_text(5), "hi")

    def test_symlink_refused_target_untouched(self):
        target = self.path("target")
        os.mkdir(target, 0o700)
        os.chmod(target, 0o700)
        before = os.stat(target)
        link = self.path("rt")
        os.symlink(target, link)
        # With `user =` the old code chowned whatever the link pointed at.
        self.assert_refused(link, "is a symbolic link", user="nobody")
        after = os.stat(target)
        self.assertEqual((after.st_uid, after.st_gid,
                          stat.S_IMODE(after.st_mode)),
                         (before.st_uid, before.st_gid, 0o700),
                         "the link's target was changed")
        self.assertEqual(os.listdir(target), [])
        self.assertTrue(os.path.islink(link))

    def test_symlink_to_missing_refused(self):
        link = self.path("rt")
        os.symlink(self.path("nowhere"), link)
        self.assert_refused(link, "is a symbolic link")
        self.assertFalse(os.path.exists(self.path("nowhere")))

    def test_writable_by_others_refused(self):
        for mode in (0o777, 0o1777, 0o775, 0o757):
            rt = self.path("rt-%o" % mode)
            os.mkdir(rt)
            os.chmod(rt, mode)
            self.assert_refused(rt, "writable by group or others")
            self.assertEqual(stat.S_IMODE(os.stat(rt).st_mode), mode,
                             "mode of a refused runtime_dir changed")

    def test_owned_by_another_user_refused(self):
        rt = self.path("rt")
        os.mkdir(rt, 0o755)
        os.chown(rt, NOBODY, NOBODY)
        self.assert_refused(rt, "owned by another user")
        st = os.stat(rt)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))

    def test_not_a_directory_refused(self):
        rt = self.path("rt")
        with open(rt, "w") as f:
            f.write("x")
        rc, err = run_sockd_expect_exit(rt_config(rt, free_port()))
        self.assertNotEqual(rc, 0, err)
        self.assertIn("runtime_dir %s" % rt, err)

    def test_fresh_path_created_0750(self):
        rt = self.path("fresh")
        srv = self.start_master(workers=1, config=rt_config(rt, "{port}"))
        st = os.stat(rt)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o750)
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertTrue(stat.S_ISSOCK(os.stat(os.path.join(rt,
                                                          "ctl.sock")).st_mode))
        self.assertEqual(srv.status().generation, 1)

    def test_systemd_runtime_directory_accepted(self):
        # RuntimeDirectory= makes it 0755 (RuntimeDirectoryMode= default)
        # or 0700 (dist/sockd.service), owned by the service's User=.
        for mode in (0o755, 0o700):
            rt = self.path("sd-%o" % mode)
            os.mkdir(rt)
            os.chmod(rt, mode)
            srv = self.start_master(workers=1,
                                    config=rt_config(rt, "{port}"))
            self.assertEqual(srv.status().generation, 1)
            self.assert_echo(srv)
            self.assertEqual(stat.S_IMODE(os.stat(rt).st_mode), mode)
            self.assertEqual(srv.stop(), 0)

    def test_owned_by_service_user_accepted(self):
        rt = self.path("rt")
        os.mkdir(rt, 0o755)
        os.chown(rt, NOBODY, NOBODY)
        srv = self.start_master(workers=1,
                                config=rt_config(rt, "{port}", "nobody"))
        self.assertEqual(srv.status().generation, 1)
        self.assert_echo(srv)
        self.assertEqual(os.stat(rt).st_uid, NOBODY)


# ---- 4, 5: the admin endpoint --------------------------------------------------

class AdminCase(MasterTestCase):
    def start_admin(self, **kw):
        s = AdminMaster(**kw)
        self._servers.append(s)
        self.addCleanup(s.stop)
        s.start()
        return s


class AdminBacklog(AdminCase):
    N = 200

    def test_200_concurrent_requests(self):
        srv = self.start_admin(workers=2)
        sel = selectors.DefaultSelector()
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        state, answers = {}, []
        t0 = time.monotonic()
        for i in range(self.N):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.aport))
            state[s] = {"sent": False, "buf": b"", "t": None}
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)
        deadline = t0 + 10
        try:
            while state and time.monotonic() < deadline:
                for key, ev in sel.select(0.1):
                    s, st = key.fileobj, state[key.fileobj]
                    if ev & selectors.EVENT_WRITE and not st["sent"]:
                        try:
                            s.send(req)
                        except BlockingIOError:
                            continue
                        st["sent"] = True
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    if ev & selectors.EVENT_READ:
                        try:
                            b = s.recv(4096)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except ConnectionError:
                            b = b""
                        st["buf"] += b
                        if not b:
                            st["t"] = time.monotonic() - t0
                            sel.unregister(s)
                            s.close()
                            answers.append(st)
                            del state[s]
        finally:
            for s in list(state):
                sel.unregister(s)
                s.close()
        statuses = [re.match(rb"HTTP/1\.1 (\d{3}) ", a["buf"])
                    for a in answers]
        ok = sum(1 for m in statuses if m and m.group(1) == b"200")
        lat = sorted(a["t"] for a in answers)
        sys.stderr.write("\n[admin burst] %d/%d answered 200, max %.3f s, "
                         "p99 %.3f s\n" % (ok, self.N, lat[-1] if lat else -1,
                                           lat[int(len(lat) * 0.99) - 1]
                                           if lat else -1))
        self.assertEqual(len(answers), self.N, "requests never answered")
        self.assertEqual(ok, self.N, "answers that are not 200")
        self.assertLess(lat[-1], 2.0, "slowest admin answer")


class AdminInput(AdminCase):
    def setUp(self):
        super().setUp()
        self.srv = self.start_admin(workers=1)
        self.c = ProbeConn(self.srv.port)
        self._clients.append(self.c.ws)

    def post(self, path, body=b"x"):
        return admin_request(self.srv.aport, "POST", path, body)

    def assert_silent(self, wait=0.3):
        self.c.ws.sock.settimeout(wait)
        try:
            data = self.c.ws.sock.recv(1)
        except socket.timeout:
            return
        self.fail("the connection got something: %r" % data)

    def test_send_ids(self):
        for bad in ("", "-1", "+5", "%205", "5%20", "5abc", "0x", "0xg",
                    "-0x1", "0x-1", "%201", "%2B1", "1e3", "0", "00", "0x0",
                    "18446744073709551616",          # 2^64
                    "99999999999999999999999",
                    "0x10000000000000000",           # 2^64 in hex
                    "%d%%00" % self.c.id, "%d%%0a" % self.c.id,
                    "%d0" % self.c.id + "0" * 30):
            st, body = self.post("/send?id=" + bad)
            self.assertEqual(st, 400, "id=%r got %d %r" % (bad, st, body))
        self.assert_silent()
        # Good forms: decimal, 0x hex, and the largest id (an unknown one:
        # well-formed, so 404 "unknown connection id", not 400).
        st, _ = self.post("/send?id=%d" % self.c.id, b"dec")
        self.assertEqual(st, 202)
        self.assertEqual(self.c.ws.recv_text(5), "info:0:dec")
        st, _ = self.post("/send?id=0x%X" % self.c.id, b"hex")
        self.assertEqual(st, 202)
        self.assertEqual(self.c.ws.recv_text(5), "info:0:hex")
        st, _ = self.post("/send?id=0%d" % self.c.id, b"lead0")
        self.assertEqual(st, 202, "leading zero is decimal, not octal")
        self.assertEqual(self.c.ws.recv_text(5), "info:0:lead0")
        for good in ("18446744073709551615", "0xffffffffffffffff", "0x10"):
            st, body = self.post("/send?id=" + good)
            self.assertEqual(st, 404, "id=%s: %d %r" % (good, st, body))
            self.assertIn(b"unknown connection id", body, good)
        self.assert_silent()

    def test_topic_with_control_chars(self):
        self.assertEqual(self.c.ws.command("sub room"), "ok")
        for bad in ("room%00junk", "room%00", "%00room", "ro%0aom",
                    "room%0d%0a", "room%1f", "room%7f", "room%09", "%00"):
            st, body = self.post("/publish?topic=" + bad, b"cut")
            self.assertEqual(st, 400, "topic=%r got %d %r" % (bad, st, body))
        self.assert_silent()
        st, _ = self.post("/publish?topic=ro%6Fm", b"whole")
        self.assertEqual(st, 202)
        self.assertEqual(self.c.ws.recv_text(5), "topic:room:whole")
        self.assert_silent()

    def test_content_length_over_limit_413_at_once(self):
        for cl in (1024 * 1024 + 1, 10 ** 12, 2 ** 63, 2 ** 64 - 2):
            st, secs, raw = http_raw(
                self.srv.aport, b"POST /publish?topic=room HTTP/1.1\r\n"
                b"Host: x\r\nContent-Length: %d\r\n\r\n" % cl, timeout=5)
            # Past what http-parser represents it is no number: 400.
            self.assertEqual(st, 413 if cl < 2 ** 64 - 2 else 400,
                             "Content-Length %d: %r" % (cl, raw))
            self.assertLess(secs, 1.0, "answer took %.2f s" % secs)

    def test_bad_content_length_400(self):
        self.assertEqual(self.c.ws.command("sub room"), "ok")
        for head in (b"Content-Length: abc\r\n",
                     b"Content-Length: -1\r\n",
                     b"Content-Length: 1 1\r\n",
                     b"Content-Length: 3\r\nContent-Length: 3\r\n",
                     b"Content-Length: 3\r\nContent-Length: 4\r\n",
                     b"Content-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n"):
            st, secs, raw = http_raw(
                self.srv.aport, b"POST /publish?topic=room HTTP/1.1\r\n"
                b"Host: x\r\n" + head + b"\r\nabcd", timeout=5)
            self.assertEqual(st, 400, "%r: %r" % (head, raw))
            self.assertLess(secs, 1.0)
        self.assert_silent()
        st, secs, raw = http_raw(
            self.srv.aport, b"POST /publish?topic=room HTTP/1.1\r\n"
            b"Host: x\r\nContent-Length: 4\r\n\r\nabcd", timeout=5)
        self.assertEqual(st, 202, raw)
        self.assertEqual(self.c.ws.recv_text(5), "topic:room:abcd")


# ---- 6: max_connections and RLIMIT_NOFILE -------------------------------------------

class NofileClamp(MasterTestCase):
    NOFILE = 128

    def test_explicit_max_connections_clamped(self):
        srv = self.start_master(
            workers=1, argv_prefix=["prlimit", "--nofile=%d:%d"
                                    % (self.NOFILE, self.NOFILE)],
            server_extra="max_connections = 5000\nhandshake_timeout = 60s")
        m = srv.wait_log(r"event=max_connections_clamped "
                         r"max_connections=5000 allowed=(\d+) nofile=(\d+)",
                         5)
        allowed, nofile = int(m.group(1)), int(m.group(2))
        self.assertEqual(nofile, self.NOFILE)
        self.assertTrue(0 < allowed <= self.NOFILE - 16, m.group(0))
        self.assertEqual(len(re.findall("max_connections_clamped",
                                        srv.log())), 1,
                         "one warn line, not one per worker or accept")
        held = []
        try:
            for i in range(allowed):
                s = socket.create_connection(("127.0.0.1", srv.port), 5)
                held.append(s)
            # The worker took all of them (none is in the backlog).
            wait_until(lambda: srv.status().workers[0].conns == allowed, 5,
                       what="the worker to hold %d connections" % allowed)
            for i in range(5):
                st, secs, raw = http_raw(srv.port, b"GET /echo HTTP/1.1\r\n"
                                         b"Host: x\r\n\r\n", timeout=3)
                self.assertEqual(st, 503, "client %d over the limit got %r "
                                 "after %.2f s" % (i, raw, secs))
                self.assertLess(secs, 1.0)
            # The held ones are still served.
            c = WSClient(srv.port)
            c.sock.close()
            c.sock = held.pop(0)
            c.sock.settimeout(5)
            c.upgrade("/echo")
            c.send_text("still")
            self.assertEqual(c.recv_text(5), "still")
            c.close()
        finally:
            for s in held:
                s.close()
        self.assertNotIn("accept_failed", srv.log(),
                         "the worker ran out of fds")

    def test_out_of_fds_clients_get_503(self):
        # An app that takes every fd left: accept fails with EMFILE. The
        # clients must still be answered, and the loop must not spin.
        srv = self.start_master(
            workers=1, argv_prefix=["prlimit", "--nofile=%d:%d"
                                    % (self.NOFILE, self.NOFILE)],
            extra="[route /leaky]\napp = {build}/leaky.so\n")
        hog = WSClient(srv.port)
        self._clients.append(hog)
        hog.upgrade("/leaky")
        hog.send_text("hogfds")
        got = hog.recv_text(5)
        self.assertRegex(got, r"^hogged [1-9]\d*$")
        mark = srv.mark()
        t0 = time.monotonic()
        for i in range(5):
            st, secs, raw = http_raw(srv.port, b"GET /echo HTTP/1.1\r\n"
                                     b"Host: x\r\n\r\n", timeout=3)
            self.assertEqual(st, 503, "client %d at EMFILE got %r after "
                             "%.2f s" % (i, raw, secs))
            self.assertLess(secs, 1.0)
        spent = time.monotonic() - t0
        log = srv.log_since(mark)
        lines = re.findall(r"event=accept_failed error=\"Too many open "
                           r"files\" open=\d+ action=refuse_503", log)
        self.assertGreaterEqual(len(lines), 1, log)
        self.assertLessEqual(len(lines), int(spent) + 1,
                             "accept_failed not rate-limited:\n" + log)
        self.assertNotIn("pause_500ms", log)
        hog.send_text("unhog")
        self.assertEqual(hog.recv_text(5), got.replace("hogged", "unhogged"))
        c = WSClient(srv.port)
        self._clients.append(c)
        c.upgrade("/echo")
        c.send_text("back")
        self.assertEqual(c.recv_text(5), "back")


# ---- 7: the stop window --------------------------------------------------------

class StopWindow(MasterTestCase):
    def open_draining_client(self, srv):
        c = WSClient(srv.port, timeout=10)
        self._clients.append(c)
        c.upgrade("/echo")
        c.send_text("hello")
        self.assertEqual(c.recv_text(5), "hello")
        return c

    def test_graceful_stop_refuses_new_clients(self):
        srv = self.start_master(workers=1,
                                server_extra="shutdown_timeout = 6s")
        old = self.open_draining_client(srv)
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGTERM)
        # The live client gets its 1001 and, not answering, keeps its
        # worker draining for shutdown_timeout.
        old.expect_close(1001, timeout=5)
        srv.wait_log(r"event=stopping mode=graceful", 5, since=mark)
        refused, secs = connect_refused_within(srv.port, 0.5)
        self.assertIsNone(srv.proc.poll(), "sockd exited already")
        self.assertTrue(refused, "a new client during the stop was not "
                        "refused (waited %.2f s)" % secs)
        self.assertLess(secs, 0.5)
        old.send_close(1001)
        self.assertEqual(srv.wait(10), 0)

    def test_orphaned_worker_refuses_new_clients(self):
        srv = self.start_master(workers=1,
                                server_extra="shutdown_timeout = 6s")
        worker = srv.children()[0]
        old = self.open_draining_client(srv)
        mark = srv.mark()
        self._servers.remove(srv)   # it is meant to die
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(5)
        srv.wait_log(r"event=master_gone", 5, since=mark, allow_exit=True)
        old.expect_close(1001, timeout=5)
        refused, secs = connect_refused_within(srv.port, 0.5)
        self.assertTrue(pid_alive(worker), "the worker is gone already")
        self.assertTrue(refused, "a new client after the master died was "
                        "not refused (waited %.2f s)" % secs)
        old.send_close(1001)
        wait_until(lambda: not pid_alive(worker), 10,
                   what="the orphaned worker to exit")

    def test_reload_refuses_nobody(self):
        srv = self.start_master(workers=2)
        mark = srv.mark()
        p = subprocess.Popen([SOCKD, "-s", "reload", "-c", srv.conf],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent)
        tries = refused = 0
        deadline = time.monotonic() + 15
        while p.poll() is None and time.monotonic() < deadline:
            ok, _ = connect_refused_within(srv.port, 1.0)
            refused += ok
            tries += 1
            time.sleep(0.005)
        self.assertEqual(p.wait(15), 0)
        srv.wait_ready(2, since=mark)
        for _ in range(20):
            ok, _ = connect_refused_within(srv.port, 1.0)
            refused += ok
            tries += 1
        self.assertEqual(refused, 0, "%d of %d connects refused around a "
                         "reload" % (refused, tries))


# ---- 9: LeakSanitizer in workers -------------------------------------------------

LEAK_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1"}
LSAN_REPORT = "ERROR: LeakSanitizer: detected memory leaks"


@unittest.skipUnless(sockd_is_sanitized(), "needs the sanitizer build "
                     "(-DSOCK_SANITIZE=ON)")
class WorkerLeakCheck(MasterTestCase):
    LEAKY = "[route /leaky]\napp = {build}/leaky.so\n"

    def run_worker(self, message):
        srv = self.start_master(workers=1, env=LEAK_ENV, extra=self.LEAKY)
        with WSClient(srv.port) as c:
            c.upgrade("/leaky")
            c.send_text(message)
            self.assertEqual(c.recv_text(5),
                             "leaked" if message == "leak" else message)
            c.send_close(1000)
            c.expect_close(1000, timeout=5)
        mark = srv.mark()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.wait(20)
        return rc, srv.log_since(mark), srv

    def test_clean_worker_exit_reports_nothing(self):
        rc, log, srv = self.run_worker("no leak")
        self.assertEqual(rc, 0)
        self.assertNotIn(LSAN_REPORT, log)
        self.assertRegex(log, r"event=worker_exit generation=1 slot=0 "
                         r"child=\d+ status=0\b")

    def test_leaking_worker_is_reported_at_exit(self):
        rc, log, srv = self.run_worker("leak")
        # The worker's own check found the 64 blocks (1000 to 1063 bytes)
        # the app dropped, and its exit status says so.
        self.assertIn(LSAN_REPORT, log)
        # (LSan groups blocks by stack: "66016 byte(s) in 64 object(s)".)
        ours = [(int(b), int(n)) for b, n in re.findall(
            r"Direct leak of (\d+) byte\(s\) in (\d+) object", log)
            if 1000 <= int(b) // int(n) <= 1063]
        self.assertTrue(ours, log[-3000:])
        self.assertLessEqual(sum(n for _, n in ours), 64)
        self.assertRegex(log, r"event=worker_exit generation=1 slot=0 "
                         r"child=\d+ status=%d\b" % (23 << 8))
        self.assertEqual(rc, 0, "the master itself leaks nothing")


if __name__ == "__main__":
    unittest.main(verbosity=2)
