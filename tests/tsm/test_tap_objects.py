"""Objects from a remote TAP service (pyvo over real HTTP on 127.0.0.1): the same matches as from
the object catalog product that the service publishes."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pipeline.tsm.checks import TsmError
from pipeline.tsm.config import parse_config
from pipeline.tsm.run import run


@pytest.fixture(scope="module", autouse=True)
def worker(services) -> Iterator[None]:
    """The async TAP worker the remote service needs (pyvo's queries are async jobs)."""
    built = services.worker(threads=1, name="tsm-tap-objects")
    built.start()
    yield
    built.stop()


def config(tmp_path, objects: Any) -> Any:
    return parse_config({"catalogs": ["product:demo_specz_vvds"], "objects": objects, "flag_cut": 3,
                         "plots": False, "split": {"seed": 1},
                         "output": {"name": "taptest", "dir": str(tmp_path), "publish": False}})


def test_objects_from_a_tap_table_match_as_the_product_does(tmp_path, registry, server) -> None:
    table = registry.get("demo_objects", user=None).table_name
    by_tap = run(config(tmp_path, {"tap": server.url + "/tap", "table": table}), registry=registry)
    by_product = run(config(tmp_path, "product:demo_objects"), registry=registry)
    assert by_tap.report["crossmatch"]["matched"] == by_product.report["crossmatch"]["matched"] > 1000
    tap_pairs = by_tap.matched.sort_by("combined_id")
    product_pairs = by_product.matched.sort_by("combined_id")
    assert np.array_equal(tap_pairs["objectId"].to_numpy(), product_pairs["objectId"].to_numpy())
    assert np.allclose(tap_pairs["separation_arcsec"].to_numpy(), product_pairs["separation_arcsec"].to_numpy())
    assert np.allclose(tap_pairs["i_cModelFlux"].to_numpy(), product_pairs["i_cModelFlux"].to_numpy())
    assert by_tap.report["objects"] == f"{table} at {server.url}/tap"


def test_a_missing_token_variable_and_a_failing_service_are_named(tmp_path, registry, server) -> None:
    table = registry.get("demo_objects", user=None).table_name
    os.environ.pop("TSM_TEST_NO_TOKEN", None)
    with pytest.raises(TsmError, match="TSM_TEST_NO_TOKEN"):
        run(config(tmp_path, {"tap": server.url + "/tap", "table": table, "token_env": "TSM_TEST_NO_TOKEN"}),
            registry=registry)
    with pytest.raises(TsmError, match="the TAP service .* failed"):
        run(config(tmp_path, {"tap": server.url + "/tap", "table": "pz.no_such_table"}), registry=registry)
