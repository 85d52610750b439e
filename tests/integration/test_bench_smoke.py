"""The benchmark tools work: bench/compare --smoke, sockd only.

Runs every scenario of bench/compare (echo, echo with permessage-deflate,
idle, broadcast, handshakes) for about a second each against sockd and
checks that each run printed a RESULT line that parses, with no errors and
the work it was asked for. It measures nothing: the numbers of a smoke run
on a busy CI machine mean little, and no reference server is started.

Environment as for the other integration tests: SOCK_BUILD_DIR (wsload,
sockd, probe.so), SOCKD.
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD_DIR = os.path.abspath(os.environ.get("SOCK_BUILD_DIR")
                            or os.path.join(REPO, "build"))
COMPARE = os.path.join(REPO, "bench", "compare")
TIMEOUT = 90    # a smoke run takes about 10 s; 30 s under ASan on a busy box


def parse(line):
    kv = {}
    for tok in line.split()[1:]:
        k, sep, v = tok.partition("=")
        if not sep:
            raise AssertionError("not key=value: %r in %r" % (tok, line))
        kv[k] = v
    return kv


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("wsload", "sockd", "probe.so"):
            if not os.path.exists(os.path.join(BUILD_DIR, name)):
                raise unittest.SkipTest("%s not built in %s"
                                        % (name, BUILD_DIR))
        cls.tmp = tempfile.TemporaryDirectory(prefix="bench-smoke-")
        t0 = time.monotonic()
        p = subprocess.run(
            [sys.executable, COMPARE, "--smoke", "--no-install",
             "--build-dir", BUILD_DIR, "--out", cls.tmp.name],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=TIMEOUT)
        cls.elapsed = time.monotonic() - t0
        cls.rc = p.returncode
        cls.out = p.stdout.decode("utf-8", "replace")
        cls.runs = {}
        for line in cls.out.splitlines():
            if line.startswith("RESULT "):
                kv = parse(line)
                cls.runs[kv["bench"]] = kv

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_of(self, key):
        self.assertIn(key, self.runs, "no RESULT for scenario (%s):\n%s"
                      % (key, self.out))
        return self.runs[key]

    def test_exit_status_and_table(self):
        self.assertEqual(self.rc, 0, self.out)
        self.assertIn("sock vs reference servers", self.out)
        sys.stderr.write("[bench smoke: %.1f s] " % self.elapsed)

    def test_every_scenario_ran_without_errors(self):
        for key in "abcdef":
            kv = self.run_of(key)
            self.assertEqual(kv["server"], "sock")
            self.assertEqual(kv["errors"], "0", "(%s): %s" % (key, kv))
            float(kv["secs"])
            float(kv["server_cpu_s"])
            float(kv["machine_cpu_s"])

    def test_echo_runs_moved_messages(self):
        for key in "abc":
            kv = self.run_of(key)
            self.assertEqual(kv["scenario"], "echo")
            self.assertGreater(int(kv["msgs"]), 0, kv)
            self.assertGreater(float(kv["msgs_per_server_cpu_s"]), 0, kv)
            self.assertEqual(kv["open"], kv["conns"], kv)

    def test_deflate_was_negotiated_and_compressed(self):
        kv = self.run_of("c")
        self.assertEqual(kv["deflate"], "on")
        self.assertGreater(int(kv["inflated"]), 0, kv)
        # The words payload compresses about 2x at level 1.
        self.assertGreater(float(kv["compression_ratio"]), 1.3, kv)

    def test_idle_reports_memory_per_connection(self):
        kv = self.run_of("d")
        self.assertEqual(kv["scenario"], "idle")
        self.assertEqual(kv["open"], kv["conns"], kv)
        self.assertGreater(int(kv["server_rss_kb"]), int(kv["rss_before_kb"]))
        float(kv["bytes_per_conn"])

    def test_broadcast_delivered(self):
        kv = self.run_of("e")
        self.assertEqual(kv["scenario"], "broadcast")
        self.assertGreater(int(kv["delivered"]), 0, kv)
        self.assertEqual(kv["subscribers"], kv["conns"], kv)

    def test_handshakes_completed(self):
        kv = self.run_of("f")
        self.assertEqual(kv["scenario"], "connect")
        self.assertGreater(int(kv["msgs"]), 0, kv)


if __name__ == "__main__":
    unittest.main(verbosity=2)
