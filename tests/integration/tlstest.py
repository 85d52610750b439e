"""tlstest: helpers for the wss:// tests (test_tls.py).

- Pki: a throw-away CA and server certificates made with the `openssl`
  command line in a directory the test owns (EC P-256 keys: fast to make),
  plus broken files for `sockd -t` (garbage, a key of another pair).
- client_context(): an ssl.SSLContext that verifies the server against
  that CA (never the system store), optionally pinned to TLS versions.
- TLSWSClient: sockdtest.WSClient over TLS; every sockdtest helper
  (upgrade, command, expect_close, ...) works on it unchanged.
- client_hello(): the bytes of a real ClientHello (from an SSLObject on
  memory BIOs) to send whole, in part, or not at all over a raw socket;
  tls_records(): a parser of what the server answers.

Standard library only; every socket call has a timeout and every
subprocess a deadline.
"""

import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockdtest import WSClient  # noqa: E402

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

# TLS record content types and alert descriptions (RFC 8446 §5.1, §6).
REC_ALERT, REC_HANDSHAKE = 21, 22
ALERT_PROTOCOL_VERSION = 70


def run_openssl(args, cwd, timeout=20):
    p = subprocess.run([OPENSSL] + list(args), cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s"
                             % (" ".join(args), p.returncode,
                                p.stderr.decode("utf-8", "replace")))
    return p


def fingerprint_der(der):
    return hashlib.sha256(der).hexdigest()


def fingerprint_pem(path):
    """SHA-256 of the DER of the first certificate in a PEM file."""
    with open(path) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    first = text[:text.index(end) + len(end)] + "\n"
    return fingerprint_der(ssl.PEM_cert_to_DER_cert(first))


class Pki:
    """In `directory`: ca.pem/ca.key, server certificates a.pem/a.key and
    b.pem/b.key (both for DNS:localhost and IP:127.0.0.1, signed by the
    CA), garbage.pem (not PEM at all) and other.key (a key that belongs
    to no certificate here). fp_a / fp_b: SHA-256 fingerprints."""

    EXT = ("subjectAltName = DNS:localhost, IP:127.0.0.1\n"
           "basicConstraints = critical, CA:FALSE\n"
           "keyUsage = critical, digitalSignature\n"
           "extendedKeyUsage = serverAuth\n"
           "subjectKeyIdentifier = hash\n"
           "authorityKeyIdentifier = keyid:always\n")

    def __init__(self, directory):
        self.dir = directory
        j = lambda n: os.path.join(directory, n)  # noqa: E731
        self.ca, self.ca_key = j("ca.pem"), j("ca.key")
        self.cert_a, self.key_a = j("a.pem"), j("a.key")
        self.cert_b, self.key_b = j("b.pem"), j("b.key")
        self.garbage = j("garbage.pem")
        self.other_key = j("other.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        run_openssl(["req", "-x509"] + ec +
                    ["-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                     "-subj", "/CN=sock test CA %s" % os.urandom(4).hex(),
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                    directory)
        with open(j("server.ext"), "w") as f:
            f.write(self.EXT)
        for name, serial in (("a", "0x0a01"), ("b", "0x0b01")):
            run_openssl(["req"] + ec +
                        ["-keyout", j(name + ".key"), "-out",
                         j(name + ".csr"), "-subj",
                         "/CN=localhost/O=sock test %s" % name], directory)
            run_openssl(["x509", "-req", "-in", j(name + ".csr"), "-CA",
                         self.ca, "-CAkey", self.ca_key, "-set_serial",
                         serial, "-days", "2", "-out", j(name + ".pem"),
                         "-extfile", j("server.ext")], directory)
        run_openssl(["genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-out", self.other_key],
                    directory)
        with open(self.garbage, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nthis is not base64 "
                    b"!!!\n-----END CERTIFICATE-----\n")
        self.fp_a = fingerprint_pem(self.cert_a)
        self.fp_b = fingerprint_pem(self.cert_b)
        assert self.fp_a != self.fp_b


def client_context(ca, min_version=None, max_version=None):
    """Verifies the server's chain against ca and its name/IP."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def old_tls_context(version):
    """A client that offers only `version` (TLSv1 or TLSv1_1): OpenSSL 3
    needs security level 0 to even offer them. Verification off: the
    handshake is meant to fail on the version, nothing else."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():     # "TLSv1 is deprecated": we know
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


class TLSWSClient(WSClient):
    """A WSClient whose socket is TLS. session: an ssl.SSLSession to
    resume; rcvbuf: SO_RCVBUF before connect. The TLS handshake runs in
    the constructor, bounded by timeout."""

    def __init__(self, port, context, server_hostname="127.0.0.1",
                 session=None, timeout=5.0, host="127.0.0.1", rcvbuf=None):
        super().__init__(port, host=host, timeout=timeout, rcvbuf=rcvbuf)
        raw = self.sock
        try:
            self.sock = context.wrap_socket(
                raw, server_hostname=server_hostname, session=session,
                do_handshake_on_connect=False)
            self.sock.settimeout(timeout)
            t0 = time.monotonic()
            self.sock.do_handshake()
            self.handshake_secs = time.monotonic() - t0
        except BaseException:
            raw.close()
            raise

    @property
    def version(self):
        return self.sock.version()

    @property
    def session(self):
        return self.sock.session

    @property
    def session_reused(self):
        return self.sock.session_reused

    @property
    def fingerprint(self):
        return fingerprint_der(self.sock.getpeercert(binary_form=True))

    def is_closed_now(self):
        raise NotImplementedError("not over TLS: use expect_tcp_close")


def client_hello(server_hostname=None, min_version=None, max_version=None,
                 ciphers=None):
    """The first flight of a TLS client (a ClientHello record), made by an
    SSLObject on memory BIOs, never sent anywhere."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == bytes([REC_HANDSHAKE]) and data[5] == 1, \
        "not a ClientHello: %r" % data[:16]
    return data


def handmade_hello(version):
    """A minimal ClientHello built by hand for a pre-1.3 `version`
    (0x0301 TLS 1.0, 0x0302 TLS 1.1): legacy version only, no
    supported_versions, ECDHE and RSA CBC suites, the groups and point
    formats ECDHE needs. Does not depend on what the local OpenSSL is
    still willing to offer."""
    def ext(etype, data):
        return struct.pack("!HH", etype, len(data)) + data
    suites = (0xc009, 0xc00a, 0xc013, 0xc014, 0x002f, 0x0035, 0x000a)
    body = (struct.pack("!H", version) + os.urandom(32) + b"\x00" +
            struct.pack("!H", 2 * len(suites)) +
            b"".join(struct.pack("!H", s) for s in suites) + b"\x01\x00")
    exts = (ext(10, struct.pack("!HHH", 4, 23, 29)) +   # P-256, X25519
            ext(11, b"\x01\x00"))                      # uncompressed
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", REC_HANDSHAKE, 0x0301, len(hs)) + hs


def hello_versions(hello):
    """(legacy client_version, [supported_versions]) of a ClientHello
    record, to prove what a client really offered."""
    body = hello[5:]
    assert body[0] == 1
    p = 4
    legacy = struct.unpack_from("!H", body, p)[0]
    p += 2 + 32
    p += 1 + body[p]                                   # session id
    p += 2 + struct.unpack_from("!H", body, p)[0]      # cipher suites
    p += 1 + body[p]                                   # compression
    supported = []
    if p + 2 <= len(body):
        end = p + 2 + struct.unpack_from("!H", body, p)[0]
        p += 2
        while p + 4 <= end:
            etype, elen = struct.unpack_from("!HH", body, p)
            ext = body[p + 4:p + 4 + elen]
            if etype == 43:     # supported_versions
                supported = [struct.unpack_from("!H", ext, 1 + 2 * i)[0]
                             for i in range(ext[0] // 2)]
            p += 4 + elen
    return legacy, supported


def tls_records(data):
    """[(content type, version, payload)] of the whole records in data."""
    out, p = [], 0
    while p + 5 <= len(data):
        ctype, ver, n = struct.unpack_from("!BHH", data, p)
        if p + 5 + n > len(data):
            break
        out.append((ctype, ver, data[p + 5:p + 5 + n]))
        p += 5 + n
    return out


def raw_exchange(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends data on a plain TCP socket and reads until the server
    closes (EOF or reset). Returns (bytes, how, seconds): how is 'eof',
    'reset' or 'timeout'."""
    s = socket.create_connection((host, port), timeout=timeout)
    buf = bytearray()
    t0 = time.monotonic()
    how = "timeout"
    deadline = t0 + timeout
    try:
        if data:
            s.sendall(data)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                how = "reset"
                break
            if not chunk:
                how = "eof"
                break
            buf += chunk
    finally:
        s.close()
    return bytes(buf), how, time.monotonic() - t0


__all__ = [n for n in dir() if not n.startswith("_")]
