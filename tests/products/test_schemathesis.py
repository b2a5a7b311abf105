"""Property-based API testing: schemathesis against /api/openapi.json on the live service.

No 5xx, and every response (status, content type, body) as the OpenAPI document declares.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_or_schema_violations(api, user, artifacts_dir) -> None:
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    proc = subprocess.run(
        [st, "run", f"{api}/openapi.json", "--checks", CHECKS, "--max-examples", "25",
         "--generation-deterministic", "--request-timeout", "60",
         "--header", f"Authorization: {user[1]['Authorization']}"],
        capture_output=True, text=True, timeout=900)
    (artifacts_dir / "schemathesis.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:]
