#!/usr/bin/python3
"""The chat example across workers (examples/chat), in a real browser and
with a plain WebSocket client.

sockd runs with workers = 2 and a route /chat (app = chat, static_dir =
examples/chat/www, whose index.html a plain GET of /chat serves).

- Browser: headless Chromium (/usr/bin/chromium), driven over the
  DevTools protocol with python3-websockets. Two pages,
  /chat?room=r1&nick=ann&autojoin=1 and ...nick=bob..., join the room
  (their connections put on different workers when the reconnects allow:
  see `sockd -s status`); ann types a message and submits the form, and
  bob's #log must show "ann: MESSAGE" within 5 s. A screenshot of bob's
  page goes to tests/integration/artifacts/chat.png. Without
  /usr/bin/chromium the browser test is skipped, loudly.
- Protocol: join notices, {"from":...,"text":...} messages (escapes
  included), rooms kept apart, the leave notice, binary refused with 1003,
  and 400 for a bad or missing nick or room.
"""

import asyncio
import base64
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (Master, MasterTestCase,  # noqa: E402
                        _die_with_parent, proc_stat)
from sockdtest import REPO, WSClient, main  # noqa: E402
from bustest import close_quietly, conns_on_slots  # noqa: E402

try:
    import websockets
except ImportError:        # reported by the tests that need it
    websockets = None

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WWW = os.path.join(REPO, "examples", "chat", "www")
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "artifacts")
WORKERS = 2
FILLERS = 24  # > 2 x the balance threshold of max(8, avg/8) (worker.c)
CHAT_ROUTE = "[route /chat]\napp = chat\nstatic_dir = %s\n" % WWW


def log(msg):
    sys.stderr.write("\n[chat] %s\n" % msg)
    sys.stderr.flush()


def chat_server(case, server_extra=""):
    srv = Master(workers=WORKERS, extra=CHAT_ROUTE, name="sockd-chat",
                 server_extra=server_extra)
    case._servers.append(srv)
    case.addCleanup(check_exit, case, srv)     # runs after the stop
    case.addCleanup(srv.stop)
    srv.start()
    return srv


def check_exit(case, srv):
    """sockd exited 0 after SIGTERM and logged no sanitizer report (with
    SOCK_BUILD_DIR=build-asan)."""
    m = re.search(r"^.*(AddressSanitizer|LeakSanitizer|runtime error"
                  r"|UndefinedBehaviorSanitizer).*$", srv.log(), re.M)
    case.assertIsNone(m, "sanitizer report in sockd's log:\n%s"
                      % srv.log_tail(80))
    case.assertEqual(srv.returncode, 0, "sockd exit status after SIGTERM")


def pile_on(srv, slot):
    """FILLERS /probe connections on slot (so that the accept balancing,
    DESIGN §4.5, sends the next connection to another worker); returns
    them, to close with unpile."""
    return conns_on_slots(srv.port, {slot: FILLERS})[slot]


def unpile(fillers):
    for c in fillers:
        close_quietly(c)


def conns_by_slot(srv):
    return {w.slot: w.conns for w in srv.status().workers}


def wait_conns(srv, total, timeout=8.0):
    """Polls status until the workers hold `total` connections in all;
    returns {slot: conns}."""
    deadline = time.monotonic() + timeout
    while True:
        c = conns_by_slot(srv)
        if sum(c.values()) == total:
            return c
        if time.monotonic() > deadline:
            raise AssertionError("status: expected %d connections in all, "
                                 "have %s" % (total, c))
        time.sleep(0.05)


# ---- a minimal DevTools protocol client -------------------------------------

class CDP:
    """One browser-level DevTools websocket; page commands go through
    flattened target sessions. Every call has a deadline."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self.pending.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def call(self, method, params=None, session=None, timeout=10.0):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        try:
            res = await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(mid, None)
        if "error" in res:
            raise AssertionError("CDP %s: %s" % (method, res["error"]))
        return res.get("result", {})

    async def open_page(self, url):
        t = await self.call("Target.createTarget", {"url": "about:blank"})
        s = await self.call("Target.attachToTarget",
                            {"targetId": t["targetId"], "flatten": True})
        page = Page(self, t["targetId"], s["sessionId"])
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call("Page.navigate", {"url": url})
        return page

    async def close(self):
        self.reader.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except (asyncio.TimeoutError, Exception):
            pass


class Page:
    def __init__(self, cdp, target, session):
        self.cdp, self.target, self.session = cdp, target, session

    def call(self, method, params=None, timeout=10.0):
        return self.cdp.call(method, params, self.session, timeout)

    async def js(self, expr, timeout=5.0):
        r = await self.call("Runtime.evaluate",
                            {"expression": expr, "returnByValue": True,
                             "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            raise AssertionError("page script %r failed: %s"
                                 % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    async def wait_js(self, expr, timeout, what):
        """Polls a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = await self.js(expr)
            except AssertionError as e:
                last = str(e)
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %.1f s waiting for %s "
                                     "(last value %r)" % (timeout, what,
                                                          last))
            await asyncio.sleep(0.05)

    async def state(self):
        return await self.js("document.getElementById('state') ? "
                             "document.getElementById('state').textContent "
                             ": ''")

    async def log_text(self):
        return await self.js("Array.from(document.querySelectorAll('#log "
                             "div')).map(d => d.textContent)")


class Browser:
    """Headless Chromium on a private profile; DevTools port from its
    stderr. Killed by pid at close."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sockchrome-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage",
             "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1",
             "--window-size=900,700", "--user-data-dir=" + self.tmp,
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.stderr = b""
        self.url = self._devtools_url(30)

    def _devtools_url(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stderr.fileno()
        while time.monotonic() < deadline:
            m = re.search(rb"DevTools listening on (ws://\S+)", self.stderr)
            if m:
                return m.group(1).decode()
            if self.proc.poll() is not None:
                break
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.stderr += chunk
        self.close()
        raise AssertionError("chromium gave no DevTools URL within %.0f s "
                             "(exit %s); stderr:\n%s"
                             % (timeout, self.proc.returncode,
                                self.stderr.decode("utf-8",
                                                   "replace")[-3000:]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:
            self.proc.stderr.close()
        except OSError:
            pass
        self._reap_helpers()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _reap_helpers(self, timeout=5.0):
        """Chromium's helpers (zygote, crashpad) outlive the browser for a
        moment and are reparented to us (mastertest makes the test a
        subreaper): end the live ones by pid, reap the dead ones."""
        deadline = time.monotonic() + timeout
        me = os.getpid()
        while time.monotonic() < deadline:
            left = []
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                pid = int(name)
                st = proc_stat(pid)
                try:
                    with open("/proc/%d/comm" % pid) as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                if st is None or st[1] != me or "chrom" not in comm:
                    continue
                left.append(pid)
                if st[0] == "Z":
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                else:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if not left:
                return
            time.sleep(0.05)


class ChatBrowser(MasterTestCase):
    def setUp(self):
        super().setUp()
        if not os.access(CHROMIUM, os.X_OK):
            msg = ("!!!! SKIPPED: no Chromium at %s: the browser test of the "
                   "chat page did NOT run (apt-get install chromium, or "
                   "tools/dev deps) !!!!" % CHROMIUM)
            sys.stderr.write("\n" + "!" * 72 + "\n" + msg + "\n" + "!" * 72
                             + "\n")
            self.skipTest(msg)
        if websockets is None:
            self.fail("python3-websockets is missing")

    def test_two_pages_chat_across_workers(self):
        # Chromium opens spare connections ahead of need (preconnect),
        # which `status` counts: a short handshake_timeout has the server
        # close those idle ones, so the counts settle on the WebSockets.
        srv = chat_server(self, server_extra="handshake_timeout = 500ms")
        browser = Browser()
        self.addCleanup(browser.close)
        base = "http://127.0.0.1:%d/chat?room=r1&autojoin=1&nick=" % srv.port
        msg = "hello bob, from a browser on another worker \u2713"
        shot = os.path.join(ARTIFACTS, "chat.png")

        async def go():
            async with websockets.connect(browser.url, max_size=64 << 20,
                                          ping_interval=None,
                                          open_timeout=10) as ws:
                cdp = CDP(ws)
                try:
                    return await scenario(cdp)
                finally:
                    await cdp.close()

        async def joined(page, nick):
            await page.wait_js(
                "(document.getElementById('state')||{}).textContent === "
                "'in #r1 as %s'" % nick, 10, "%s's page to join" % nick)

        async def scenario(cdp):
            ann = await cdp.open_page(base + "ann")
            await joined(ann, "ann")
            loop = asyncio.get_running_loop()
            c = await loop.run_in_executor(None, wait_conns, srv, 1)
            ann_slot = [s for s, n in c.items() if n == 1][0]
            fillers = await loop.run_in_executor(None, pile_on, srv, ann_slot)
            try:
                return await with_bob(cdp, loop, ann, ann_slot, fillers)
            finally:
                unpile(fillers)

        async def with_bob(cdp, loop, ann, ann_slot, fillers):
            extra = len(fillers)
            bob = await cdp.open_page(base + "bob")
            tries = 1
            while True:
                await joined(bob, "bob")
                c = await loop.run_in_executor(None, wait_conns, srv,
                                               2 + extra)
                c[ann_slot] -= extra
                if max(c.values()) == 1 or tries >= 8:
                    break
                tries += 1       # same worker as ann: reconnect bob
                await bob.call("Page.reload")
                await asyncio.sleep(0.2)
            apart = max(c.values()) == 1
            log("ann on slot %d; bob's connection %s after %d tr%s "
                "(conns per slot %s)"
                % (ann_slot, "on the other worker" if apart else
                   "on the SAME worker (accepted)", tries,
                   "y" if tries == 1 else "ies", c))
            await ann.wait_js("Array.from(document.querySelectorAll('#log "
                              "div')).some(d => d.textContent === "
                              "'bob joined')", 5, "ann to see bob join")
            await ann.js("(() => { const t = document.getElementById('text');"
                         " t.value = %s; document.getElementById('say')"
                         ".requestSubmit(); return true; })()"
                         % json.dumps(msg))
            t0 = time.monotonic()
            want = "ann: " + msg
            await bob.wait_js("Array.from(document.querySelectorAll('#log "
                              "div')).some(d => d.textContent === %s)"
                              % json.dumps(want), 5,
                              "bob's #log to show %r" % want)
            dt = time.monotonic() - t0
            ann_log = await ann.log_text()
            bob_log = await bob.log_text()
            self.assertIn(want, ann_log, "ann sees her own message too")
            self.assertEqual(await ann.js("document.getElementById('text')"
                                          ".value"), "", "input cleared")
            png = await bob.call("Page.captureScreenshot", {"format": "png"},
                                 timeout=15)
            os.makedirs(ARTIFACTS, exist_ok=True)
            with open(shot, "wb") as f:
                f.write(base64.b64decode(png["data"]))
            return apart, dt, ann_log, bob_log

        apart, dt, ann_log, bob_log = asyncio.run(asyncio.wait_for(go(), 60))
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        log("bob's page showed ann's message %.0f ms after she sent it; "
            "bob's log %r; ann's log %r" % (dt * 1e3, bob_log, ann_log))
        print("screenshot of bob's page: %s" % shot)
        sys.stderr.write("[chat] screenshot: %s\n" % shot)


class ChatProtocol(MasterTestCase):
    def setUp(self):
        super().setUp()
        if websockets is None:
            self.fail("python3-websockets is missing")

    def test_page_is_served(self):
        srv = chat_server(self)
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            c.request("GET", "/chat?room=r1&nick=ann&autojoin=1")
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type", "").startswith(
            "text/html"), r.getheaders())
        self.assertIn(b'<form id="say">', body)

    def test_bad_nick_or_room_400(self):
        srv = chat_server(self)
        for q in ("room=r1&nick=bad%20nick", "room=r1&nick=", "room=r1",
                  "nick=ann", "room=r%2F1&nick=ann", "room=r1&nick=" +
                  "n" * 33, "room=" + "r" * 33 + "&nick=ann",
                  "room=r1&nick=%C3%A9"):
            with WSClient(srv.port, timeout=5) as c:
                resp = c.handshake("/chat?" + q)
                self.assertEqual(resp.status, 400, "query %r: %d %r"
                                 % (q, resp.status, resp.body))
                self.assertIn(b"room and nick", resp.body, q)
        with WSClient(srv.port, timeout=5) as c:     # 32 is fine
            c.upgrade("/chat?room=%s&nick=%s" % ("r" * 32, "n" * 32))

    def test_protocol_across_workers(self):
        srv = chat_server(self)

        async def recv_json(ws, timeout=5):
            return json.loads(await asyncio.wait_for(ws.recv(), timeout))

        async def connect(room, nick):
            return await websockets.connect(
                srv.url("/chat?room=%s&nick=%s" % (room, nick)),
                open_timeout=5, close_timeout=2, ping_interval=None,
                compression=None)

        async def nothing(ws, wait=0.3):
            try:
                m = await asyncio.wait_for(ws.recv(), wait)
            except asyncio.TimeoutError:
                return
            raise AssertionError("unexpected message %r" % m)

        async def go():
            loop = asyncio.get_running_loop()
            ann = await connect("r1", "ann")
            self.assertEqual(await recv_json(ann),
                             {"event": "join", "nick": "ann"})
            c = await loop.run_in_executor(None, wait_conns, srv, 1)
            ann_slot = [s for s, n in c.items() if n == 1][0]
            fillers = await loop.run_in_executor(None, pile_on, srv, ann_slot)
            try:
                return await with_bob(loop, ann, ann_slot, len(fillers))
            finally:
                unpile(fillers)

        async def with_bob(loop, ann, ann_slot, extra):
            # bob on the other worker: reconnect while he lands with ann.
            for tries in range(1, 11):
                bob = await connect("r1", "bob")
                self.assertEqual(await recv_json(bob),
                                 {"event": "join", "nick": "bob"})
                self.assertEqual(await recv_json(ann),
                                 {"event": "join", "nick": "bob"})
                c = await loop.run_in_executor(None, wait_conns, srv,
                                               2 + extra)
                c[ann_slot] -= extra
                if max(c.values()) == 1:
                    break
                await bob.close()
                self.assertEqual(await recv_json(ann),
                                 {"event": "leave", "nick": "bob"})
                await loop.run_in_executor(None, wait_conns, srv, 1 + extra)
            apart = max(c.values()) == 1
            log("protocol: ann and bob %s after %d tries (%s)"
                % ("on different workers" if apart else "on ONE worker",
                   tries, c))
            self.assertTrue(apart, "could not put bob on the other worker "
                            "in 10 tries: %s" % c)
            carol = await connect("r2", "carol")
            self.assertEqual(await recv_json(carol),
                             {"event": "join", "nick": "carol"})

            await ann.send("hi bob")
            for ws in (ann, bob):
                self.assertEqual(await recv_json(ws),
                                 {"from": "ann", "text": "hi bob"})
            tricky = ('quote " backslash \\ newline\n tab\t ctl\x01 '
                      '\u00e9\u2713')
            await bob.send(tricky)
            for ws in (ann, bob):
                raw = await asyncio.wait_for(ws.recv(), 5)
                self.assertEqual(json.loads(raw),
                                 {"from": "bob", "text": tricky}, raw)
            await nothing(carol)
            await carol.send("only r2")
            self.assertEqual(await recv_json(carol),
                             {"from": "carol", "text": "only r2"})
            await nothing(ann, 0.2)
            await nothing(bob, 0.05)

            await bob.close()
            self.assertEqual(await recv_json(ann),
                             {"event": "leave", "nick": "bob"})
            # Binary is refused with 1003, and that is a leave too.
            await ann.send(b"\x00\x01")
            try:
                await asyncio.wait_for(ann.recv(), 5)
                raise AssertionError("binary message was accepted")
            except websockets.ConnectionClosed as e:
                self.assertEqual(e.rcvd.code if e.rcvd else None, 1003)
            await carol.close()

        asyncio.run(asyncio.wait_for(go(), 40))


if __name__ == "__main__":
    main()
