#!/usr/bin/python3
"""Apps that do real work (sock.h ABI 2), with tests/apps/asyncapp.c.

- setup runs once per route with the route's option.NAME keys, and its
  repeating sock_timer_start timer runs; sock_option reads them per
  connection; a route whose setup fails answers 503 (and says so in the
  log) while the other routes serve on;
- sock_post from a thread arrives as SOCK_INFO_POST; 20 000 posts from a
  thread all arrive when the inbox has room, else the excess is dropped
  and counted (sock_infos_dropped_total) while the connection stays
  responsive; a post to a closed id is dropped and counted in
  sock_infos_stale_total; a post to a connection on another worker
  arrives there as SOCK_INFO_SEND from 0;
- sock_watch_fd reports a pipe written by another thread, and a one-shot
  sock_timer_start timer fires;
- deferred upgrades: accepted or refused later from an app timer and
  from a thread (init gets the decision's arg, the refusal its status
  and body); a decision later than handshake_timeout: the client gets
  503 and the app's decision -EPIPE; a client gone while pending: the
  decision gets -EPIPE and sockd serves on; a frame sent before the 101
  is kept and handled after the accept; more than max_request_head of
  such bytes: 400.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (BUILD_DIR, OP_TEXT, Server, WSClient,  # noqa: E402
                       build_frame, free_port, resp_header)
from bustest import AdminMaster, admin_request, metrics, wait_metric  # noqa: E402

ASYNC_SO = os.path.join(BUILD_DIR, "asyncapp.so")

ROUTES = ("[route /async]\n"
          "app = {so}\n"
          "option.greeting = hello world\n"
          "option.empty =\n"
          "[route /broken]\n"
          "app = {so}\n"
          "option.fail_setup = yes\n").format(so=ASYNC_SO)


def async_server(server_extra="", admin=None):
    extra = ROUTES
    if admin is not None:
        extra += "[admin]\nlisten = 127.0.0.1:%d\n" % admin
    return Server(server_extra=server_extra, extra=extra.replace(
        "{", "{{").replace("}", "}}"))


def stats(port):
    c = WSClient(port)
    try:
        c.upgrade("/async")
        got = c.command("stats")
    finally:
        c.close()
    return dict(kv.split("=") for kv in got.split())


def wait_stats(port, key, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = stats(port)
        if int(got[key]) == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


class SetupAndOptions(unittest.TestCase):
    def test_setup_options_and_failed_route(self):
        with async_server() as srv:
            c = srv.client("/async")
            self.assertEqual(c.command("option greeting"), "hello world")
            self.assertEqual(c.command("option empty"), "")
            self.assertEqual(c.command("option nope"), "(unset)")
            deadline = time.monotonic() + 3
            while True:
                got = c.command("ticks")
                if got.startswith("ticks:yes") or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual(got, "ticks:yes greeting:hello world")
            c.close()
            b = WSClient(srv.port)
            resp = b.handshake("/broken")
            b.close()
            self.assertEqual(resp.status, 503)
            self.assertEqual(resp.body, b"the application failed to start\n")
            self.assertIn("event=app_setup_failed route=/broken "
                          "app=asyncapp error=\"Input/output error\"",
                          srv.log())
            e = srv.client("/echo")
            self.assertEqual(e.command("still"), "still")
            e.close()
            srv.stop_clean()


class Threads(unittest.TestCase):
    def test_post_from_thread(self):
        with async_server() as srv:
            c = srv.client("/async")
            t0 = time.monotonic()
            c.send_text("thread 100 hello from a thread")
            self.assertEqual(c.recv_text(), "post:6:7:hello from a thread")
            self.assertGreaterEqual(time.monotonic() - t0, 0.09)
            # the loop was never blocked meanwhile
            c.send_text("thread 300 late")
            self.assertEqual(c.command("option greeting"), "hello world")
            self.assertEqual(c.recv_text(), "post:6:7:late")
            c.close()
            srv.stop_clean()

    def test_post_flood_all_arrive(self):
        # Posts land in the inbox like any info: with room for them all,
        # all 20 000 arrive, while the connection stays responsive.
        with async_server(server_extra="max_info_queue = 30000") as srv:
            c = srv.client("/async", timeout=20)
            c.send_text("flood 20000")
            self.assertEqual(c.recv_text(timeout=20), "flood:20000")
            self.assertEqual(c.command("option greeting"), "hello world")
            c.close()
            srv.stop_clean()

    def test_post_flood_over_the_inbox_is_dropped_and_counted(self):
        aport = free_port()
        with async_server(server_extra="max_info_queue = 50",
                          admin=aport) as srv:
            c = srv.client("/async", timeout=20)
            before = metrics(aport).get("sock_infos_dropped_total", 0)
            c.send_text("flood 20000")
            wait_metric(aport, "sock_infos_dropped_total",
                        lambda v: v > before, 10)
            self.assertEqual(c.command("option greeting"), "hello world")
            c.close()
            srv.stop_clean()

    def test_post_to_closed_id_dropped_and_counted(self):
        aport = free_port()
        with async_server(admin=aport) as srv:
            a = srv.client("/async")
            aid = a.command("id")
            a.send_close(1000)
            a.expect_close(1000)
            a.close()
            before = metrics(aport).get("sock_infos_stale_total", 0)
            b = srv.client("/async")
            b.send_text("postto %s nobody home" % aid)
            bid = b.command("id")
            wait_metric(aport, "sock_infos_stale_total",
                        lambda v: v == before + 1, 5)
            # and the same call reaches a live id
            b.send_text("postto %s to myself" % bid)
            self.assertEqual(b.recv_text(), "post:6:8:to myself")
            # the admin endpoint's &type= reaches the app as the info type
            st, body = admin_request(aport, "POST",
                                     "/send?id=0x%s&type=5" % bid, "typed")
            self.assertEqual((st, body), (202, b"sent\n"))
            self.assertEqual(b.recv_text(), "send:1:5:0:typed")
            st, body = admin_request(aport, "POST",
                                     "/send?id=0x%s&type=-1" % bid, "x")
            self.assertEqual((st, body),
                             (400, b"type must be a number 0-4294967295\n"))
            time.sleep(0.2)
            self.assertEqual(metrics(aport)["sock_infos_stale_total"],
                             before + 1)
            b.close()
            srv.stop_clean()

    def test_post_to_other_worker(self):
        srv = AdminMaster(workers=2, extra=ROUTES.replace(
            "{", "{{").replace("}", "}}"))
        with srv:
            conns = {}
            extra = []
            for _ in range(200):
                c = srv.client("/async")
                sid = int(c.command("id"), 16)
                slot = (sid >> 32) & 0xff
                if slot not in conns:
                    conns[slot] = (c, sid)
                else:
                    extra.append(c)
                if len(conns) == 2:
                    break
            for c in extra:
                c.close()
            self.assertEqual(sorted(conns), [0, 1])
            (a, aid), (b, bid) = conns[0], conns[1]
            b.send_text("postto %x across" % aid)
            self.assertEqual(a.recv_text(), "send:1:8:0:across")
            a.send_text("postto %x back" % bid)
            self.assertEqual(b.recv_text(), "send:1:8:0:back")
            a.close()
            b.close()
            srv.stop_clean()


class LoopIntegration(unittest.TestCase):
    def test_watch_fd_and_timer(self):
        with async_server() as srv:
            c = srv.client("/async")
            c.send_text("watch bytes through a pipe")
            self.assertEqual(c.recv_text(), "watched:bytes through a pipe")
            t0 = time.monotonic()
            c.send_text("timer 150")
            self.assertEqual(c.recv_text(), "timer:fired")
            self.assertGreaterEqual(time.monotonic() - t0, 0.14)
            c.close()
            srv.stop_clean()


class Deferred(unittest.TestCase):
    def test_accept_and_refuse_later(self):
        with async_server() as srv:
            for how in ("timer", "thread"):
                c = WSClient(srv.port)
                t0 = time.monotonic()
                resp = c.upgrade("/async?decide=%s&ms=150&verdict=accept"
                                 "&proto=b.v2" % how,
                                 protocols=["a.v1", "b.v2"])
                self.assertGreaterEqual(time.monotonic() - t0, 0.14)
                self.assertEqual(resp_header(resp, "Sec-WebSocket-Protocol"),
                                 "b.v2")
                self.assertEqual(resp_header(resp, "X-Decided-By"),
                                 "decided-by-" + how)
                self.assertEqual(c.recv_text(), "init:decided-by-" + how)
                self.assertEqual(c.command("option greeting"), "hello world")
                c.close()
                c = WSClient(srv.port)
                resp = c.handshake("/async?decide=%s&ms=50&verdict=refuse"
                                   % how)
                c.close()
                self.assertEqual(resp.status, 403)
                self.assertEqual(resp.body, b"refused later\n")
            self.assertEqual(stats(srv.port),
                             {"ok": "4", "epipe": "0", "other": "0"})
            srv.stop_clean()

    def test_decision_after_timeout_is_503_and_epipe(self):
        with async_server(server_extra="handshake_timeout = 300ms") as srv:
            for how in ("timer", "thread"):
                c = WSClient(srv.port)
                t0 = time.monotonic()
                resp = c.handshake("/async?decide=%s&ms=700&verdict=accept"
                                   % how)
                took = time.monotonic() - t0
                c.close()
                self.assertEqual(resp.status, 503)
                self.assertEqual(resp.body, b"upgrade decision timed out\n")
                self.assertGreaterEqual(took, 0.25)
                self.assertLess(took, 0.65)
            got = wait_stats(srv.port, "epipe", 2)
            self.assertEqual(got, {"ok": "0", "epipe": "2", "other": "0"})
            srv.stop_clean()

    def test_client_gone_while_pending(self):
        with async_server() as srv:
            for how in ("timer", "thread"):
                c = WSClient(srv.port)
                c.send_raw(c.request("/async?decide=%s&ms=200&verdict=accept"
                                     % how))
                time.sleep(0.05)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            got = wait_stats(srv.port, "epipe", 2)
            self.assertEqual(got, {"ok": "0", "epipe": "2", "other": "0"})
            e = srv.client("/echo")
            self.assertEqual(e.command("alive"), "alive")
            e.close()
            srv.stop_clean()

    def test_frame_before_the_101_is_kept(self):
        with async_server() as srv:
            c = WSClient(srv.port)
            c.send_raw(c.request("/async?decide=thread&ms=150&verdict=accept")
                       + build_frame(OP_TEXT, b"option greeting"))
            resp = c.read_response()
            self.assertEqual(resp.status, 101)
            self.assertEqual(c.recv_text(), "init:decided-by-thread")
            self.assertEqual(c.recv_text(), "hello world")
            c.close()
            srv.stop_clean()

    def test_too_much_before_the_101_is_400(self):
        with async_server(server_extra="max_request_head = 1KiB") as srv:
            c = WSClient(srv.port)
            c.send_raw(c.request("/async?decide=timer&ms=500&verdict=accept")
                       + build_frame(OP_TEXT, b"x" * 2000))
            resp = c.read_response()
            c.close()
            self.assertEqual(resp.status, 400)
            self.assertEqual(resp.body,
                             b"data sent before the upgrade response\n")
            self.assertEqual(wait_stats(srv.port, "epipe", 1)["epipe"], "1")
            srv.stop_clean()


if __name__ == "__main__":
    unittest.main(verbosity=2)
