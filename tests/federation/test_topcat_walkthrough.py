"""docs/federation.md's TOPCAT walkthrough, step by step, with STILTS: TOPCAT's TAP window and
``stilts tapquery`` are the same library (uk.ac.starlink.vo), so the queries, the upload of
table 1 as ``TAP_UPLOAD.t1`` and the joined rows are what a TOPCAT user gets."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "federation.md"


def walkthrough_queries() -> tuple[str, str]:
    """The two ADQL queries of the walkthrough, as the doc writes them."""
    section = DOC.read_text().split("### From TOPCAT", 1)[1].split("\n### ", 1)[0]
    step1, step3 = re.findall(r"`(SELECT [^`]+)`", section)[:2]
    return step1, step3


def tapquery(stilts: str, out: Path, *args: str) -> None:
    proc = subprocess.run([stilts, "tapquery", "sync=true", "ofmt=votable", f"out={out}", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_topcat_walkthrough_joins_the_uploaded_objects(remote, server, objects_frame, photoz_frame,
                                                           tmp_path) -> None:
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.fail("stilts (Debian package) is required: make deps installs it")
    step1, step3 = walkthrough_queries()
    assert "TAP_UPLOAD.t1" in step3 and "p.objectId = o.objectId" in step3
    table1 = tmp_path / "t1.vot"
    tapquery(stilts, table1, f"tapurl={remote.url}", f"adql={step1.replace('pz.demo_objects_v1', remote.objects)}")
    joined = tmp_path / "joined.vot"
    tapquery(stilts, joined, f"tapurl={server.url}/tap", f"adql={step3}", "nupload=1", f"upload1={table1}",
             "upname1=t1")

    from astropy.table import Table

    got = Table.read(joined, format="votable").to_pandas().sort_values("objectId").reset_index(drop=True)
    chosen = objects_frame[objects_frame["coord_dec"].between(-33, -31)][["objectId", "i_cModelFlux"]]
    want = chosen.merge(photoz_frame, on="objectId").sort_values("objectId").reset_index(drop=True)
    assert list(got.columns) == ["objectId", "i_cmodelflux", "z_phot", "z_err"] and len(got) == len(want) > 100
    pd.testing.assert_series_equal(got["objectId"].astype("int64"), want["objectId"].astype("int64"))
    for ours, theirs in (("i_cmodelflux", "i_cModelFlux"), ("z_phot", "z_phot"), ("z_err", "z_err")):
        pd.testing.assert_series_equal(got[ours].astype(float), want[theirs].astype(float), check_names=False,
                                       rtol=1e-6)
