"""``pzvo tsm run``: the shipped example on the demo data, its summary, JSON report and errors."""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._cli import run_pzvo
from vo_service.core.settings import PROJECT_ROOT
from vo_service.demo._tsm import ROWS
from vo_service.products import ProductNotFoundError

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "tsm_demo.yaml"


@pytest.fixture(scope="module")
def env(database) -> dict[str, str]:
    environ = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir))
    environ.pop("PZVO_USER", None)
    return environ


def example(tmp_path: Path, **changes: Any) -> tuple[Path, str]:
    """The shipped example with its own output name and directory."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    name = f"cli{uuid.uuid4().hex[:8]}"
    raw["output"].update(name=name, dir=str(tmp_path / "out"))
    raw.update(changes)
    path = tmp_path / "tsm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, name


def count(summary: str, label: str) -> int:
    match = re.search(rf"^\s*{label}\s+([\d,]+)", summary, re.MULTILINE)
    assert match, f"{label!r} not in the summary:\n{summary}"
    return int(match.group(1).replace(",", ""))


def test_example_runs_on_the_demo_data(env, tmp_path, registry) -> None:
    config, name = example(tmp_path)
    proc = run_pzvo(env, "tsm", "run", str(config), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    specz = sum(rows for product, rows in ROWS.items() if product.startswith("demo_specz"))
    assert count(out, "spec-z rows in") == specz
    combined, matched, unmatched = count(out, "combined catalog"), count(out, "matched"), count(out, "unmatched")
    assert count(out, "duplicates removed") > 0 and count(out, "cut by flag") > 0
    assert combined == matched + unmatched and matched > 0.9 * combined
    training, validation = count(out, "training"), count(out, "validation")
    assert training + validation == matched and abs(training / matched - 0.7) < 0.01
    assert f"{name}_combined v1, {name}_training v1, {name}_validation v1" in out
    products = {t: registry.get(f"{name}_{t}", user=None) for t in ("combined", "training", "validation")}
    assert [p.row_count for p in products.values()] == [combined, training, validation]
    assert all(p.release == "demo-tsm" for p in products.values())


def test_json_report_without_publishing(env, tmp_path, registry) -> None:
    config, name = example(tmp_path)
    proc = run_pzvo(env, "tsm", "run", str(config), "--no-progress", "--no-publish", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["crossmatch"]["matched"] == report["split"]["rows"]
    run_dir = next((tmp_path / "out" / name).iterdir())
    assert {"combined.parquet", "training.parquet", "validation.parquet"} <= {p.name for p in run_dir.iterdir()}
    with pytest.raises(ProductNotFoundError):
        registry.get(f"{name}_training", user=None)


def test_a_missing_product_is_a_clear_error(env, tmp_path, registry) -> None:
    config, name = example(tmp_path, catalogs=["product:demo_specz_vvds", "product:no_such_catalog"])
    proc = run_pzvo(env, "tsm", "run", str(config), "--no-progress")
    assert proc.returncode == 1
    assert "no_such_catalog" in proc.stderr
    with pytest.raises(ProductNotFoundError):
        registry.get(f"{name}_combined", user=None)


def test_products_belong_to_the_user_named_and_an_unknown_user_is_refused(env, tmp_path, registry, services) -> None:
    name = f"owner{uuid.uuid4().hex[:6]}"
    services.auth.add_user(name)
    config, out = example(tmp_path, catalogs=["product:demo_specz_vvds"], survey_priority=[], plots=False)
    proc = run_pzvo({**env, "PZVO_USER": name}, "tsm", "run", str(config), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert registry.get(f"{out}_training", user=None).owner == name
    refused = run_pzvo(env, "tsm", "run", str(config), "--no-progress", "--user", "nobody_here")
    assert refused.returncode == 1 and "nobody_here" in refused.stderr


def test_a_combined_product_is_read_back_as_an_input(env, tmp_path, registry) -> None:
    """The outputs' quality_flag role is the survey's own flag, so a combined catalog fed back in
    is translated as before: the same rows come out."""
    config, out = example(tmp_path, catalogs=["product:demo_specz_desi", "product:demo_specz_vvds"],
                          survey_priority=[], plots=False)
    assert run_pzvo(env, "tsm", "run", str(config), "--no-progress").returncode == 0
    first = registry.get(f"{out}_combined", user=None)
    again, _ = example(tmp_path, catalogs=[f"product:{out}_combined"], survey_priority=[], plots=False)
    proc = run_pzvo(env, "tsm", "run", str(again), "--no-progress", "--no-publish", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["combine"]["rows_in"] == first.row_count
    assert report["combine"]["cut"] == 0 and report["combine"]["rows_out"] == first.row_count
