"""test_operator_tools: what an operator runs against sockd (issue 13).

- `sockd --help`/`-h`, `--version`/`-v`, long options, a bad option (2).
- `sockd -T`: every key with its effective value, defaults included, in the
  file's syntax: the output parses again and prints the same; a bad config
  prints no dump and fails.
- `sockctl conns` over the [admin] endpoint lists every open connection of
  both workers (id, route, peer, age, send-queue bytes), exactly the probes
  connected; `sockctl close ID CODE` closes one (the client gets CODE) and a
  second close, an id on no worker and a serial no worker holds are 404s;
  `sockctl send` to an open id on the other worker delivers, to an unknown
  id fails with "unknown connection id" (it used to answer "sent").
- /metrics: sock_build_info{version=...}, sock_generation and the reload
  counters across a good and a refused reload, process_* figures, and
  closes labelled by kind and error (the two admin closes: shutdown, none).
- A start-up that fails is logged as event=start_failed, not
  reload_failed; lines written to log_file start with a UTC timestamp.
"""

import calendar
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (SOCKCTL, SOCKD, MasterTestCase,  # noqa: E402
                        ProbeConn, free_port, wait_until)
from sockdtest import OP_CLOSE, main, parse_close  # noqa: E402

VERSION_RE = r"sockd \d+\.\d+\.\d+\n"
STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z <\d>"
                      r"(master|worker) pid=\d+ ")


def run(argv, timeout=30):
    p = subprocess.run(argv, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def http_get(port, path, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                   % path).encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def metric(text, name):
    m = re.search(r"(?m)^%s ([0-9.e+]+)$" % re.escape(name), text)
    if m is None:
        raise AssertionError("no %s in /metrics:\n%s" % (name, text))
    return float(m.group(1))


def dump_keys(text):
    """The non-comment lines of a -T dump (the header names the file)."""
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


class CommandLine(MasterTestCase):
    def test_help_and_version(self):
        rc, out, err = run([SOCKD, "--help"])
        self.assertEqual((rc, err), (0, ""))
        for opt in ("-c, --config FILE", "-t, --test", "-T, --print-config",
                    "-s, --signal SIGNAL", "-v, --version", "-h, --help"):
            self.assertIn(opt, out)
        self.assertEqual(run([SOCKD, "-h"]), (0, out, ""))
        rc, out, err = run([SOCKD, "--version"])
        self.assertEqual((rc, err), (0, ""))
        self.assertRegex(out, "^" + VERSION_RE + "$")
        self.assertEqual(run([SOCKD, "-v"]), (0, out, ""))
        rc, out, err = run([SOCKD, "--no-such-option"])
        self.assertEqual((rc, out), (2, ""))
        self.assertIn("usage: sockd", err)

    def test_print_config(self):
        tmp = tempfile.TemporaryDirectory(prefix="sockdT-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "a.conf")
        with open(conf, "w") as f:
            f.write("[server]\nworkers = 3\nidle_timeout = 90s\n"
                    "runtime_dir = %s\n[listen 127.0.0.1:9]\n"
                    "[route /echo]\napp = echo\ncompress = on\n"
                    "max_message_size = 1MiB\n" % tmp.name)
        rc, out, err = run([SOCKD, "-T", "-c", conf])
        self.assertEqual(rc, 0, err)
        self.assertIn("test is successful", err)
        keys = dump_keys(out)
        server = keys[:keys.index("[listen 127.0.0.1:9]")]
        route = keys[keys.index("[route /echo]"):]
        # What the file set, and defaults it did not.
        for line in ("workers = 3", "idle_timeout = 90s",
                     "runtime_dir = " + tmp.name, "log_level = info",
                     "handshake_timeout = 10s", "max_frame_size = 8MiB",
                     "send_hard_limit = 16MiB", "compress = off",
                     "shutdown_close_code = 1001", "node_id = 1"):
            self.assertIn(line, server)
        for line in ("app = echo", "compress = on", "idle_timeout = 90s",
                     "max_message_size = 1MiB", "close_timeout = 5s",
                     "info_overflow = drop"):
            self.assertIn(line, route)
        self.assertIn("# log_file: not set", out)
        self.assertIn("# off: [admin]\n# listen: not set\n", out)
        # The dump is a config: it passes -t and dumps to the same keys.
        again = os.path.join(tmp.name, "b.conf")
        with open(again, "w") as f:
            f.write(out)
        rc2, out2, err2 = run([SOCKD, "-T", "-c", again])
        self.assertEqual(rc2, 0, err2)
        self.assertEqual(dump_keys(out2), keys)
        # A bad file: the errors, no dump.
        with open(conf, "a") as f:
            f.write("bogus_key = 1\n")
        rc, out, err = run([SOCKD, "--print-config", "--config", conf])
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("unknown key 'bogus_key'", err)

    def test_start_failure_is_not_a_reload(self):
        s = self.start_master(
            workers=1, ready=False,
            extra="[route /bad]\napp = {tmp}/missing.so\n")
        self.assertEqual(s.wait(15), 1)
        log = s.log_since(0)
        self.assertRegex(log, r"event=start_failed error=\".*missing\.so")
        self.assertNotIn("reload_failed", log)

    def test_log_file_lines_are_stamped(self):
        s = self.start_master(workers=1, ready=False,
                              server_extra="log_file = {tmp}/sockd.log")
        path = os.path.join(s.tmp.name, "sockd.log")

        def ready():
            if not os.path.exists(path):
                return None
            with open(path) as f:
                text = f.read()
            return text if "event=ready generation=1" in text else None
        text = wait_until(ready, 15, what="event=ready in log_file")
        now = time.time()
        lines = text.splitlines()
        self.assertGreaterEqual(len(lines), 3)
        for ln in lines:
            m = STAMP_RE.match(ln)
            self.assertIsNotNone(m, "unstamped line %r" % ln)
            t = calendar.timegm(time.strptime(m.group(1)[:19],
                                              "%Y-%m-%dT%H:%M:%S"))
            self.assertLess(abs(t - now), 120, ln)


class AdminTools(MasterTestCase):
    def start_with_admin(self, workers=2):
        self.admin = free_port()
        return self.start_master(
            workers=workers,
            extra="[admin]\nlisten = 127.0.0.1:%d\n" % self.admin)

    def sockctl(self, *args):
        return run([SOCKCTL, "-c", self.srv.conf] + list(args))

    def conns(self):
        rc, out, err = self.sockctl("conns")
        self.assertEqual((rc, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0], "# id route peer age_s send_queue_bytes")
        rows = {}
        for ln in lines[1:]:
            f = ln.split(" ")
            self.assertEqual(len(f), 5, ln)
            rows[int(f[0], 16)] = f[1:]
        return rows

    def test_conns_close_send(self):
        self.srv = self.start_with_admin()
        probes = []
        # Until both workers hold a probe (accepts are balanced, not
        # ordered), at most 20 connections.
        for _ in range(20):
            probes.append(self.probe(self.srv))
            if len({p.slot for p in probes}) == 2 and len(probes) >= 3:
                break
        self.assertEqual(len({p.slot for p in probes}), 2)
        rows = self.conns()
        self.assertEqual(set(rows), {p.id for p in probes})
        for p in probes:
            route, peer, age, sendq = rows[p.id]
            self.assertEqual(route, "/probe")
            self.assertEqual(peer, "127.0.0.1:%d"
                             % p.ws.sock.getsockname()[1])
            self.assertTrue(0 <= float(age) < 60, age)
            self.assertEqual(sendq, "0")

        # send: delivered on whichever worker holds the id.
        for p in probes[:2] + [q for q in probes if q.slot != probes[0].slot]:
            self.assertEqual(self.sockctl("send", "0x%x" % p.id, "hi"),
                             (0, "sent\n", ""))
            self.assertEqual(p.ws.recv_text(), "info:0:hi")
        # ... and refused for an id no connection has.
        live = probes[-1].id
        self.assertEqual(self.sockctl("send", str(live + 1000), "x"),
                         (1, "", "unknown connection id\n"))
        no_worker = (live & ~(0xFF << 32)) | (77 << 32)
        self.assertEqual(self.sockctl("send", str(no_worker), "x"),
                         (1, "", "unknown connection id (no such "
                                 "worker)\n"))
        self.assertEqual(self.sockctl("send", "zz", "x")[0], 1)

        # close: the client gets the code; the id is gone after.
        victim = [q for q in probes if q.slot != probes[0].slot][0]
        self.assertEqual(self.sockctl("close", "0x%x" % victim.id, "4001"),
                         (0, "closed\n", ""))
        f = victim.ws.recv_frame()
        self.assertEqual(f.opcode, OP_CLOSE)
        self.assertEqual(parse_close(f.payload)[0], 4001)
        self.assertEqual(self.sockctl("close", "0x%x" % victim.id),
                         (1, "", "unknown connection id\n"))
        wait_until(lambda: victim.id not in self.conns(), 10,
                   what="the closed id to leave sockctl conns")
        rc, out, err = self.sockctl("close", "0x%x" % probes[0].id, "1005")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("code: 1000-1003, 1007-1014 or 3000-4999", err)
        self.assertEqual(probes[0].echo("still"), "still")
        # close without a code: 1000.
        self.assertEqual(self.sockctl("close", str(probes[0].id)),
                         (0, "closed\n", ""))
        self.assertEqual(parse_close(probes[0].ws.recv_frame().payload)[0],
                         1000)
        # Both closes are counted as the server's (kind shutdown), no error.
        victim.ws.send_close(4001)
        probes[0].ws.send_close(1000)

        def closed():
            st, t = http_get(self.admin, "/metrics")
            return t if 'sock_connections_closed_by_kind_total{kind=' \
                '"shutdown"} 2\n' in t else None
        text = wait_until(closed, 10, what="2 shutdown closes in /metrics")
        for kind, n in (("normal", 0), ("remote", 0), ("timeout", 0),
                        ("error", 0)):
            self.assertIn('sock_connections_closed_by_kind_total{kind="%s"} '
                          '%d\n' % (kind, n), text)
        self.assertIn('sock_connections_closed_by_error_total{error="none"} '
                      '2\n', text)
        self.assertIn('sock_connections_closed_by_error_total{error='
                      '"protocol"} 0\n', text)

    def test_route_metrics(self):
        """Connections and messages labelled by route, summed over both
        workers, kept across a reload (the retired workers' counters)."""
        self.srv = s = self.start_with_admin()

        def route(text, name, path):
            return metric(text, '%s{route="%s"}' % (name, path))

        probes = [self.probe(s) for _ in range(4)]
        for i, p in enumerate(probes):
            self.assertEqual(p.echo("m%d" % i), "m%d" % i)

        def opened():
            st, t = http_get(self.admin, "/metrics")
            return t if 'sock_route_connections_open{route="/probe"} 4\n' \
                in t else None
        text = wait_until(opened, 10, what="4 open on /probe in /metrics")
        self.assertEqual(route(text, "sock_route_connections_opened_total",
                               "/probe"), 4)
        # Each probe: "id" and one echo, each answered.
        self.assertEqual(route(text, "sock_route_messages_in_total",
                               "/probe"), 8)
        self.assertEqual(route(text, "sock_route_messages_out_total",
                               "/probe"), 8)
        self.assertEqual(route(text, "sock_route_connections_open",
                               "/echo"), 0)
        self.assertEqual(route(text, "sock_route_connections_closed_total",
                               "/probe"), 0)
        for p in probes[:3]:
            p.ws.send_close(1000)
            p.ws.expect_close(1000)

        # A reload retires the workers; their counters stay in the sums,
        # the old generation's last connection still counts as open.
        self.assertEqual(s.ctl("reload").rc, 0)

        def closed():
            st, t = http_get(self.admin, "/metrics")
            return t if 'sock_route_connections_closed_total{route=' \
                '"/probe"} 3\n' in t and "sock_generation 2\n" in t \
                else None
        text = wait_until(closed, 10, what="3 closes after the reload")
        self.assertEqual(route(text, "sock_route_connections_opened_total",
                               "/probe"), 4)
        self.assertEqual(route(text, "sock_route_connections_open",
                               "/probe"), 1)
        self.assertEqual(route(text, "sock_route_messages_in_total",
                               "/probe"), 8)

    def test_metrics(self):
        self.srv = s = self.start_with_admin()
        started = time.time()
        status, text = http_get(self.admin, "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r'(?m)^sock_build_info\{version="([^"]+)"\} 1$', text)
        self.assertIsNotNone(m, text)
        self.assertRegex("sockd %s\n" % m.group(1), VERSION_RE)
        self.assertEqual(run([SOCKD, "-v"])[1], "sockd %s\n" % m.group(1))
        self.assertEqual(metric(text, "sock_generation"), 1)
        self.assertEqual(metric(text, "sock_reloads_total"), 0)
        self.assertEqual(metric(text, "sock_reload_failures_total"), 0)
        # master + 2 workers: tens of MiB at most, a few fds each.
        rss = metric(text, "process_resident_memory_bytes")
        self.assertTrue(1 << 20 < rss < 1 << 30, rss)
        self.assertGreaterEqual(metric(text, "process_open_fds"), 9)
        self.assertGreaterEqual(metric(text, "process_cpu_seconds_total"), 0)
        self.assertLess(abs(metric(text, "process_start_time_seconds")
                            - started), 30)

        self.assertEqual(s.ctl("reload").rc, 0)
        s.write_config(s.conf_text + "bogus_key = 1\n")
        self.assertEqual(s.ctl("reload").rc, 1)
        s.wait_log(r"event=config_error", 10)

        def after():
            st, t = http_get(self.admin, "/metrics")
            return t if st == 200 and "sock_generation 2\n" in t and \
                "sock_reload_failures_total 1\n" in t else None
        text = wait_until(after, 10, what="generation 2 in /metrics")
        self.assertEqual(metric(text, "sock_reloads_total"), 1)
        self.assertEqual(metric(text, "sock_reload_failures_total"), 1)


if __name__ == "__main__":
    main()
