"""Demo and benchmark data: the tables a fresh installation, the tests and the benchmarks load.

- :func:`load_demo`: ``pz.specz_demo`` (a simulated spec-z compilation) and ``pz.photoz_demo``
  (photo-z from the pipeline's ``knn`` estimator), with their provenance and as official
  products of the ``demo`` release (``pzvo demo``; :mod:`vo_service.demo._demo`).
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

__all__ = ["SOURCE", "build_demo_tables", "estimate_photoz", "generate_csv", "load_bench_table",
           "load_demo", "load_table_data", "simulate_specz", "table_checksum", "table_rows"]
