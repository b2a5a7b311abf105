"""Helpers of the tests that talk TAP over HTTP: a sync query, its VOTable, a DALI error, an
async job and its final phase."""
from __future__ import annotations

import io
import time

import requests
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from lxml import etree

SPECZ_ROWS = 10_000
UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}


def sync(tap_url: str, query: str, fmt: str = "csv", **params: str) -> requests.Response:
    return requests.post(f"{tap_url}/sync", data={"LANG": "ADQL", "QUERY": query,
                                                 "RESPONSEFORMAT": fmt, **params}, timeout=120)


def count(tap_url: str, where: str) -> int:
    resp = sync(tap_url, f"SELECT COUNT(*) AS n FROM pz.specz_demo WHERE {where}")
    assert resp.status_code == 200, resp.text
    return int(resp.text.splitlines()[1])


def votable(resp: requests.Response) -> Table:
    assert resp.status_code == 200, resp.text[:1000]
    return parse_votable(io.BytesIO(resp.content)).get_first_table().to_table()


def dali_error(resp: requests.Response, status: int, *fragments: str) -> str:
    assert resp.status_code == status, resp.text[:1000]
    infos = [i for r in parse_votable(io.BytesIO(resp.content)).resources for i in r.infos
             if i.name == "QUERY_STATUS"]
    assert infos and infos[-1].value == "ERROR"
    message = infos[-1].content or ""
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message



def create_job(tap_url: str, **params: str) -> requests.Response:
    return requests.post(tap_url + "/async", data={"LANG": "ADQL", **params},
                         allow_redirects=False, timeout=30)


def final_phase(job_url: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = etree.fromstring(requests.get(job_url, params={"WAIT": "10"}, timeout=30).content)
        phase = doc.findtext("uws:phase", namespaces=UWS)
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return phase
    raise AssertionError(f"{job_url} did not finish")
