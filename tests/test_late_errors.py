"""A database error after the response has started: each format breaks off or reports it
in its own way (QUERY_STATUS, a JSON member, no valid Parquet footer), and an async job ends
in ERROR."""
from __future__ import annotations

import dataclasses
import http.client
import io
import json
import urllib.parse
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pyvo
import requests
from astropy.io.votable import parse as parse_votable

from tests._tap import create_job, dali_error, final_phase, sync

#: 1/0 at objectId 79999, which the scan reaches after more than one batch of rows (about
#: 55,000 photoz_demo rows in, times 3 for the cross join), so the response has started.
LATE_ERROR = ("SELECT a.objectId, b.id, 1.0/(a.objectId-79999) AS x FROM pz.photoz_demo AS a, "
              "(SELECT TOP 3 id FROM pz.specz_demo) AS b")


# ---- a database error after the response has started -----------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_late_error_breaks_off_formats_without_room_for_it(tap_url: str, fmt: str) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        sync(tap_url, LATE_ERROR, fmt, MAXREC="5000000")


def test_late_error_leaves_no_readable_parquet_or_complete_csv(tap_url: str) -> None:
    """What the bytes that did arrive are: a Parquet file without footer, a CSV cut short."""
    url = urllib.parse.urlsplit(tap_url)
    received = {}
    for fmt in ("parquet", "csv"):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": LATE_ERROR, "MAXREC": "5000000",
                                       "RESPONSEFORMAT": fmt})
        conn.request("POST", url.path + "/sync", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        received[fmt] = info.value.partial
        conn.close()
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(received["parquet"]))
    assert received["csv"].startswith(b"objectId,id,x\r\n")
    assert 0 < received["csv"].count(b"\r\n") - 1 < 80_000 * 3


def test_late_error_is_a_json_member(tap_url: str) -> None:
    resp = sync(tap_url, LATE_ERROR, "json", MAXREC="5000000")
    assert resp.status_code == 200
    doc = json.loads(resp.content)
    assert "division by zero" in doc["error"]
    assert doc["rows"] == len(doc["data"]) and 0 < doc["rows"] < 80_000 * 3


def test_late_error_in_fits_is_a_dali_error(tap_url: str) -> None:
    dali_error(sync(tap_url, LATE_ERROR, "fits", MAXREC="5000000"), 400, "division by zero")


def test_late_error_in_votable_is_the_query_status(tap_url: str) -> None:
    resp = sync(tap_url, LATE_ERROR, "votable", MAXREC="5000000")
    assert resp.status_code == 200
    statuses = [i for r in parse_votable(io.BytesIO(resp.content)).resources for i in r.infos
                if i.name == "QUERY_STATUS"]
    assert statuses[-1].value == "ERROR" and "division by zero" in statuses[-1].content
    with pytest.raises(pyvo.dal.DALQueryError, match="division by zero"):
        pyvo.dal.TAPService(tap_url).run_sync(LATE_ERROR, maxrec=5_000_000)


@pytest.fixture(scope="module")
def worker(database) -> Iterator[object]:
    from tests._services import worker_for

    w = worker_for(dataclasses.replace(database, uws_heartbeat_s=0.3), threads=1,
                     name="review-worker")
    w.start()
    yield w
    w.stop()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_late_error_sends_an_async_job_to_error(tap_url: str, worker, fmt: str) -> None:
    resp = create_job(tap_url, QUERY=LATE_ERROR, RESPONSEFORMAT=fmt, MAXREC="5000000", PHASE="RUN")
    job_url = resp.headers["Location"]
    assert final_phase(job_url) == "ERROR"
    dali_error(requests.get(job_url + "/error", timeout=10), 200, "division by zero")
    requests.delete(job_url, timeout=10)
