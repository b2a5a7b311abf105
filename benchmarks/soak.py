#!/usr/bin/env python3
"""Soak test (``make soak``): valid, invalid and hostile clients together against the real front.

Starts the service as ``make run`` does (nginx before gunicorn, two async workers) on a spare
loopback port over the demo database, then runs for ``--duration`` seconds:

* half the clients are ``loadtest.py``'s users (sync, async, uploads; every answer must be a
  success and every job must complete);
* the other half send what a careless or hostile client sends (malformed ADQL, unknown
  tables, expressions nested too deep, upload bombs, absurd UWS parameters, NUL bytes, bad
  tokens, oversized bodies, queries whose client hangs up, expanded-size product bombs), each
  of which must be refused with a 4xx, never a 5xx;
* 40 slow connections trickle headers and bodies the whole time.

Checks (exit status 1 when one fails): no 5xx anywhere; no error for the valid clients; no
job lost; every service process (nginx, gunicorn, workers) below ``--max-rss-mib`` of memory at
every sample; database connections all idle and no more than the pools held while the
clients ran, and client connections to the front back to what they were before, once the
clients stop.

    .venv/bin/python benchmarks/soak.py --clients 20 --duration 60
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from _hostile import Tricklers, address
from loadtest import Client, PoolPeak, Stats, connections, report, total

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from vo_service.auth import AuthService
from vo_service.core.database import owner_engine
from vo_service.core.settings import load_settings
from vo_service.serving import ServiceProcesses

PORT = 8768
#: Rows a soak product may have: the zero-row bomb below declares more.
PRODUCT_MAX_ROWS = 1_000_000

CHAR_BOMB = (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
             b'<RESOURCE><TABLE><FIELD name="s" datatype="char" arraysize="100000000"/><DATA>'
             b'<TABLEDATA><TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>')


def zero_rows_parquet(rows: int) -> bytes:
    """A few tens of kB that expand to ``rows`` rows: the expanded-size bomb of issue 14."""
    out = io.BytesIO()
    pq.write_table(pa.table({"object_id": np.zeros(rows, dtype=np.int64),
                             "z": np.zeros(rows, dtype=np.float64)}), out, compression="zstd")
    return out.getvalue()


class HostileClient(threading.Thread):
    """Sends one odd request after another; any 5xx or a refused connection is a failure."""

    def __init__(self, index: int, base: str, token: str, deadline: float, stats: Stats,
                 product_bomb: bytes, statuses: Counter) -> None:
        super().__init__(name=f"hostile-{index}", daemon=True)
        self.base, self.token, self.deadline, self.stats = base, token, deadline, stats
        self.rng = random.Random(1000 + index)
        self.product_bomb = product_bomb
        self.statuses = statuses
        self.index = index

    def run(self) -> None:
        kinds = [name for name in dir(self) if name.startswith("try_")]
        while time.monotonic() < self.deadline:
            kind = self.rng.choice(kinds)
            try:
                status = getattr(self, kind)()
            except requests.RequestException as exc:
                self.stats.error(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if status is None:
                continue
            with self.stats.lock:
                self.statuses[status // 100 * 100] += 1
            if status >= 500:
                self.stats.error(f"{kind}: HTTP {status}")

    def _tap(self, data: dict, files: dict | None = None, path: str = "/tap/sync") -> int:
        return requests.post(self.base + path, data=data, files=files, timeout=120,
                             allow_redirects=False).status_code

    def try_malformed_adql(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELEC objectId FROM pz.photoz_demo WHERE"})

    def try_unknown_table(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT * FROM pz.nothing_here"})

    def try_deep_nesting(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT " + "(" * 48 + "1" + ")" * 48
                          + " AS x FROM pz.photoz_demo"})

    def try_long_or_chain(self) -> int:
        where = " OR ".join(f"objectId = {i}" for i in range(300))
        return self._tap({"LANG": "ADQL", "QUERY": f"SELECT objectId FROM pz.photoz_demo WHERE {where}"})

    def try_long_sum(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT " + " + ".join(["z_phot"] * 500)
                          + " AS s FROM pz.photoz_demo"})

    def try_char_bomb_upload(self) -> int:
        return self._tap({"LANG": "ADQL", "UPLOAD": "t,param:f", "QUERY": "SELECT * FROM TAP_UPLOAD.t"},
                         files={"f": ("t.vot", CHAR_BOMB)})

    def try_broken_upload(self) -> int:
        return self._tap({"LANG": "ADQL", "UPLOAD": "t,param:f", "QUERY": "SELECT * FROM TAP_UPLOAD.t"},
                         files={"f": ("t.vot", os.urandom(2000))})

    def try_destruction_before_year_one(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT TOP 1 objectId FROM pz.photoz_demo",
                          "DESTRUCTION": "0001-01-01T00:00:00+14:00"}, path="/tap/async")

    def try_absurd_duration(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT TOP 1 objectId FROM pz.photoz_demo",
                          "EXECUTIONDURATION": "1e400"}, path="/tap/async")

    def try_huge_last(self) -> int:
        return requests.get(self.base + "/tap/async", params={"LAST": "9" * 23}, timeout=30).status_code

    def try_nul_bytes(self) -> int:
        path = self.rng.choice(["/?q=a%00b", "/tap/sync?LANG=ADQL&QUERY=SELECT%00", "/prov?ID=a%00b",
                                "/api/products?search=%00"])
        return requests.get(self.base + path, timeout=30).status_code

    def try_bad_token(self) -> int:
        return requests.get(self.base + "/api/products", timeout=30,
                            headers={"Authorization": "Bearer not-a-token"}).status_code

    def try_absurd_version(self) -> int:
        return requests.get(self.base + "/products/x", params={"version": "99999999999"},
                            timeout=30).status_code

    def try_huge_form_field(self) -> int:
        return self._tap({"LANG": "ADQL", "QUERY": "SELECT 1 AS x FROM pz.photoz_demo",
                          "JUNK": "x" * 600_000})

    def try_announced_huge_body(self) -> int:
        host, port = address(self.base)
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: pzvo\r\nContent-Length: 99999999999\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
            head = sock.recv(64)
        return int(head.split(b" ", 2)[1])

    def try_hang_up_mid_query(self) -> None:
        query = ("SELECT COUNT(*) AS n FROM pz.photoz_demo AS a CROSS JOIN pz.specz_demo AS b "
                 f"WHERE a.ra + b.dec > {self.rng.uniform(1e3, 1e4):.3f}")
        body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": query}).encode()
        with socket.create_connection(address(self.base), timeout=30) as sock:
            sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: pzvo\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            time.sleep(self.rng.uniform(0.1, 1.0))
        return None

    def try_product_bomb(self) -> int:
        return requests.post(self.base + "/api/products", timeout=120,
                             headers={"Authorization": f"Bearer {self.token}"},
                             data={"name": f"soak_bomb_{self.index}", "product_type": "validationresults",
                                   "description": "expanded-size bomb"},
                             files={"file": ("bomb.parquet", self.product_bomb)}).status_code


class MemoryWatch(threading.Thread):
    """The largest RSS of each service process (and its children) seen while it runs."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = [psutil.Process(pid) for pid in pids]
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for root in self.roots:
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for proc in procs:
                    try:
                        key = f"{proc.name()}[{proc.pid}]"
                        self.peak[key] = max(self.peak.get(key, 0), proc.memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass


def front_connections(port: int) -> int:
    return sum(1 for c in psutil.net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--max-rss-mib", type=int, default=1024)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = load_settings()
    engine = owner_engine(settings)
    stamp = time.strftime("%H%M%S")
    users = [f"soak-{stamp}-{i:02d}" for i in range(args.clients)]
    auth = AuthService(engine=engine)
    tokens = [auth.add_user(name) for name in users]
    env = {"PZVO_PUBLIC_READ": "true", "PZVO_LOG_LEVEL": "WARNING",
           "PZVO_PRODUCT_MAX_ROWS": str(PRODUCT_MAX_ROWS)}
    service = ServiceProcesses(settings, f"127.0.0.1:{PORT}", front="nginx", async_workers=2,
                               env=env, quiet=True)
    service.start()
    stats, statuses = Stats(), Counter()
    try:
        service.wait_ready()
        base = service.url
        tap = base + "/tap"
        ids = np.array(requests.get(tap + "/sync", timeout=60, params={
            "LANG": "ADQL", "RESPONSEFORMAT": "csv", "MAXREC": "100000",
            "QUERY": "SELECT objectId FROM pz.photoz_demo"}).text.split()[1:], dtype=np.int64)
        steady_front = front_connections(PORT)
        memory = MemoryWatch(service.pids())
        memory.start()
        valid_n = args.clients // 2
        bomb = zero_rows_parquet(PRODUCT_MAX_ROWS * 5)

        def run_mix(seconds: float, into: Stats) -> None:
            deadline = time.monotonic() + seconds
            clients: list[threading.Thread] = [
                Client(i, tap, tokens[i], deadline, into, ids) for i in range(valid_n)]
            clients += [HostileClient(i, base, tokens[i], deadline, into, bomb, statuses)
                        for i in range(valid_n, args.clients)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()

        with PoolPeak(engine) as peak:
            warm = Stats()
            run_mix(args.warmup, warm)
            started = time.monotonic()
            with Tricklers(base, headers=20, bodies=20) as tricklers:
                run_mix(args.duration, stats)
                reopened = tricklers.reopened
        baseline = peak.most
        elapsed = time.monotonic() - started
        memory.stop.set()
        memory.join()
        settle = time.monotonic() + 30
        after, front_after = connections(engine), front_connections(PORT)
        while ((total(after) > total(baseline) or front_after > steady_front)
               and time.monotonic() < settle):
            time.sleep(1)
            after, front_after = connections(engine), front_connections(PORT)
        with engine.connect() as conn:
            left_jobs = conn.execute(text("SELECT count(*) FROM uws.jobs WHERE owner = ANY(:u)"),
                                     {"u": users[:valid_n]}).scalar()
    finally:
        service.stop()
    server_errors = [e for e in stats.errors if "HTTP 5" in e]
    valid_ops = sum(len(v) for v in stats.latency.values())
    peak_mib = {k: round(v / 2**20) for k, v in sorted(memory.peak.items())}
    summary = {
        "clients": args.clients, "valid_clients": valid_n, "seconds": round(elapsed, 1),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "valid_operations": valid_ops, "hostile_statuses": dict(statuses),
        "errors": len(stats.errors), "server_errors": len(server_errors),
        "jobs_submitted": len(stats.jobs_submitted), "jobs_completed": len(stats.jobs_completed),
        "jobs_left_in_db": left_jobs, "tricklers_reopened": reopened,
        "peak_rss_mib": peak_mib, "connections_baseline": baseline, "connections_after": after,
        "front_connections_before": steady_front, "front_connections_after": front_after,
    }
    checks = {
        "no 5xx": not server_errors and statuses[500] == 0,
        "no error for valid or hostile clients": not stats.errors and not warm.errors,
        "no job lost": len(stats.jobs_submitted) == len(stats.jobs_completed) and left_jobs == 0,
        f"every process below {args.max_rss_mib} MiB": all(v <= args.max_rss_mib
                                                            for v in peak_mib.values()),
        "database connections back to full pools, all idle": total(after) <= total(baseline)
        and all(k.endswith("/idle") for k in after),
        "front connections back to steady state": front_after <= steady_front,
    }
    summary["checks"] = checks
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return report(stats.errors + warm.errors, checks)


if __name__ == "__main__":
    sys.exit(main())
