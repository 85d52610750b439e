"""sockdtest: the harness of sock's integration tests.

Starts real sockd processes on 127.0.0.1 and talks to them with a raw-socket
WebSocket client, so tests can send any bytes (bad frames, odd splits) and
assert the exact bytes and codes the server answers with.

Standard library only; runs under Debian's /usr/bin/python3 (the tests that
use a real client library import Debian's python3-websockets themselves).

Environment:
  SOCKD           the sockd binary (default: SOCK_BUILD_DIR/sockd)
  SOCK_BUILD_DIR  the CMake build dir holding probe.so (default: REPO/build)

Every socket operation has a timeout and every wait a deadline. sockd dies
with the test process (PR_SET_PDEATHSIG), and its stderr is printed when a
test fails.
"""

import base64
import collections
import ctypes
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD_DIR = os.path.abspath(os.environ.get("SOCK_BUILD_DIR")
                            or os.path.join(REPO, "build"))
SOCKD = os.path.abspath(os.environ.get("SOCKD")
                        or os.path.join(BUILD_DIR, "sockd"))
PROBE_SO = os.path.join(BUILD_DIR, "probe.so")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

LOG_TAIL_LINES = 150


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def new_key(nbytes=16):
    return base64.b64encode(os.urandom(nbytes)).decode("ascii")


_ports_given = set()


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (bind 0, read, close),
    never one this process was given before: the kernel may hand a port just
    closed out again, and a test that asks twice (a listener and an admin
    port) must not get the same one."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("free_port: no port that was not given before")


def mask_bytes(data, key):
    """XOR data with the 4-byte key, fast enough for many MiB."""
    n = len(data)
    if n == 0:
        return b""
    reps = (key * (n // 4 + 1))[:n]
    x = int.from_bytes(data, "little") ^ int.from_bytes(reps, "little")
    return x.to_bytes(n, "little")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def frame_header(opcode, length, fin=True, rsv=0, mask=True, mask_key=None,
                 length_form=None):
    """The header of a client frame (with the mask key when masked).

    length_form: None for the shortest form, or 7, 16 or 64 to force one
    (16 and 64 give the non-minimal encodings RFC 6455 tolerates on input).
    Returns (header bytes, mask key or None).
    """
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if length < 126 else 16 if length < 65536 else 64
    if length_form == 7:
        assert length < 126, "7-bit form holds at most 125"
        hdr = bytes([b0, mbit | length])
    elif length_form == 16:
        assert length < 65536, "16-bit form holds at most 65535"
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", length)
    elif length_form == 64:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", length)
    else:
        raise ValueError("length_form must be None, 7, 16 or 64")
    key = None
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        assert len(key) == 4
        hdr += key
    return hdr, key


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True,
                mask_key=None, length_form=None):
    """One complete client frame as bytes."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    hdr, key = frame_header(opcode, len(payload), fin=fin, rsv=rsv,
                            mask=mask, mask_key=mask_key,
                            length_form=length_form)
    if key is not None:
        payload = mask_bytes(payload, key)
    return hdr + payload


Frame = collections.namedtuple(
    "Frame", "fin rsv opcode payload length_form")
Response = collections.namedtuple(
    "Response", "status reason headers body raw")


def resp_header(resp, name):
    """First value of header name (any case) in a Response, or None."""
    for k, v in resp.headers:
        if k.lower() == name.lower():
            return v
    return None


def resp_headers(resp, name):
    return [v for k, v in resp.headers if k.lower() == name.lower()]


class PeerClosed(AssertionError):
    """The server closed TCP when the test expected more bytes."""


class WSClient:
    """A raw WebSocket client over one TCP connection to 127.0.0.1.

    Bytes read past what a call needs stay in self.buf for the next call,
    so the HTTP response and the first frames may arrive in one segment.
    """

    def __init__(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None,
                 nodelay=True):
        self.port = port
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window scale is chosen for it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.controls = []   # control frames skipped by recv_message
        self.skipped = []    # frames skipped by expect_close

    # ---- plumbing -------------------------------------------------------

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None
                                   else timeout)

    def _fill(self, deadline, what, chunk=1 << 20):
        """Reads more bytes into self.buf, or raises.

        PeerClosed on EOF or reset; AssertionError naming `what` when the
        deadline passes first.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for %s (have %d bytes: "
                                 "%r)" % (what, len(self.buf),
                                          bytes(self.buf[:64])))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(chunk)
        except socket.timeout:
            raise AssertionError("timed out waiting for %s (have %d bytes: "
                                 "%r)" % (what, len(self.buf),
                                          bytes(self.buf[:64]))) from None
        except ConnectionResetError:
            self.eof = True
            raise PeerClosed("connection reset while waiting for %s"
                             % what) from None
        if not data:
            self.eof = True
            raise PeerClosed("server closed TCP while waiting for %s "
                             "(have %d bytes: %r)"
                             % (what, len(self.buf), bytes(self.buf[:64])))
        self.buf += data

    def _take(self, n, deadline, what):
        while len(self.buf) < n:
            self._fill(deadline, what, chunk=max(65536, min(n - len(self.buf),
                                                            4 << 20)))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send_raw(self, data, timeout=None):
        """sendall with a deadline for the whole send."""
        deadline = self._deadline(timeout if timeout is not None
                                  else max(self.timeout, 30.0))
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out sending %d bytes" % len(view))
            self.sock.settimeout(left)
            try:
                n = self.sock.send(view[:1 << 20])
            except socket.timeout:
                raise AssertionError("timed out sending: %d bytes left "
                                     "(the server does not read)"
                                     % len(view)) from None
            view = view[n:]

    # ---- HTTP -----------------------------------------------------------

    def request(self, path="/echo", key=None, version="13", host=None,
                method="GET", http="HTTP/1.1", protocols=None, origin=None,
                headers=None, omit=()):
        """Builds an upgrade request head (bytes). omit: header names to
        leave out; headers: extra (name, value) pairs, sent last."""
        key = key if key is not None else new_key()
        self.key = key
        hdrs = [("Host", host if host is not None
                 else "127.0.0.1:%d" % self.port),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", version)]
        if protocols:
            hdrs.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
        if origin is not None:
            hdrs.append(("Origin", origin))
        omit = {h.lower() for h in omit}
        hdrs = [(k, v) for k, v in hdrs if k.lower() not in omit]
        hdrs += list(headers or [])
        lines = ["%s %s %s" % (method, path, http)]
        lines += ["%s: %s" % (k, v) for k, v in hdrs]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def read_response(self, timeout=None):
        """Reads an HTTP response head, and its body unless it is a 101
        (Content-Length, else up to EOF). Returns a Response."""
        deadline = self._deadline(timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise AssertionError("response head over 64 KiB")
            try:
                self._fill(deadline, "the HTTP response head")
            except PeerClosed as e:
                raise PeerClosed("%s; no complete HTTP response" % e) \
                    from None
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end])
        del self.buf[:end]
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError("bad status line %r" % lines[0])
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise AssertionError("bad header line %r" % line)
            headers.append((k.strip(), v.strip()))
        body = b""
        if status != 101:
            clen = None
            for k, v in headers:
                if k.lower() == "content-length":
                    clen = int(v)
            if clen is not None:
                body = self._take(clen, deadline, "the response body")
            else:
                body = self.read_until_eof(timeout=max(
                    0.1, deadline - time.monotonic()))
        return Response(status, reason, headers, body, head)

    def handshake(self, path="/echo", timeout=None, **kw):
        """Sends an upgrade request (see request()) and reads the response.
        Returns a Response; frames the server sent right after it stay
        buffered."""
        self.send_raw(self.request(path, **kw))
        return self.read_response(timeout)

    def upgrade(self, path="/echo", **kw):
        """handshake() that must give a 101 with the right accept key."""
        resp = self.handshake(path, **kw)
        if resp.status != 101:
            raise AssertionError("upgrade to %s: expected 101, got %d %s "
                                 "body=%r" % (path, resp.status, resp.reason,
                                              resp.body))
        got = resp_header(resp, "Sec-WebSocket-Accept")
        if got != accept_key(self.key):
            raise AssertionError("bad Sec-WebSocket-Accept %r" % got)
        return resp

    # ---- frames ---------------------------------------------------------

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True,
                   mask_key=None, length_form=None):
        self.send_raw(build_frame(opcode, payload, fin=fin, rsv=rsv,
                                  mask=mask, mask_key=mask_key,
                                  length_form=length_form))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8")
                        if isinstance(text, str) else text)

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def _parse_frame(self):
        """A complete frame from the front of self.buf, or None."""
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b1 & 0x80:
            raise AssertionError("server sent a masked frame: %r"
                                 % bytes(buf[:14]))
        n, pos, form = b1 & 0x7F, 2, 7
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos, form = struct.unpack_from("!H", buf, 2)[0], 4, 16
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos, form = struct.unpack_from("!Q", buf, 2)[0], 10, 64
            if n >> 63:
                raise AssertionError("server sent a length with the top "
                                     "bit set")
        if len(buf) < pos + n:
            self._want = pos + n
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload,
                     form)

    def recv_frame(self, timeout=None):
        """The next server frame. Asserts it is unmasked (RFC 6455 §5.1).
        Raises PeerClosed if TCP closes first; bytes of a partial frame
        stay buffered when the deadline passes."""
        deadline = self._deadline(timeout)
        while True:
            self._want = 0
            f = self._parse_frame()
            if f is not None:
                return f
            want = max(65536, min(self._want - len(self.buf), 4 << 20))
            self._fill(deadline, "a frame", chunk=want)

    def recv_message(self, timeout=None):
        """The next data message (opcode, payload), reassembled. Control
        frames on the way go to self.controls; a close frame raises
        AssertionError with its code."""
        deadline = self._deadline(timeout)
        parts, op = [], None
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                raise AssertionError("expected a message, got close %r"
                                     % (parse_close(f.payload),))
            if f.opcode in (OP_PING, OP_PONG):
                self.controls.append(f)
                continue
            if op is None:
                if f.opcode == OP_CONT:
                    raise AssertionError("server sent a continuation "
                                         "without a start")
                op = f.opcode
            elif f.opcode != OP_CONT:
                raise AssertionError("server started a new message inside "
                                     "a fragmented one")
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def recv_text(self, timeout=None):
        op, data = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected text, got opcode %d %r"
                                 % (op, data[:64]))
        return data.decode("utf-8")

    def command(self, text, timeout=None):
        """Sends a text message and returns the next text reply."""
        self.send_text(text)
        return self.recv_text(timeout)

    def expect_close(self, code="any", timeout=None, reason=None):
        """Reads frames until a close frame; returns (code, reason bytes),
        code None for an empty close payload. Frames before it go to
        self.skipped. code: the expected code (None = empty payload), or
        "any"."""
        deadline = self._deadline(timeout)
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except PeerClosed as e:
                raise PeerClosed("expected a close frame%s: %s (frames "
                                 "before: %s)" % (
                                     "" if code == "any" else
                                     " with code %r" % (code,), e,
                                     describe_frames(self.skipped)))
            if f.opcode != OP_CLOSE:
                self.skipped.append(f)
                continue
            if not f.fin:
                raise AssertionError("server sent a fragmented close")
            got = parse_close(f.payload)
            if code != "any" and got[0] != code:
                raise AssertionError("expected close code %r, got %r "
                                     "reason %r" % (code, got[0], got[1]))
            if reason is not None and got[1] != reason:
                raise AssertionError("expected close reason %r, got %r"
                                     % (reason, got[1]))
            return got

    def read_until_eof(self, timeout=None):
        """Reads until EOF or reset; returns what came (buffered bytes
        included). AssertionError if the deadline passes first."""
        deadline = self._deadline(timeout)
        while True:
            try:
                self._fill(deadline, "the server to close TCP")
            except PeerClosed:
                out = bytes(self.buf)
                self.buf.clear()
                return out
            if len(self.buf) > (64 << 20):
                del self.buf[:-(1 << 20)]

    def expect_tcp_close(self, timeout=None):
        """Asserts the server closes TCP (EOF or ECONNRESET) within the
        deadline; returns the bytes that came before."""
        return self.read_until_eof(timeout)

    def is_closed_now(self):
        """Non-blocking: True if the server has closed (EOF/reset) and
        nothing else is pending to read first."""
        if self.eof:
            return True
        self.sock.settimeout(0)
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, socket.timeout):
            return False
        except ConnectionResetError:
            self.eof = True
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            return True
        self.buf += data
        return False


def parse_close(payload):
    if len(payload) == 0:
        return (None, b"")
    if len(payload) == 1:
        raise AssertionError("server sent a 1-byte close payload")
    return (struct.unpack("!H", payload[:2])[0], payload[2:])


def describe_frames(frames, limit=8):
    out = []
    for f in frames[:limit]:
        out.append("op=%d fin=%d len=%d %r" % (f.opcode, f.fin,
                                               len(f.payload),
                                               f.payload[:40]))
    if len(frames) > limit:
        out.append("... %d more" % (len(frames) - limit))
    return "[" + "; ".join(out) + "]"


# ---- the server ----------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ServerError(AssertionError):
    pass


class Server:
    """One sockd process on a fresh port with a generated config.

    server_extra: lines added to [server]; echo_extra / probe_extra: lines
    added to [route /echo] / [route /probe]; extra: text after everything
    (more sections). config: a full config text instead, with {port},
    {tmp} and {build} substituted.
    """

    def __init__(self, server_extra="", echo_extra="", probe_extra="",
                 extra="", config=None, name="sockd"):
        self.server_extra = server_extra
        self.echo_extra = echo_extra
        self.probe_extra = probe_extra
        self.extra = extra
        self.custom = config
        self.name = name
        self.proc = None
        self.port = None
        self.tmp = None
        self._log_text = None
        self.returncode = None

    def config_text(self):
        subst = {"port": self.port, "tmp": self.tmp.name,
                 "build": BUILD_DIR}
        if self.custom is not None:
            return self.custom.format(**subst)
        return ("[server]\n"
                "workers = 0\n"
                "runtime_dir = {tmp}\n"
                "log_level = info\n"
                "{server_extra}"
                "[listen 127.0.0.1:{port}]\n"
                "[route /echo]\n"
                "app = echo\n"
                "{echo_extra}"
                "[route /probe]\n"
                "app = {build}/probe.so\n"
                "{probe_extra}"
                "{extra}").format(server_extra=_lines(self.server_extra),
                                  echo_extra=_lines(self.echo_extra),
                                  probe_extra=_lines(self.probe_extra),
                                  extra=_lines(self.extra.format(**subst)),
                                  **subst)

    def start(self, timeout=10.0):
        check_binaries()
        self.tmp = tempfile.TemporaryDirectory(prefix="sockdtest-")
        self.port = free_port()
        self.conf = os.path.join(self.tmp.name, "sockd.conf")
        self.conf_text = self.config_text()
        with open(self.conf, "w") as f:
            f.write(self.conf_text)
        self.log_path = os.path.join(self.tmp.name, "stderr.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [SOCKD, "-c", self.conf], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, cwd=self.tmp.name,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._finish(rc)
                raise ServerError("sockd exited with %d at start.\nconfig:\n"
                                  "%s\nstderr:\n%s"
                                  % (rc, self.conf_text, self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=0.5):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError("sockd did not accept on port %d within "
                                  "%.0f s.\nstderr:\n%s"
                                  % (self.port, timeout, self.log()))
            time.sleep(0.05)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        """Raises if sockd exited by itself (not through stop/wait)."""
        if self.proc is None or self.returncode is not None:
            return
        rc = self.proc.poll()
        if rc is not None:
            raise ServerError("sockd died (exit status %d%s).\nstderr:\n%s"
                              % (rc, signal_name(rc), self.log()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish(rc)
        return rc

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._finish(self.proc.returncode)
        return self.returncode

    def stop_clean(self):
        """Stops a server the test left running and fails unless it exited
        0 after SIGTERM: sanitizer reports (leaks included) and crashes at
        exit count as failures."""
        if self.proc is None or self.returncode is not None:
            return
        if self.proc.poll() is not None:
            return  # died on its own: assert_alive reports that
        rc = self.stop()
        if rc != 0:
            raise AssertionError("sockd exited with status %d%s after "
                                 "SIGTERM:\n%s" % (rc, signal_name(rc),
                                                    self.log_tail(80)))

    def _finish(self, rc):
        self.returncode = rc
        if self._log_text is None:
            try:
                self._log.close()
            except Exception:
                pass
            self._log_text = self._read_log()
            if self.tmp is not None:
                self.tmp.cleanup()
                self.tmp = None

    def _read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log(self):
        if self._log_text is not None:
            return self._log_text
        return self._read_log()

    def log_tail(self, lines=LOG_TAIL_LINES):
        text = self.log().splitlines()
        if len(text) > lines:
            return "\n".join(["... (%d lines before)" % (len(text) - lines)]
                             + text[-lines:])
        return "\n".join(text)

    def rss_kib(self):
        """VmRSS of sockd (the in-process worker with workers = 0)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def url(self, path="/echo"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def client(self, path="/echo", timeout=5.0, **kw):
        """A WSClient already upgraded on path."""
        c = WSClient(self.port, timeout=timeout)
        try:
            c.upgrade(path, **kw)
        except BaseException:
            c.close()
            raise
        return c

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _lines(text):
    text = text.strip("\n")
    return text + "\n" if text else ""


def signal_name(rc):
    if rc is not None and rc < 0:
        try:
            return ", killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return ", killed by signal %d" % -rc
    return ""


_sanitized = None


def sockd_is_sanitized():
    """True if sockd was built with AddressSanitizer (its RSS is then
    dominated by shadow memory and quarantine, not by sockd's own use)."""
    global _sanitized
    if _sanitized is None:
        try:
            with open(SOCKD, "rb") as f:
                _sanitized = b"__asan_init" in f.read()
        except OSError:
            _sanitized = False
    return _sanitized


def check_binaries(need_probe=True):
    if not os.access(SOCKD, os.X_OK):
        raise ServerError("sockd not found at %s (set SOCKD, or build "
                          "with cmake --build build)" % SOCKD)
    if need_probe and not os.path.exists(PROBE_SO):
        raise ServerError("probe.so not found at %s (set SOCK_BUILD_DIR, "
                          "or build with cmake --build build)" % PROBE_SO)


# ---- unittest glue -------------------------------------------------------

class SockdTestCase(unittest.TestCase):
    """Base class: a class-wide server (set SERVER_KW in a subclass to have
    one started in setUpClass), per-test servers via self.start_server(),
    a crash check after every test, and sockd's stderr printed when a test
    fails or errs."""

    SERVER_KW = None
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = None
        if cls.SERVER_KW is not None:
            cls.server = Server(**cls.SERVER_KW).start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server is not None:
                cls.server.stop_clean()
        finally:
            super().tearDownClass()

    def setUp(self):
        self._servers = []
        self._clients = []
        srv = type(self).server
        if srv is not None and srv.returncode is None and not srv.alive():
            # An earlier test crashed it (and failed for that in its
            # tearDown): start a fresh one so one crash is one failure.
            sys.stderr.write("\n[sockdtest] class server died (status %s); "
                             "restarting it for %s\n"
                             % (srv.proc.poll(), self.id()))
            srv.stop()
            type(self).server = Server(**type(self).SERVER_KW).start()

    def tearDown(self):
        for c in self._clients:
            c.close()
        if self.server is not None:
            self.server.assert_alive()
        for s in self._servers:
            s.assert_alive()

    def start_server(self, **kw):
        s = Server(**kw)
        self._servers.append(s)
        s.start()
        self.addCleanup(s.stop_clean)
        return s

    def client(self, path="/echo", server=None, **kw):
        c = (server or self.server).client(path, **kw)
        self._clients.append(c)
        return c

    def raw(self, server=None, **kw):
        """A connected WSClient that has not sent anything yet."""
        c = WSClient((server or self.server).port, **kw)
        self._clients.append(c)
        return c

    def run(self, result=None):
        bad = (lambda r: len(r.failures) + len(r.errors)) if result else None
        before = bad(result) if result else 0
        out = super().run(result)
        if result is not None and bad(result) > before:
            servers = list(getattr(self, "_servers", []))
            if self.server is not None:
                servers.insert(0, self.server)
            for s in servers:
                sys.stderr.write("\n---- sockd stderr (%s, port %s) for %s "
                                 "----\n%s\n---- end ----\n"
                                 % (s.name, s.port, self.id(),
                                    s.log_tail()))
        return out


def main():
    """unittest.main with verbose output; exits non-zero on failure."""
    unittest.main(verbosity=2)


def expect_no_frame(client, wait):
    """Asserts nothing arrives on client for wait seconds (EOF counts as
    a failure too)."""
    try:
        f = client.recv_frame(timeout=wait)
    except PeerClosed as e:
        raise AssertionError("server closed the connection: %s" % e)
    except AssertionError as e:
        if "timed out" in str(e):
            return
        raise
    raise AssertionError("unexpected frame op=%d %r" % (f.opcode,
                                                        f.payload[:80]))

