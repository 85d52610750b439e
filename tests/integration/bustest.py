"""bustest: helpers for the tests of the bus between workers (DESIGN §5).

Builds on sockdtest and mastertest (which it does not change): a Master
with an [admin] listener, the admin endpoint over HTTP, /metrics parsing,
probe connections placed on chosen worker slots, worker pids by slot, and
reading or draining a raw client with deadlines.

Standard library only. Every wait has a deadline and every loop a bound.
"""

import collections
import http.client
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import Master, ProbeConn, wait_until  # noqa: E402
from sockdtest import PeerClosed, free_port  # noqa: E402


class AdminMaster(Master):
    """A Master with `[admin] listen = 127.0.0.1:{aport}` appended, and
    {aport} available in every config fragment."""

    def __init__(self, admin=True, **kw):
        super().__init__(**kw)
        self.admin = admin
        self.aport = None

    def subst(self):
        d = super().subst()
        d["aport"] = self.aport
        return d

    def config_text(self):
        text = super().config_text()
        if self.admin and self.custom is None:
            text += "[admin]\nlisten = 127.0.0.1:%d\n" % self.aport
        return text

    def start(self, *a, **kw):
        if self.aport is None:
            self.aport = free_port()
        return super().start(*a, **kw)


# ---- the admin endpoint -----------------------------------------------------

def admin_request(aport, method, path, body=b"", timeout=5.0):
    """(status, body bytes) of one request to the admin listener."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    c = http.client.HTTPConnection("127.0.0.1", aport, timeout=timeout)
    try:
        c.request(method, path, body=body if method == "POST" else None,
                  headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


_RE_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? "
                        r"([-+0-9.eE]+|NaN|[-+]Inf)$")


def parse_metrics(text):
    """{name: value} of a Prometheus text page (labels ignored: the last
    sample of a name wins)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _RE_METRIC.match(line)
        if not m:
            raise AssertionError("bad metrics line %r" % line)
        v = float(m.group(2))
        out[m.group(1)] = int(v) if v.is_integer() else v
    return out


def metrics(aport, timeout=5.0):
    status, body = admin_request(aport, "GET", "/metrics", timeout=timeout)
    if status != 200:
        raise AssertionError("GET /metrics: %d %r" % (status, body[:200]))
    return parse_metrics(body.decode("utf-8", "replace"))


def wait_metric(aport, name, pred, timeout, what=None):
    """Polls /metrics until pred(value of name) holds; returns the value."""
    last = [None]

    def check():
        last[0] = metrics(aport).get(name)
        return last[0] is not None and pred(last[0])
    try:
        wait_until(check, timeout, interval=0.05, what=what or name)
    except AssertionError as e:
        raise AssertionError("%s (last %s=%r)" % (e, name, last[0]))
    return last[0]


# ---- placing connections ----------------------------------------------------

def conns_on_slots(port, want, generation=None, max_conns=600,
                   timeout=20.0, path="/probe"):
    """Opens /probe connections until want[slot] of them sit on each wanted
    slot (of generation, when given); the others are closed at the end.
    Returns {slot: [ProbeConn, ...]}. AssertionError (naming what it got)
    after max_conns connections or timeout seconds."""
    got = collections.defaultdict(list)
    extra = []          # kept open while placing, so the accepts spread
    deadline = time.monotonic() + timeout
    tries = 0

    def done():
        return all(len(got[s]) >= n for s, n in want.items())
    try:
        while not done():
            if tries >= max_conns or time.monotonic() > deadline:
                raise AssertionError(
                    "could not place connections on slots %s after %d "
                    "connects (got %s, others %s)"
                    % (dict(want), tries,
                       {s: len(v) for s, v in got.items()},
                       collections.Counter((c.generation, c.slot)
                                           for c in extra)))
            tries += 1
            c = ProbeConn(port, path=path)
            if (generation is None or c.generation == generation) and \
                    len(got[c.slot]) < want.get(c.slot, 0):
                got[c.slot].append(c)
            else:
                extra.append(c)
    finally:
        for c in extra:
            close_quietly(c)
        if not done():
            for cs in got.values():
                for c in cs:
                    close_quietly(c)
    return {s: got[s] for s in want}


def close_quietly(c):
    try:
        c.ws.send_close(1000)
    except (OSError, AssertionError):
        pass
    c.close()


def slot_pids(srv, generation=None):
    """{slot: pid} of the workers of a generation (default: the active
    one), from `sockd -s status`."""
    st = srv.status()
    gen = generation if generation is not None else st.generation
    return {w.slot: w.pid for w in st.workers
            if w.generation == gen and w.pid > 0}


# ---- reading ----------------------------------------------------------------

def recv_texts(ws, n, timeout):
    """Exactly n text messages (fewer: AssertionError saying how many)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        try:
            out.append(ws.recv_text(timeout=max(0.001, left)))
        except AssertionError as e:
            if "timed out" in str(e):
                raise AssertionError("got %d of %d messages within %.1f s; "
                                     "last: %r" % (len(out), n, timeout,
                                                   out[-3:])) from None
            raise
    return out


def drain(ws, quiet=0.3, limit=1000000, timeout=10.0):
    """Text messages until none comes for `quiet` seconds (or limit
    messages, or timeout seconds in all)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < limit and time.monotonic() < deadline:
        try:
            out.append(ws.recv_text(timeout=min(
                quiet, max(0.001, deadline - time.monotonic()))))
        except PeerClosed:
            raise
        except AssertionError as e:
            if "timed out" in str(e):
                break
            raise
    return out


def drain_nowait(ws, limit=100000):
    """Whatever complete text messages are readable now, without
    waiting (a tiny timeout per read)."""
    return drain(ws, quiet=0.0005, limit=limit, timeout=float("inf"))


def count_of(conn, timeout=5.0):
    """The probe's `count` reply as a dict (received, reordered, gaps,
    first_ns, last_ns)."""
    r = conn.ws.command("count", timeout)
    parts = r.split(":")
    if len(parts) != 6 or parts[0] != "count":
        raise AssertionError("bad count reply %r" % r)
    vals = [int(x) for x in parts[1:]]
    return dict(zip(("received", "reordered", "gaps", "first_ns",
                     "last_ns"), vals))


__all__ = [n for n in dir() if not n.startswith("_")]
