#!/usr/bin/python3
"""Connection balance across workers (DESIGN §4.5).

With workers = 4, 400 /probe connections are opened in a burst (8
batches of 50 opened concurrently, one right after the other, all kept
open), each asks `id`, and the worker slot is (id >> 32) & 0xff. No slot
may hold more than 40 % of them, and every slot must hold some. The
distribution is printed. Same with `reuseport = on` in [listen], where
there must be one listening socket per slot (4 on the port), and where a
reload keeps those very sockets (same inodes) and refuses or resets no
connect made meanwhile.
"""

import asyncio
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mastertest import (MasterTestCase, id_generation, id_slot,  # noqa: E402
                        listening_inodes, socket_inodes_of)
from sockdtest import main  # noqa: E402

try:
    import websockets
except ImportError:        # reported by the tests that need it
    websockets = None

WORKERS = 4
TOTAL = 400
BATCH = 50
MAX_SHARE = 0.40


async def open_burst(url, total, batch):
    """Opens total connections in concurrent batches; returns (open
    websockets, ids, failures)."""
    conns, ids, failures = [], [], []

    async def one():
        ws = await websockets.connect(url, open_timeout=10, close_timeout=2,
                                      ping_interval=None, compression=None)
        await ws.send("id")
        sid = int(await asyncio.wait_for(ws.recv(), 10))
        return ws, sid

    for start in range(0, total, batch):
        res = await asyncio.gather(*[one() for _ in range(min(
            batch, total - start))], return_exceptions=True)
        for r in res:
            if isinstance(r, BaseException):
                failures.append(repr(r))
            else:
                conns.append(r[0])
                ids.append(r[1])
    return conns, ids, failures


async def close_all(conns):
    await asyncio.gather(*[asyncio.wait_for(ws.close(), 5) for ws in conns],
                         return_exceptions=True)


class Balance(MasterTestCase):
    def setUp(self):
        super().setUp()
        if websockets is None:
            self.fail("python3-websockets is missing "
                      "(apt-get install python3-websockets)")

    def burst(self, srv, label):
        async def go():
            conns, ids, failures = await open_burst(srv.url("/probe"),
                                                    TOTAL, BATCH)
            st = await asyncio.get_running_loop().run_in_executor(
                None, srv.status)
            await close_all(conns)
            return ids, failures, st

        t0 = time.monotonic()
        ids, failures, st = asyncio.run(asyncio.wait_for(go(), 80))
        took = time.monotonic() - t0
        dist = collections.Counter(id_slot(i) for i in ids)
        shares = {s: round(n / max(1, len(ids)), 3)
                  for s, n in sorted(dist.items())}
        sys.stderr.write("\n[balance %s] %d connections in %.2f s, per "
                         "slot %s (shares %s), failures %d; status conns %s"
                         "\n" % (label, len(ids), took, dict(sorted(
                             dist.items())), shares, len(failures),
                             {w.slot: w.conns for w in st.workers}))
        self.assertEqual(failures[:5], [], "connects failed")
        self.assertEqual(len(ids), TOTAL)
        self.assertEqual({id_generation(i) for i in ids}, {1})
        self.assertEqual(len(dist), WORKERS, "slots used: %s" % dict(dist))
        worst = max(dist.values()) / len(ids)
        self.assertLessEqual(worst, MAX_SHARE, "a worker holds %.0f %% of "
                             "the connections: %s" % (worst * 100,
                                                      dict(dist)))
        return dist

    def test_burst_shared_socket(self):
        srv = self.start_master(workers=WORKERS)
        self.assertEqual(len(listening_inodes(srv.port)), 1)
        self.burst(srv, "shared socket")

    def test_burst_reuseport(self):
        srv = self.start_master(workers=WORKERS,
                                listen_extra="reuseport = on")
        inodes = listening_inodes(srv.port)
        self.assertEqual(len(inodes), WORKERS, "reuseport: listening "
                         "sockets on the port")
        held = socket_inodes_of(srv.pid)
        self.assertTrue(set(inodes) <= set(held), "the master does not "
                        "hold every reuseport socket")
        self.burst(srv, "reuseport")

    def test_reuseport_reload_keeps_sockets(self):
        srv = self.start_master(workers=WORKERS,
                                listen_extra="reuseport = on",
                                server_extra="drain_timeout = 500ms\n"
                                "drain_spread = 200ms")
        inodes = sorted(listening_inodes(srv.port))
        self.assertEqual(len(inodes), WORKERS)

        async def go():
            stop = asyncio.Event()
            tried, fails, gens = [0], [], collections.Counter()

            async def one():
                tried[0] += 1
                try:
                    ws = await websockets.connect(
                        srv.url("/probe"), open_timeout=5, close_timeout=2,
                        ping_interval=None, compression=None)
                    await ws.send("id")
                    gens[id_generation(int(await asyncio.wait_for(
                        ws.recv(), 5)))] += 1
                    await asyncio.wait_for(ws.close(), 5)
                except Exception as e:
                    fails.append(repr(e))

            async def connector():
                tasks = []
                for _ in range(2000):
                    if stop.is_set():
                        break
                    tasks.append(asyncio.ensure_future(one()))
                    await asyncio.sleep(0.02)
                await asyncio.wait(tasks, timeout=10)

            task = asyncio.ensure_future(connector())
            loop = asyncio.get_running_loop()
            for gen in (2, 3):
                await asyncio.sleep(0.7)
                mark = srv.mark()
                srv.signal(signal.SIGHUP)
                await loop.run_in_executor(
                    None, lambda: srv.wait_ready(gen, since=mark))
            await asyncio.sleep(1.5)
            stop.set()
            await task
            return tried[0], fails, gens

        tried, fails, gens = asyncio.run(asyncio.wait_for(go(), 60))
        sys.stderr.write("\n[reuseport reload] connects %d, failed %d, by "
                         "generation %s\n" % (tried, len(fails), dict(gens)))
        self.assertEqual(fails[:5], [], "connects failed during reloads")
        self.assertEqual(sorted(listening_inodes(srv.port)), inodes,
                         "the reuseport sockets changed across reloads")
        self.assertIn(3, gens)
        self.burst_after_reload(srv)

    def burst_after_reload(self, srv):
        st = srv.status()
        self.assertEqual(st.generation, 3)
        self.assertEqual(len([w for w in st.workers if w.generation == 3]),
                         WORKERS)


if __name__ == "__main__":
    main()
