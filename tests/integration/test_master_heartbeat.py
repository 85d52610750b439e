#!/usr/bin/python3
"""Worker heartbeats (DESIGN §4.1): the master pings every worker over its
control channel and kills one whose event loop stops answering.

Interface under test:
- `worker_heartbeat_timeout` in [server] (0 = off). A worker that has
  not answered the master's pings for that long is logged at error level,
  `event=worker_hung generation=G slot=K pid=P state=S silent_ms=N
  timeout_ms=T action=kill`, and killed with SIGKILL; an active worker is
  then replaced in the same slot like a crashed one, a draining one is
  not replaced.
- No per-ping log line at info level.

The hang is the probe's test-only `hang MS` command (tests/apps/probe.c):
it sleeps MS ms inside handle_in, blocking the worker's whole loop.

Tests (timeout 1 s, so the master pings every 250 ms):
- hangs of 300 ms kill nobody; a 5 s hang is killed after 1 to 3 s, the
  other worker's connections echo throughout, the slot gets a new
  worker, and the master exits 0 on SIGTERM;
- a worker of the old generation that hangs while draining is killed and
  not replaced, while its idle-but-draining sibling lives on;
- `worker_heartbeat_timeout = 0`: a 2.5 s hang kills nobody.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bustest import conns_on_slots, metrics  # noqa: E402
from mastertest import (MasterTestCase, free_port, pid_alive,  # noqa: E402
                        wait_until)
from sockdtest import main  # noqa: E402

HB = "worker_heartbeat_timeout = 1s"
HUNG_RE = (r"(?m)^<3>master pid=\d+ event=worker_hung generation=(\d+) "
           r"slot=(\d+) pid=(\d+) state=([a-z]+) silent_ms=(\d+) "
           r"timeout_ms=(\d+) action=kill$")
# Detection: 1 s of silence, plus up to one 250 ms tick, plus slack for
# loaded (sanitizer) builds.
DETECT_MIN, DETECT_MAX = 1.0, 3.0


class Heartbeat(MasterTestCase):
    def place(self, srv, want, generation=None):
        got = conns_on_slots(srv.port, want, generation=generation)
        for cs in got.values():
            self._clients.extend(c.ws for c in cs)
        return got

    def slot_pids(self, srv, generation):
        return {w.slot: w.pid for w in srv.status().workers
                if w.generation == generation and w.pid > 0}

    def assert_no_ping_lines(self, srv):
        noisy = [ln for ln in srv.log().splitlines()
                 if re.search(r"\b(ping|pong)\b", ln)
                 and not ln.startswith("<7>")]
        self.assertEqual(noisy, [], "heartbeat lines above debug level")

    def stop_ok(self, srv):
        # Clients that would not answer the 1001 would hold the stop for
        # shutdown_timeout.
        for ws in self._clients:
            ws.close()
        rc = srv.stop()
        self.assertEqual(rc, 0, "master exit status after SIGTERM")
        self.assert_no_leftovers(srv)

    def test_hung_worker_killed_and_replaced(self):
        aport = free_port()
        srv = self.start_master(workers=2, server_extra=HB,
                                extra="[admin]\nlisten = 127.0.0.1:%d\n"
                                % aport)
        got = self.place(srv, {0: 2, 1: 2}, generation=1)
        pids = self.slot_pids(srv, 1)
        self.assertEqual(sorted(pids), [0, 1])
        victim_slot, other_slot = 0, 1
        victim, bystander = got[victim_slot]
        others = got[other_slot]
        victim_pid = pids[victim_slot]

        # Short hangs, back to back: below the timeout, nobody is killed.
        for i in range(3):
            self.assertEqual(victim.ws.command("hang 300", timeout=5),
                             "woke")
        time.sleep(0.6)           # a few more ticks after the last one
        self.assertEqual(self.slot_pids(srv, 1), pids)
        self.assertIsNone(re.search(HUNG_RE, srv.log()),
                          "a 300 ms hang was taken for a hung worker")
        self.assertEqual(bystander.echo("short-ok"), "short-ok")

        # A hang well past the timeout.
        mark = srv.mark()
        t0 = time.monotonic()
        victim.ws.send_text("hang 5000")
        # The other worker serves on while this one is stuck.
        for i, c in enumerate(others):
            self.assertEqual(c.echo("during-%d" % i, timeout=2),
                             "during-%d" % i)
        m = srv.wait_log(HUNG_RE, DETECT_MAX + 1, since=mark)
        took = time.monotonic() - t0
        gen, slot, pid, state, silent, limit = m.groups()
        sys.stderr.write("\n[heartbeat] %s after %.2f s\n"
                         % (m.group(0), took))
        self.assertEqual((int(gen), int(slot), int(pid), state, int(limit)),
                         (1, victim_slot, victim_pid, "ready", 1000))
        self.assertGreaterEqual(int(silent), 1000)
        self.assertLess(int(silent), DETECT_MAX * 1000)
        self.assertGreaterEqual(took, DETECT_MIN - 0.05)
        self.assertLess(took, DETECT_MAX)
        self.assertEqual(len(re.findall(HUNG_RE, srv.log())), 1,
                         "more than one worker_hung line")

        wait_until(lambda: not pid_alive(victim_pid), 3,
                   what="the hung worker %d to be gone" % victim_pid)
        bystander.ws.expect_tcp_close(timeout=3)
        srv.wait_log(r"(?m)^<4>master pid=\d+ event=worker_died "
                     r"generation=1 slot=%d status=9 " % victim_slot, 3,
                     since=mark)

        def replaced(st):
            ws = [w for w in st.workers if w.slot == victim_slot]
            return len(ws) == 1 and ws[0].pid not in (0, victim_pid) and \
                ws[0].state == "ready"
        st = srv.wait_status(replaced, 5, what="a new worker in slot %d"
                             % victim_slot)
        self.assertEqual(st.generation, 1)
        self.assertEqual({w.slot: w.pid for w in st.workers
                          if w.slot == other_slot},
                         {other_slot: pids[other_slot]},
                         "the other worker was replaced too")
        for i, c in enumerate(others):
            self.assertEqual(c.echo("after-%d" % i), "after-%d" % i)
        # Operators see it in /metrics too, summed by any worker.
        got_m = metrics(aport)
        self.assertEqual(got_m.get("sock_workers_hung_total"), 1, got_m)
        self.assertEqual(got_m.get("sock_worker_deaths_total"), 1, got_m)
        # The new worker serves, and answers pings: still alive 1.5
        # timeouts later, with no second worker_hung.
        fresh = self.place(srv, {victim_slot: 1}, generation=1)
        self.assertEqual(fresh[victim_slot][0].echo("new"), "new")
        time.sleep(1.5)
        self.assertEqual(self.slot_pids(srv, 1),
                         {w.slot: w.pid for w in st.workers})
        self.assertEqual(len(re.findall(HUNG_RE, srv.log())), 1)
        self.assert_no_ping_lines(srv)
        self.stop_ok(srv)

    def test_hung_draining_worker_killed_not_replaced(self):
        srv = self.start_master(workers=2, server_extra=HB + "\n"
                                "drain_timeout = 30s\n"
                                "worker_shutdown_timeout = 60s")
        got = self.place(srv, {0: 1, 1: 1}, generation=1)
        old = self.slot_pids(srv, 1)
        mark = srv.mark()
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, "reload: %r %r" % (r.out, r.err))
        srv.wait_ready(2, since=mark)
        st = srv.status()
        self.assertEqual(st.generations.get(1), "draining", st.text)

        # Draining but healthy: not killed after several timeouts.
        time.sleep(1.5)
        self.assertTrue(all(pid_alive(p) for p in old.values()))
        self.assertIsNone(re.search(HUNG_RE, srv.log()))

        got[0][0].ws.send_text("hang 5000")
        m = srv.wait_log(HUNG_RE, DETECT_MAX + 1, since=mark)
        self.assertEqual(m.group(1, 2, 3, 4),
                         ("1", "0", str(old[0]), "draining"))
        wait_until(lambda: not pid_alive(old[0]), 3,
                   what="the hung draining worker to be gone")
        # Not replaced: a draining generation never respawns.
        time.sleep(0.5)
        st = srv.status()
        self.assertEqual([(w.slot, w.pid) for w in st.workers
                          if w.generation == 1], [(1, old[1])], st.text)
        self.assertIsNone(re.search(r"event=worker_spawned generation=1\b",
                                    srv.log_since(mark)))
        self.assertTrue(pid_alive(old[1]))
        self.assertEqual(got[1][0].echo("still draining"), "still draining")
        self.assertEqual(len(re.findall(HUNG_RE, srv.log())), 1)
        self.stop_ok(srv)

    def test_zero_turns_it_off(self):
        srv = self.start_master(workers=2, server_extra=
                                "worker_heartbeat_timeout = 0")
        got = self.place(srv, {0: 1}, generation=1)
        pids = self.slot_pids(srv, 1)
        t0 = time.monotonic()
        self.assertEqual(got[0][0].ws.command("hang 2500", timeout=6),
                         "woke")
        self.assertGreaterEqual(time.monotonic() - t0, 2.4)
        time.sleep(0.3)
        self.assertEqual(self.slot_pids(srv, 1), pids)
        self.assertIsNone(re.search(r"event=worker_hung\b", srv.log()))
        self.assertEqual(got[0][0].echo("alive"), "alive")
        self.stop_ok(srv)


if __name__ == "__main__":
    main()
