"""Load test: concurrent clients mixing sync queries, async jobs and uploads (``make loadtest``).

Runs against a service that is already up (``make run``; by default http://127.0.0.1:8000/tap)
and reads the same settings (``PZVO_*``, ``pzvo.toml``) to reach its database, where it
creates one user per client (jobs have owners, and each owner has a queue limit) and checks
the outcome:

* no error response (every HTTP status is 2xx or 303, every job ends COMPLETED);
* no job lost (every job submitted reached COMPLETED and was then deleted; no job of the
  test users is left in ``uws.jobs``);
* database connections back to their baseline (the most seen while the clients ran, when the
  connection pools are full) and no upload table left behind.

Prints throughput and p50/p95 latency per kind of request, as JSON and as a Markdown table
for ``docs/performance.md``.  Exit status 1 when any check fails.

    .venv/bin/python benchmarks/loadtest.py --url http://127.0.0.1:8000/tap --clients 20 --duration 60
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import requests
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from vo_service.auth import AuthService
from vo_service.core.database import owner_engine
from vo_service.core.settings import load_settings

NS_PHASE = "<uws:phase>"
FINAL = ("COMPLETED", "ERROR", "ABORTED")


def cone_query(rng: random.Random) -> str:
    ra, dec = rng.uniform(55.5, 64.5), rng.uniform(-35.5, -28.5)
    return ("SELECT objectId, ra, dec, z_phot, odds FROM pz.photoz_demo WHERE 1 = CONTAINS("
            f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.4f}, {dec:.4f}, 0.3))")


def ids_votable(ids: np.ndarray) -> bytes:
    vot = VOTableFile()
    resource = Resource()
    vot.resources.append(resource)
    table = TableElement(vot)
    resource.tables.append(table)
    table.fields.append(Field(vot, name="oid", datatype="long"))
    table.create_arrays(len(ids))
    table.array["oid"] = ids
    out = io.BytesIO()
    vot.to_xml(out, tabledata_format="binary2")
    return out.getvalue()


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.jobs_submitted: list[str] = []
        self.jobs_completed: list[str] = []

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class Client(threading.Thread):
    """One user: loops over a random mix until the deadline."""

    def __init__(self, index: int, base: str, token: str | None, deadline: float, stats: Stats,
                 ids: np.ndarray) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.base, self.deadline, self.stats = base, deadline, stats
        self.rng = random.Random(index)
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.upload = ids_votable(self.rng.sample(list(ids), 1000))

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            kind = self.rng.choices(["sync", "async", "upload_sync", "upload_async"],
                                    weights=[55, 25, 12, 8])[0]
            t0 = time.perf_counter()
            try:
                ok = getattr(self, kind)()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                self.stats.error(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if ok:
                self.stats.record(kind, time.perf_counter() - t0)

    def _check(self, response: requests.Response, kind: str) -> bool:
        if response.status_code >= 400:
            self.stats.error(f"{kind}: HTTP {response.status_code}: {response.text[:300]}")
            return False
        return True

    def sync(self) -> bool:
        fmt = self.rng.choice(["votable", "csv", "parquet"])
        r = self.session.post(self.base + "/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": fmt,
                                                          "QUERY": cone_query(self.rng)}, timeout=120)
        return self._check(r, "sync")

    def upload_sync(self) -> bool:
        r = self.session.post(self.base + "/sync", data={
            "LANG": "ADQL", "UPLOAD": "mine,param:f",
            "QUERY": "SELECT p.objectId, p.z_phot FROM TAP_UPLOAD.mine AS m "
                     "JOIN pz.photoz_demo AS p ON p.objectId = m.oid"},
            files={"f": ("f.vot", self.upload)}, timeout=120)
        return self._check(r, "upload_sync")

    def _job(self, kind: str, data: dict, files: dict | None = None) -> bool:
        r = self.session.post(self.base + "/async", data={**data, "PHASE": "RUN"}, files=files,
                              allow_redirects=False, timeout=120)
        if r.status_code != 303:
            self.stats.error(f"{kind}: creation gave HTTP {r.status_code}: {r.text[:300]}")
            return False
        job_url = r.headers["Location"]
        with self.stats.lock:
            self.stats.jobs_submitted.append(job_url)
        phase = ""
        give_up = time.monotonic() + 300
        while phase not in FINAL and time.monotonic() < give_up:
            doc = self.session.get(job_url, params={"WAIT": "1"}, timeout=60)
            if not self._check(doc, kind):
                return False
            phase = doc.text.split(NS_PHASE, 1)[1].split("<", 1)[0]
        if phase != "COMPLETED":
            self.stats.error(f"{kind}: job {job_url} ended {phase or 'never'}")
            return False
        result = self.session.get(job_url + "/results/result", timeout=120)
        if not self._check(result, kind):
            return False
        with self.stats.lock:
            self.stats.jobs_completed.append(job_url)
        return self._check(self.session.delete(job_url, allow_redirects=False, timeout=60), kind)

    def async_(self) -> bool:
        return self._job("async", {"LANG": "ADQL", "QUERY": cone_query(self.rng)})

    def upload_async(self) -> bool:
        return self._job("upload_async", {
            "LANG": "ADQL", "UPLOAD": "mine,param:f",
            "QUERY": "SELECT p.objectId, p.z_phot, p.mag_i FROM TAP_UPLOAD.mine AS m "
                     "JOIN pz.photoz_demo AS p ON p.objectId = m.oid"},
            files={"f": ("f.vot", self.upload)})

    # "async" is a keyword: map the mix name to the method
    def __getattr__(self, name: str):
        if name == "async":
            return self.async_
        raise AttributeError(name)


def connections(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT usename, state, count(*) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() GROUP BY 1, 2")).all()
    return {f"{user}/{state}": n for user, state, n in rows}


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


class PoolPeak:
    """The most database connections seen while the block runs, sampled every 0.5 s.

    That is the baseline of full pools: idle pool connections stay open by design and pools may
    still be filling after a short warm-up; after the run every connection must be idle and
    none beyond this count.
    """

    def __init__(self, engine) -> None:
        self._engine = engine
        self._samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self._samples.append(connections(self._engine))

    def __enter__(self) -> PoolPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def most(self) -> dict[str, int]:
        return max(self._samples, key=total, default={})


def run_clients(base: str, tokens: list[str | None], seconds: float, ids: np.ndarray) -> tuple[Stats, float]:
    stats = Stats()
    deadline = time.monotonic() + seconds
    clients = [Client(i, base, tokens[i], deadline, stats, ids) for i in range(len(tokens))]
    t0 = time.monotonic()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    return stats, time.monotonic() - t0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("PZVO_TAP_URL", "http://127.0.0.1:8000/tap"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10,
                        help="seconds of load before the connection baseline is taken (pools fill)")
    parser.add_argument("--anonymous", action="store_true", help="no tokens (public-read service)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()

    settings = load_settings()
    engine = owner_engine(settings)
    stamp = time.strftime("%H%M%S")
    users = [f"loadtest-{stamp}-{i:02d}" for i in range(args.clients)]
    if args.anonymous:
        tokens: list[str | None] = [None] * args.clients
    else:
        auth = AuthService(engine=engine)
        tokens = [auth.add_user(name) for name in users]
    ids = np.array(requests.get(args.url + "/sync", params={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv", "MAXREC": "100000",
        "QUERY": "SELECT objectId FROM pz.photoz_demo"}, timeout=60).text.split()[1:], dtype=np.int64)

    with PoolPeak(engine) as peak:
        warm, _ = run_clients(args.url, tokens, args.warmup, ids)
        time.sleep(2)
        stats, elapsed = run_clients(args.url, tokens, args.duration, ids)
    baseline = peak.most
    print(f"baseline connections (full pools): {baseline}", file=sys.stderr)

    after = connections(engine)
    settle = time.monotonic() + 20
    while total(after) > total(baseline) and time.monotonic() < settle:
        time.sleep(1)
        after = connections(engine)
    with engine.connect() as conn:
        left_jobs = conn.execute(text(
            "SELECT count(*) FROM uws.jobs WHERE owner = ANY(:u)"), {"u": users}).scalar()
        left_uploads = conn.execute(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'tap_upload'")).scalar()

    requests_done = sum(len(v) for v in stats.latency.values())
    summary = {
        "url": args.url, "clients": args.clients, "seconds": round(elapsed, 1),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{platform.python_version()}",
        "operations": requests_done, "throughput_per_s": round(requests_done / elapsed, 1),
        "errors": len(stats.errors), "warmup_errors": len(warm.errors),
        "jobs_submitted": len(stats.jobs_submitted), "jobs_completed": len(stats.jobs_completed),
        "jobs_left_in_db": left_jobs, "upload_tables_left": left_uploads,
        "connections_baseline": baseline, "connections_after": after,
        "by_kind": {kind: {"n": len(v), "per_s": round(len(v) / elapsed, 2),
                           "p50_ms": round(percentile(v, 50) * 1e3, 1),
                           "p95_ms": round(percentile(v, 95) * 1e3, 1),
                           "mean_ms": round(statistics.fmean(v) * 1e3, 1)}
                    for kind, v in sorted(stats.latency.items())},
    }
    checks = {
        "no error response": not stats.errors and not warm.errors,
        "no job lost": len(stats.jobs_submitted) == len(stats.jobs_completed) and left_jobs == 0,
        "connections back to baseline": total(after) <= total(baseline)
        and all(k.endswith("/idle") for k in after),
        "no upload table left": left_uploads == 0,
    }
    summary["checks"] = checks
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print("\n| kind | operations | per s | p50 ms | p95 ms |\n|---|---|---|---|---|")
    for kind, row in summary["by_kind"].items():
        print(f"| {kind} | {row['n']} | {row['per_s']} | {row['p50_ms']} | {row['p95_ms']} |")
    print(f"| all | {requests_done} | {summary['throughput_per_s']} | | |")
    return report(stats.errors + warm.errors, checks)


def report(errors: list[str], checks: dict[str, bool]) -> int:
    """The first errors and each check on stderr; the exit status (1 when a check failed)."""
    for message in errors[:20]:
        print("error:", message, file=sys.stderr)
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}", file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
