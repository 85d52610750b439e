#!/usr/bin/python3
"""systemd integration (DESIGN §4.1, §4.6) without systemd as PID 1: a
fake NOTIFY_SOCKET, systemd-socket-activate, and systemd-analyze on the
shipped units (dist/).

Interface under test:
- Only the master notifies, to $NOTIFY_SOCKET (AF_UNIX datagram; a
  leading '@' means an abstract name): READY=1 (with STATUS= and
  MAINPID=<master>) when generation 1 accepts; at a reload RELOADING=1
  with MONOTONIC_USEC=<CLOCK_MONOTONIC in µs> in the same datagram, then
  READY=1 when the new generation accepts; STOPPING=1 at a stop;
  WATCHDOG=1 every WATCHDOG_USEC/2 when WATCHDOG_USEC is set and
  WATCHDOG_PID is unset or the master's pid (asserted: no gap between two
  pings reaches WATCHDOG_USEC); none when WATCHDOG_PID is another pid.
  EXTEND_TIMEOUT_USEC (≥ 1 s) while a stop waits for a silent client.
  The sender of every datagram (SCM_CREDENTIALS) is the master.
- Workers never have NOTIFY_SOCKET in their environment, checked in
  /proc/PID/environ (the environment block the kernel laid out at exec:
  a worker forked from a master that only called unsetenv() still shows
  it there, so the master must scrub it in place, or re-exec).
- Socket activation: with LISTEN_PID/LISTEN_FDS (systemd-socket-activate
  -l 127.0.0.1:PORT, which waits for the first connection and then execs
  sockd in place, passing on only the variables given with -E), sockd
  serves on the passed socket (the only listening
  socket on the port, held by the master and the workers), including the
  connection that triggered the activation, and keeps it across a reload.
- `systemd-analyze verify` on the units CMake generates from
  dist/sockd.service.in and dist/sockd.socket.in prints nothing (units
  copied with the installed sockd path pointing at the built binary; man pages resolved from docs/ through MANPATH, or --man=no when
  man is missing), and `systemd-analyze security --offline=true` rates
  dist/sockd.service at an exposure of at most 2.0.
- Every ListenStream= of dist/sockd.socket matches a [listen] of
  dist/sockd.conf, which passes `sockd -t`.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (REPO, SOCKD, MasterTestCase,  # noqa: E402
                        NotifySocket, ProbeConn, WSClient, free_port,
                        id_generation, listening_inodes, monotonic_usec,
                        proc_environ, socket_inodes_of)
from sockdtest import BUILD_DIR, main  # noqa: E402

DIST = os.path.join(REPO, "dist")
GENERATED = os.path.join(BUILD_DIR, "dist")
SYSTEMD_TOOLS = ("systemd-analyze", "systemd-socket-activate")
MAX_EXPOSURE = 2.0


def missing_systemd_tools():
    missing = [t for t in SYSTEMD_TOOLS if shutil.which(t) is None]
    if missing:
        sys.stderr.write("\n" + "!" * 72 + "\n!! SKIPPING: %s not found; "
                         "install the Debian package 'systemd' (tools/dev "
                         "deps does)\n" % ", ".join(missing) + "!" * 72
                         + "\n")
    return missing


def is_ready(n):
    return n.fields.get("READY") == "1"


class Notify(MasterTestCase):
    def notify_socket(self, abstract=False):
        ns = NotifySocket(abstract=abstract)
        self.addCleanup(ns.close)
        return ns

    def assert_all_from(self, ns, pid):
        others = [n for n in ns.snapshot() if n.pid != pid]
        self.assertEqual(others, [], "datagrams not from the master (pid "
                         "%d)" % pid)

    def test_ready_reloading_ready_stopping(self):
        ns = self.notify_socket()
        srv = self.start_master(workers=2, env={
            "NOTIFY_SOCKET": ns.env_value, "WATCHDOG_USEC": None,
            "WATCHDOG_PID": None})
        pid = srv.pid
        i, ready = ns.wait_for(is_ready, 5, what="READY=1")
        self.assertEqual(ready.pid, pid, "READY=1 sender")
        self.assertEqual(ready.fields.get("MAINPID"), str(pid),
                         "MAINPID in the READY=1 datagram %r" % ready.text)
        with self.subTest("STATUS= with READY=1"):
            self.assertTrue(ready.fields.get("STATUS"),
                            "no STATUS= with READY=1: %r" % ready.text)
        before_ready = ns.snapshot()[:i]
        self.assertFalse(any(n.fields.get("RELOADING") or
                             n.fields.get("STOPPING")
                             for n in before_ready), before_ready)

        # Workers' environment.
        workers = srv.children()
        self.assertEqual(len(workers), 2)
        for w in workers:
            env = proc_environ(w)
            with self.subTest("NOTIFY_SOCKET in /proc/%d/environ" % w):
                self.assertFalse([e for e in env
                                  if e.startswith("NOTIFY_SOCKET=")],
                                 "worker %d has NOTIFY_SOCKET in "
                                 "/proc/%d/environ (unsetenv() alone does "
                                 "not clear the kernel's copy; scrub it in "
                                 "place before forking)" % (w, w))

        # Reload.
        t_hup = monotonic_usec()
        srv.signal(signal.SIGHUP)
        j, rel = ns.wait_for(lambda n: n.fields.get("RELOADING") == "1",
                             10, start=i + 1, what="RELOADING=1")
        t_after = monotonic_usec()
        self.assertEqual(rel.pid, pid)
        self.assertIn("MONOTONIC_USEC", rel.fields,
                      "RELOADING=1 without MONOTONIC_USEC in the same "
                      "datagram: %r" % rel.text)
        mono = int(rel.fields["MONOTONIC_USEC"])
        self.assertTrue(t_hup - 1000 <= mono <= t_after + 1000,
                        "MONOTONIC_USEC=%d not between %d (HUP) and %d"
                        % (mono, t_hup, t_after))
        k, ready2 = ns.wait_for(is_ready, 15, start=j + 1,
                                what="READY=1 after the reload")
        self.assertEqual(ready2.pid, pid)
        srv.wait_ready(2, timeout=5)
        self.assertEqual(id_generation(ProbeConn(srv.port).id), 2)

        # Stop.
        srv.signal(signal.SIGTERM)
        s, stopping = ns.wait_for(lambda n: n.fields.get("STOPPING") == "1",
                                  10, start=k + 1, what="STOPPING=1")
        self.assertEqual(stopping.pid, pid)
        self.assertEqual(srv.wait(15), 0)
        time.sleep(0.2)
        self.assert_all_from(ns, pid)
        seq = [key for n in ns.snapshot() for key in
               ("READY", "RELOADING", "STOPPING")
               if n.fields.get(key) == "1"]
        sys.stderr.write("\n[notify] sequence %s; %d datagrams; last "
                         "STATUS=%r\n" % (seq, len(ns.snapshot()),
                                          [n.fields["STATUS"] for n in
                                           ns.snapshot()
                                           if "STATUS" in n.fields][-1:]))
        self.assertEqual(seq, ["READY", "RELOADING", "READY", "STOPPING"])

    def test_extend_timeout_during_long_stop(self):
        # A client that never answers the close keeps the stop going until
        # shutdown_timeout (3 s): systemd hears EXTEND_TIMEOUT_USEC meanwhile.
        ns = self.notify_socket()
        srv = self.start_master(workers=2, env={
            "NOTIFY_SOCKET": ns.env_value},
            server_extra="shutdown_timeout = 3s",
            echo_extra="close_timeout = 30s")
        i, _ = ns.wait_for(is_ready, 5, what="READY=1")
        self.client("/echo", server=srv)       # silent from now on
        srv.signal(signal.SIGTERM)
        j, _ = ns.wait_for(lambda n: n.fields.get("STOPPING") == "1", 5,
                           start=i + 1, what="STOPPING=1")
        _, ext = ns.wait_for(lambda n: "EXTEND_TIMEOUT_USEC" in n.fields, 5,
                             start=j, what="EXTEND_TIMEOUT_USEC during the "
                             "stop")
        self.assertIsNone(srv.proc.poll(), "EXTEND_TIMEOUT_USEC only after "
                          "the master exited?")
        self.assertEqual(ext.pid, srv.pid)
        usec = int(ext.fields["EXTEND_TIMEOUT_USEC"])
        sys.stderr.write("\n[notify] stop: EXTEND_TIMEOUT_USEC=%d\n" % usec)
        self.assertGreaterEqual(usec, 1000000, "EXTEND_TIMEOUT_USEC too "
                                "short to cover the remaining stop")
        self.assertEqual(srv.wait(10), 0)
        self.assert_all_from(ns, srv.pid)

    def test_abstract_notify_socket(self):
        ns = self.notify_socket(abstract=True)
        self.assertTrue(ns.env_value.startswith("@"))
        srv = self.start_master(workers=1, env={
            "NOTIFY_SOCKET": ns.env_value})
        _, ready = ns.wait_for(is_ready, 5, what="READY=1 on an abstract "
                               "socket")
        self.assertEqual(ready.pid, srv.pid)

    def watchdog_pings(self, ns, seconds):
        time.sleep(seconds)
        return [n for n in ns.snapshot() if n.fields.get("WATCHDOG") == "1"]

    def test_watchdog(self):
        ns = self.notify_socket()
        srv = self.start_master(workers=2, env={
            "NOTIFY_SOCKET": ns.env_value, "WATCHDOG_USEC": "400000",
            "WATCHDOG_PID": None})
        ns.wait_for(is_ready, 5, what="READY=1")
        pings = self.watchdog_pings(ns, 2.5)
        gaps = [b.t - a.t for a, b in zip(pings, pings[1:])]
        sys.stderr.write("\n[watchdog] %d pings in 2.5 s, max gap %.3f s\n"
                         % (len(pings), max(gaps) if gaps else -1))
        self.assertGreaterEqual(len(pings), 6, "WATCHDOG=1 pings in 2.5 s "
                                "with WATCHDOG_USEC=400000")
        self.assertLess(max(gaps), 0.4, "a gap between pings reached "
                        "WATCHDOG_USEC")
        self.assertEqual({n.pid for n in pings}, {srv.pid})
        self.assert_all_from(ns, srv.pid)

    def test_watchdog_pid_is_honoured(self):
        # WATCHDOG_PID = the master's own pid: pings. sh execs sockd in
        # place, so $$ is the master's pid.
        ns = self.notify_socket()
        srv = self.start_master(workers=1, env={
            "NOTIFY_SOCKET": ns.env_value, "WATCHDOG_USEC": "400000"},
            argv_prefix=["/bin/sh", "-c",
                         'WATCHDOG_PID=$$ exec "$0" "$@"'])
        ns.wait_for(is_ready, 5, what="READY=1")
        self.assertGreaterEqual(len(self.watchdog_pings(ns, 1.2)), 2,
                                "no pings with WATCHDOG_PID = master pid")
        # Another pid: the watchdog is not ours, no pings.
        ns2 = self.notify_socket()
        srv2 = self.start_master(workers=1, env={
            "NOTIFY_SOCKET": ns2.env_value, "WATCHDOG_USEC": "400000",
            "WATCHDOG_PID": "1"})
        ns2.wait_for(is_ready, 5, what="READY=1")
        self.assertEqual(self.watchdog_pings(ns2, 1.2), [],
                         "WATCHDOG=1 sent although WATCHDOG_PID=1")
        self.assertEqual({n.pid for n in ns.snapshot()}, {srv.pid})
        self.assertEqual({n.pid for n in ns2.snapshot()}, {srv2.pid})


class SocketActivation(MasterTestCase):
    def setUp(self):
        super().setUp()
        if missing_systemd_tools():
            self.skipTest("systemd tools missing")

    def test_socket_activate_serves_passed_socket(self):
        port = free_port()
        ns = NotifySocket()
        self.addCleanup(ns.close)
        srv = self.start_master(
            workers=2, port=port, ready=False,
            env={"NOTIFY_SOCKET": ns.env_value},
            argv_prefix=["systemd-socket-activate", "-l",
                         "127.0.0.1:{port}", "-E",
                         "NOTIFY_SOCKET=" + ns.env_value])
        srv.wait_log(r"Listening on 127\.0\.0\.1:%d" % port, 10)
        launcher_inodes = listening_inodes(port)
        self.assertEqual(len(launcher_inodes), 1)
        # The first connection makes systemd-socket-activate exec sockd;
        # it waits in the backlog until a worker accepts it.
        first = WSClient(port, timeout=10)
        self._clients.append(first)
        srv.wait_ready(1, timeout=15)
        self.assertEqual(first.upgrade("/probe").status, 101)
        self.assertEqual(id_generation(int(first.command("id"))), 1)
        _, ready = ns.wait_for(is_ready, 5, what="READY=1")
        self.assertEqual(ready.pid, srv.pid, "systemd-socket-activate must "
                         "exec sockd in place")

        inodes = listening_inodes(port)
        self.assertEqual(inodes, launcher_inodes, "sockd listens on its own "
                         "socket instead of the passed one")
        inode = inodes[0]
        self.assertIn(inode, socket_inodes_of(srv.pid), "the master does "
                      "not hold the passed socket")
        workers = srv.children()
        self.assertEqual(len(workers), 2)
        for w in workers:
            self.assertIn(inode, socket_inodes_of(w), "worker %d does not "
                          "hold the passed socket" % w)
            env = proc_environ(w)
            leaked = [e for e in env if e.split("=", 1)[0] in
                      ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                       "NOTIFY_SOCKET")]
            if leaked:
                sys.stderr.write("\n[socket activation] worker %d environ "
                                 "still has %s\n" % (w, leaked))
        conns = [ProbeConn(port) for _ in range(6)]
        for c in conns:
            self._clients.append(c.ws)
            self.assertEqual(c.generation, 1)

        # A reload keeps the passed socket.
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_ready(2, since=mark)
        self.assertEqual(listening_inodes(port), [inode])
        self.assertEqual(id_generation(ProbeConn(port).id), 2)
        self.assertEqual(conns[0].echo("old"), "old")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait(15), 0)
        self.assert_no_leftovers(srv)


class Units(MasterTestCase):
    def setUp(self):
        super().setUp()
        if missing_systemd_tools():
            self.skipTest("systemd tools missing")
        for name in ("sockd.service.in", "sockd.socket.in", "sockd.conf"):
            self.assertTrue(os.path.exists(os.path.join(DIST, name)),
                            "dist/%s is missing" % name)
        self.tmp = tempfile.TemporaryDirectory(prefix="sockdunits-")
        self.addCleanup(self.tmp.cleanup)
        sockd = os.path.realpath(SOCKD)
        with open(os.path.join(GENERATED, "sockd.service")) as f:
            m = re.search(r"(?m)^ExecStart=(\S+)/sockd -c ", f.read())
        self.assertIsNotNone(m, "no ExecStart= in the generated unit")
        self.installed_sbindir = m.group(1)
        for name in ("sockd.service", "sockd.socket"):
            with open(os.path.join(GENERATED, name)) as f:
                text = f.read()
            self.assertNotIn("@SOCKD_", text, "%s: unsubstituted" % name)
            with open(os.path.join(self.tmp.name, name), "w") as f:
                f.write(text.replace(self.installed_sbindir + "/sockd",
                                     sockd))

    def unit(self, name):
        return os.path.join(self.tmp.name, name)

    def run_tool(self, argv, env=None, timeout=60):
        e = dict(os.environ)
        e.update(env or {})
        e["SYSTEMD_LOG_COLOR"] = "0"
        e["SYSTEMD_COLORS"] = "0"
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=e,
                           cwd=self.tmp.name)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def test_verify_prints_nothing(self):
        argv = ["systemd-analyze", "verify"]
        env = {}
        if shutil.which("man"):
            man = os.path.join(self.tmp.name, "man")
            for page in os.listdir(os.path.join(REPO, "docs")):
                m = re.match(r".*\.(\d)$", page)
                if m:
                    os.makedirs(os.path.join(man, "man" + m.group(1)),
                                exist_ok=True)
                    shutil.copy(os.path.join(REPO, "docs", page),
                                os.path.join(man, "man" + m.group(1)))
            env["MANPATH"] = man
        else:
            sys.stderr.write("\n!! `man` is missing: verify runs with "
                             "--man=no\n")
            argv.append("--man=no")
        argv += [self.unit("sockd.service"), self.unit("sockd.socket")]
        rc, out, err = self.run_tool(argv, env)
        self.assertEqual((out + err).strip(), "",
                         "systemd-analyze verify printed (rc %d):\n%s%s"
                         % (rc, out, err))
        self.assertEqual(rc, 0)

    def test_security_exposure(self):
        rc, out, err = self.run_tool(["systemd-analyze", "security",
                                      "--offline=true",
                                      self.unit("sockd.service")])
        m = re.search(r"Overall exposure level for sockd\.service: "
                      r"([0-9.]+)", out + err)
        self.assertIsNotNone(m, "no exposure line (rc %d):\n%s%s"
                             % (rc, out[-3000:], err))
        level = float(m.group(1))
        sys.stderr.write("\n[security] %s\n" % m.group(0))
        self.assertLessEqual(level, MAX_EXPOSURE, "exposure %.1f:\n%s"
                             % (level, out[-4000:]))

    def test_unit_directives(self):
        with open(os.path.join(GENERATED, "sockd.service")) as f:
            svc = f.read()
        # The generated unit runs the sockd this build installs, with the
        # configuration path compiled into it (sockd -h shows it).
        h = subprocess.run([SOCKD, "-h"], capture_output=True, timeout=10)
        m = re.search(r"\(default (\S+)\)", h.stdout.decode())
        self.assertIsNotNone(m, h.stdout)
        sbin, conf = self.installed_sbindir, m.group(1)
        for line in ("Type=notify", "NotifyAccess=main", "KillMode=mixed",
                     "ExecStartPre=%s/sockd -t -c %s" % (sbin, conf),
                     "ExecStart=%s/sockd -c %s" % (sbin, conf),
                     "ExecReload=%s/sockd -s reload -c %s" % (sbin, conf),
                     "RuntimeDirectory=sockd", "User=sockd",
                     "SystemCallFilter=~@privileged @resources"):
            self.assertRegex(svc, r"(?m)^%s$" % re.escape(line))
        self.assertRegex(svc, r"(?m)^WatchdogSec=")

    def test_socket_matches_default_config(self):
        with open(os.path.join(DIST, "sockd.socket.in")) as f:
            streams = re.findall(r"(?m)^ListenStream=(\S+)$", f.read())
        with open(os.path.join(DIST, "sockd.conf")) as f:
            conf = f.read()
        listens = re.findall(r"(?m)^\[listen (\S+)\]", conf)
        self.assertTrue(streams)
        for s in streams:
            self.assertIn(s, listens, "ListenStream=%s has no matching "
                          "[listen] in dist/sockd.conf" % s)
        runtime = re.search(r"(?m)^runtime_dir\s*=\s*(\S+)", conf)
        self.assertEqual(runtime and runtime.group(1), "/run/sockd",
                         "runtime_dir must be RuntimeDirectory=sockd")
        rc, out, err = self.run_tool([SOCKD, "-t", "-c",
                                      os.path.join(DIST, "sockd.conf")])
        self.assertEqual(rc, 0, "sockd -t dist/sockd.conf: %s%s"
                         % (out, err))


if __name__ == "__main__":
    main()
