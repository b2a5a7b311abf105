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
    result = service.run_sync("SELECT TOP 20 objectId, ra, dec, z_phot, mag_i FROM pz.photoz_demo "
                              "WHERE mag_i < 23 ORDER BY mag_i")
    table = result.to_table()
    assert len(table) == 20
    assert table["objectId"].dtype == np.int64
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


@pytest.fixture(scope="module")
def async_worker(database):
    """Runs async jobs (QAS, UWS stages and the pyvo async tests) in this process."""
    import dataclasses

    from tests._services import worker_for

    worker = worker_for(dataclasses.replace(database, uws_heartbeat_s=0.5), threads=2,
                          name="clients-worker")
    worker.start()
    yield worker
    worker.stop()


def test_pyvo_run_async(tap_url: str, async_worker) -> None:
    service = pyvo.dal.TAPService(tap_url)
    table = service.run_async("SELECT TOP 30 id, z FROM pz.specz_demo ORDER BY id").to_table()
    assert len(table) == 30 and np.all(np.diff(table["id"]) > 0)


def test_pyvo_submit_wait_fetch_delete(tap_url: str, async_worker) -> None:
    service = pyvo.dal.TAPService(tap_url)
    job = service.submit_job("SELECT TOP 5 objectId, z_phot FROM pz.photoz_demo", maxrec=3)
    assert job.phase == "PENDING"
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    assert job.phase == "COMPLETED"
    result = job.fetch_result()
    assert len(result) == 3
    job.delete()
    with pytest.raises(pyvo.dal.DALServiceError):
        job.phase  # noqa: B018 - the job is gone (404)


def test_pyvo_async_error_is_raised_with_message(tap_url: str, async_worker) -> None:
    service = pyvo.dal.TAPService(tap_url)
    with pytest.raises(pyvo.dal.DALQueryError, match="no_such_column"):
        service.run_async("SELECT no_such_column FROM pz.specz_demo")


def test_pyvo_upload_join_of_10000_ids(tap_url: str, async_worker) -> None:
    from astropy.table import Table

    service = pyvo.dal.TAPService(tap_url)
    ids = service.run_sync("SELECT TOP 10000 objectId FROM pz.photoz_demo ORDER BY objectId",
                           maxrec=10000).to_table()["objectId"]
    mine = Table({"oid": np.asarray(ids), "tag": np.arange(len(ids), dtype=np.int32)})
    query = ("SELECT m.tag, p.objectId, p.z_phot FROM TAP_UPLOAD.mine AS m "
             "JOIN pz.photoz_demo AS p ON p.objectId = m.oid ORDER BY m.tag")
    sync = service.run_sync(query, uploads={"mine": mine}, maxrec=20000).to_table()
    assert len(sync) == 10000 and np.array_equal(sync["objectId"], mine["oid"])
    job = service.submit_job(query, uploads={"mine": mine}, maxrec=20000)
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    job.raise_if_error()
    result = job.fetch_result().to_table()
    assert len(result) == 10000 and np.array_equal(result["tag"], np.arange(10000))
    job.delete()


#: taplint stages run: all but OBS (pzvo publishes no ObsCore table, so the stage only says
#: so) and LOC, the ObsLocTAP model, which pzvo does not implement: LOC fails with
#: F-LOC-NOTP ("No table with name ivoa.obsplan") on any service without that table.
TAPLINT_STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ UPL EXA"
#: taplint report codes (without their sequence number) that do not fail the test, each with
#: the reason it is acceptable.  Empty: every error, warning and failure counts.
TAPLINT_ALLOWED: dict[str, str] = {}


@pytest.mark.slow
def test_taplint_reports_no_errors_warnings_or_failures(tap_url: str, artifacts_dir,
                                                         async_worker) -> None:
    stilts = shutil.which("stilts")
    assert stilts, "stilts (Debian package) is required: make deps installs it"
    proc = subprocess.run([stilts, "taplint", f"tapurl={tap_url}", f"stages={TAPLINT_STAGES}",
                           "report=EWF", "maxrepeat=20", "truncate=400"],
                          capture_output=True, text=True, timeout=900)
    (artifacts_dir / "taplint.txt").write_text(proc.stdout + proc.stderr)
    reports = [ln for ln in proc.stdout.splitlines() if re.match(r"^[EWF]-[A-Z]{3}-", ln)]
    problems = [ln for ln in reports if ln.split()[0].rsplit("-", 1)[0] not in TAPLINT_ALLOWED]
    assert not problems, "\n".join(problems[:40])
    assert re.search(r"Totals:\s+Errors: 0;.*Failures: 0", proc.stdout), proc.stdout[-2000:]
