"""The public ADQL corpus (lyonetia, adapted to one photo-z table) against the live service.

Runs ``../shared/adql_corpus/run_corpus.py`` as it is, with ``--skip-heavy``, on the test copy of
``bench.photoz``.  DaCHS 2.7 runs 146 of 157 exec-tier queries and rejects 68 of 68 invalid ones;
pzvo must run more, reject all, and never crash.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "adql_corpus"


@pytest.mark.slow
def test_adql_corpus_beats_the_reference_server(tap_url: str, artifacts_dir: Path) -> None:
    if not (CORPUS_DIR / "run_corpus.py").exists():
        pytest.skip("../shared/adql_corpus is not beside the project")
    out = artifacts_dir / "adql_corpus.json"
    proc = subprocess.run(
        [sys.executable, str(CORPUS_DIR / "run_corpus.py"), tap_url,
         "--corpus", str(CORPUS_DIR / "photoz_adapted.json"), "--table-map", "photoz=bench.photoz",
         "--skip-heavy", "--out", str(out)], capture_output=True, text=True, timeout=900)
    (artifacts_dir / "adql_corpus.txt").write_text(proc.stdout + proc.stderr)
    results = json.loads(out.read_text())
    rows = results["results"] if isinstance(results, dict) and "results" in results else results
    exec_rows = [r for r in rows if r["tier"] == "exec"]
    reject_rows = [r for r in rows if r["tier"] == "reject"]
    exec_ok = sum(r["outcome"] == "ok" for r in exec_rows)
    rejected = sum(r["outcome"] == "error" and r.get("dali_error", True) for r in reject_rows)
    crashes = [r["id"] for r in rows if r["outcome"] == "crash"]
    failed = [r["id"] for r in exec_rows if r["outcome"] != "ok"]
    assert not crashes, crashes
    assert rejected == len(reject_rows) == 68
    assert exec_ok > 146, f"exec ok {exec_ok}/{len(exec_rows)}; failing: {failed}"
