"""The service as users meet it: pyvo's TAPService, and TOPCAT's engine (STILTS taplint)."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import pyvo


def test_pyvo_run_sync_returns_a_typed_table(tap_url: str) -> None:
    service = pyvo.dal.TAPService(tap_url)
    result = service.run_sync("SELECT TOP 20 object_id, ra, dec, z_phot, mag_i FROM pz.photoz_demo "
                              "WHERE mag_i < 23 ORDER BY mag_i")
    table = result.to_table()
    assert len(table) == 20
    assert table["object_id"].dtype == np.int64
    assert str(table["ra"].unit) == "deg"
    assert np.all(np.diff(table["mag_i"]) >= 0)


def test_pyvo_reads_tables_and_capabilities(tap_url: str) -> None:
    service = pyvo.dal.TAPService(tap_url)
    names = {t.name for t in service.tables}
    assert {"pz.specz_demo", "pz.photoz_demo"} <= names
    assert service.maxrec > 0 and service.hardlimit >= service.maxrec
    assert any(lang.name == "ADQL" for cap in service.capabilities
               for lang in getattr(cap, "languages", []))


def test_pyvo_raises_dal_query_error_with_message(tap_url: str) -> None:
    service = pyvo.dal.TAPService(tap_url)
    with pytest.raises(pyvo.dal.DALQueryError, match="no_such_column"):
        service.run_sync("SELECT no_such_column FROM pz.specz_demo")


def test_pyvo_sees_overflow(tap_url: str) -> None:
    service = pyvo.dal.TAPService(tap_url)
    result = service.run_sync("SELECT id FROM pz.specz_demo", maxrec=10)
    assert len(result) == 10
    assert result.query_status == "OVERFLOW"


@pytest.mark.slow
def test_taplint_finds_no_errors_or_failures(tap_url: str, artifacts_dir) -> None:  # noqa: ANN001
    stilts = shutil.which("stilts")
    assert stilts, "stilts (Debian package) is required: make deps installs it"
    stages = "TMV TME TMS TMC CPV CAP AVV QGE QPO MDQ EXA"
    proc = subprocess.run([stilts, "taplint", f"tapurl={tap_url}", f"stages={stages}",
                           "report=EWF", "maxrepeat=20", "truncate=400"],
                          capture_output=True, text=True, timeout=900)
    (artifacts_dir / "taplint.txt").write_text(proc.stdout + proc.stderr)
    problems = [ln for ln in proc.stdout.splitlines() if re.match(r"^[EF]-[A-Z]{3}-", ln)]
    assert not problems, "\n".join(problems[:40])
    assert re.search(r"Totals:\s+Errors: 0;.*Failures: 0", proc.stdout), proc.stdout[-2000:]
