#!/usr/bin/python3
"""busbench: throughput of the bus between sockd's workers (DESIGN §5.2).

Starts sockd (a master with --workers N, the probe app of
tests/apps/probe.c on /probe) on loopback and measures, one phase after
the other:

1. directed: P sender/recipient pairs, each sender on slot i and its
   recipient on slot (i+1) % N, so every info crosses workers. A sender
   sends `quietn ID CHUNK` (CHUNK infos of 8 bytes from one handler) and
   the recipient's probe counts them without pushing anything (`count`),
   so neither Python nor the WebSocket write path is in the loop; at most
   WINDOW infos are in flight per pair. Rate = infos counted / (last -
   first arrival, CLOCK_MONOTONIC in the probe).
2. fan-out: M subscribers of a topic spread over the workers; one
   publisher sends `pubn TOPIC CHUNK` and every subscriber counts
   silently. Deliveries/s = sum of the counts / (last - first arrival).
   Of those, (N-1)/N or so cross the bus.
3. broadcast over WebSockets (bench/wsload's broadcast scenario, when
   the wsload binary is there): M subscribers send `sub t`, one publisher
   `rpub t PAYLOAD` at --pub-rate (each subscriber pushes PAYLOAD itself,
   one shared buffer); wsload counts deliveries at the clients.

Every phase is bounded in time; the whole run stays under about 20 s.
The last line is `RESULT key=value ...`.

  /usr/bin/python3 bench/busbench.py [--workers 4] [--subs 200] ...

Environment: SOCK_BUILD_DIR, SOCKD as for the integration tests; WSLOAD
(default: SOCK_BUILD_DIR/wsload).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests",
                                "integration"))
from bustest import close_quietly, conns_on_slots, count_of  # noqa: E402
from mastertest import Master, ProbeConn  # noqa: E402
from sockdtest import BUILD_DIR  # noqa: E402

WSLOAD = os.environ.get("WSLOAD") or os.path.join(BUILD_DIR, "wsload")


def say(msg):
    print(msg, flush=True)


class Pair(threading.Thread):
    """One sender -> recipient stream of quietn chunks, windowed."""

    def __init__(self, sender, recipient, chunk, window, until):
        super().__init__(daemon=True)
        self.s, self.r = sender, recipient
        self.chunk, self.window, self.until = chunk, window, until
        self.sent = 0
        self.final = None
        self.error = None

    def run(self):
        try:
            self._run()
        except BaseException as e:      # reported by the main thread
            self.error = e

    def _run(self):
        rounds = 0
        while time.monotonic() < self.until and rounds < 100000:
            rounds += 1
            self.s.ws.send_text("quietn %d %d" % (self.r.id, self.chunk))
            got = self.s.ws.recv_text(10)
            if got != "sent:%d" % self.chunk:
                raise AssertionError("sender: %r" % got)
            self.sent += self.chunk
            for _ in range(100000):            # wait for room
                c = count_of(self.r, 10)
                if self.sent - c["received"] <= self.window or \
                        time.monotonic() > self.until + 5:
                    break
        self.final = self.settle()

    def settle(self, quiet=1.0, timeout=10.0):
        """The recipient's count once it reaches what was sent, or stops
        growing for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            c = count_of(self.r, 10)
            if c["received"] >= self.sent:
                return c
            if last is None or c["received"] != last["received"]:
                last, since = c, time.monotonic()
            elif time.monotonic() - since > quiet:
                return c
            time.sleep(0.02)
        return count_of(self.r, 10)


def rate_of(counts):
    """(total, seconds, per second) from probe counts."""
    counts = [c for c in counts if c["received"] > 0]
    if not counts:
        return 0, 0.0, 0.0
    total = sum(c["received"] for c in counts)
    secs = (max(c["last_ns"] for c in counts) -
            min(c["first_ns"] for c in counts)) / 1e9
    return total, secs, total / secs if secs > 0 else 0.0


def phase_directed(srv, a):
    n = a.workers
    pairs = a.pairs or n
    want = {}
    for i in range(pairs):
        want[i % n] = want.get(i % n, 0) + 1
        want[(i + 1) % n] = want.get((i + 1) % n, 0) + 1
    on = conns_on_slots(srv.port, want, max_conns=50 * n + 20 * pairs)
    pool = {s: list(cs) for s, cs in on.items()}
    streams = []
    until = time.monotonic() + a.duration
    for i in range(pairs):
        s = pool[i % n].pop()
        r = pool[(i + 1) % n].pop()
        streams.append(Pair(s, r, a.chunk, a.window, until))
    for p in streams:
        p.start()
    for p in streams:
        p.join(a.duration + 30)
    errors = [p.error for p in streams if p.error or p.is_alive()]
    for cs in on.values():
        for c in cs:
            close_quietly(c)
    if errors:
        raise AssertionError("directed phase: %s" % errors)
    sent = sum(p.sent for p in streams)
    counts = [p.final for p in streams]
    total, secs, rate = rate_of(counts)
    bad = sum(c["reordered"] for c in counts)
    say("directed: %d pairs (slot i -> i+1 of %d workers), %d infos of 8 B "
        "sent, %d counted (%d missing, %d out of order) in %.2f s: "
        "%.0f infos/s cross-worker" % (pairs, n, sent, total, sent - total,
                                       bad, secs, rate))
    return {"directed_per_sec": round(rate), "directed_sent": sent,
            "directed_missing": sent - total, "directed_reordered": bad}


def phase_fanout(srv, a):
    n = a.workers
    subs = []
    try:
        for _ in range(a.subs):
            c = ProbeConn(srv.port)
            subs.append(c)
        for c in subs:
            c.ws.send_text("sub f")
        for c in subs:
            if c.ws.recv_text(10) != "ok":
                raise AssertionError("sub failed")
        spread = {}
        for c in subs:
            spread[c.slot] = spread.get(c.slot, 0) + 1
        pub = ProbeConn(srv.port)
        subs_by_slot = {}
        for c in subs:
            subs_by_slot.setdefault(c.slot, c)
        watch = list(subs_by_slot.values())     # one per worker
        sent, rounds = 0, 0
        until = time.monotonic() + a.fan_duration
        while time.monotonic() < until and rounds < 100000:
            rounds += 1
            pub.ws.send_text("pubn f %d" % a.pub_chunk)
            if pub.ws.recv_text(10) != "sent:%d" % a.pub_chunk:
                raise AssertionError("publisher")
            sent += a.pub_chunk
            for w in watch:                   # keep the inboxes in bounds
                for _ in range(100000):
                    if sent - count_of(w, 10)["received"] <= a.pub_window \
                            or time.monotonic() > until + 5:
                        break
        time.sleep(0.2)
        counts = []
        for c in subs:
            deadline = time.monotonic() + 5
            while True:
                k = count_of(c, 10)
                if k["received"] >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            counts.append(k)
        close_quietly(pub)
    finally:
        for c in subs:
            close_quietly(c)
    total, secs, rate = rate_of(counts)
    want = sent * len(subs)
    cross = sum(v for s, v in spread.items() if s != pub.slot) * sent
    say("fan-out: 1 publisher (slot %d), %d subscribers over slots %s, %d "
        "publishes of 8 B -> %d deliveries (%d missing, %d across the bus) "
        "in %.2f s: %.0f deliveries/s, %.0f publishes/s"
        % (pub.slot, len(subs), dict(sorted(spread.items())), sent, total,
           want - total, cross, secs, rate,
           rate / len(subs) if subs else 0))
    return {"fanout_deliveries_per_sec": round(rate),
            "fanout_missing": want - total, "fanout_subs": len(subs)}


def phase_wsload(srv, a):
    if not os.access(WSLOAD, os.X_OK):
        say("broadcast (wsload): skipped, no %s (cmake --build build "
            "--target wsload)" % WSLOAD)
        return {}
    cmd = [WSLOAD, "broadcast", "--url", srv.url("/probe"), "-c",
           str(a.subs), "--pub-rate", str(a.pub_rate), "-s", str(a.size),
           "--sub-msg", "sub t", "--pub-fmt", "rpub t ",
           "-d", str(a.ws_duration), "-w", "1", "--server-pid",
           str(srv.pid)]
    say("$ " + shlex.join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=a.ws_duration + 30)
    except subprocess.TimeoutExpired:
        say("broadcast (wsload): timed out")
        return {}
    out = p.stdout + p.stderr
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        say("broadcast (wsload): no RESULT (exit %d):\n%s"
            % (p.returncode, out[-2000:]))
        return {}
    r = dict(kv.split("=", 1) for kv in m.group(1).split())
    for line in out.splitlines():
        if not line.startswith("RESULT"):
            say("  " + line)
    say("broadcast (wsload): %s subscribers, %s publishes, %s deliveries "
        "(%s lost), %s deliveries/s over WebSockets, latency p50 %s us p99 "
        "%s us, server cpu %s s"
        % (r.get("subscribers"), r.get("published"), r.get("delivered"),
           r.get("lost"), r.get("msgs_per_sec"), r.get("p50_us"),
           r.get("p99_us"), r.get("server_cpu_s")))
    return {"ws_deliveries_per_sec": r.get("msgs_per_sec"),
            "ws_lost": r.get("lost"), "ws_p99_us": r.get("p99_us")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=0,
                    help="directed sender/recipient pairs [workers]")
    ap.add_argument("--chunk", type=int, default=5000,
                    help="infos per quietn command [5000]")
    ap.add_argument("--window", type=int, default=40000,
                    help="infos in flight per pair [40000]")
    ap.add_argument("--duration", type=float, default=4.0,
                    help="directed phase seconds [4]")
    ap.add_argument("--subs", type=int, default=200,
                    help="subscribers (fan-out and wsload) [200]")
    ap.add_argument("--pub-chunk", type=int, default=200,
                    help="publishes per pubn command [200]")
    ap.add_argument("--pub-window", type=int, default=2000,
                    help="publishes in flight [2000]")
    ap.add_argument("--fan-duration", type=float, default=3.0)
    ap.add_argument("--pub-rate", type=int, default=5000,
                    help="wsload publishes per second [5000]")
    ap.add_argument("--size", type=int, default=64,
                    help="wsload payload bytes [64]")
    ap.add_argument("--ws-duration", type=float, default=4.0)
    ap.add_argument("--no-wsload", action="store_true")
    a = ap.parse_args()
    if a.duration + a.fan_duration + a.ws_duration > 14:
        ap.error("phases over 14 s in all (keep a run under 20 s)")

    srv = Master(workers=a.workers, name="busbench",
                 probe_extra="max_info_queue = 1000000\n"
                             "send_hard_limit = 256m")
    t0 = time.monotonic()
    srv.start()
    try:
        say("sockd pid %d, %d workers, port %d, %d CPUs"
            % (srv.pid, a.workers, srv.port, os.cpu_count()))
        res = {"workers": a.workers}
        res.update(phase_directed(srv, a))
        res.update(phase_fanout(srv, a))
        if not a.no_wsload:
            res.update(phase_wsload(srv, a))
        srv.assert_alive()
    finally:
        srv.stop()
    say("RESULT " + " ".join("%s=%s" % kv for kv in res.items()) +
        " total_s=%.1f" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
