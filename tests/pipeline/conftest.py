"""Fixtures of the pipeline tests: a small demo catalog from the shared Buzzard galaxies."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.catalog import write_demo_catalog
from vo_service.core.settings import PROJECT_ROOT

SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "buzzard_ugrizy_80k.parquet"


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """80,000 Object-like rows in 8 Parquet files, a training and a validation set (real data,
    photerr LSST 10-year errors, fixed seed)."""
    root = tmp_path_factory.mktemp("pipeline-demo")
    paths = {"objects": root / "objects", "training": root / "training.parquet",
             "validation": root / "validation.parquet", "root": root}
    write_demo_catalog(SOURCE, paths["objects"], paths["training"], paths["validation"], partitions=8)
    return paths
