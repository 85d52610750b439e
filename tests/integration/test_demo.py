#!/usr/bin/python3
"""What a newcomer runs first: the demo (tools/dev demo) and README.md's
commands, run as they are printed or written.

- `tools/dev demo-config` writes the demo's configuration (what `tools/dev
  demo` runs) and prints the banner; sockd runs that configuration (2
  workers), a chat client joins room lobby, and the banner's `shell:`
  command, run as printed from the repository root, answers "published"
  and the client gets {"from":"admin","text":"hi from the shell"}.
  `sockctl --type 1` publishes a chat message as the chat app's own type;
  a bad --type is refused (exit 2), and so is a bad admin &type= (400).
- The demo's /chat route pings (ping_interval below the idle timeout):
  sockd with the demo configuration and idle_timeout = 1s keeps a client
  that only reads (and answers pings) open past 3 s, and it got pings.
- The chat page reconnects: in headless Chromium a joined page sees its
  connection end (sockd stopped: 1001), says it is reconnecting, and is
  back in the room once sockd runs again on the same port. Skipped loudly
  without /usr/bin/chromium.
- README: `build/sockd -t -c examples/demo.conf` passes from the
  repository root; `build/sockd -c examples/demo.conf` serves the chat and
  README's `build/sockctl ... publish chat:lobby 'hello'` shows "hello" in
  it (skipped loudly when 8080 or 8081 is busy); the README's app, built with the README's `cc`
  command as written (in a directory laid out as it says), loads in sockd
  and echoes.
"""

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import Master, MasterTestCase, _die_with_parent  # noqa
from sockdtest import (BUILD_DIR, OP_PING, REPO, SOCKD, Server,  # noqa: E402
                       WSClient, build_frame, free_port, main)
from bustest import admin_request  # noqa: E402

README = os.path.join(REPO, "README.md")


def two_free_ports():
    """PORT and PORT + 1 both free a moment ago (the demo's convention)."""
    for _ in range(50):
        p = free_port()
        if p >= 65535:
            continue
        try:
            import socket
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def with_build(cmd):
    """A printed `build/...` command for this test's build directory (the
    same command when the build is REPO/build)."""
    if os.path.realpath(BUILD_DIR) == os.path.realpath(
            os.path.join(REPO, "build")):
        return cmd
    return re.sub(r"(^|\s)build/", r"\1" + BUILD_DIR + "/", cmd)


def demo_config(port):
    """Runs tools/dev demo-config; returns (banner text, config path)."""
    r = subprocess.run([os.path.join(REPO, "tools", "dev"), "demo-config"],
                       cwd=REPO, env=dict(os.environ, PORT=str(port)),
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("tools/dev demo-config: %d\n%s%s"
                             % (r.returncode, r.stdout, r.stderr))
    m = re.search(r"^config: (\S+)$", r.stdout, re.M)
    assert m, r.stdout
    return r.stdout, m.group(1)


def demo_master(case, conf, port, edit=None):
    with open(conf) as f:
        text = f.read()
    if edit:
        text = edit(text)
    srv = Master(config=text.replace("{", "{{").replace("}", "}}"),
                 port=port, name="sockd-demo")
    case._servers.append(srv)
    case.addCleanup(srv.stop)
    case.addCleanup(shutil.rmtree, os.path.dirname(conf), True)
    srv.start()
    return srv


class Demo(MasterTestCase):
    def test_printed_publish_reaches_the_chat(self):
        port = two_free_ports()
        banner, conf = demo_config(port)
        srv = demo_master(self, conf, port)
        shell = re.search(r"^shell:\s+(.*)$", banner, re.M).group(1)
        self.assertEqual(shell, "build/sockctl -c %s publish chat:lobby "
                         "'hi from the shell'" % conf)
        c = WSClient(port)
        self._clients.append(c)
        c.upgrade("/chat?room=lobby&nick=me")
        self.assertEqual(c.recv_text(), '{"event":"join","nick":"me"}')
        r = subprocess.run(with_build(shell), shell=True, cwd=REPO,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "published\n", ""))
        self.assertEqual(c.recv_text(),
                         '{"from":"admin","text":"hi from the shell"}')

        sockctl = with_build("build/sockctl")
        r = subprocess.run(
            shlex.split(sockctl) + ["-c", conf, "--type", "1", "publish",
                                    "chat:lobby",
                                    '{"from":"bot","text":"typed"}'],
            cwd=REPO, capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "published\n"))
        self.assertEqual(c.recv_text(), '{"from":"bot","text":"typed"}')

        r = subprocess.run(shlex.split(sockctl) + ["-c", conf, "-t", "x1",
                                                   "publish", "t", "m"],
                           cwd=REPO, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--type takes a number 0-4294967295, not 'x1'",
                      r.stderr)
        status, body = admin_request(port + 1, "POST",
                                     "/publish?topic=chat:lobby&type=4294967296",
                                     "x")
        self.assertEqual((status, body),
                         (400, b"type must be a number 0-4294967295\n"))
        status, body = admin_request(port + 1, "POST",
                                     "/publish?topic=chat:lobby&type=7", "x")
        self.assertEqual((status, body), (202, b"published\n"))
        self.assertEqual(self._no_frame_then_ok(c, port + 1),
                         '{"from":"admin","text":"after"}')

    def _no_frame_then_ok(self, c, aport):
        """Nothing arrives for the type-7 publish (the chat app shows its
        own type 1 and outside type 0 only); returns the next text after
        a type-0 publish."""
        try:
            f = c.recv_frame(timeout=0.3)
        except AssertionError:
            f = None
        self.assertIsNone(f, "a type-7 publish reached the chat client")
        status, _ = admin_request(aport, "POST",
                                  "/publish?topic=chat:lobby", "after")
        self.assertEqual(status, 202)
        return c.recv_text()

    def test_demo_route_pings_a_reading_client(self):
        port = two_free_ports()
        _, conf = demo_config(port)

        def short_idle(text):
            # The demo's ping_interval scaled down with the idle timeout.
            text = text.replace("ping_interval = 25s", "ping_interval = 300ms")
            return text.replace("[route /chat]\n",
                                "[route /chat]\nidle_timeout = 1s\n")
        self.assertIn("ping_interval = 25s", open(conf).read())
        srv = demo_master(self, conf, port, short_idle)
        c = WSClient(port)
        self._clients.append(c)
        c.upgrade("/chat?room=lobby&nick=reader")
        pings = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                f = c.recv_frame(timeout=max(0.01,
                                             deadline - time.monotonic()))
            except AssertionError:
                break
            if f.opcode == OP_PING:
                pings += 1
                c.send_raw(build_frame(0xA, f.payload))
        self.assertGreaterEqual(pings, 5)
        c.send_text("still here")
        self.assertEqual(c.recv_text(),
                         '{"from":"reader","text":"still here"}')
        srv.assert_alive()


class ChatPageReconnects(MasterTestCase):
    def test_page_reconnects_after_server_restart(self):
        try:
            import test_chat_browser as tcb
        except ImportError as e:
            self.fail("cannot import the browser helpers: %s" % e)
        if not os.access(tcb.CHROMIUM, os.X_OK):
            msg = ("!!!! SKIPPED: no Chromium at %s: the chat page's "
                   "reconnect was NOT tested !!!!" % tcb.CHROMIUM)
            sys.stderr.write("\n" + msg + "\n")
            self.skipTest(msg)
        port = free_port()
        route = tcb.CHAT_ROUTE

        def start():
            s = Master(workers=1, extra=route, port=port,
                       server_extra="handshake_timeout = 500ms",
                       name="sockd-chat")
            self._servers.append(s)
            self.addCleanup(s.stop)
            s.start()
            return s
        srv = start()
        browser = tcb.Browser()
        self.addCleanup(browser.close)
        url = "http://127.0.0.1:%d/chat?room=r1&autojoin=1&nick=ann" % port
        state = ("(document.getElementById('state')||{}).textContent")

        async def go():
            async with tcb.websockets.connect(browser.url, max_size=1 << 26,
                                              ping_interval=None,
                                              open_timeout=10) as ws:
                cdp = tcb.CDP(ws)
                try:
                    page = await cdp.open_page(url)
                    await page.wait_js(state + " === 'in #r1 as ann'", 10,
                                       "the page to join")
                    # Every text the state shows from now on, so that a
                    # retry that replaces it (sockd is down: 1006) before
                    # the next poll cannot hide the first close.
                    await page.js(
                        "(() => { const el = document.getElementById("
                        "'state'); window.seen = []; new MutationObserver("
                        "() => window.seen.push(el.textContent)).observe("
                        "el, { childList: true, characterData: true, "
                        "subtree: true }); return true; })()")
                    # Blocking calls on purpose: sockd must be forked by
                    # the main thread (it dies with its forking thread,
                    # PR_SET_PDEATHSIG), and the page only waits meanwhile.
                    srv.stop()
                    got = await page.wait_js(
                        "window.seen.find(s => s.startsWith("
                        "'closed (1001), reconnecting')) || false", 10,
                        "the page to say it reconnects")
                    start()
                    await page.wait_js(state + " === 'in #r1 as ann'", 15,
                                       "the page to be back in the room")
                    return got
                finally:
                    await cdp.close()
        got = asyncio.run(asyncio.wait_for(go(), 60))
        self.assertRegex(got, r"^closed \(1001\), reconnecting in "
                              r"0\.[3-7] s$")


class Readme(MasterTestCase):
    def readme(self):
        with open(README) as f:
            return f.read()

    def test_check_demo_conf_as_written(self):
        text = self.readme()
        cmd = "build/sockd -t -c examples/demo.conf"
        self.assertIn(cmd, text)
        r = subprocess.run(with_build(cmd), shell=True, cwd=REPO,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test is successful", r.stdout + r.stderr)

    def test_run_demo_conf_and_publish_as_written(self):
        text = self.readme()
        run = "build/sockd -c examples/demo.conf"
        pub = "build/sockctl -c examples/demo.conf publish chat:lobby 'hello'"
        self.assertIn(run, text)
        self.assertIn(pub, text)
        import socket
        for port in (8080, 8081):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    self.skipTest("!!!! SKIPPED: port %d is busy: README's "
                                  "demo.conf commands were NOT run !!!!"
                                  % port)
        log = tempfile.TemporaryFile()
        self.addCleanup(log.close)
        proc = subprocess.Popen(shlex.split(with_build(run)), cwd=REPO,
                                stdout=log, stderr=log,
                                preexec_fn=_die_with_parent)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.addCleanup(stop)
        deadline = time.monotonic() + 10
        while True:
            try:
                c = WSClient(8080)
                c.upgrade("/chat?room=lobby&nick=reader")
                break
            except (OSError, AssertionError):
                self.assertIsNone(proc.poll(), "sockd exited")
                self.assertLess(time.monotonic(), deadline,
                                "demo.conf never served /chat")
                time.sleep(0.1)
        self._clients.append(c)
        self.assertEqual(c.recv_text(), '{"event":"join","nick":"reader"}')
        r = subprocess.run(with_build(pub), shell=True, cwd=REPO,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "published\n"))
        self.assertEqual(c.recv_text(), '{"from":"admin","text":"hello"}')
        c.close()
        stop()
        self.assertEqual(proc.returncode, 0)

    def test_build_the_readme_app_as_written(self):
        text = self.readme()
        code = re.search(r"```c\n(.*?)```", text, re.S).group(1)
        cmd = re.search(r"`(cc -shared [^`]*)`", text).group(1)
        self.assertEqual(cmd, "cc -shared -fPIC -I sockapi app.c -o app.so")
        self.assertIn("from the repository root", text)
        tmp = tempfile.mkdtemp(prefix="sockreadme-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # The repository root as the README assumes it: sockapi/ and app.c.
        os.symlink(os.path.join(REPO, "sockapi"), os.path.join(tmp,
                                                               "sockapi"))
        with open(os.path.join(tmp, "app.c"), "w") as f:
            f.write(code)
        r = subprocess.run(cmd, shell=True, cwd=tmp, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        so = os.path.join(tmp, "app.so")
        srv = Server(extra="[route /readme]\napp = %s\n" % so)
        self._servers.append(srv)
        self.addCleanup(srv.stop)
        srv.start()
        c = srv.client("/readme")
        self._clients.append(c)
        self.assertEqual(c.command("hello readme"), "hello readme")


if __name__ == "__main__":
    main()
