"""A second pzvo instance on its own database: the independent TAP service the federation tests
join with, holding an Object-like table (objectId, coord_ra, coord_dec, cModel fluxes)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import LiveServer
from vo_service.app import create_app
from vo_service.cluster import PrivateCluster
from vo_service.core.database import migrate
from vo_service.core.settings import load_settings
from vo_service.demo import SOURCE, load_tsm_demo, objects_dir
from vo_service.services import Services


@dataclass(frozen=True)
class Remote:
    url: str
    services: Services
    objects: str  # schema.table of the Object-like table


@pytest.fixture(scope="session")
def remote(database) -> Iterator[Remote]:
    base = load_settings()
    name = os.environ.get("PZVO_TEST_DB", "pzvo_test") + "_remote"
    cluster = PrivateCluster(settings=base)
    cluster.start()
    cluster.drop_database(name)
    cluster.create_database(name)
    settings = load_settings(db_name=name, database_url=None, public_read=True, maxrec_default=1_000_000)
    shutil.rmtree(settings.products_dir, ignore_errors=True)
    migrate(settings)
    services = Services.build(settings)
    load_tsm_demo(services, SOURCE)
    objects = services.products.get("demo_objects", user=None).table_name
    assert objects is not None
    with LiveServer(create_app(services)) as live:
        yield Remote(url=live.url + "/tap", services=services, objects=objects)
    services.close()


@pytest.fixture(scope="session")
def objects_frame(database) -> pd.DataFrame:
    """The remote Object-like table as the remote service loaded it (the demo's Object files)."""
    return pq.ParquetDataset(objects_dir(database.var_dir)).read().to_pandas()


@pytest.fixture(scope="session")
def photoz_frame(services) -> pd.DataFrame:
    """This service's PZ table, for joins done in pandas."""
    with services.owner_engine.connect() as conn:
        return pd.read_sql('SELECT objectid AS "objectId", z_phot, z_err FROM pz.photoz_demo', conn)
