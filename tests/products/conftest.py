"""Fixtures for the registry tests: users with tokens, files to upload, an API client."""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "buzzard_ugrizy_80k.parquet"


@pytest.fixture(scope="session")
def auth(database):
    from vo_service.auth import AuthService
    from vo_service.core.database import owner_engine

    return AuthService(engine=owner_engine(database))


def _user(auth, admin: bool = False) -> tuple[str, dict[str, str]]:
    name = f"u{uuid.uuid4().hex[:10]}"
    token = auth.add_user(name, admin=admin)
    return name, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user(auth):
    return _user(auth)


@pytest.fixture
def other_user(auth):
    return _user(auth)


@pytest.fixture
def admin(auth):
    return _user(auth, admin=True)


def unique_name(prefix: str = "p") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def specz_parquet(tmp_path_factory) -> Path:
    """2,000 Buzzard galaxies as a spec-z catalog with positions, flags and survey names."""
    table = pq.read_table(SHARED).slice(0, 2000)
    rng = np.random.default_rng(11)
    n = table.num_rows
    out = pa.table({
        "ID": table.column("galaxy_id"),
        "RA": rng.uniform(50, 70, n), "Dec": rng.uniform(-40, -25, n),
        "z_spec": table.column("redshift"), "z err": np.full(n, 0.001),
        "flag": rng.integers(1, 5, n).astype(np.int16),
        "survey": pa.array(rng.choice(["DESI", "VVDS"], n)),
    })
    path = tmp_path_factory.mktemp("files") / "specz.parquet"
    pq.write_table(out, path)
    return path


SPECZ_COLUMNS = {"ID": {"role": "id"}, "RA": {"role": "ra"}, "Dec": {"role": "dec"},
                 "z_spec": {"role": "redshift", "description": "spectroscopic redshift"},
                 "z err": {"role": "redshift_err"}, "flag": {"role": "quality_flag"}}


def upload(api: str, headers: dict, path: Path, *, name: str, product_type: str = "speczcat",
           columns: dict | None = None, **form: object) -> requests.Response:
    import json

    data = {"name": name, "product_type": product_type, **{k: str(v) for k, v in form.items()}}
    if columns is not None:
        data["columns"] = json.dumps(columns)
    with path.open("rb") as fh:
        return requests.post(f"{api}/products", data=data, files={"file": (path.name, fh)},
                             headers=headers, timeout=120)


@pytest.fixture(scope="session")
def api(server) -> str:
    return server.url + "/api"
