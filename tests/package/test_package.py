#!/usr/bin/python3
"""test_package: install the Debian packages on this machine and use them.

Run by `tools/dev package` (as root: it installs with dpkg -i) with the
directory holding sockd_*.deb and libsock-dev_*.deb. It checks, in order:

- the contents of both packages (`dpkg -c`): binaries, units, the config,
  man pages, headers, libsock and its pkg-config files;
- `dpkg -i` of both, twice (the second run is the upgrade path, so the
  postinst must be idempotent): the system user sockd exists, the config is
  a conffile, the man pages resolve with `man -w`;
- libsock.so.0 and sockd export only sock_* (`nm -D --defined-only`);
- `systemd-analyze verify` of the installed units prints nothing;
- `sockd -t` accepts the installed /etc/sockd/sockd.conf;
- an app written out of tree in a temp dir, built with
  `pkg-config --cflags --libs libsock`: its sock_test.h unit test runs, and
  as a module under the installed sockd (workers = 1, run as user sockd, a
  free loopback port) it answers a raw WebSocket client, `sockctl conns`
  lists that client, `sockctl status` and `sockctl stop` work and sockd
  exits 0;
- `dpkg --purge` removes both packages (always run, so the machine is left
  as it was but for the system user sockd, which Debian never removes).

Every wait has a deadline. Traffic goes only to 127.0.0.1.
"""

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from sockdtest import WSClient, free_port  # noqa: E402

PACKAGES = ("sockd", "libsock-dev")
MULTIARCH = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"],
                           capture_output=True, text=True).stdout.strip()
LIBDIR = "/usr/lib/" + MULTIARCH

SOCKD_FILES = ("./usr/sbin/sockd", "./usr/sbin/sockctl",
               "./lib/systemd/system/sockd.service",
               "./lib/systemd/system/sockd.socket",
               "./etc/sockd/sockd.conf",
               "./usr/share/man/man8/sockd.8.gz",
               "./usr/share/man/man5/sockd.conf.5.gz",
               "./usr/share/man/man1/sockctl.1.gz",
               "./usr/share/doc/sock/operations.md",
               "./usr/share/doc/sock/applications.md")
DEV_FILES = ("./usr/include/sock.h", "./usr/include/sock_test.h",
             "." + LIBDIR + "/libsock.so",
             "." + LIBDIR + "/libsock.so.0",
             "." + LIBDIR + "/libsock.a",
             "." + LIBDIR + "/pkgconfig/libsock.pc",
             "." + LIBDIR + "/pkgconfig/sock.pc",
             "./usr/share/man/man3/sock.h.3.gz")

APP_C = r"""
/* app.c: an echo that marks what it sends, so the test knows it is this
   module answering and not sockd's built-in echo. */
#include <string.h>
#include "sock.h"

static sock_ret
app_in(sock_conn *c, const sock_msg *m, void **state)
{
    char out[256];

    (void)state;
    if (m->len > sizeof(out) - 4)
        return sock_stop_code(c, 1009, "too big", 7);
    memcpy(out, "pkg:", 4);
    memcpy(out + 4, m->data, m->len);
    sock_push(c, m->opcode, out, m->len + 4);
    return SOCK_CONTINUE;
}

const sock_app sock_app_v1 = {
    .abi = SOCK_ABI_VERSION,
    .name = "pkgecho",
    .handle_in = app_in,
};
"""

TEST_APP_C = r"""
/* test_app.c: the app's own unit test, through sock_test.h and libsock. */
#include <stdio.h>
#include <string.h>
#include "sock_test.h"

extern const sock_app sock_app_v1;

int
main(void)
{
    sock_test *t = sock_test_new(&sock_app_v1, "/echo");
    sock_opcode op;
    const void *data;
    size_t len;

    if (sock_test_init(t) != SOCK_CONTINUE ||
        sock_test_in(t, SOCK_TEXT, "hi", 2) != SOCK_CONTINUE ||
        !sock_test_take(t, &op, &data, &len) || op != SOCK_TEXT ||
        len != 6 || memcmp(data, "pkg:hi", 6) != 0) {
        fprintf(stderr, "test_app: unexpected answer\n");
        return 1;
    }
    sock_test_free(t);
    printf("test_app: ok\n");
    return 0;
}
"""


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def run(argv, check=True, timeout=120, **kw):
    """Runs argv, shows it and its output (trimmed) like a transcript."""
    log("$ " + " ".join(argv))
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    out = (p.stdout + p.stderr).rstrip()
    if out:
        lines = out.splitlines()
        if len(lines) > 60:
            lines = lines[:50] + ["... (%d more lines)" % (len(lines) - 50)]
        log("\n".join("  " + x for x in lines))
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d" % (argv[0], p.returncode))
    return p


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def purge():
    subprocess.run(["dpkg", "--purge"] + list(PACKAGES),
                   capture_output=True, timeout=120)


def check_contents(debs):
    for deb, want in ((debs["sockd"], SOCKD_FILES),
                      (debs["libsock-dev"], DEV_FILES)):
        p = run(["dpkg", "-c", deb])
        names = set(re.findall(r"(\./\S+?)(?: -> \S+)?$", p.stdout, re.M))
        for f in want:
            expect(f in names, "%s lacks %s" % (os.path.basename(deb), f))


def check_installed():
    for _ in range(2):
        run(["dpkg", "-i", debs_in["sockd"], debs_in["libsock-dev"]])
    for pkg in PACKAGES:
        p = run(["dpkg-query", "-W", "-f", "${Status}", pkg])
        expect(p.stdout == "install ok installed", "%s: %s" % (pkg, p.stdout))
    pw = pwd.getpwnam("sockd")
    log("user sockd: uid=%d home=%s shell=%s" % (pw.pw_uid, pw.pw_dir,
                                                 pw.pw_shell))
    expect(pw.pw_uid < 1000, "sockd is not a system user")
    p = run(["dpkg-query", "-W", "-f", "${Conffiles}", "sockd"])
    expect("/etc/sockd/sockd.conf" in p.stdout, "config is no conffile")
    for sect, page in (("8", "sockd"), ("5", "sockd.conf"),
                       ("1", "sockctl"), ("3", "sock.h")):
        run(["man", "-w", sect, page])
    for path in (LIBDIR + "/libsock.so.0", "/usr/sbin/sockd"):
        p = run(["nm", "-D", "--defined-only", path])
        names = [ln.split()[-1] for ln in p.stdout.splitlines() if ln]
        # Copy-relocated glibc data (stderr@GLIBC_2.2.5) is no export of ours.
        bad = [n for n in names if not n.startswith("sock_") and "@" not in n]
        expect(not bad, "%s exports %s" % (path, bad[:10]))
        expect(any(n == "sock_push" for n in names),
               "%s does not export sock_push" % path)


def check_units(tmp):
    p = run(["systemd-analyze", "verify", "/lib/systemd/system/sockd.service",
             "/lib/systemd/system/sockd.socket"], check=False, cwd=tmp,
            env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
    expect(p.returncode == 0 and (p.stdout + p.stderr).strip() == "",
           "systemd-analyze verify complained")
    with open("/lib/systemd/system/sockd.service") as f:
        unit = f.read()
    expect(re.search(r"(?m)^ExecStart=/usr/sbin/sockd -c "
                     r"/etc/sockd/sockd.conf$", unit), "ExecStart= paths")
    run(["/usr/sbin/sockd", "-t"])      # the compiled-in default config
    p = run(["/usr/sbin/sockd", "--version"])
    expect(re.fullmatch(r"sockd \d+\.\d+\.\d+\n", p.stdout), p.stdout)


def build_app(tmp):
    for name, text in (("app.c", APP_C), ("test_app.c", TEST_APP_C)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    # As docs/operations.md says: the module with the headers only (sockd
    # provides sock_* when it loads it), its unit test linked to libsock.
    cflags = run(["pkg-config", "--cflags", "libsock"]).stdout.split()
    flags = run(["pkg-config", "--cflags", "--libs", "libsock"]).stdout.split()
    expect("-lsock" in flags, "no -lsock in %r" % flags)
    run(["cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"] + cflags
        + ["app.c", "-o", "app.so"], cwd=tmp)
    run(["cc", "-Wall", "-Wextra", "-Werror"] + ["test_app.c", "app.c"]
        + flags + ["-o", "test_app"], cwd=tmp)
    p = run(["./test_app"], cwd=tmp)
    expect(p.stdout.strip() == "test_app: ok", "app unit test")


def wait_port(port, proc, deadline):
    while time.monotonic() < deadline:
        expect(proc.poll() is None, "sockd exited %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("sockd does not listen on %d" % port)


def serve_app(tmp):
    port, admin = free_port(), free_port()
    conf = os.path.join(tmp, "sockd.conf")
    with open(conf, "w") as f:
        f.write("[server]\nworkers = 1\nruntime_dir = %s/run\n"
                "shutdown_timeout = 2s\n\n[listen 127.0.0.1:%d]\n\n"
                "[route /echo]\napp = %s/app.so\n\n[admin]\n"
                "listen = 127.0.0.1:%d\n" % (tmp, port, tmp, admin))
    os.mkdir(os.path.join(tmp, "run"))
    pw = pwd.getpwnam("sockd")
    for path in (tmp, os.path.join(tmp, "run")):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(tmp, 0o755)
    errlog = open(os.path.join(tmp, "sockd.log"), "w+")
    argv = ["setpriv", "--reuid=sockd", "--regid=sockd", "--init-groups",
            "/usr/sbin/sockd", "-c", conf]
    log("$ " + " ".join(argv) + " &")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=errlog, stderr=errlog)
    try:
        wait_port(port, proc, time.monotonic() + 15)
        with WSClient(port, timeout=5) as c:
            c.upgrade("/echo")
            c.send_text("hello")
            got = c.recv_text()
            log("ws://127.0.0.1:%d/echo: sent 'hello', got %r" % (port, got))
            expect(got == "pkg:hello", "echo answered %r" % got)
            p = run(["/usr/sbin/sockctl", "-c", conf, "conns"])
            rows = [ln.split() for ln in p.stdout.splitlines()
                    if not ln.startswith("#")]
            expect(len(rows) == 1 and rows[0][1:3] == [
                "/echo", "127.0.0.1:%d" % c.sock.getsockname()[1]],
                "sockctl conns: %r" % rows)
        run(["/usr/sbin/sockctl", "-c", conf, "status"])
        run(["/usr/sbin/sockctl", "-c", conf, "stop"])
        rc = proc.wait(20)
        log("sockd exited %d" % rc)
        expect(rc == 0, "sockd exit status %d" % rc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        errlog.seek(0)
        log("sockd's log:\n" + "".join("  " + ln for ln in
                                       errlog.readlines()[-12:]))
        errlog.close()


def main():
    global debs_in
    if len(sys.argv) != 2:
        sys.exit("usage: test_package.py DIR_WITH_DEBS")
    if os.geteuid() != 0:
        sys.exit("test_package: needs root (dpkg -i, setpriv)")
    debs_in = {}
    for pkg in PACKAGES:
        found = glob.glob(os.path.join(sys.argv[1], pkg + "_*.deb"))
        expect(len(found) == 1, "%s: %r" % (pkg, found))
        debs_in[pkg] = found[0]
    tmp = tempfile.mkdtemp(prefix="sockpkg-")
    start = time.monotonic()
    purge()                         # a run that was cut short
    try:
        check_contents(debs_in)
        check_installed()
        check_units(tmp)
        build_app(tmp)
        serve_app(tmp)
    finally:
        purge()
        shutil.rmtree(tmp, ignore_errors=True)
    for pkg in PACKAGES:
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg],
                           capture_output=True, text=True)
        expect("installed" not in p.stdout.replace("not-installed", ""),
               "%s still installed after purge: %s" % (pkg, p.stdout))
    log("== package test passed (%.1f s)" % (time.monotonic() - start))


if __name__ == "__main__":
    main()
