"""Uploads as pyvo sends them: an astropy boolean column, and an ADQL reserved word as the
table name (refused with a message)."""
from __future__ import annotations

import io

import numpy as np
import pyvo
import requests
from astropy.table import Table

from tests._tap import dali_error

# ---- uploads ---------------------------------------------------------------------------------


def test_pyvo_upload_of_an_astropy_table_with_a_bool_column(tap_url: str) -> None:
    mine = Table({"oid": np.array([1, 9, 20], dtype=np.int64),
                  "flag": np.array([True, False, True])})
    service = pyvo.dal.TAPService(tap_url)
    result = service.run_sync("SELECT u.oid, u.flag, s.survey FROM TAP_UPLOAD.mine AS u "
                              "JOIN pz.specz_demo AS s ON s.id = u.oid ORDER BY u.oid",
                              uploads={"mine": mine}).to_table()
    assert list(result["oid"]) == [1, 9, 20]
    assert list(result["flag"]) == [True, False, True]
    assert result["flag"].dtype == bool


def test_reserved_word_as_upload_name_is_refused(tap_url: str) -> None:
    vot = io.BytesIO()
    Table({"x": [1, 2]}).write(vot, format="votable")
    for name in ("select", "Point"):
        resp = requests.post(tap_url + "/sync", data={
            "LANG": "ADQL", "QUERY": f'SELECT * FROM TAP_UPLOAD."{name}"',
            "UPLOAD": f"{name},param:f"}, files={"f": ("f.vot", vot.getvalue())}, timeout=30)
        dali_error(resp, 400, "reserved word", repr(name))
    resp = requests.post(tap_url + "/async", data={
        "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "select,param:f"},
        files={"f": ("f.vot", vot.getvalue())}, allow_redirects=False, timeout=30)
    dali_error(resp, 400, "reserved word")
