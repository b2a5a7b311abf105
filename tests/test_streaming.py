"""Large results stream: server memory stays flat and bytes flow before the query finishes.

The service runs as `make run` serves it (nginx before gunicorn, in subprocesses) so its
memory can be watched from outside while a 1,000,000-row result is read slowly.
"""
from __future__ import annotations

import io
import subprocess
import time

import psutil
import pytest
import requests
from astropy.io.votable import parse_single_table

# 20,000 x 50 rows = 1,000,000 rows from the test copy of bench.photoz.
MILLION = ("SELECT a.object_id, b.object_id AS other, a.ra, a.z_phot FROM bench.photoz AS a "
           "CROSS JOIN bench.photoz AS b WHERE b.object_id <= 50")


@pytest.fixture(scope="module")
def gunicorn_url(front_service):
    """The real front (nginx before gunicorn): results must stream through the proxy too."""
    return front_service.url, front_service.web


def _worker_rss(master: subprocess.Popen) -> int:
    return sum(c.memory_info().rss for c in psutil.Process(master.pid).children(recursive=True))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["votable", "csv"])
def test_million_row_result_streams_in_bounded_memory(gunicorn_url, fmt: str) -> None:
    url, master = gunicorn_url
    small = "SELECT TOP 20000 a.object_id, a.object_id AS other, a.ra, a.z_phot FROM bench.photoz AS a"
    baseline = _read(url, master, small, fmt)
    big = _read(url, master, MILLION, fmt)
    assert big["rows"] == 1_000_000
    assert big["peak_rss"] - baseline["peak_rss"] < 80 * 2**20, (baseline, big)
    assert big["first_byte_s"] < big["total_s"] / 3, big


def _read(url: str, master: subprocess.Popen, query: str, fmt: str) -> dict[str, float]:
    started = time.perf_counter()
    peak = _worker_rss(master)
    body = io.BytesIO()
    first = None
    with requests.post(url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                                "MAXREC": 2_000_000, "RESPONSEFORMAT": fmt},
                       stream=True, timeout=300) as resp:
        assert resp.status_code == 200
        for i, chunk in enumerate(resp.iter_content(chunk_size=256 * 1024)):
            if first is None:
                first = time.perf_counter() - started
            body.write(chunk)
            if i % 8 == 0:
                peak = max(peak, _worker_rss(master))
                time.sleep(0.01)
    total = time.perf_counter() - started
    body.seek(0)
    if fmt == "csv":
        rows = body.getvalue().count(b"\n") - 1
    else:
        rows = len(parse_single_table(body).array)
    return {"rows": rows, "peak_rss": peak, "first_byte_s": first or total, "total_s": total}
