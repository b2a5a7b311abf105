"""Training Set Maker jobs over HTTP (``/api/tsm``), run by an async worker with the TSM runner."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import yaml

from pipeline.tsm.job import KIND, make_runner
from tests._waiting import wait_until
from vo_service.core.settings import PROJECT_ROOT
from vo_service.products import ProductNotFoundError, RegistrationRequest
from vo_service.uws import Worker

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "tsm_demo.yaml"


@pytest.fixture(scope="module")
def auth(services):
    return services.auth


def _user(auth, admin: bool = False) -> tuple[str, dict[str, str]]:
    name = f"u{uuid.uuid4().hex[:10]}"
    return name, {"Authorization": f"Bearer {auth.add_user(name, admin=admin)}"}


@pytest.fixture
def user(auth) -> tuple[str, dict[str, str]]:
    return _user(auth)


@pytest.fixture
def api(server) -> str:
    return server.url + "/api"


@pytest.fixture
def worker(services) -> Iterator[Worker]:
    """A worker that runs TSM jobs (and TAP ones), as ``pzvo worker`` builds it."""
    runner = make_runner(services.products, services.auth.operator)
    built = services.worker(threads=1, name=f"tsm-test-{uuid.uuid4().hex[:6]}", runners={KIND: runner})
    built.start()
    yield built
    built.stop()


def demo_config(**changes: Any) -> tuple[dict[str, Any], str]:
    """The shipped example as a job may send it (no dask, no output.dir), with its own name."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw.pop("dask")
    name = f"job{uuid.uuid4().hex[:8]}"
    raw["output"] = {"name": name, "release": "demo-tsm", "publish": True}
    raw.update(changes)
    return raw, name


def submit(api: str, headers: dict[str, str], config: dict[str, Any]) -> requests.Response:
    return requests.post(f"{api}/tsm", json={"config": config}, headers=headers, timeout=30)


def finished(api: str, headers: dict[str, str], url: str, seen: list[str]) -> dict[str, Any]:
    """Poll the job until it ends, keeping each progress text seen on the way."""
    document: dict[str, Any] = {}

    def done() -> bool:
        document.update(requests.get(url, headers=headers, timeout=30).json())
        if document.get("progress") and document["progress"] not in seen:
            seen.append(document["progress"])
        return document["phase"] in ("COMPLETED", "ERROR", "ABORTED")

    wait_until(done, 120, "the TSM job to end")
    return document


def test_a_job_runs_in_the_pool_and_registers_the_products(api, user, worker, registry) -> None:
    name, headers = user
    config, out = demo_config()
    response = submit(api, headers, config)
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["Location"] == job["url"] and job["phase"] == "QUEUED" and job["owner"] == name
    seen: list[str] = []
    job = finished(api, headers, job["url"], seen)
    assert job["phase"] == "COMPLETED", job["error"]
    assert seen and seen[-1] == "done"
    assert all(p == "done" or p == "queued steps: check" or p.split()[0].count("/") == 1 for p in seen)
    summary = job["summary"]
    assert summary["training"] + summary["validation"] == summary["matched"] > 0
    products = {p["name"]: p for p in job["products"]}
    assert set(products) == {f"{out}_combined", f"{out}_training", f"{out}_validation"}
    training = registry.get(f"{out}_training", user=None)
    assert training.owner == name and training.row_count == summary["training"]
    assert products[f"{out}_training"]["rows"] == summary["training"]
    described = requests.get(products[f"{out}_training"]["url"], timeout=30).json()
    assert described["name"] == f"{out}_training"
    assert job["report"]["combine"]["rows_in"] == summary["rows_in"]
    listed = requests.get(f"{api}/tsm", headers=headers, timeout=30).json()["items"]
    assert [j["job_id"] for j in listed] == [job["job_id"]] and listed[0]["report"] is None


@pytest.mark.parametrize(("change", "words"), [
    ({"catalogs": ["/etc/passwd"]}, "registered products only"),
    ({"catalogs": ["product:no_such_catalog"]}, "no_such_catalog"),
    ({"objects": "var/demo/tsm/objects"}, "registered object catalog"),
    ({"flags": "/tmp/rules.yaml"}, "shipped flag rules"),
    ({"flag_cut": 9}, "flag_cut"),
    ({"radius_arcsec": 0}, "radius_arcsec must be > 0"),
    ({"split": {"hook": "os:system"}}, "shipped hooks"),
    ({"dask": {"scheduler": "tcp://127.0.0.1:1"}}, "dask"),
    ({"output": {"name": "x", "dir": "/tmp"}}, "output.dir"),
    ({"output": {"name": "x", "publish": False}}, "output.publish"),
    ({"output": {"name": "X Y"}}, "output name"),
    ({"catalogs": ["product:demo_objects"]}, "not speczcat"),
    ({"catalogs": [{"source": "product:demo_specz_6dfgs", "survey": "NOSUCH"}]}, "'NOSUCH' has no flag rule"),
    ({"catalogs": [{"source": "product:demo_specz_6dfgs", "columns": {"z": "ZZ"}}]}, "'ZZ' (given for z)"),
    ({"split": {"hook": "pipeline.tsm.hooks:nope"}}, "has no function nope"),
])
def test_a_bad_configuration_is_a_422_naming_it(api, user, change, words) -> None:
    _, headers = user
    config, _ = demo_config()
    config.update(change)
    response = submit(api, headers, config)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert words in response.json()["detail"]


def test_access_rules(api, user, auth) -> None:
    _, headers = user
    config, _ = demo_config()
    assert submit(api, {}, config).status_code == 401
    assert requests.post(f"{api}/tsm", data="not json", headers={**headers, "Content-Type": "application/json"},
                         timeout=30).status_code in (400, 422)
    job = submit(api, headers, config).json()
    _, other = _user(auth)
    assert requests.get(job["url"], headers=other, timeout=30).status_code == 403
    assert requests.get(f"{api}/tsm/{'x' * 22}", headers=headers, timeout=30).status_code == 404
    assert requests.delete(job["url"], headers=headers, timeout=30).status_code == 204


def test_a_job_is_not_a_tap_job(api, server, user, services) -> None:
    """/tap/async never lists or shows a TSM job; a worker without the runner never claims one."""
    name, headers = user
    config, _ = demo_config()
    job = submit(api, headers, config).json()
    tap_jobs = requests.get(f"{server.url}/tap/async", headers=headers, timeout=30)
    assert job["job_id"] not in tap_jobs.text
    assert requests.get(f"{server.url}/tap/async/{job['job_id']}", headers=headers, timeout=30).status_code == 404
    plain = services.worker(threads=1, name="tap-only")
    assert plain.kinds == ("tap",)
    while plain.run_one():  # runs any TAP job queued by now, never this one
        pass
    assert requests.get(job["url"], headers=headers, timeout=30).json()["phase"] == "QUEUED"
    assert requests.delete(job["url"], headers=headers, timeout=30).status_code == 204
    assert requests.get(job["url"], headers=headers, timeout=30).status_code == 404


def test_a_deleted_job_never_runs(api, user, services, registry) -> None:
    _, headers = user
    config, out = demo_config()
    job = submit(api, headers, config).json()
    assert requests.delete(job["url"], headers=headers, timeout=30).status_code == 204
    runner = make_runner(services.products, services.auth.operator)
    lone = services.worker(threads=1, name="tsm-lone", runners={KIND: runner})
    while lone.run_one():  # whatever else is queued runs; this job is not there
        pass
    with pytest.raises(ProductNotFoundError):
        registry.get(f"{out}_combined", user=None)


def test_a_failing_job_keeps_its_error_and_registers_nothing(api, user, worker, registry, operator,
                                                             tmp_path: Path) -> None:
    """The checks made when queueing pass (the catalog is a product with the roles); once its rows
    are read, they are far from every object: the job ends in ERROR with the message, and no
    product of the run exists."""
    _, headers = user
    far = f"far_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "far.parquet"
    rng = np.random.default_rng(3)
    pq.write_table(pa.table({"id": np.arange(50), "ra": rng.uniform(200, 201, 50), "dec": rng.uniform(10, 11, 50),
                             "z": rng.uniform(0.1, 1, 50), "flag": np.full(50, 4), "survey": ["VVDS"] * 50}), path)
    registry.register(RegistrationRequest(
        name=far, product_type="speczcat", main_file=path, main_file_name=path.name,
        columns={"id": {"role": "id"}, "ra": {"role": "ra"}, "dec": {"role": "dec"}, "z": {"role": "redshift"},
                 "flag": {"role": "quality_flag"}, "survey": {"role": "survey"}}), operator)
    config, out = demo_config(catalogs=[f"product:{far}"], survey_priority=[])
    response = submit(api, headers, config)
    assert response.status_code == 201, response.text
    job = finished(api, headers, response.json()["url"], [])
    assert job["phase"] == "ERROR"
    assert job["error"].startswith("objects: none of the 50 spec-z positions") and "do not overlap" in job["error"]
    assert job["products"] == []
    for suffix in ("combined", "training", "validation"):
        with pytest.raises(ProductNotFoundError):
            registry.get(f"{out}_{suffix}", user=None)


def test_the_python_client_submits_and_waits(server, user, worker, tmp_path) -> None:
    from vo_service.client import PZServer, PZServerError

    _, headers = user
    pz = PZServer(server.url, token=headers["Authorization"].split()[1])
    config, out = demo_config(catalogs=["product:demo_specz_vvds"], survey_priority=[], plots=False)
    path = tmp_path / "tsm.yaml"
    path.write_text(yaml.safe_dump(config))
    job = pz.tsm_wait(pz.tsm_submit(path)["job_id"], timeout=120, poll=0.2)
    assert sorted(p["name"] for p in job["products"]) == sorted(f"{out}_{s}" for s in
                                                               ("combined", "training", "validation"))
    with pytest.raises(PZServerError, match="flag_cut"):
        pz.tsm_submit({**config, "flag_cut": 9})
