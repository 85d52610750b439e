"""mastertest: helpers for the tests of sockd's preforking master
(DESIGN §4): a Server with `workers = N`, the control commands
(`sockd -s CMD`, `sockctl CMD`) and their `status` output, probe ids,
/proc inspection, a fake systemd NOTIFY_SOCKET, and cleanup of any worker
that outlives its master.

Builds on sockdtest (which it does not change). Standard library only.

Environment, besides sockdtest's SOCKD and SOCK_BUILD_DIR:
  SOCKCTL   the sockctl binary (default: SOCK_BUILD_DIR/sockctl)

Process hygiene: this module makes the test process a child subreaper
(PR_SET_CHILD_SUBREAPER), so a worker whose master died is reparented to
the test, found, reported and killed (by pid) when the server is stopped.
The master itself dies with the test (PR_SET_PDEATHSIG).
"""

import collections
import ctypes
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (BUILD_DIR, REPO, SOCKD, PeerClosed,  # noqa: E402,F401
                       Server, ServerError, SockdTestCase, WSClient,
                       check_binaries, free_port, signal_name)

SOCKCTL = os.environ.get("SOCKCTL") or os.path.join(BUILD_DIR, "sockctl")

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

READY_TIMEOUT = float(os.environ.get("SOCK_READY_TIMEOUT", "15"))


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_until(pred, timeout, interval=0.05, what="a condition"):
    """Polls pred() until it returns a true value (returned) or the
    deadline passes (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


# ---- ids -------------------------------------------------------------------

def id_generation(sid):
    """Generation of a sock_id (DESIGN §5.1: node16|gen8|slot8|serial32)."""
    return (sid >> 40) & 0xFF


def id_slot(sid):
    return (sid >> 32) & 0xFF


class ProbeConn:
    """A raw client upgraded on /probe that knows its sock_id."""

    def __init__(self, port, timeout=5.0, path="/probe"):
        self.ws = WSClient(port, timeout=timeout)
        try:
            self.ws.upgrade(path)
            self.id = int(self.ws.command("id"))
        except BaseException:
            self.ws.close()
            raise
        self.generation = id_generation(self.id)
        self.slot = id_slot(self.id)

    def echo(self, text, timeout=None):
        return self.ws.command("echo " + text, timeout)

    def close(self):
        self.ws.close()

    def __repr__(self):
        return "<ProbeConn id=%d gen=%d slot=%d>" % (self.id, self.generation,
                                                    self.slot)


def probe_id(port, timeout=5.0):
    """Connects to /probe, asks `id`, closes; returns the id."""
    c = ProbeConn(port, timeout)
    try:
        c.ws.send_close(1000)
    except OSError:
        pass
    c.close()
    return c.id


# ---- /proc -------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def children_of(ppid):
    """Pids (not zombies) whose parent is ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st is not None and st[1] == ppid and st[0] != "Z":
            out.append(int(name))
    return sorted(out)


def proc_environ(pid):
    """/proc/PID/environ as a list of 'KEY=VALUE' strings. Note: this is
    the environment block laid out at execve; unsetenv() in a process
    does not change it (glibc only rewrites the environ pointer array)."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        data = f.read()
    return [e.decode("utf-8", "replace") for e in data.split(b"\0") if e]


def proc_exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def socket_inodes_of(pid):
    """Inodes of the sockets pid has open (from /proc/PID/fd)."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in names:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m:
            out[int(m.group(1))] = int(fd)
    return out


def listening_inodes(port, host="127.0.0.1"):
    """Inodes of the TCP sockets in LISTEN on host:port (/proc/net/tcp)."""
    want = "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(host))[0],
                          port)
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want and parts[3] == "0A":
                out.append(int(parts[9]))
    return out


# ---- status ------------------------------------------------------------------

Worker = collections.namedtuple("Worker", "generation slot pid conns state")
Status = collections.namedtuple("Status",
                                "master_pid generation generations workers "
                                "text")

_RE_MASTER = re.compile(r"^master pid=(\d+) generation=(\d+)$")
_RE_GEN = re.compile(r"^generation (\d+) (active|draining)$")
_RE_WORKER = re.compile(r"^  worker slot=(\d+) pid=(\d+) conns=(\d+) "
                        r"state=([a-z-]+)$")
WORKER_STATES = ("ready", "starting", "draining")


def parse_status(text, extra_states=()):
    """Parses `status` output (see the interface in the test docstrings);
    AssertionError quoting the text on anything unexpected. Worker states
    are ready, starting or draining, plus extra_states."""
    lines = text.rstrip("\n").split("\n")
    m = _RE_MASTER.match(lines[0]) if lines else None
    if not m:
        raise AssertionError("status: first line is not 'master pid=P "
                             "generation=G':\n%s" % text)
    master_pid, gen = int(m.group(1)), int(m.group(2))
    gens = collections.OrderedDict()
    workers = []
    cur = None
    for line in lines[1:]:
        g = _RE_GEN.match(line)
        if g:
            cur = int(g.group(1))
            if cur in gens:
                raise AssertionError("status: generation %d twice:\n%s"
                                     % (cur, text))
            gens[cur] = g.group(2)
            continue
        w = _RE_WORKER.match(line)
        if w and w.group(4) not in WORKER_STATES + tuple(extra_states):
            raise AssertionError("status: unknown worker state %r in:\n%s"
                                 % (w.group(4), text))
        if w:
            if cur is None:
                raise AssertionError("status: worker line before any "
                                     "generation line:\n%s" % text)
            workers.append(Worker(cur, int(w.group(1)), int(w.group(2)),
                                  int(w.group(3)), w.group(4)))
            continue
        raise AssertionError("status: unexpected line %r in:\n%s"
                             % (line, text))
    return Status(master_pid, gen, gens, workers, text)


# ---- the server --------------------------------------------------------------

CtlResult = collections.namedtuple("CtlResult", "rc out err argv")


class Master(Server):
    """sockd with a master and `workers` workers, on a fresh port.

    server_extra / listen_extra / echo_extra / probe_extra / extra: lines
    added to [server], the [listen] section, the routes, and after
    everything. config: a whole config text instead ({port}, {tmp},
    {build}, {workers} substituted). env: extra environment (a value of
    None removes the variable). argv_prefix: a command the sockd command
    line is appended to (e.g. systemd-socket-activate -l
    127.0.0.1:{port}), with {port}, {tmp}, ... substituted; it must exec
    sockd in place so that proc.pid is the master's pid. port: a fixed
    port instead of a fresh one.
    """

    def __init__(self, workers=2, server_extra="", listen_extra="",
                 echo_extra="", probe_extra="", extra="", config=None,
                 env=None, argv_prefix=None, port=None, name="sockd-master"):
        super().__init__(server_extra=server_extra, echo_extra=echo_extra,
                         probe_extra=probe_extra, extra=extra,
                         config=config, name=name)
        self.workers = workers
        self.listen_extra = listen_extra
        self.env = env or {}
        self.argv_prefix = list(argv_prefix or [])
        self.fixed_port = port
        self.known = {}          # pid -> starttime of every worker seen
        self.leftovers = []      # workers found alive after the master exit
        self.start_time = None

    # -- config ---------------------------------------------------------

    def subst(self):
        return {"port": self.port, "tmp": self.tmp.name, "build": BUILD_DIR,
                "workers": self.workers}

    def config_text(self):
        subst = self.subst()
        if self.custom is not None:
            return self.custom.format(**subst)
        return ("[server]\n"
                "workers = {workers}\n"
                "runtime_dir = {tmp}\n"
                "log_level = info\n"
                "{server_extra}"
                "[listen 127.0.0.1:{port}]\n"
                "{listen_extra}"
                "[route /echo]\n"
                "app = echo\n"
                "{echo_extra}"
                "[route /probe]\n"
                "app = {build}/probe.so\n"
                "{probe_extra}"
                "{extra}").format(
                    server_extra=_lines(self.server_extra.format(**subst)),
                    listen_extra=_lines(self.listen_extra.format(**subst)),
                    echo_extra=_lines(self.echo_extra.format(**subst)),
                    probe_extra=_lines(self.probe_extra.format(**subst)),
                    extra=_lines(self.extra.format(**subst)), **subst)

    def write_config(self, text):
        """Replaces the config file (for reloads); returns its path."""
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf)
        return self.conf

    # -- start and stop --------------------------------------------------

    def start(self, timeout=READY_TIMEOUT, ready=True):
        """Starts sockd; with ready, waits for the master's
        `event=ready generation=1` line (connecting proves nothing: the
        master holds the listening socket before any worker accepts)."""
        check_binaries()
        self.tmp = tempfile.TemporaryDirectory(prefix="sockdm-")
        self.port = self.fixed_port or free_port()
        self.conf = os.path.join(self.tmp.name, "sockd.conf")
        self.conf_text = self.config_text()
        with open(self.conf, "w") as f:
            f.write(self.conf_text)
        self.log_path = os.path.join(self.tmp.name, "stderr.log")
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        subst = self.subst()
        self.argv = [a.format(**subst) for a in self.argv_prefix] + \
            [SOCKD, "-c", self.conf]
        self.start_time = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=self._log, cwd=self.tmp.name, env=env,
            preexec_fn=_die_with_parent)
        if ready:
            try:
                self.wait_log(r"^<\d>master pid=\d+ event=ready "
                              r"generation=1 workers=%d\b" % self.workers,
                              timeout)
            except ServerError:
                raise
            except AssertionError as e:
                self.stop()
                raise ServerError("%s\nconfig:\n%s\nstderr:\n%s"
                                  % (e, self.conf_text, self.log()))
            self.ready_time = time.monotonic()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def _remember(self, pids):
        for pid in pids:
            st = proc_stat(pid)
            if st is not None and pid not in self.known:
                self.known[pid] = st[2]

    def children(self):
        """Live child pids of the master (its workers)."""
        kids = children_of(self.proc.pid)
        self._remember(kids)
        return kids

    def stop(self, timeout=15.0):
        """SIGTERM, SIGKILL after timeout; then kills (and lists in
        self.leftovers) any worker still alive. Returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reap_leftovers()
        self._finish(self.proc.returncode)
        return self.returncode

    def wait(self, timeout):
        rc = super().wait(timeout)
        return rc

    def alive_workers(self):
        """Workers (seen earlier, or now reparented to the test process
        because their master died) that are still running."""
        out = []
        for pid, start in self.known.items():
            st = proc_stat(pid)
            if st is not None and st[0] != "Z" and st[2] == start:
                out.append(pid)
        me = os.getpid()
        sockd = os.path.realpath(SOCKD)
        for pid in children_of(me):
            if pid == self.proc.pid or pid in out:
                continue
            if os.path.realpath(proc_exe(pid)) == sockd and \
                    pid not in self.known:
                # An orphan the master never showed us; only ours if its
                # environment points at our config (same tmp dir).
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if self.conf.encode() in cmd:
                    out.append(pid)
        return sorted(out)

    def reap_leftovers(self):
        """After the master exited: kill what is left, by pid."""
        left = self.alive_workers()
        for pid in left:
            self.leftovers.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    r, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break           # not our child: init reaps it
                if r == pid:
                    break
                time.sleep(0.02)
        if left:
            sys.stderr.write("\n[mastertest] %s: killed %d worker(s) left "
                             "after the master exited: %s\n"
                             % (self.name, len(left), left))
        return left

    # -- logs -------------------------------------------------------------

    def mark(self):
        """The current length of the log, for wait_log(since=...)."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, timeout, since=0, allow_exit=False):
        """Waits until a log line (after offset `since`) matches the regex
        (re.M); returns the match. ServerError if sockd exits first."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), since)
            if m:
                return m
            if not allow_exit and self.proc.poll() is not None:
                rc = self.proc.poll()
                raise ServerError("sockd exited (status %d%s) while waiting "
                                  "for /%s/ in its log.\nstderr:\n%s"
                                  % (rc, signal_name(rc), pattern,
                                     self.log_tail()))
            if time.monotonic() >= deadline:
                raise AssertionError("no log line /%s/ within %.1f s"
                                     % (pattern, timeout))
            time.sleep(0.05)

    def wait_ready(self, generation, timeout=READY_TIMEOUT, since=0):
        return self.wait_log(r"^<\d>master pid=\d+ event=ready "
                             r"generation=%d\b" % generation, timeout, since)

    # -- control -----------------------------------------------------------

    def ctl(self, *cmd, tool="sockd", timeout=30.0):
        """Runs `sockd -s CMD -c FILE` (tool="sockd") or
        `sockctl -c FILE CMD` (tool="sockctl"); returns a CtlResult."""
        if tool == "sockd":
            argv = [SOCKD, "-s"] + list(cmd) + ["-c", self.conf]
        else:
            if not os.access(SOCKCTL, os.X_OK):
                raise AssertionError("sockctl not found at %s (set SOCKCTL "
                                     "or build it)" % SOCKCTL)
            argv = [SOCKCTL, "-c", self.conf] + list(cmd)
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout,
                               cwd=self.tmp.name if self.tmp else None)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s did not exit within %.0f s (stdout %r "
                                 "stderr %r)" % (" ".join(argv), timeout,
                                                 e.stdout, e.stderr))
        return CtlResult(p.returncode, p.stdout.decode("utf-8", "replace"),
                         p.stderr.decode("utf-8", "replace"), argv)

    def status(self, tool="sockd", extra_states=()):
        r = self.ctl("status", tool=tool, timeout=10)
        if r.rc != 0:
            raise AssertionError("%s exited %d: stdout %r stderr %r"
                                 % (" ".join(r.argv), r.rc, r.out, r.err))
        st = parse_status(r.out, extra_states)
        self._remember(w.pid for w in st.workers if w.pid > 0)
        return st

    def wait_status(self, pred, timeout, what="a status"):
        last = [None]

        def check():
            last[0] = self.status()
            return pred(last[0])
        try:
            wait_until(check, timeout, interval=0.1, what=what)
        except AssertionError as e:
            raise AssertionError("%s; last status:\n%s"
                                 % (e, last[0].text if last[0] else "-"))
        return last[0]

    def url(self, path="/echo"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)


def _lines(text):
    text = text.strip("\n")
    return text + "\n" if text else ""


# ---- systemd notify ------------------------------------------------------------

Notification = collections.namedtuple("Notification",
                                      "t pid uid gid fields text")


class NotifySocket:
    """A fake $NOTIFY_SOCKET: an AF_UNIX datagram socket with SO_PASSCRED,
    read by a thread that records each datagram with its sender's pid
    (SCM_CREDENTIALS, filled in by the kernel). abstract: bind a Linux
    abstract name and export it as '@name'."""

    MAX_SECONDS = 600

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.tmp = None
        if abstract:
            name = "sockdtest-notify-%d-%s" % (os.getpid(),
                                                os.urandom(4).hex())
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.tmp = tempfile.TemporaryDirectory(prefix="sockdnotify-")
            path = os.path.join(self.tmp.name, "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)
        self.items = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        space = socket.CMSG_SPACE(struct.calcsize("iII"))
        deadline = time.monotonic() + self.MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, space)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self.errors.append(repr(e))
                return
            pid = uid = gid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and \
                        typ == socket.SCM_CREDENTIALS:
                    pid, uid, gid = struct.unpack("iII", cdata[:12])
            text = data.decode("utf-8", "replace")
            fields = collections.OrderedDict()
            for line in text.split("\n"):
                if not line:
                    continue
                k, sep, v = line.partition("=")
                fields[k] = v if sep else None
            with self._lock:
                self.items.append(Notification(time.monotonic(), pid, uid,
                                               gid, fields, text))

    def snapshot(self):
        with self._lock:
            return list(self.items)

    def wait_for(self, pred, timeout, start=0, what="a notification"):
        """Waits for a datagram at index >= start with pred(n) true;
        returns (index, notification)."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.snapshot()
            for i in range(start, len(items)):
                if pred(items[i]):
                    return i, items[i]
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "timed out after %.1f s waiting for %s; got %d "
                    "datagram(s) since #%d: %s"
                    % (timeout, what, len(items) - start, start,
                       describe_notifications(items[start:])))
            time.sleep(0.02)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        if self.tmp is not None:
            self.tmp.cleanup()


def describe_notifications(items, limit=20):
    out = []
    for n in items[:limit]:
        out.append("pid=%s %r" % (n.pid, n.text))
    if len(items) > limit:
        out.append("... %d more" % (len(items) - limit))
    return "[" + "; ".join(out) + "]"


def monotonic_usec():
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)


# ---- unittest glue ---------------------------------------------------------------

class MasterTestCase(SockdTestCase):
    """SockdTestCase with start_master(); sockd's log is printed when a
    test fails (by SockdTestCase.run), and every master is stopped (and
    its left-over workers killed) at cleanup."""

    def start_master(self, ready=True, **kw):
        s = Master(**kw)
        self._servers.append(s)
        self.addCleanup(s.stop)
        s.start(ready=ready)
        return s

    def probe(self, server, timeout=5.0):
        c = ProbeConn(server.port, timeout)
        self._clients.append(c.ws)
        return c

    def assert_no_leftovers(self, server):
        left = server.reap_leftovers()
        self.assertEqual(left, [], "workers still running after the master "
                         "exited: %s" % left)


__all__ = [n for n in dir() if not n.startswith("_")]
