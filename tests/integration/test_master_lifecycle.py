#!/usr/bin/python3
"""The master's lifecycle (DESIGN §4.1, §4.2): respawn after a worker is
killed, graceful and fast stops, the control commands and their `status`
output, log reopening, and a crash-looping slot.

Interface under test (as specified for the master):
- `status` prints `master pid=P generation=G`, then per generation
  `generation G active|draining`, then per worker
  `  worker slot=K pid=P conns=C state=ready|starting|draining`.
- `sockd -s CMD -c FILE` and `sockctl -c FILE CMD` are the same thing:
  exit 0 on success, non-zero with the error on stderr; `reload` prints
  `reload: generation G ready (N workers)`. RUNTIME_DIR/ctl.sock is 0600.
- A worker killed with SIGKILL is replaced in the same slot (new pid)
  within ~1 s (asserted: 2 s); only its connections drop.
- TERM/QUIT: every client gets 1001, the master exits 0 after all its
  workers, bounded by shutdown_timeout; INT: exits within ~2 s (status 0
  or death by SIGINT accepted, printed). No worker outlives the master.
- A slot that crashes right after start is given up after 5 tries with a
  log line `event=slot_crash_loop`; the master keeps running. (Not in the
  interface, accepted here: `status` shows a given-up slot as
  `state=crash-loop`, as the master does.) The crashing
  app is tests/apps/crashy.c (exits 3 in its constructor when
  SOCK_CRASHY=1, or when the file SOCK_CRASHY_FILE exists).
- USR1 / `reopen`: log files are reopened (log_file in [server]).

Probe ids give each connection's worker slot: (id >> 32) & 0xff.
"""

import collections
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (BUILD_DIR, SOCKD, MasterTestCase,  # noqa: E402
                        PeerClosed, ProbeConn, free_port, id_generation,
                        id_slot, parse_status, pid_alive, probe_id,
                        wait_until)
from sockdtest import main  # noqa: E402

CRASHY_SO = os.path.join(BUILD_DIR, "crashy.so")
RESPAWN_LIMIT = 2.0
CRASH_STATES = ("crash-loop",)   # the master's extension for given-up slots
PROMPT_EXIT = 2.5   # stop after every client answered the close at once


def conns_by_slot(conns):
    out = collections.defaultdict(list)
    for c in conns:
        out[c.slot].append(c)
    return out


class Lifecycle(MasterTestCase):
    def open_spread(self, srv, per_slot=3, slots=2, limit=80):
        """Opens /probe connections until every slot holds per_slot."""
        conns = []
        for _ in range(limit):
            by = conns_by_slot(conns)
            if len(by) >= slots and all(len(v) >= per_slot
                                        for v in by.values()):
                return conns
            conns.append(self.probe(srv))
        self.fail("could not get %d connections on each of %d slots in %d "
                  "connects: %s" % (per_slot, slots, limit,
                                    {k: len(v) for k, v in
                                     conns_by_slot(conns).items()}))

    # ---- respawn ----------------------------------------------------------

    def test_kill9_worker_respawns_in_same_slot(self):
        srv = self.start_master(workers=2)
        conns = self.open_spread(srv)
        st = srv.status()
        slot_pid = {w.slot: w.pid for w in st.workers}
        self.assertEqual(set(slot_pid), {c.slot for c in conns},
                         "status slots differ from the probe id slots:\n"
                         + st.text)
        victim_slot = conns[0].slot
        victim = slot_pid[victim_slot]
        others = [c for c in conns if c.slot != victim_slot]
        mine = [c for c in conns if c.slot == victim_slot]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        for c in mine:
            try:
                c.ws.expect_tcp_close(timeout=3)
            except AssertionError as e:
                self.fail("a connection of the killed worker stayed open: "
                          "%s" % e)
        for i, c in enumerate(others):
            self.assertEqual(c.echo("alive-%d" % i), "alive-%d" % i,
                             "a connection of the other worker")

        def respawned():
            s = srv.status()
            ws = [w for w in s.workers if w.slot == victim_slot]
            if len(ws) == 1 and ws[0].pid != victim and \
                    ws[0].state == "ready":
                return s
            return None
        st2 = wait_until(respawned, 5, what="a new worker in slot %d"
                         % victim_slot)
        took = time.monotonic() - t0
        sys.stderr.write("\n[respawn] slot %d: pid %d -> %d in %.2f s\n"
                         % (victim_slot, victim,
                            [w.pid for w in st2.workers
                             if w.slot == victim_slot][0], took))
        self.assertLess(took, RESPAWN_LIMIT, "respawn took %.2f s" % took)
        self.assertEqual(st2.generation, 1)
        self.assertEqual(list(st2.generations.items()), [(1, "active")])
        self.assertEqual(sorted(w.slot for w in st2.workers),
                         sorted(slot_pid))
        other_pid = [p for s, p in slot_pid.items() if s != victim_slot]
        self.assertEqual([w.pid for w in st2.workers
                          if w.slot != victim_slot], other_pid,
                         "the other worker was replaced too")
        self.assertEqual(srv.children(), sorted(w.pid for w in st2.workers))
        self.assertFalse(pid_alive(victim))
        # The slot serves again.
        slots = set()
        for _ in range(40):
            c = ProbeConn(srv.port)
            slots.add(c.slot)
            c.close()
            if victim_slot in slots:
                break
        self.assertIn(victim_slot, slots, "no new connection reached the "
                      "respawned slot")
        for i, c in enumerate(others):
            self.assertEqual(c.echo("still-%d" % i), "still-%d" % i)

    # ---- stops --------------------------------------------------------------

    def check_graceful_stop(self, sig):
        srv = self.start_master(workers=2, server_extra="shutdown_timeout = "
                                "5s")
        conns = self.open_spread(srv, per_slot=1)
        while len(conns) < 10:
            conns.append(self.probe(srv))
        workers = srv.children()
        self.assertEqual(len(workers), 2)
        t0 = time.monotonic()
        srv.signal(sig)
        codes = []
        for c in conns:
            try:
                code, _ = c.ws.expect_close(timeout=5)
            except PeerClosed as e:
                code = "no close frame: %s" % e
            codes.append(code)
            try:
                c.ws.send_close(1001)
            except OSError:
                pass
        # Like a real client: wait for the server's TCP close, then close.
        for c in conns:
            try:
                c.ws.read_until_eof(timeout=5)
            except AssertionError:
                pass
            c.close()
        self.assertEqual(codes, [1001] * len(conns),
                         "close codes after %s" % sig.name)
        rc = srv.wait(10)
        took = time.monotonic() - t0
        sys.stderr.write("\n[%s] master exited %s in %.2f s\n"
                         % (sig.name, rc, took))
        self.assertEqual(rc, 0, "master exit status after %s" % sig.name)
        self.assertLess(took, PROMPT_EXIT, "every client answered the close "
                        "at once, yet the stop took %.2f s (shutdown_timeout"
                        " = 5s is a bound, not a wait)" % took)
        alive = [p for p in workers if pid_alive(p)]
        self.assertEqual(alive, [], "workers alive after the master exited")
        self.assert_no_leftovers(srv)
        self.assertRegex(srv.log(), r"(?m)^<\d>master pid=%d " % srv.pid)

    def test_term_sends_1001_and_exits_0(self):
        self.check_graceful_stop(signal.SIGTERM)

    def test_quit_is_graceful_too(self):
        self.check_graceful_stop(signal.SIGQUIT)

    def test_term_bounded_by_shutdown_timeout(self):
        # A client that never answers the close frame (and a worker whose
        # close_timeout is long) cannot hold the stop past shutdown_timeout.
        srv = self.start_master(workers=2,
                                server_extra="shutdown_timeout = 1s",
                                echo_extra="close_timeout = 30s")
        silent = [self.client("/echo", server=srv) for _ in range(4)]
        workers = srv.children()
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(8)
        took = time.monotonic() - t0
        sys.stderr.write("\n[TERM, silent clients] exit %s in %.2f s\n"
                         % (rc, took))
        self.assertIsNotNone(rc, "master still running 8 s after TERM with "
                             "shutdown_timeout = 1s")
        self.assertLess(took, 3.5)
        self.assertEqual(rc, 0)
        self.assertEqual([p for p in workers if pid_alive(p)], [])
        self.assert_no_leftovers(srv)
        for c in silent:
            c.expect_tcp_close(timeout=2)

    def test_int_is_fast(self):
        srv = self.start_master(workers=2,
                                server_extra="shutdown_timeout = 30s",
                                echo_extra="close_timeout = 30s")
        clients = [self.client("/echo", server=srv) for _ in range(6)]
        workers = srv.children()
        t0 = time.monotonic()
        srv.signal(signal.SIGINT)
        rc = srv.wait(5)
        took = time.monotonic() - t0
        sys.stderr.write("\n[INT] exit %s in %.2f s\n" % (rc, took))
        self.assertIsNotNone(rc, "master still running 5 s after INT")
        self.assertLess(took, 2.5)
        self.assertIn(rc, (0, -signal.SIGINT), "exit status after INT")
        self.assertEqual([p for p in workers if pid_alive(p)], [])
        self.assert_no_leftovers(srv)
        for c in clients:
            c.read_until_eof(timeout=2)   # TCP closed, frames or not

    # ---- control ---------------------------------------------------------

    def test_status_format(self):
        srv = self.start_master(workers=2)
        conns = self.open_spread(srv, per_slot=2)
        r = srv.ctl("status")
        self.assertEqual(r.rc, 0, r.err)
        st = parse_status(r.out)
        lines = r.out.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 4, "status output:\n" + r.out)
        self.assertEqual(st.master_pid, srv.pid)
        self.assertEqual(st.generation, 1)
        self.assertEqual(list(st.generations.items()), [(1, "active")])
        self.assertEqual(len(st.workers), 2)
        self.assertEqual(sorted(w.pid for w in st.workers), srv.children())
        self.assertEqual({w.state for w in st.workers}, {"ready"})
        self.assertEqual(sorted(w.slot for w in st.workers),
                         sorted({c.slot for c in conns}))
        want = collections.Counter(c.slot for c in conns)

        def counted():
            s = srv.status()
            return {w.slot: w.conns for w in s.workers} == dict(want)
        wait_until(counted, 3, what="status conns = %s" % dict(want))

    def test_sockctl_and_sockd_s_are_the_same(self):
        srv = self.start_master(workers=2)
        ctl_sock = os.path.join(srv.tmp.name, "ctl.sock")
        mode = os.stat(ctl_sock).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600, "ctl.sock mode %o"
                         % stat.S_IMODE(mode))
        a = srv.ctl("status", tool="sockd")
        b = srv.ctl("status", tool="sockctl")
        self.assertEqual((a.rc, b.rc), (0, 0), (a.err, b.err))
        self.assertEqual(a.out, b.out)
        parse_status(a.out)

        r = srv.ctl("reload", tool="sockctl")
        self.assertEqual(r.rc, 0, r.err)
        self.assertRegex(r.out, r"(?m)^reload: generation 2 ready "
                         r"\(2 workers\)$")
        self.assertEqual(id_generation(probe_id(srv.port)), 2)
        r = srv.ctl("reload", tool="sockd")
        self.assertEqual(r.rc, 0, r.err)
        self.assertRegex(r.out, r"(?m)^reload: generation 3 ready "
                         r"\(2 workers\)$")
        st = srv.status(tool="sockctl")
        self.assertEqual(st.generation, 3)

        for tool in ("sockd", "sockctl"):
            r = srv.ctl("reopen", tool=tool)
            self.assertEqual(r.rc, 0, "%s reopen: %r" % (tool, r.err))
            r = srv.ctl("no-such-command", tool=tool)
            self.assertNotEqual(r.rc, 0, "%s no-such-command succeeded"
                                % tool)
            self.assertTrue(r.err.strip(), "%s no-such-command: no error "
                            "on stderr" % tool)
        srv.assert_alive()

        workers = srv.children()
        r = srv.ctl("stop", tool="sockctl")
        self.assertEqual(r.rc, 0, r.err)
        rc = srv.wait(10)
        self.assertEqual(rc, 0, "exit status after `sockctl stop`")
        self.assertEqual([p for p in workers if pid_alive(p)], [])
        self.assert_no_leftovers(srv)

    def test_quit_command_stops_gracefully(self):
        srv = self.start_master(workers=2)
        c = self.probe(srv)
        r = srv.ctl("quit")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(c.ws.expect_close(timeout=5)[0], 1001)
        self.assertEqual(srv.wait(10), 0)
        self.assert_no_leftovers(srv)

    def test_ctl_without_master_fails(self):
        with tempfile.TemporaryDirectory(prefix="sockdnoctl-") as d:
            conf = os.path.join(d, "sockd.conf")
            with open(conf, "w") as f:
                f.write("[server]\nworkers = 1\nruntime_dir = %s\n"
                        "[listen 127.0.0.1:%d]\n[route /echo]\napp = echo\n"
                        % (d, free_port()))
            p = subprocess.run([SOCKD, "-s", "status", "-c", conf],
                               capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
            self.assertNotEqual(p.returncode, 0, "status without a master "
                                "succeeded: %r" % p.stdout)
            self.assertTrue(p.stderr.strip(), "no error message")

    # ---- logs ------------------------------------------------------------

    def test_reopen_logs(self):
        # Lines go to log_file from the start, so readiness is read there.
        srv = self.start_master(workers=2, ready=False,
                                server_extra="log_file = {tmp}/sockd.log")
        log = os.path.join(srv.tmp.name, "sockd.log")

        def read(path):
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        with self.subTest("log_file is written from the start"):
            wait_until(lambda: re.search(r"event=ready generation=1\b",
                                         read(log)), 5,
                       what="the master's ready line in log_file")
        for n, how in enumerate(("USR1", "reopen")):
            rotated = log + ".%d" % (n + 1)
            if os.path.exists(log):
                os.rename(log, rotated)
            if how == "USR1":
                srv.signal(signal.SIGUSR1)
            else:
                r = srv.ctl("reopen")
                self.assertEqual(r.rc, 0, r.err)
            wait_until(lambda: os.path.exists(log), 3,
                       what="a new %s after %s" % (log, how))
            srv.signal(signal.SIGHUP)   # makes master and workers log
            gen = n + 2
            # log_file lines start with a UTC timestamp (issue 13).
            wait_until(lambda: re.search(r"(?m)^\S+Z <\d>master pid=%d .*"
                                         r"event=ready generation=%d\b"
                                         % (srv.pid, gen), read(log)), 10,
                       what="generation %d ready in the new log file after "
                       "%s" % (gen, how))
            self.assertNotRegex(read(rotated), r"event=ready generation=%d"
                                r"\b" % gen, "written to the rotated file "
                                "after %s" % how)
            # The old generation's workers log their drain there too.
            wait_until(lambda: re.search(r"(?m)^\S+Z <\d>worker pid=\d+ "
                                         r"slot=\d+ ", read(log)), 10,
                       what="a worker line in the new log file after %s"
                       % how)

    # ---- crash loop --------------------------------------------------------

    def crash_route(self):
        if not os.path.exists(CRASHY_SO):
            self.fail("%s is missing (cmake --build build)" % CRASHY_SO)
        return "[route /crashy]\napp = %s" % CRASHY_SO

    def test_crash_loop_at_start_is_given_up(self):
        srv = self.start_master(workers=2, extra=self.crash_route(),
                                env={"SOCK_CRASHY": "1"}, ready=False)
        t0 = time.monotonic()
        srv.wait_log(r"event=slot_crash_loop\b", 20)
        # Both slots crash; both are given up.
        wait_until(lambda: len(re.findall(r"(?m)event=slot_crash_loop\b",
                                          srv.log())) >= 2, 20,
                   what="slot_crash_loop for both slots")
        took = time.monotonic() - t0
        sys.stderr.write("\n[crash loop] given up after %.1f s:\n%s\n"
                         % (took, "\n".join(
                             line for line in srv.log().splitlines()
                             if "slot_crash_loop" in line)))
        lines = [line for line in srv.log().splitlines()
                 if "slot_crash_loop" in line]
        for line in lines:
            self.assertRegex(line, r"^<\d>master pid=%d " % srv.pid)
        slots = {re.search(r"slot=(\d+)", line).group(1) for line in lines}
        self.assertEqual(len(slots), 2, lines)
        # Every slot of the first generation gave up: nothing can serve, so
        # the master says so and exits 1 (systemd sees the start fail)
        # instead of idling without workers.
        rc = srv.wait(5)
        self.assertEqual(rc, 1, "master with every slot given up: exit %r"
                         % (rc,))
        self.assertRegex(srv.log(), r"(?m)^<3>master pid=%d "
                         r"event=start_failed generation=1\b" % srv.pid)
        self.assertEqual(srv.children(), [])

    def test_crash_loop_in_one_slot_leaves_others_serving(self):
        flag = os.path.join("/tmp", "sockd-crashy-%d-%s" % (
            os.getpid(), os.urandom(4).hex()))
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        srv = self.start_master(workers=2, extra=self.crash_route(),
                                env={"SOCK_CRASHY_FILE": flag})
        conns = self.open_spread(srv, per_slot=1)
        st = srv.status()
        victim = st.workers[0]
        with open(flag, "w"):
            pass
        mark = srv.mark()
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        m = srv.wait_log(r"^<\d>master pid=%d .*event=slot_crash_loop\b.*$"
                         % srv.pid, 20, since=mark)
        sys.stderr.write("\n[crash loop, slot %d] after %.1f s: %s\n"
                         % (victim.slot, time.monotonic() - t0, m.group(0)))
        self.assertRegex(m.group(0), r"\bslot=%d\b" % victim.slot)
        sys.stderr.write("[crash loop] master lines about the slot:\n%s\n"
                         % "\n".join(
                             line for line in srv.log_since(mark).split("\n")
                             if "master pid=" in line and
                             re.search(r"\bslot=%d\b" % victim.slot, line)))
        srv.assert_alive()
        others = [c for c in conns if c.slot != victim.slot]
        self.assertTrue(others)
        for i, c in enumerate(others):
            self.assertEqual(c.echo("ok-%d" % i), "ok-%d" % i)
        for _ in range(10):
            self.assertNotEqual(id_slot(probe_id(srv.port)), victim.slot,
                                "a connection landed on the given-up slot")
        r = srv.ctl("status")
        self.assertEqual(r.rc, 0, r.err)
        sys.stderr.write("[crash loop] status:\n%s" % r.out)
        st2 = parse_status(r.out, CRASH_STATES)
        alive = [w for w in st2.workers if w.slot != victim.slot]
        self.assertEqual([(w.pid, w.state) for w in alive],
                         [(w.pid, "ready") for w in st.workers
                          if w.slot != victim.slot])
        # A reload brings the slot back once the crash is fixed.
        os.unlink(flag)
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        self.assertRegex(r.out, r"reload: generation 2 ready \(2 workers\)")


if __name__ == "__main__":
    main()
