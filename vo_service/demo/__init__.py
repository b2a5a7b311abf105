"""Demo and benchmark data: the tables a fresh installation, the tests and the benchmarks load.

- :func:`load_demo`: ``pz.specz_demo`` (a simulated spec-z compilation) and ``pz.photoz_demo``
  (photo-z from the pipeline's ``knn`` estimator), with their provenance and as official
  products of the ``demo`` release (``pzvo demo``; :mod:`vo_service.demo._demo`).
  The same call registers the Training Set Maker's demo inputs, release ``demo-tsm``
  (:func:`load_tsm_demo`, :func:`build_tsm_demo`; :mod:`vo_service.demo._tsm`): ``demo_objects``
  (an LSST Object catalog, also a Parquet dataset under ``var/demo/tsm/objects``) and three
  overlapping spec-z catalogs, ``demo_specz_6dfgs``, ``demo_specz_vvds``, ``demo_specz_desi``.
- :func:`load_bench_table`: ``bench.photoz``, the reference peer's benchmark table
  (``pzvo bench-load``; :mod:`vo_service.demo._bench`).
- :func:`table_rows`: the row count of a published table (None when it is not there).

The top of the layer order: it uses ``pipeline``, ``vo_service.products``, ``ingest``,
``tap_schema``, ``vo_service.core``, ``vo_service.auth`` and ``vo_service.provenance``, and nothing
of those imports it.  It reads no settings: callers (``vo_service/cli.py``, ``tests/conftest.py``)
pass the engine and the directories.
"""
from __future__ import annotations

from vo_service.demo._bench import generate_csv, load_bench_table
from vo_service.demo._demo import SOURCE, build_demo_tables, estimate_photoz, load_demo, simulate_specz
from vo_service.demo._tables import load_table_data, table_checksum, table_rows
from vo_service.demo._tsm import TsmDemo, build_tsm_demo, load_tsm_demo, objects_dir

__all__ = ["SOURCE", "TsmDemo", "build_demo_tables", "build_tsm_demo", "estimate_photoz", "generate_csv",
           "load_bench_table", "load_demo", "load_table_data", "load_tsm_demo", "objects_dir", "simulate_specz",
           "table_checksum", "table_rows"]
