#!/usr/bin/python3
"""The HTTP/1.1 upgrade (DESIGN §7, RFC 6455 §4.2) seen from a raw client.

Assumptions (DESIGN is silent on these; choices follow nginx/Cowboy):
- A request the server refuses gets one HTTP response and then the server
  closes TCP (it never keeps an HTTP connection alive).
- The 8 KiB head limit counts the whole head; a 9000-byte head gets 431, a
  7000-byte one is accepted. The 64-header limit counts every header line:
  64 are accepted, 65 get 431.
- A slowloris client (handshake_timeout = 1s) is cut off by closing TCP,
  with or without a 408 response first; either is accepted.
- max_connections = 3 counts open connections (upgraded ones here); the
  4th gets a 503 response.
- POST with upgrade headers gets 400 (DESIGN §7 "failures get a 400").
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import (OP_BINARY, OP_TEXT, PeerClosed,  # noqa: E402
                       SockdTestCase, WSClient, accept_key, build_frame,
                       main, new_key, resp_header)


ORIGIN_ROUTE = """
[route /origin]
app = echo
allowed_origins = https://good.example
"""


class Upgrade(SockdTestCase):
    SERVER_KW = dict(extra=ORIGIN_ROUTE)

    def refused(self, status, path="/echo", raw=None, **kw):
        """Sends a request, asserts the status, and that the server then
        closes TCP. Returns the Response."""
        c = self.raw()
        if raw is not None:
            c.send_raw(raw)
            resp = c.read_response(timeout=5)
        else:
            resp = c.handshake(path, timeout=5, **kw)
        self.assertEqual(resp.status, status,
                         "expected %d, got %d %s, body %r"
                         % (status, resp.status, resp.reason, resp.body))
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Accept"))
        c.expect_tcp_close(timeout=3)
        return resp

    def test_valid_upgrade_101(self):
        c = self.raw()
        key = new_key()
        resp = c.handshake("/echo", key=key)
        self.assertEqual(resp.status, 101, resp.raw)
        self.assertTrue(resp.raw.startswith(b"HTTP/1.1 101 "), resp.raw)
        self.assertEqual(resp_header(resp, "Sec-WebSocket-Accept"),
                         accept_key(key))
        self.assertEqual(resp_header(resp, "Upgrade").lower(), "websocket")
        self.assertIn("upgrade", resp_header(resp, "Connection").lower())
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Protocol"))
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Extensions"))
        # And it speaks WebSocket afterwards.
        c.send_frame(OP_TEXT, b"hello")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"hello"))

    def test_accept_key_rfc_example(self):
        # RFC 6455 §1.3's sample key, to check the helper as well.
        self.assertEqual(accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        c = self.raw()
        resp = c.handshake("/echo", key="dGhlIHNhbXBsZSBub25jZQ==")
        self.assertEqual(resp.status, 101)
        self.assertEqual(resp_header(resp, "Sec-WebSocket-Accept"),
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_connection_list_any_case(self):
        for conn, upg in (("keep-alive, Upgrade", "websocket"),
                          ("upgrade", "WebSocket"),
                          ("Keep-Alive,UPGRADE", "WEBSOCKET")):
            with self.subTest(connection=conn, upgrade=upg):
                c = self.raw()
                resp = c.handshake("/echo", omit=("Connection", "Upgrade"),
                                   headers=[("Connection", conn),
                                            ("Upgrade", upg)])
                self.assertEqual(resp.status, 101, resp.raw)
                c.send_frame(OP_BINARY, b"\x00\x01")
                self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00\x01"))

    def test_probe_header_and_no_subprotocol(self):
        c = self.raw()
        resp = c.upgrade("/probe")
        self.assertEqual(resp_header(resp, "X-Probe"), "1")
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Protocol"))
        self.assertEqual(c.command("subproto"), "none")
        self.assertEqual(c.command("route"), "/probe")

    def test_probe_subprotocol_chosen(self):
        for offer in (["probe.v1"], ["chat", "probe.v1"],
                      ["probe.v1", "other"]):
            with self.subTest(offer=offer):
                c = self.raw()
                resp = c.upgrade("/probe", protocols=offer)
                self.assertEqual(resp_header(resp, "Sec-WebSocket-Protocol"),
                                 "probe.v1", resp.raw)
                self.assertEqual(resp_header(resp, "X-Probe"), "1")
                self.assertEqual(c.command("subproto"), "probe.v1")

    def test_probe_subprotocol_not_offered(self):
        c = self.raw()
        resp = c.upgrade("/probe", protocols=["chat", "probe.v2"])
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Protocol"),
                          resp.raw)
        self.assertEqual(c.command("subproto"), "none")

    def test_echo_route_never_picks_a_subprotocol(self):
        c = self.raw()
        resp = c.upgrade("/echo", protocols=["probe.v1"])
        self.assertIsNone(resp_header(resp, "Sec-WebSocket-Protocol"),
                          resp.raw)

    def test_post_400(self):
        self.refused(400, method="POST")

    def test_http10_400(self):
        self.refused(400, http="HTTP/1.0")

    def test_missing_host_400(self):
        self.refused(400, omit=("Host",))

    def test_bad_key_15_bytes_400(self):
        self.refused(400, key=new_key(15))

    def test_bad_key_not_base64_400(self):
        self.refused(400, key="!!!!not-base64!!!!!!!!==")

    def test_duplicate_key_400(self):
        # RFC 6455 §11.3.1: Sec-WebSocket-Key MUST NOT appear twice.
        self.refused(400, headers=[("Sec-WebSocket-Key", new_key())])

    def test_missing_key_400(self):
        self.refused(400, omit=("Sec-WebSocket-Key",))

    def test_version_8_426(self):
        resp = self.refused(426, version="8")
        self.assertEqual(resp_header(resp, "Sec-WebSocket-Version"), "13",
                         resp.raw)

    def test_plain_get_426(self):
        raw = ("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
               % self.server.port).encode()
        self.refused(426, raw=raw)

    def test_unknown_path_404(self):
        self.refused(404, path="/nope")

    def test_query_does_not_change_route(self):
        c = self.raw()
        c.upgrade("/echo?x=1")
        c.send_frame(OP_TEXT, b"q")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"q"))

    def test_probe_refuse_403(self):
        resp = self.refused(403, path="/probe?refuse=403")
        self.assertEqual(resp.body, b"refused\n")
        self.assertIsNone(resp_header(resp, "X-Probe"))

    def test_probe_refuse_other_param_order(self):
        resp = self.refused(451, path="/probe?a=1&refuse=451&b=2")
        self.assertEqual(resp.body, b"refused\n")

    def test_head_over_8k_431(self):
        filler = "a" * 9000
        self.refused(431, headers=[("X-Filler", filler)])

    def test_head_7000_ok(self):
        c = self.raw()
        c.upgrade("/echo", headers=[("X-Filler", "b" * 7000)])
        c.send_frame(OP_TEXT, b"big head ok")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"big head ok"))

    def test_65_headers_431(self):
        # 5 standard headers + 60 = 65.
        extra = [("X-H%d" % i, "v") for i in range(60)]
        self.refused(431, headers=extra)

    def test_64_headers_ok(self):
        extra = [("X-H%d" % i, "v") for i in range(59)]
        c = self.raw()
        c.upgrade("/echo", headers=extra)
        c.send_frame(OP_TEXT, b"64")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"64"))

    def test_tls_client_hello_400(self):
        hello = (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
                 + os.urandom(32) + b"\x00\x00\x20\xc0\x2b\xc0\x2f"
                 + b"\x00" * 40 + b"\r\n\r\n")
        self.refused(400, raw=hello)

    def test_garbage_line_400(self):
        self.refused(400, raw=b"\x00\x01\x02 garbage\r\n\r\n")

    def test_origin_refused_403(self):
        self.refused(403, path="/origin", origin="https://evil.example")

    def test_origin_allowed(self):
        c = self.raw()
        c.upgrade("/origin", origin="https://good.example")
        c.send_frame(OP_TEXT, b"from good")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"from good"))

    def test_origin_any_on_other_routes(self):
        c = self.raw()
        c.upgrade("/echo", origin="https://evil.example")

    def test_request_split_in_many_segments(self):
        c = self.raw()
        req = c.request("/echo")
        for i in range(0, len(req), 7):
            c.send_raw(req[i:i + 7])
            time.sleep(0.002)
        resp = c.read_response()
        self.assertEqual(resp.status, 101)
        self.assertEqual(resp_header(resp, "Sec-WebSocket-Accept"),
                         accept_key(c.key))

    def test_first_frame_in_same_segment_as_request(self):
        # Bytes after the head belong to the WebSocket stream.
        c = self.raw()
        c.send_raw(c.request("/echo") + build_frame(OP_TEXT, b"early"))
        resp = c.read_response()
        self.assertEqual(resp.status, 101)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"early"))


class Slowloris(SockdTestCase):
    SERVER_KW = dict(server_extra="handshake_timeout = 1s")

    def test_slow_head_closed_while_others_work(self):
        slow = self.raw()
        t0 = time.monotonic()
        slow.send_raw(b"GET /echo HTTP/1.1\r\n")
        header = b"X-Slow: " + b"a" * 200
        closed_at = None
        got = b""
        i = 0
        while time.monotonic() - t0 < 4.0 and i < len(header):
            try:
                slow.send_raw(header[i:i + 1], timeout=1)
            except OSError:
                closed_at = time.monotonic()
                break
            i += 1
            if slow.is_closed_now():
                closed_at = time.monotonic()
                break
            if i == 3:
                # Meanwhile a normal client is served.
                fast = self.client("/echo")
                fast.send_frame(OP_TEXT, b"not blocked")
                self.assertEqual(fast.recv_message(timeout=2),
                                 (OP_TEXT, b"not blocked"))
                fast.send_close(1000)
                fast.expect_close(1000)
            time.sleep(0.2)
        got = bytes(slow.buf)
        self.assertIsNotNone(closed_at, "server kept a slow head open for "
                             "4 s with handshake_timeout = 1s")
        took = closed_at - t0
        self.assertGreaterEqual(took, 0.8, "closed before the timeout")
        self.assertLessEqual(took, 3.0)
        self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 408"),
                        "unexpected bytes before the close: %r" % got[:80])

    def test_idle_before_request_closed(self):
        c = self.raw()
        t0 = time.monotonic()
        c.expect_tcp_close(timeout=3.5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    def test_normal_handshake_unaffected(self):
        c = self.client("/echo")
        time.sleep(1.5)   # past handshake_timeout: must not apply any more
        c.send_frame(OP_TEXT, b"still here")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"still here"))


class MaxConnections(SockdTestCase):
    SERVER_KW = dict(server_extra="max_connections = 3")

    def test_fourth_connection_503(self):
        held = [self.client("/echo") for _ in range(3)]
        c = self.raw()
        try:
            c.send_raw(c.request("/echo"))
            resp = c.read_response(timeout=5)
        except PeerClosed as e:
            self.fail("4th connection: no 503 response (%s)" % e)
        except OSError as e:
            self.fail("4th connection: %r instead of a 503 response" % e)
        self.assertEqual(resp.status, 503, resp.raw)
        c.expect_tcp_close(timeout=3)
        # The held ones still work.
        for h in held:
            h.send_frame(OP_TEXT, b"held")
            self.assertEqual(h.recv_message(), (OP_TEXT, b"held"))
        # After one closes, a new one is accepted.
        held[0].send_close(1000)
        held[0].expect_close(1000)
        held[0].expect_tcp_close(timeout=3)
        held[0].close()     # the server may wait for our FIN to free it
        deadline = time.monotonic() + 3
        while True:
            c2 = WSClient(self.server.port)
            self._clients.append(c2)
            resp = c2.handshake("/echo")
            if resp.status == 101 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(resp.status, 101, "a slot freed by a close was not "
                         "reused: %r" % (resp.raw,))


if __name__ == "__main__":
    main()
