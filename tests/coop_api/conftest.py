"""Fixtures of the Validation Cooperative's HTTP tests: users, and a training and a validation
set product with known truth."""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vo_service.products import RegistrationRequest

ROWS = 400


def user_headers(services, admin: bool = False) -> dict[str, str]:
    token = services.auth.add_user(f"c{uuid.uuid4().hex[:10]}", admin=admin)
    return {"Authorization": f"Bearer {token}"}


def admin_headers(services) -> dict[str, str]:
    return user_headers(services, admin=True)


@pytest.fixture(scope="module")
def api(server) -> str:
    return server.url + "/api"


@pytest.fixture(scope="module")
def truth() -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({"id": np.arange(1000, 1000 + ROWS, dtype=np.int64), "redshift": rng.uniform(0.1, 2.0, ROWS),
                     "mag_i": rng.uniform(18, 25, ROWS)})


@pytest.fixture(scope="module")
def sets(registry, operator, truth, tmp_path_factory) -> dict[str, str]:
    """A training set and a validation set product (official, as the PZ Coordination Group's)."""
    root: Path = tmp_path_factory.mktemp("coop-sets")
    names = {}
    for kind in ("trainingset", "validationset"):
        path = root / f"{kind}.parquet"
        pq.write_table(truth, path)
        name = f"coop_{kind}_{uuid.uuid4().hex[:6]}"
        registry.register(RegistrationRequest(
            name=name, product_type=kind, main_file=path, main_file_name=path.name, official=True,
            columns={"id": {"role": "id"}, "redshift": {"role": "redshift"}}), operator)
        names[kind] = name
    return names
