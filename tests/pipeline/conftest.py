"""Fixtures of the pipeline tests: a small demo catalog from the shared Buzzard galaxies."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.catalog import write_demo_catalog
from vo_service.auth import User
from vo_service.core.settings import PROJECT_ROOT
from vo_service.products import ProductRegistry
from vo_service.services import Services

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


@pytest.fixture(scope="session")
def registry(services: Services) -> ProductRegistry:
    """The session's product registry, as the composition root hands it to the pipeline."""
    return services.products


@pytest.fixture(scope="session")
def operator(services: Services) -> User:
    """Who the pipeline registers official products as (the operator account)."""
    return services.operator()
