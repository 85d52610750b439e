#!/usr/bin/python3
"""holdattack: what four memory attacks cost a sockd worker.

Starts SOCKD (workers = 0, so the process is the worker) on a free
127.0.0.1 port with the echo app and the default limits, runs one attack
against it, samples its VmRSS every 100 ms, and prints one RESULT line.

  pingflood  one client sends 125-byte pings for --seconds and never reads
             what comes back: every pong the server queues stays with it
  partial    --conns clients each send an unfinished message of
             --size bytes (one frame, last byte missing) and hold it for
             --seconds
  noread     --conns clients send 64 KiB echo requests round-robin for
             --seconds and never read the echoes: each can make the worker
             queue up to its send_hard_limit, all of them together up to
             max_send_bytes
  deflate    --conns clients open permessage-deflate connections (context
             takeover), exchange one compressed message each and hold
             them for --seconds: zlib state per connection, up to
             max_deflate_memory

Loopback only; every run ends by itself (the attack after --seconds, the
server with it). Standard library only.

  bench/holdattack.py --sockd build/sockd pingflood --seconds 5
  bench/holdattack.py --sockd build/sockd partial --conns 64
  bench/holdattack.py --sockd build/sockd noread --conns 64
  bench/holdattack.py --sockd build/sockd deflate --conns 2000
"""

import argparse
import base64
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

CONFIG = """[server]
workers = 0
runtime_dir = {tmp}
log_level = warn
[listen 127.0.0.1:{port}]
[route /echo]
app = echo
[route /z]
app = echo
compress = on
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frame(op, payload, fin=True, length=None):
    """A masked client frame (mask 0: the payload goes as is); length
    overrides the length field, for a frame whose end never comes."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | op
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return hdr + b"\0\0\0\0" + payload


def connect(port, rcvbuf=None, path="/echo", extra=""):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket"
               "\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n"
               % (path, key, extra)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(4096)
        if not data:
            raise SystemExit("server closed during the upgrade")
        head += data
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit("upgrade refused: %r" % head[:80])
    return s


class Sampler:
    def __init__(self, pid):
        self.pid = pid
        self.first = rss_kib(pid)
        self.peak = self.first
        self.next = 0.0

    def tick(self, force=False):
        now = time.monotonic()
        if force or now >= self.next:
            self.peak = max(self.peak, rss_kib(self.pid))
            self.next = now + 0.1

    def hold(self, t0, seconds):
        """Samples until seconds have passed since t0, and once more."""
        while time.monotonic() - t0 < seconds:
            time.sleep(0.1)
            self.tick()
        self.tick(force=True)


def pingflood(port, pid, args):
    s = connect(port, rcvbuf=4096)
    rss = Sampler(pid)
    batch = b"".join(frame(0x9, b"%125d" % i) for i in range(1000))
    s.settimeout(1)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < args.seconds:
        try:
            s.sendall(batch)
            sent += 1000
        except socket.timeout:
            pass            # the server stopped reading: keep sampling
        except OSError as e:
            print("connection ended after %d pings: %s" % (sent, e))
            break
        rss.tick()
    rss.tick(force=True)
    took = time.monotonic() - t0
    s.close()
    return ("pings=%d seconds=%.1f rss_start_kib=%d rss_peak_kib=%d "
            "growth_mib_per_s=%.1f" % (sent, took, rss.first, rss.peak,
                                       (rss.peak - rss.first) / 1024 / took))


def partial(port, pid, args):
    rss = Sampler(pid)
    body = b"x" * (args.size - 1)
    conns, closed = [], 0
    t0 = time.monotonic()
    for _ in range(args.conns):
        s = connect(port)
        conns.append(s)
        s.sendall(frame(0x2, body, length=args.size))
        rss.tick()
    rss.hold(t0, args.seconds)
    for s in conns:
        s.settimeout(0.2)
        try:
            data = s.recv(64)
            if data[:1] == b"\x88":
                closed += 1
        except OSError:
            pass
        s.close()
    return ("conns=%d size=%d seconds=%.1f rss_start_kib=%d "
            "rss_peak_kib=%d closed_by_server=%d"
            % (args.conns, args.size, time.monotonic() - t0, rss.first,
               rss.peak, closed))


def noread(port, pid, args):
    rss = Sampler(pid)
    req = frame(0x2, b"n" * 65536)
    conns = [connect(port, rcvbuf=4096) for _ in range(args.conns)]
    live = list(conns)
    sent, t0 = 0, time.monotonic()
    for s in conns:
        s.settimeout(0.05)
    while live and time.monotonic() - t0 < args.seconds:
        for s in list(live):
            try:
                s.sendall(req)
                sent += len(req)
            except socket.timeout:
                pass        # the server stopped reading this one
            except OSError:
                live.remove(s)  # closed by the server
            rss.tick()
    rss.tick(force=True)
    took = time.monotonic() - t0
    for s in conns:
        s.close()
    return ("conns=%d sent_mib=%.0f seconds=%.1f rss_start_kib=%d "
            "rss_peak_kib=%d closed_by_server=%d"
            % (args.conns, sent / 1048576, took, rss.first, rss.peak,
               args.conns - len(live)))


def deflate(port, pid, args):
    rss = Sampler(pid)
    c = zlib.compressobj(wbits=-15)
    msg = b"compress me " * 40
    body = (c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    req = frame(0x1, body)
    req = bytes([req[0] | 0x40]) + req[1:]      # RSV1: compressed
    conns, answered = [], 0
    t0 = time.monotonic()
    for _ in range(args.conns):
        s = connect(port, path="/z", extra="Sec-WebSocket-Extensions: "
                    "permessage-deflate\r\n")
        conns.append(s)
        s.sendall(req)
        try:
            if s.recv(4096)[:1] == b"\xc1":       # a compressed text echo
                answered += 1
        except OSError:
            pass
        rss.tick()
    rss.hold(t0, args.seconds)
    for s in conns:
        s.close()
    return ("conns=%d answered=%d seconds=%.1f rss_start_kib=%d "
            "rss_peak_kib=%d" % (args.conns, answered,
                                 time.monotonic() - t0, rss.first, rss.peak))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sockd", default="build/sockd")
    sub = ap.add_subparsers(dest="attack", required=True)
    p = sub.add_parser("pingflood")
    p.add_argument("--seconds", type=float, default=5.0)
    p = sub.add_parser("partial")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--size", type=int, default=8 << 20)
    p.add_argument("--seconds", type=float, default=5.0)
    p = sub.add_parser("noread")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0)
    p = sub.add_parser("deflate")
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    if not 0 < args.seconds <= 60:
        ap.error("--seconds: 0 to 60")
    most = 4000 if args.attack == "deflate" else 256
    if args.attack != "pingflood" and not 0 < args.conns <= most:
        ap.error("--conns: 1 to %d" % most)

    with tempfile.TemporaryDirectory(prefix="holdattack-") as tmp:
        port = free_port()
        conf = os.path.join(tmp, "sockd.conf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(tmp=tmp, port=port))
        proc = subprocess.Popen([args.sockd, "-c", conf],
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("sockd did not start")
                    time.sleep(0.05)
            run = {"pingflood": pingflood, "partial": partial,
                   "noread": noread, "deflate": deflate}[args.attack]
            print("RESULT attack=%s sockd=%s %s" % (args.attack, args.sockd,
                                                    run(port, proc.pid, args)))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
