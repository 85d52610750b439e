#!/usr/bin/python3
"""Zero-downtime reload (DESIGN §4.3) under load, and reloads with a bad
configuration.

The soak: sockd with workers = 2, drain_timeout = 1s, drain_spread =
500ms, worker_shutdown_timeout = 5s. Twenty python3-websockets clients
(half on /echo, half on /probe with `echo TEXT`) each keep up to 4
numbered messages in flight, one sent every 20 ms, and reconnect when the
server closes them; a connector opens a short /probe connection every
50 ms (asks `id`, closes). Meanwhile the test sends SIGHUP five times,
each after the previous generation is ready and about 1 s after the
previous HUP.

Asserted:
- no connect fails: refused, reset, handshake failure or timeout, or a
  connection closed before its first answer;
- echoes come back in order, without gaps or duplicates; when the server
  closes a connection, the messages still unanswered must all have been
  sent less than IN_FLIGHT_GRACE (1 s) before the close arrived (they
  crossed the close on the wire; a server that stopped reading at the
  start of the drain would leave older ones unanswered);
- no echo takes longer than MAX_ECHO_LATENCY (2 s);
- every connection the server closed got a close frame with 1012, and
  each of the 20 clients got at least one;
- a connection opened more than 0.5 s after generation G+1 was ready
  never lands on an older generation (probe id);
- afterwards only generation 6 remains: `status` lists generation 6 only
  (active, 2 workers ready), the master's only children are those two
  pids, and new connections land on generation 6.
The figures (connects, messages, 1012s) are printed.

A reload adds a [listen] (served by the new generation) and removes it
again (closed: connects are refused).

Bad configurations: an unknown key on line 2, by SIGHUP and by
`sockd -s reload` (which must exit non-zero printing FILE:2:), and a
route whose app module does not exist; the old generation keeps serving
(same worker pids, old connections echo, new connections on generation
1), and a later good reload gives generation 2 (a failed reload does not
use up a generation number).
"""

import asyncio
import collections
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (MasterTestCase, free_port,  # noqa: E402
                        id_generation, listening_inodes, probe_id,
                        wait_until)
from sockdtest import main  # noqa: E402

try:
    import websockets
    from websockets.exceptions import (ConnectionClosed, InvalidHandshake,
                                       InvalidMessage, InvalidStatusCode)
except ImportError:        # reported by the tests that need it
    websockets = None

N_CLIENTS = 20
WINDOW = 4
PACE = 0.020
CONNECT_EVERY = 0.050
HUPS = 5
HUP_SPACING = 1.0
IN_FLIGHT_GRACE = 1.0
MAX_ECHO_LATENCY = 2.0
LATE_ACCEPT_MARGIN = 0.5

SOAK_SERVER = """drain_timeout = 1s
drain_spread = 500ms
worker_shutdown_timeout = 5s
shutdown_timeout = 3s"""


def classify_connect_error(e):
    """A short name for why a connect failed."""
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(e, InvalidMessage):
        cause = e.__cause__
        if isinstance(cause, (ConnectionResetError, BrokenPipeError,
                              EOFError)):
            return "reset"
        return "handshake"
    if isinstance(e, InvalidStatusCode):
        return "status_%d" % e.status_code
    if isinstance(e, InvalidHandshake):
        return "handshake"
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionClosed):
        return "closed_early_%s" % (e.rcvd.code if e.rcvd else "nocode")
    if isinstance(e, OSError):
        return "oserror_%s" % (e.errno,)
    return type(e).__name__


class Soak:
    def __init__(self, server):
        self.server = server
        self.stop = None
        self.connects = collections.Counter()   # tried, ok, <failure kind>
        self.fail_examples = []
        self.sent = 0
        self.answered = 0
        self.in_flight_at_close = 0
        self.lost = []            # (client, seq, age at close)
        self.mismatch = []
        self.server_closes = collections.Counter()  # code -> count
        self.per_client_1012 = collections.Counter()
        self.max_latency = 0.0
        self.slow = []
        self.ready_at = {}        # generation -> monotonic time seen ready
        self.accepts = []         # (monotonic, generation) of connector
        self.hup_times = []

    def connect(self, path):
        return websockets.connect(self.server.url(path), open_timeout=5,
                                  close_timeout=3, ping_interval=None,
                                  compression=None, max_queue=None)

    def fail(self, kind, e, who):
        self.connects[kind] += 1
        if len(self.fail_examples) < 10:
            self.fail_examples.append("%s: %s %r" % (who, kind, e))

    async def session(self, ws, cid, probe):
        """Echoes until the server closes (returns its code) or the soak
        ends (returns None)."""
        loop = asyncio.get_running_loop()
        pending = collections.deque()   # (seq, t_sent)
        seq = 0
        prefix = "echo " if probe else ""

        async def sender():
            nonlocal seq
            while not self.stop.is_set():
                if len(pending) < WINDOW:
                    text = "%s:%d" % (cid, seq)
                    item = (seq, loop.time())
                    pending.append(item)
                    try:
                        await ws.send(prefix + text)
                    except ConnectionClosed:
                        if pending and pending[-1] is item:
                            pending.pop()
                        return
                    seq += 1
                    self.sent += 1
                await asyncio.sleep(PACE)

        async def receiver():
            while True:
                try:
                    msg = await ws.recv()
                except ConnectionClosed:
                    return
                now = loop.time()
                if not pending:
                    self.mismatch.append((cid, "unexpected %r" % (msg,)))
                    continue
                want, t_sent = pending.popleft()
                if msg != "%s:%d" % (cid, want):
                    self.mismatch.append((cid, "expected %s:%d got %r"
                                          % (cid, want, msg)))
                self.answered += 1
                lat = now - t_sent
                self.max_latency = max(self.max_latency, lat)
                if lat > MAX_ECHO_LATENCY and len(self.slow) < 10:
                    self.slow.append((cid, want, round(lat, 3)))

        send_task = asyncio.ensure_future(sender())
        recv_task = asyncio.ensure_future(receiver())
        stop_task = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait([recv_task, stop_task],
                           return_when=asyncio.FIRST_COMPLETED)
        by_server = recv_task.done() and not self.stop.is_set()
        t_close = loop.time()
        stop_task.cancel()
        if not by_server:
            send_task.cancel()
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass
            recv_task.cancel()
            await asyncio.gather(send_task, recv_task,
                                 return_exceptions=True)
            return None
        send_task.cancel()
        await asyncio.gather(send_task, return_exceptions=True)
        for s, t_sent in pending:
            self.in_flight_at_close += 1
            if t_close - t_sent > IN_FLIGHT_GRACE:
                self.lost.append((cid, s, round(t_close - t_sent, 3)))
        try:
            await asyncio.wait_for(ws.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        code = ws.close_rcvd.code if ws.close_rcvd is not None else None
        self.server_closes[code] += 1
        if code == 1012:
            self.per_client_1012[cid] += 1
        return code

    async def long_client(self, i):
        cid = "c%d" % i
        probe = i % 2 == 1
        path = "/probe" if probe else "/echo"
        for _ in range(1000):          # bounded: ~6 sessions expected
            if self.stop.is_set():
                return
            self.connects["tried"] += 1
            try:
                ws = await self.connect(path)
            except Exception as e:
                self.fail(classify_connect_error(e), e, cid)
                await asyncio.sleep(CONNECT_EVERY)
                continue
            self.connects["ok"] += 1
            await self.session(ws, cid, probe)

    async def one_connect(self, n):
        self.connects["tried"] += 1
        t0 = time.monotonic()
        try:
            ws = await self.connect("/probe")
        except Exception as e:
            self.fail(classify_connect_error(e), e, "connector#%d" % n)
            return
        try:
            await ws.send("id")
            sid = int(await asyncio.wait_for(ws.recv(), 5))
            self.connects["ok"] += 1
            self.accepts.append((t0, id_generation(sid)))
        except Exception as e:
            self.fail(classify_connect_error(e), e, "connector#%d" % n)
        finally:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass

    async def connector(self):
        tasks = []
        for n in range(100000):        # bounded by the soak's end
            if self.stop.is_set():
                break
            tasks = [t for t in tasks if not t.done()]
            if len(tasks) < 50:
                tasks.append(asyncio.ensure_future(self.one_connect(n)))
            await asyncio.sleep(CONNECT_EVERY)
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def wait_log_async(self, pattern, timeout, since):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rx.search(self.server.log(), since):
                return True
            if not self.server.alive():
                raise AssertionError("sockd died during the soak")
            await asyncio.sleep(0.02)
        raise AssertionError("no /%s/ in the log within %.0f s"
                             % (pattern, timeout))

    async def driver(self):
        srv = self.server
        await asyncio.sleep(1.0)          # everyone connected and echoing
        for k in range(HUPS):
            gen = k + 2
            t = time.monotonic()
            mark = srv.mark()
            self.hup_times.append(t)
            srv.signal(signal.SIGHUP)
            await self.wait_log_async(r"^<\d>master pid=\d+ event=ready "
                                      r"generation=%d\b" % gen, 15, mark)
            self.ready_at[gen] = time.monotonic()
            left = t + HUP_SPACING - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
        # Let the last drain run out (drain_timeout + drain_spread).
        final = HUPS + 1

        def only_final():
            st = srv.status()
            return (list(st.generations) == [final] and
                    all(w.generation == final for w in st.workers))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if await asyncio.get_running_loop().run_in_executor(
                    None, only_final):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)

    async def run(self):
        self.stop = asyncio.Event()
        clients = [asyncio.ensure_future(self.long_client(i))
                   for i in range(N_CLIENTS)]
        conn = asyncio.ensure_future(self.connector())
        try:
            await self.driver()
        finally:
            self.stop.set()
            await asyncio.wait(clients + [conn], timeout=20)

    def late_old_accepts(self):
        """Connector connects that started more than LATE_ACCEPT_MARGIN
        after a newer generation was ready, yet landed on an older one."""
        out = []
        for t0, gen in self.accepts:
            for g, t_ready in self.ready_at.items():
                if gen < g and t0 > t_ready + LATE_ACCEPT_MARGIN:
                    out.append((round(t0 - t_ready, 3), gen, g))
                    break
        return out

    def figures(self):
        c = self.connects
        fails = {k: v for k, v in c.items() if k not in ("tried", "ok")}
        return ("connects tried=%d ok=%d failed=%s | refused=%d reset=%d | "
                "messages sent=%d answered=%d in_flight_at_close=%d lost=%d "
                "mismatched=%d max_echo_latency=%.3fs | server closes %s "
                "(1012s received: %d) | connector accepts by generation %s"
                % (c["tried"], c["ok"], fails or "{}", c["refused"],
                   c["reset"], self.sent, self.answered,
                   self.in_flight_at_close, len(self.lost),
                   len(self.mismatch), self.max_latency,
                   dict(self.server_closes), self.server_closes[1012],
                   dict(collections.Counter(g for _, g in self.accepts))))


class ReloadSoak(MasterTestCase):
    def setUp(self):
        super().setUp()
        if websockets is None:
            self.fail("python3-websockets is missing "
                      "(apt-get install python3-websockets)")

    def test_reload_soak(self):
        srv = self.start_master(workers=2, server_extra=SOAK_SERVER)
        soak = Soak(srv)
        t0 = time.monotonic()
        asyncio.run(asyncio.wait_for(soak.run(), 75))
        sys.stderr.write("\n[soak] %.1f s, %d HUPs: %s\n"
                         % (time.monotonic() - t0, HUPS, soak.figures()))
        srv.assert_alive()

        fails = {k: v for k, v in soak.connects.items()
                 if k not in ("tried", "ok")}
        self.assertEqual(fails, {}, "failed connects during reloads: %s; "
                         "examples: %s" % (fails, soak.fail_examples))
        self.assertEqual(soak.mismatch[:10], [],
                         "echoes out of order, duplicated or wrong")
        self.assertEqual(soak.lost[:10], [],
                         "messages (client, seq, seconds before the close) "
                         "left unanswered although sent > %.1f s before "
                         "the server's close" % IN_FLIGHT_GRACE)
        self.assertEqual(soak.slow, [], "echoes slower than %.1f s"
                         % MAX_ECHO_LATENCY)
        self.assertGreater(soak.answered, 1000, "too little traffic")
        bad = {k: v for k, v in soak.server_closes.items() if k != 1012}
        self.assertEqual(bad, {}, "server closes with codes other than "
                         "1012 (None: TCP closed without a close frame)")
        no_1012 = ["c%d" % i for i in range(N_CLIENTS)
                   if soak.per_client_1012["c%d" % i] == 0]
        self.assertEqual(no_1012, [], "clients that never got a 1012 "
                         "although generation 1 is gone")
        self.assertEqual(soak.late_old_accepts(), [],
                         "connects (s after the newer generation was "
                         "ready, landed on, newer) served by an old "
                         "generation")

        final = HUPS + 1
        st = srv.status()
        self.assertEqual(list(st.generations.items()), [(final, "active")],
                         "generations left after the soak:\n" + st.text)
        self.assertEqual(sorted((w.generation, w.state) for w in st.workers),
                         [(final, "ready")] * 2, st.text)
        self.assertEqual(srv.children(), sorted(w.pid for w in st.workers),
                         "the master's children are not exactly the "
                         "generation-%d workers:\n%s" % (final, st.text))
        gens = [id_generation(probe_id(srv.port)) for _ in range(10)]
        self.assertEqual(gens, [final] * 10, "generations of new "
                         "connections after the soak")


class Listeners(MasterTestCase):
    def test_reload_adds_and_removes_listeners(self):
        srv = self.start_master(workers=2)
        port2 = free_port()
        srv.write_config(srv.conf_text + "[listen 127.0.0.1:%d]\n" % port2)
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(id_generation(probe_id(port2)), 2,
                         "the listener added by the reload")
        self.assertEqual(id_generation(probe_id(srv.port)), 2)
        srv.write_config(srv.conf_text)
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(id_generation(probe_id(srv.port)), 3)
        wait_until(lambda: not listening_inodes(port2), 5,
                   what="the removed listener to close")
        with self.assertRaises(ConnectionRefusedError):
            probe_id(port2)

    def test_reload_changes_log_level(self):
        """log_level follows the configuration a reload loads: the new
        generation's workers and the master log at the new level."""
        srv = self.start_master(workers=2)
        self.assertIn("log_level = info\n", srv.conf_text)
        mark = srv.mark()
        probe_id(srv.port)
        debug = re.compile(r"(?m)^<7>worker pid=\d+ slot=\d+ event=close ")
        time.sleep(0.3)
        self.assertIsNone(debug.search(srv.log_since(mark)),
                          "a debug line at log_level = info")
        srv.write_config(srv.conf_text.replace("log_level = info",
                                               "log_level = debug"))
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        mark = srv.mark()
        self.assertEqual(id_generation(probe_id(srv.port)), 2)
        wait_until(lambda: debug.search(srv.log_since(mark)), 5,
                   what="a worker's debug line after the reload")
        srv.write_config(srv.conf_text)
        r = srv.ctl("reload")
        self.assertEqual(r.rc, 0, r.err)
        mark = srv.mark()
        self.assertEqual(id_generation(probe_id(srv.port)), 3)
        time.sleep(0.3)
        self.assertIsNone(debug.search(srv.log_since(mark)),
                          "a debug line after reloading log_level = info")


BAD_LINE = 2   # the line of "no_such_key" in the bad config


class BadReload(MasterTestCase):
    def bad_text(self, srv):
        lines = srv.conf_text.split("\n")
        assert lines[0] == "[server]"
        lines.insert(BAD_LINE - 1, "no_such_key = 1")
        return "\n".join(lines)

    def assert_still_generation_1(self, srv, before, conns):
        for i, c in enumerate(conns):
            self.assertEqual(c.echo("still-%d" % i), "still-%d" % i)
        gens = [id_generation(probe_id(srv.port)) for _ in range(6)]
        self.assertEqual(gens, [1] * 6, "new connections after a failed "
                         "reload")
        st = srv.status()
        self.assertEqual(st.generation, 1, st.text)
        self.assertEqual(list(st.generations.items()), [(1, "active")],
                         st.text)
        self.assertEqual(sorted(w.pid for w in st.workers),
                         sorted(w.pid for w in before.workers),
                         "worker pids changed:\n%s" % st.text)
        self.assertEqual(srv.children(), sorted(w.pid for w in st.workers))

    def good_reload_gives_generation_2(self, srv, conns, via_ctl,
                                       expect=2):
        """A good reload after the failed one; expect: the generation it
        must give (None: any above 1)."""
        srv.write_config(srv.conf_text)
        if via_ctl:
            r = srv.ctl("reload")
            self.assertEqual(r.rc, 0, "good reload: %r %r" % (r.out, r.err))
            m = re.search(r"(?m)^reload: generation (\d+) ready "
                          r"\(2 workers\)$", r.out)
            self.assertIsNotNone(m, "reload output %r" % r.out)
            gen = int(m.group(1))
        else:
            mark = srv.mark()
            srv.signal(signal.SIGHUP)
            m = srv.wait_log(r"^<\d>master pid=\d+ event=ready "
                             r"generation=(\d+)\b", 15, since=mark)
            gen = int(m.group(1))
        if expect is not None:
            self.assertEqual(gen, expect, "generation of the first good "
                             "reload after a failed one")
        self.assertGreater(gen, 1)
        self.assertEqual(id_generation(probe_id(srv.port)), gen)
        for c in conns:   # still served while draining (30 s default)
            self.assertEqual(c.echo("draining"), "draining")

    def open_conns(self, srv, n=4):
        conns = [self.probe(srv) for _ in range(n)]
        self.assertEqual({c.generation for c in conns}, {1})
        return conns

    def test_bad_config_on_hup_keeps_old_generation(self):
        srv = self.start_master(workers=2)
        conns = self.open_conns(srv)
        before = srv.status()
        srv.write_config(self.bad_text(srv))
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"no_such_key", 10, since=mark)
        time.sleep(0.5)
        log = srv.log_since(mark)
        self.assertIn("%s:%d:" % (srv.conf, BAD_LINE), log,
                      "the log does not name FILE:LINE of the error")
        self.assertNotRegex(log, r"event=ready generation=2\b")
        self.assertNotRegex(log, r"event=generation_start")
        srv.assert_alive()
        self.assert_still_generation_1(srv, before, conns)
        self.good_reload_gives_generation_2(srv, conns, via_ctl=False)

    def test_bad_config_via_ctl_reload_exits_nonzero(self):
        srv = self.start_master(workers=2)
        conns = self.open_conns(srv)
        before = srv.status()
        srv.write_config(self.bad_text(srv))
        for tool in ("sockd", "sockctl"):
            r = srv.ctl("reload", tool=tool)
            self.assertNotEqual(r.rc, 0, "%s reload of a bad config "
                                "succeeded: %r" % (tool, r.out))
            self.assertIn("%s:%d:" % (srv.conf, BAD_LINE), r.err,
                          "%s reload: stderr does not name FILE:LINE "
                          "(stdout %r)" % (tool, r.out))
            self.assertIn("no_such_key", r.err)
            srv.assert_alive()
            self.assert_still_generation_1(srv, before, conns)
        self.good_reload_gives_generation_2(srv, conns, via_ctl=True)

    def test_unloadable_module_keeps_old_generation(self):
        # The master never loads app modules itself (DESIGN §4.1), so only
        # the new generation's workers can find out that one is missing:
        # the reload must still fail and leave generation 1 serving.
        srv = self.start_master(workers=2)
        conns = self.open_conns(srv)
        before = srv.status()
        lines = srv.conf_text.rstrip("\n").split("\n")
        lines += ["[route /gone]", "app = %s/no-such-app.so" % srv.tmp.name]
        app_line = len(lines)
        srv.write_config("\n".join(lines) + "\n")
        t0 = time.monotonic()
        r = srv.ctl("reload", timeout=60)
        took = time.monotonic() - t0
        sys.stderr.write("\n[bad module] reload rc=%d in %.2f s, stderr %r\n"
                         % (r.rc, took, r.err))
        self.assertNotEqual(r.rc, 0, "reload with a missing app module "
                            "succeeded: %r" % (r.out,))
        self.assertIn("%s:%d:" % (srv.conf, app_line), r.err,
                      "reload: stderr does not name FILE:LINE of the app")
        srv.assert_alive()
        # The failed generation may take a moment to be reaped.
        wait_until(lambda: srv.children() == sorted(
            w.pid for w in before.workers), 10,
            what="only the generation-1 workers left")
        self.assert_still_generation_1(srv, before, conns)
        self.good_reload_gives_generation_2(srv, conns, via_ctl=True,
                                            expect=None)


if __name__ == "__main__":
    main()
