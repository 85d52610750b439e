#!/usr/bin/python3
"""sockd's command line and config checking (DESIGN §6: `sockd -t` with
file:line messages).

Assumptions:
- Messages name the file as it was given on the command line, so the
  files are given relative to the working directory ("bad.conf") and the
  check is for "bad.conf:3:".
- `sockd -t` reports every problem in the file, not only the first.
- Usage goes to stdout for -h and to stderr for a bad option, which exits
  with status 2 (getopt convention); the text contains "usage"
  (any case).
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (BUILD_DIR, SOCKD, Server,  # noqa: E402
                       SockdTestCase, check_binaries, free_port)

GOOD = """[server]
workers = 0
runtime_dir = {tmp}
log_level = info
handshake_timeout = 5s
[listen 127.0.0.1:{port}]
[route /echo]
app = echo
idle_timeout = 500ms
max_message_size = 1MiB
[route /probe]
app = {build}/probe.so
compress = off
"""

# Line 3: unknown key. Line 5: bad duration.
BAD = """[server]
workers = 0
no_such_key = 1
runtime_dir = {tmp}
handshake_timeout = soon
[listen 127.0.0.1:{port}]
[route /echo]
app = echo
"""


class Cli(SockdTestCase):
    def setUp(self):
        super().setUp()
        check_binaries()
        self.tmp = tempfile.TemporaryDirectory(prefix="sockdcli-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text.format(tmp=self.tmp.name, port=free_port(),
                                build=BUILD_DIR))
        return name

    def sockd(self, *args, timeout=10):
        try:
            p = subprocess.run([SOCKD] + list(args), cwd=self.tmp.name,
                               stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.fail("sockd %s did not exit within %d s (stderr %r)"
                      % (" ".join(args), timeout, e.stderr))
        return (p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"))

    def test_check_good_config(self):
        name = self.write("good.conf", GOOD)
        rc, out, err = self.sockd("-t", "-c", name)
        self.assertEqual(rc, 0, "sockd -t on a good config:\n%s%s"
                         % (out, err))

    def test_check_bad_config_reports_every_line(self):
        name = self.write("bad.conf", BAD)
        rc, out, err = self.sockd("-t", "-c", name)
        self.assertNotEqual(rc, 0, "sockd -t accepted a bad config")
        self.assertIn("bad.conf:3:", err, "unknown key on line 3 not "
                      "reported:\n" + err)
        self.assertIn("bad.conf:5:", err, "bad duration on line 5 not "
                      "reported:\n" + err)
        lines = [line for line in err.splitlines() if "bad.conf:" in line]
        self.assertTrue(any("no_such_key" in line for line in lines),
                        "the message for line 3 should name the key:\n"
                        + err)

    def test_bad_config_does_not_start(self):
        name = self.write("bad.conf", BAD)
        rc, out, err = self.sockd("-c", name)
        self.assertNotEqual(rc, 0)
        self.assertIn("bad.conf:3:", err)

    def test_bad_values(self):
        cases = {
            "size": "[server]\nworkers = 0\nruntime_dir = {tmp}\n"
                    "[listen 127.0.0.1:{port}]\n[route /echo]\napp = echo\n"
                    "max_frame_size = lots\n",
            "switch": "[server]\nworkers = 0\nruntime_dir = {tmp}\n"
                      "[listen 127.0.0.1:{port}]\n[route /echo]\n"
                      "app = echo\ncompress = maybe\n",
            "address": "[server]\nworkers = 0\nruntime_dir = {tmp}\n"
                       "[listen 127.0.0.1:99999]\n[route /echo]\n"
                       "app = echo\n",
            "section": "[server]\nworkers = 0\nruntime_dir = {tmp}\n"
                       "[listen 127.0.0.1:{port}]\n[bogus]\n"
                       "[route /echo]\napp = echo\n",
        }
        where = {"size": 7, "switch": 7, "address": 4, "section": 5}
        for what, text in cases.items():
            with self.subTest(what=what):
                name = self.write("v.conf", text)
                rc, out, err = self.sockd("-t", "-c", name)
                self.assertNotEqual(rc, 0, "accepted a bad %s" % what)
                self.assertIn("v.conf:%d:" % where[what], err)

    def test_missing_file(self):
        rc, out, err = self.sockd("-t", "-c", "does-not-exist.conf")
        self.assertNotEqual(rc, 0)
        self.assertIn("does-not-exist.conf", err,
                      "the message should name the file:\n" + err)
        self.assertTrue(any(w in err.lower() for w in (
            "no such file", "cannot", "can't", "not found", "unable",
            "failed")), "unclear message for a missing file:\n" + err)

    def test_help(self):
        rc, out, err = self.sockd("-h")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("usage", (out + err).lower())
        self.assertIn("-c", out + err)
        self.assertIn("-t", out + err)

    def test_unknown_option(self):
        for opt in ("-Z", "--no-such-option"):
            with self.subTest(opt=opt):
                rc, out, err = self.sockd(opt)
                self.assertEqual(rc, 2, "exit status for %s:\n%s%s"
                                 % (opt, out, err))
                self.assertIn("usage", err.lower(), err)

    def test_good_config_serves_and_stops_on_term(self):
        # The same good config runs, answers, and exits 0 on SIGTERM.
        srv = Server(config=GOOD, name="good.conf")
        self._servers.append(srv)
        srv.start()
        self.addCleanup(srv.stop)
        c = self.client("/probe", server=srv)
        self.assertEqual(c.command("echo served"), "served")
        c.close()
        self.assertEqual(srv.stop(), 0, srv.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)
