"""A whole Training Set Maker run: known counts, products with provenance, nothing left by a failure."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from pipeline.tsm.checks import TsmError
from pipeline.tsm.config import TsmConfigError, parse_config
from pipeline.tsm.run import STEPS, TsmProgress, run
from vo_service.core.database import owner_engine
from vo_service.products import ProductRegistry, RegistrationRequest

ARCSEC = 1 / 3600
RULES = """
surveys:
  SPEC: {source: test, instrument: spectroscopic, values: {1: 1, 2: 2, 3: 3, 4: 4}}
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """200 objects on a 10-arcsec grid in two files (split in RA); catalog A: objects 0-99 and
    5 flag-1 rows; catalog B: objects 50-149 (flag 3, so A wins the 50 duplicates) and 10 rows
    far from any object."""
    root = tmp_path_factory.mktemp("tsm-run")
    i, j = np.meshgrid(np.arange(20), np.arange(10), indexing="ij")
    ra, dec = 10 + i.ravel() * 10 * ARCSEC, j.ravel() * 10 * ARCSEC
    ids = 1000 + np.arange(200)
    flux = {f"{b}_cModelFlux": np.full(200, 10 ** (-0.4 * (22.0 - 31.4))) for b in "gri"}
    flux.update({f"{b}_cModelFluxErr": np.full(200, 100.0) for b in "gri"})
    objects = pa.table({"objectId": ids, "coord_ra": ra, "coord_dec": dec, **flux})
    (root / "objects" / "a").mkdir(parents=True)
    pq.write_table(objects.filter(pa.array(ra < 10 + 95 * ARCSEC)), root / "objects" / "a" / "west.parquet")
    pq.write_table(objects.filter(pa.array(ra >= 10 + 95 * ARCSEC)), root / "objects" / "east.parquet")
    rng = np.random.default_rng(5)
    a = pa.table({"ID": np.arange(105), "RA": np.r_[ra[:100] + 0.2 * ARCSEC, np.full(5, 20.0)],
                  "DEC": np.r_[dec[:100], np.zeros(5)], "Z": rng.uniform(0.1, 1.5, 105),
                  "QUALITY": np.r_[np.full(100, 4.0), np.ones(5)]})
    b = pa.table({"id": np.arange(110), "ra": np.r_[ra[50:150], np.full(10, 50.0)],
                  "dec": np.r_[dec[50:150] + 0.3 * ARCSEC, np.arange(10) * 10 * ARCSEC],
                  "redshift": rng.uniform(0.1, 1.5, 110), "zflag": np.full(110, 3.0),
                  "survey": ["SPEC"] * 110})
    pq.write_table(a, root / "a.parquet")
    pq.write_table(b, root / "b.parquet")
    (root / "rules.yaml").write_text(RULES)
    return {"root": root, "objects": root / "objects", "a": root / "a.parquet", "b": root / "b.parquet",
            "rules": root / "rules.yaml"}


def config(inputs: dict[str, Path], tmp_path: Path, **changes: Any) -> Any:
    raw = {"catalogs": [{"source": str(inputs["a"]), "survey": "SPEC", "columns": {"z_flag": "QUALITY"}},
                        {"source": str(inputs["b"])}],
           "objects": str(inputs["objects"]), "flags": str(inputs["rules"]), "flag_cut": 2,
           "magnitudes": True, "split": {"fraction": 0.7, "seed": 1},
           "output": {"name": "tsmtest", "dir": str(tmp_path / "out"), "publish": False}}
    raw.update(changes)
    return parse_config(raw)


def test_files_only_run_has_the_known_counts(inputs, tmp_path, client) -> None:
    steps: list[str] = []
    result = run(config(inputs, tmp_path), client=client, hooks=[lambda p: steps.append(p.step)])
    assert steps == [s for s in STEPS if s != "publish"]
    summary = result.summary()
    assert summary == {"rows_in": 215, "invalid": 0, "cut": 5, "unknown_dropped": 0, "duplicates_removed": 50,
                       "unresolved_ties": 0, "combined": 160, "matched": 150, "unmatched": 10,
                       "training": 105, "validation": 45, "products": []}
    assert result.report["combine"]["resolved_by"]["flag"] == 50
    matched = result.matched.to_pandas()
    assert set(matched["source"]) == {"a.parquet", "b.parquet"}
    assert (matched["separation_arcsec"] < 0.31).all()
    np.testing.assert_allclose(matched["mag_i"], 22.0, atol=1e-9)
    assert {"training", "validation", "combined", "matched", "report"} <= set(result.files)
    assert pq.read_table(result.files["training"]).num_rows == 105
    again = run(config(inputs, tmp_path), client=client)
    assert again.training.column("combined_id").to_pylist() == result.training.column("combined_id").to_pylist()
    assert again.files["training"].parent != result.files["training"].parent  # never overwritten


def test_stratified_split_keeps_each_bin_fraction(inputs, tmp_path, client) -> None:
    result = run(config(inputs, tmp_path, split={"fraction": 0.5, "seed": 3, "stratify": 5}), client=client)
    assert result.training.num_rows == 75 and result.validation.num_rows == 75
    edges = np.quantile(result.matched.column("z").to_numpy(), [0.2, 0.4, 0.6, 0.8])
    counts = np.bincount(np.searchsorted(edges, result.training.column("z").to_numpy()), minlength=5)
    assert counts.tolist() == [15, 15, 15, 15, 15]


@pytest.mark.parametrize(("changes", "message"), [
    ({"radius_arcsec": 0}, "radius_arcsec must be > 0"),
    ({"match_radius_arcsec": -1}, "match_radius_arcsec must be > 0"),
    ({"mode": "merge"}, "mode must be one of"),
    ({"split": {"fraction": 1.5}}, "split fraction"),
    ({"flag_cut": 9}, "flag_cut must be 0-6"),
    ({"colour": 1}, "unknown key"),
])
def test_bad_configuration_is_refused(inputs, tmp_path, changes, message) -> None:
    with pytest.raises(TsmConfigError, match=message):
        config(inputs, tmp_path, **changes)


def test_bad_inputs_fail_before_any_work(inputs, tmp_path, client) -> None:
    seen: list[str] = []
    hooks = [lambda p: seen.append(p.step)]
    with pytest.raises(TsmError, match="no such file"):
        run(config(inputs, tmp_path, catalogs=[str(tmp_path / "missing.parquet")]), client=client, hooks=hooks)
    with pytest.raises(TsmError, match="registry"):
        run(config(inputs, tmp_path, catalogs=["product:nothing_here"]), client=client, hooks=hooks)
    assert seen == ["check", "check"]
    pq.write_table(pa.table({"id": [1], "x": [1.0]}), tmp_path / "nopos.parquet")
    with pytest.raises(TsmError, match="no column for ra, dec, z"):
        run(config(inputs, tmp_path, catalogs=[str(tmp_path / "nopos.parquet")]), client=client, hooks=hooks)
    with pytest.raises(TsmError, match="survey 'NOPE' has no flag rule"):
        run(config(inputs, tmp_path, catalogs=[{"source": str(inputs["a"]), "survey": "NOPE"}]), client=client,
            hooks=hooks)
    with pytest.raises(TsmError, match="has no function nope"):
        run(config(inputs, tmp_path, split={"hook": "pipeline.tsm.hooks:nope"}), client=client, hooks=hooks)
    assert seen == ["check"] * 5
    seen.clear()
    pq.write_table(pa.table({"ra": [200.0, 201.0], "dec": [40.0, 41.0], "z": [0.5, 0.6], "z_flag": [4.0, 4.0],
                             "survey": ["SPEC", "SPEC"]}), tmp_path / "far.parquet")
    with pytest.raises(TsmError, match="none of the 2 spec-z positions .* do not overlap"):
        run(config(inputs, tmp_path, catalogs=[str(tmp_path / "far.parquet")]), client=client, hooks=hooks)
    assert seen == ["check", "inputs"]  # before combining
    pq.write_table(pa.table({"ra": [10.0], "dec": [0.0], "z": [0.5], "z_flag": [4.0], "survey": ["NOPE"]}),
                   tmp_path / "nosurvey.parquet")
    with pytest.raises(ValueError, match="survey 'NOPE'"):
        run(config(inputs, tmp_path, catalogs=[str(tmp_path / "nosurvey.parquet")]), client=client)
    with pytest.raises(TsmError, match="do not overlap"):
        run(config(inputs, tmp_path, catalogs=[{"source": str(inputs["b"])}], flag_cut=0,
                   match_radius_arcsec=0.01), client=client)


# -- with the database -----------------------------------------------------------------------
def _product_count(registry: ProductRegistry, prefix: str) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM registry.products WHERE name LIKE :p"),
                                {"p": f"{prefix}%"}).scalar() or 0)


def _upload(registry: ProductRegistry, owner: Any, path: Path, name: str) -> None:
    registry.register(RegistrationRequest(
        name=name, product_type="speczcat", main_file=path, main_file_name=path.name,
        columns={"RA": {"role": "ra"}, "DEC": {"role": "dec"}, "Z": {"role": "redshift"},
                 "QUALITY": {"role": "quality_flag"}, "ID": {"role": "id"}}), owner)


def test_publish_registers_three_products_with_provenance(inputs, tmp_path, client, registry, operator,
                                                           app) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    _upload(registry, operator, inputs["a"], f"{prefix}_a")
    cfg = config(inputs, tmp_path, catalogs=[{"source": f"product:{prefix}_a", "survey": "SPEC"},
                                             {"source": str(inputs["b"])}],
                 output={"name": prefix, "dir": str(tmp_path / "out"), "publish": True, "release": "dp1"})
    result = run(cfg, registry=registry, owner=operator, client=client)
    names = sorted(f"{p.name} v{p.version}" for p in result.products)
    assert names == [f"{prefix}_combined v1", f"{prefix}_training v1", f"{prefix}_validation v1"]
    by_type = {p.product_type: p for p in result.products}
    assert by_type["trainingset"].row_count == 105 and by_type["validationset"].row_count == 45
    assert by_type["speczcat"].row_count == 160
    roles = {c.role for c in by_type["trainingset"].columns if c.role}
    assert {"id", "ra", "dec", "redshift", "mag_i", "flux_i"} <= roles
    with registry.engine.connect() as conn:
        activities = dict(conn.execute(text(
            "SELECT a.name, a.id FROM provenance.activity a WHERE a.name LIKE :n"), {"n": f"TSM % {prefix} %"}).all())
        assert sorted(n.split()[1] for n in activities) == ["combine", "crossmatch", "split"]
        combine_id = next(i for n, i in activities.items() if n.startswith("TSM combine"))
        used = {r[0] for r in conn.execute(text("SELECT role FROM provenance.used WHERE activity_id = :a"),
                                           {"a": combine_id})}
        assert used == {f"spec-z catalog product:{prefix}_a", "spec-z catalog b.parquet", "flag translation"}
        params = dict(conn.execute(text("SELECT name, param_value FROM provenance.parameter WHERE activity_id = :a"),
                                   {"a": combine_id}).all())
        assert params["flag_cut"] == "2" and params["mode"] == "remove_duplicates"
        derived = conn.execute(text(
            "SELECT count(*) FROM provenance.wasderivedfrom WHERE generated_entity_id = :e"),
            {"e": by_type["trainingset"].entity_id}).scalar()
        assert derived == 1
    plots = sorted(f.file_name for f in by_type["trainingset"].files if f.role == "auxiliary")
    assert plots == ["flags.png", "mag_z.png", "nz.png", "separation.png", "sky.png"]
    web = app.test_client()
    page = web.get(f"/products/{prefix}_training").get_data(as_text=True)
    src = f"/api/products/{prefix}_training/file?version=1&amp;role=auxiliary&amp;file=nz.png"
    assert f'<img src="{src}"' in page
    image = web.get(src.replace("&amp;", "&"))
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data[:4] == b"\x89PNG"
    rerun = run(cfg, registry=registry, owner=operator, client=client)
    assert sorted(p.version for p in rerun.products) == [2, 2, 2]


@pytest.mark.parametrize("step", ["inputs", "combine", "objects", "crossmatch", "split", "write", "publish"])
def test_a_failure_at_any_step_registers_nothing(inputs, tmp_path, client, registry, operator, step) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}"
    cfg = config(inputs, tmp_path, output={"name": prefix, "dir": str(tmp_path / "out"), "publish": True})

    def fail(progress: TsmProgress) -> None:
        if progress.step == step:
            raise RuntimeError(f"injected failure at {step}")

    with pytest.raises(RuntimeError, match="injected"):
        run(cfg, registry=registry, owner=operator, client=client, hooks=[fail])
    assert _product_count(registry, prefix) == 0


@pytest.mark.parametrize("step", ["lineage", "table", "provenance", "commit"])
def test_a_failure_inside_the_registration_registers_nothing(inputs, tmp_path, client, registry, operator,
                                                             step, database) -> None:
    """The second product's registration fails: the first one, in the same transaction, goes too."""
    calls: list[str] = []

    def fail_at(name: str) -> None:
        calls.append(name)
        if name == step and (step in ("lineage", "commit") or calls.count(step) == 2):
            raise RuntimeError(f"injected failure at {name}")

    failing = ProductRegistry(engine=owner_engine(database), storage_dir=registry.storage_dir, step_hook=fail_at)
    prefix = f"g{uuid.uuid4().hex[:8]}"
    cfg = config(inputs, tmp_path, output={"name": prefix, "dir": str(tmp_path / "out"), "publish": True})
    with pytest.raises(RuntimeError, match="injected"):
        run(cfg, registry=failing, owner=operator, client=client)
    assert _product_count(registry, prefix) == 0
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM provenance.activity WHERE name LIKE :n"),
                            {"n": f"%{prefix}%"}).scalar() == 0
    assert not list((registry.storage_dir).glob(f"{prefix}_*"))


@pytest.mark.slow
def test_product_page_shows_the_plots_in_chromium(inputs, tmp_path, client, registry, operator, server,
                                                  artifacts_dir) -> None:
    from tests._browser import Browser, chromium_path

    path = chromium_path()
    assert path, "chromium (Debian package) is required: make deps installs it"
    prefix = f"p{uuid.uuid4().hex[:8]}"
    cfg = config(inputs, tmp_path, output={"name": prefix, "dir": str(tmp_path / "out"), "publish": True})
    run(cfg, registry=registry, owner=operator, client=client)
    browser = Browser(path)
    try:
        browser.navigate(f"{server.url}/products/{prefix}_validation")
        loaded = browser.wait_for("(() => { const i = [...document.querySelectorAll('#plots img')];"
                                  " return i.length === 5 && i.every(x => x.complete && x.naturalWidth > 400)"
                                  " ? i.length : 0; })()")
        assert loaded == 5
        browser.screenshot(artifacts_dir / "tsm_product_plots.png")
    finally:
        browser.close()
