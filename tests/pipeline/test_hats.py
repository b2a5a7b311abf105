"""A HATS-partitioned Object catalog as the pipeline's input, made by LINCC's own ``hats-import``.

HATS is how Rubin's catalogs are partitioned for LSDB: ``dataset/Norder=k/Dir=d/Npix=n.parquet``
plus catalog metadata (``hats.properties``, ``partition_info.csv``, ``_metadata``, sky maps).
The pipeline must take such a catalog as it is (one task per HEALPix pixel file, the metadata
files ignored), and its output must be a HATS catalog in the same pixels, which LSDB joins to
the Object catalog.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.catalog import list_partitions

VENV_BIN = Path(sys.executable).parent
#: LSDB and nested-pandas warn about pandas 4 deprecations of their own.
pytestmark = [pytest.mark.filterwarnings("ignore::Warning:lsdb.*"),
              pytest.mark.filterwarnings("ignore::Warning:nested_pandas.*")]


def import_hats(objects: Path, out: Path) -> Path:
    """The demo objects as a HATS catalog (about 5,000 rows per pixel: a few HEALPix orders)."""
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    args = ImportArguments(output_path=out, output_artifact_name="objects_hats", input_path=objects,
                           file_reader="parquet", ra_column="coord_ra", dec_column="coord_dec",
                           pixel_threshold=5000, highest_healpix_order=8, progress_bar=False, tmp_dir=out / "tmp",
                           create_thumbnail=True, create_per_partition_stats=True)  # Parquet files, not objects
    with Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as client:
        pipeline_with_client(args, client)
    return out / "objects_hats"


@pytest.fixture(scope="module")
def hats_objects(demo_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_hats(demo_inputs["objects"], tmp_path_factory.mktemp("hats"))


def test_pipeline_runs_on_a_hats_catalog(hats_objects: Path, demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    import hats

    catalog = hats_objects
    pixels = hats.read_hats(catalog).get_healpix_pixels()
    assert len(pixels) > 3 and len({p.order for p in pixels}) > 1
    assert (catalog / "data_thumbnail.parquet").exists()
    parts = list_partitions(catalog)
    assert sorted(p.relative for p in parts) == sorted(
        f"dataset/Norder={p.order}/Dir={p.dir}/Npix={p.pixel}.parquet" for p in pixels)

    out = tmp_path / "out"
    cfg = tmp_path / "hats.yaml"
    cfg.write_text(yaml.safe_dump({
        "release": "hats-test", "objects": str(catalog), "training": str(demo_inputs["training"]),
        "output": str(out), "estimator": {"name": "toy"},
        "dask": {"workers": 2, "processes": False}, "publish": {"enabled": False}}))
    proc = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["partitions"] == len(pixels) and result["rows"] == 80_000

    for part in parts:  # pixel by pixel: the same objects, the toy estimator's known answer
        objects = pq.read_table(part.source, columns=["objectId", "i_cModelFlux"])
        estimates = pq.read_table(out / "data" / part.relative, columns=["objectId", "z_phot"])
        np.testing.assert_array_equal(estimates["objectId"].to_numpy(), objects["objectId"].to_numpy())
        with np.errstate(invalid="ignore", divide="ignore"):
            i_mag = 31.4 - 2.5 * np.log10(objects["i_cModelFlux"].to_numpy())
        expected = np.clip(0.5 + 0.2 * (i_mag - 22.0), 0.0, None)
        finite = np.isfinite(expected)
        np.testing.assert_allclose(estimates["z_phot"].to_numpy()[finite], expected[finite], atol=1e-4)

    # The output is a HATS catalog of its own, in the Object catalog's pixels ...
    from hats.io.validation import is_valid_catalog

    pz = out / "data"
    assert is_valid_catalog(pz, strict=True)
    pz_catalog = hats.read_hats(pz)
    assert pz_catalog.get_healpix_pixels() == pixels
    info = pz_catalog.catalog_info
    assert (info.catalog_name, info.total_rows, info.ra_column, info.dec_column) == ("photoz", 80_000, "ra", "dec")
    assert info.extra_dict()["pzvo_release"] == "hats-test" and result["hats"]["pixels"] == len(pixels)

    # ... which LSDB joins to the Object catalog pixel by pixel.
    import lsdb

    joined = lsdb.read_hats(catalog).join(lsdb.read_hats(pz), left_on="objectId", right_on="objectId",
                                          suffixes=("_obj", "_pz"), suffix_method="overlapping_columns",
                                          log_changes=False).compute()
    assert len(joined) == 80_000 and joined["z_phot"].notna().all()
    np.testing.assert_array_equal(joined["objectId_obj"].to_numpy(), joined["objectId_pz"].to_numpy())

    # A rerun after a killed run (a partial file left behind) resumes and rewrites the metadata;
    # a file that is not the run's own is an error, recorded in the job record.
    pixel_file = out / "data" / parts[0].relative
    (pixel_file.parent / (pixel_file.name + ".tmp-999")).write_bytes(b"partial")
    (out / "data" / "hats.properties").unlink()
    rerun = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["skipped"] == len(pixels)
    assert is_valid_catalog(pz, strict=True) and not list(pz.rglob("*.tmp-*"))
    stray = pixel_file.parent / "Npix=99999.parquet"
    stray.write_bytes(pixel_file.read_bytes())
    failed = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "is not only this run's output" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert json.loads((out / "run.json").read_text())["phase"] == "ERROR"
    assert not (pz / "hats.properties").exists()  # no catalog that would include the stray file


def test_hats_run_publishes_every_object_once(hats_objects: Path, demo_inputs: dict[str, Path], database,
                                              tmp_path: Path, registry, operator) -> None:
    """Published from a HATS catalog: the pixel files' objects, each once (not the thumbnail's)."""
    from sqlalchemy import text

    from pipeline.config import parse_config
    from pipeline.run import run_pipeline
    from tests.pipeline.test_run import drop_published
    from vo_service.core.database import owner_engine

    cfg = parse_config({"release": "hats-pub", "objects": str(hats_objects), "training": str(demo_inputs["training"]),
                        "output": str(tmp_path / "out"), "table": {"schema": "pz", "name": "photoz_hats_test"},
                        "estimator": {"name": "toy"}, "dask": {"workers": 2, "processes": False},
                        "publish": {"enabled": True, "partitions": 2}})
    try:
        result = run_pipeline(cfg, registry=registry, owner=operator)
        assert result.hats["rows"] == 80_000
        with owner_engine(database).connect() as conn:
            rows, distinct = conn.execute(text(
                "SELECT count(*), count(DISTINCT objectid) FROM pz.photoz_hats_test")).one()
        assert rows == distinct == 80_000
    finally:
        drop_published(database, "pz.photoz_hats_test")
