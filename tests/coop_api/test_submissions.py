"""Submissions over HTTP: checked whole before anything is kept, registered in the standard
form, validated by a job of the async pool with known metrics, visible in coop.metrics (ADQL)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pyvo
import requests
from scipy.stats import norm

from pipeline.coop.job import KIND, make_runner
from pipeline.pdf import LEVELS
from tests._waiting import wait_until
from tests.coop_api.conftest import admin_headers, user_headers


@pytest.fixture
def worker(services) -> Iterator[None]:
    built = services.worker(threads=1, name=f"coop-{uuid.uuid4().hex[:6]}",
                            runners={KIND: make_runner(services.products)})
    built.start()
    yield
    built.stop()


def challenge(api: str, services, sets: dict[str, str], deadline: str = "2030-01-01T00:00:00Z",
              **extra: object) -> str:
    name = f"ch_{uuid.uuid4().hex[:8]}"
    response = requests.post(f"{api}/challenges", headers=admin_headers(services), timeout=30, json={
        "name": name, "title": "test", "deadline": deadline,
        "training": {"name": sets["trainingset"], "version": 1},
        "validation": {"name": sets["validationset"], "version": 1}, **extra})
    assert response.status_code == 201, response.text
    return name


def result_file(path: Path, ids: np.ndarray, z: np.ndarray, width: np.ndarray | None = None) -> Path:
    """Point estimates and Gaussian PDFs of the given widths, as standard-form quantiles."""
    columns: dict[str, np.ndarray] = {"id": ids, "z_phot": z}
    if width is not None:
        levels = np.clip(LEVELS, 1e-6, 1 - 1e-6)
        locs = np.clip(z[:, None] + width[:, None] * norm.ppf(levels)[None, :], 0.0, None)
        for level, column in zip(LEVELS, locs.T, strict=True):
            columns[f"q_{round(level * 1000):04d}"] = column
    pq.write_table(pa.table(columns), path)
    return path


def submit(api: str, headers: dict, name: str, path: Path, algorithm: str = "perfect") -> requests.Response:
    with path.open("rb") as fh:
        return requests.post(f"{api}/challenges/{name}/submissions", headers=headers, timeout=60,
                             data={"algorithm": algorithm, "description": "a test"}, files={"file": (path.name, fh)})


def validated(api: str, name: str, submission: int) -> dict:
    document: dict = {}

    def done() -> bool:
        document.update(requests.get(f"{api}/challenges/{name}/submissions/{submission}", timeout=30).json())
        return document["status"] in ("validated", "failed")

    wait_until(done, 60, "the submission to be validated")
    return document


def test_a_perfect_and_a_biased_submission_get_their_metrics(api, services, sets, truth, worker, tmp_path,
                                                             server) -> None:
    name = challenge(api, services, sets)
    headers = user_headers(services)
    ids, z = truth["id"].to_numpy(), truth["redshift"].to_numpy()
    sigma = 0.03 * (1 + z)
    perfect = submit(api, headers, name, result_file(tmp_path / "perfect.parquet", ids, z, sigma))
    assert perfect.status_code == 201, perfect.text
    assert perfect.json()["status"] == "accepted" and perfect.json()["job"]
    biased = submit(api, headers, name, result_file(tmp_path / "biased.parquet", ids, z + 0.05 * (1 + z)), "biased")
    assert biased.status_code == 201, biased.text
    good = validated(api, name, perfect.json()["id"])
    assert good["status"] == "validated", good["error"]
    assert good["metrics"]["sigma_mad"] == pytest.approx(0.0, abs=1e-6)
    assert good["metrics"]["outlier_fraction"] == 0.0 and good["metrics"]["bias"] == pytest.approx(0.0, abs=1e-6)
    bad = validated(api, name, biased.json()["id"])
    assert bad["metrics"]["bias"] == pytest.approx(0.05, abs=1e-4)
    tap = pyvo.dal.TAPService(server.url + "/tap")
    rows = tap.run_sync(f"SELECT algorithm, bias FROM coop.metrics WHERE challenge = '{name}' ORDER BY bias").to_table()
    assert list(rows["algorithm"]) == ["perfect", "biased"]
    listed = requests.get(f"{api}/challenges/{name}", timeout=30).json()["submissions"]
    assert [s["status"] for s in listed] == ["validated", "validated"]
    product = services.products.get(listed[0]["product"]["name"], listed[0]["product"]["version"], user=None)
    assert product.product_type == "validationresults" and product.row_count == len(ids)


def test_a_bad_file_is_refused_whole_and_nothing_is_kept(api, services, sets, truth, tmp_path) -> None:
    name = challenge(api, services, sets)
    ids, z = truth["id"].to_numpy().copy(), truth["redshift"].to_numpy().copy()
    ids[:3] = [1, 2, 3]  # not in the validation set (and three validation ids missing)
    z[5] = np.nan
    z[6] = -0.5
    response = submit(api, user_headers(services), name, result_file(tmp_path / "bad.parquet", ids, z), "broken")
    assert response.status_code == 422, response.text
    problems = " | ".join(response.json()["problems"])
    assert "not in the validation set" in problems and "missing" in problems
    assert "NaN" in problems or "not finite" in problems
    assert "negative" in problems
    assert requests.get(f"{api}/challenges/{name}", timeout=30).json()["submissions"] == []


def test_the_deadline_is_enforced(api, services, sets, truth, tmp_path) -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = challenge(api, services, sets, deadline=past)
    path = result_file(tmp_path / "late.parquet", truth["id"].to_numpy(), truth["redshift"].to_numpy())
    response = submit(api, user_headers(services), name, path)
    assert response.status_code == 403 and "deadline" in response.json()["detail"]
    assert submit(api, {}, name, path).status_code == 401
    assert requests.get(f"{api}/challenges/{name}", timeout=30).json()["submissions"] == []


def test_changing_the_metric_set_validates_every_submission_again(api, services, sets, truth, worker, tmp_path,
                                                                   server) -> None:
    name = challenge(api, services, sets)
    ids, z = truth["id"].to_numpy(), truth["redshift"].to_numpy()
    sent = submit(api, user_headers(services), name,
                  result_file(tmp_path / "r.parquet", ids, z + 0.02 * (1 + z), 0.03 * (1 + z)), "shifted")
    assert sent.status_code == 201, sent.text
    first = validated(api, name, sent.json()["id"])
    assert first["status"] == "validated" and "crps" in first["metrics"]

    refused = requests.patch(f"{api}/challenges/{name}", headers=user_headers(services), timeout=30,
                             json={"metric_set": ["sigma_mad", "bias"]})
    assert refused.status_code == 403 and refused.headers["Content-Type"].startswith("application/problem+json")
    unknown = requests.patch(f"{api}/challenges/{name}", headers=admin_headers(services), timeout=30,
                             json={"metric_set": ["sigma_mad", "astrology"]})
    assert unknown.status_code == 422

    changed = requests.patch(f"{api}/challenges/{name}", headers=admin_headers(services), timeout=30,
                             json={"metric_set": ["sigma_mad", "bias", "outlier_fraction"]})
    assert changed.status_code == 200, changed.text
    document = changed.json()
    assert document["metric_set"] == ["sigma_mad", "bias", "outlier_fraction"]
    assert document["metric_set_version"] == 2
    [pending] = document["submissions"]
    assert pending["status"] in ("accepted", "validating", "validated") and pending["id"] == sent.json()["id"]
    wait_until(lambda: "crps" not in validated(api, name, pending["id"])["metrics"], 60, "the new metrics")
    again = validated(api, name, pending["id"])
    assert again["metrics"]["bias"] == pytest.approx(first["metrics"]["bias"])
    assert "crps" not in again["metrics"] and "pit_chi2_p" not in again["metrics"]

    same = requests.patch(f"{api}/challenges/{name}", headers=admin_headers(services), timeout=30,
                          json={"metric_set": ["sigma_mad", "bias", "outlier_fraction"]})
    assert same.json()["metric_set_version"] == 2  # no change, nothing validated again
    rerun = requests.post(f"{api}/challenges/{name}/revalidate", headers=admin_headers(services), timeout=30)
    assert rerun.status_code == 202 and rerun.json()["submissions"][0]["status"] in ("accepted", "validating",
                                                                                   "validated")
    assert validated(api, name, pending["id"])["status"] == "validated"
    assert requests.post(f"{api}/challenges/{name}/revalidate", headers=user_headers(services),
                         timeout=30).status_code == 403


def histogram_file(path: Path, ids: np.ndarray, z: np.ndarray, edges: np.ndarray, *, declare: bool) -> Path:
    """Gaussian PDFs (width 0.03(1+z)) as densities in the bins of ``edges``; the grid in the
    file's metadata when ``declare``."""
    sigma = 0.03 * (1 + z)
    mass = norm.cdf((edges[None, 1:] - z[:, None]) / sigma[:, None]) - \
        norm.cdf((edges[None, :-1] - z[:, None]) / sigma[:, None])
    table = pa.table({"id": ids, "z_phot": z, "pdf": list(mass / mass.sum(axis=1, keepdims=True) / np.diff(edges))})
    if declare:
        table = table.replace_schema_metadata({"grid": json.dumps(edges.tolist())})
    pq.write_table(table, path)
    return path


def test_a_challenge_grid_binds_every_histogram_and_its_forms_bind_every_file(api, services, sets, truth,
                                                                              tmp_path) -> None:
    edges = np.round(np.arange(0.0, 4.0001, 0.02), 6)
    name = challenge(api, services, sets, pdf_forms=["histogram"], histogram_grid=edges.tolist())
    document = requests.get(f"{api}/challenges/{name}", timeout=30).json()
    assert document["histogram_grid"] == edges.tolist() and document["pdf_forms"] == ["histogram"]
    headers = user_headers(services)
    ids, z = truth["id"].to_numpy(), truth["redshift"].to_numpy()

    on_the_grid = submit(api, headers, name, histogram_file(tmp_path / "h.parquet", ids, z, edges, declare=False))
    assert on_the_grid.status_code == 201, on_the_grid.text
    coarse = np.round(np.arange(0.0, 4.0001, 0.05), 6)
    other = submit(api, headers, name, histogram_file(tmp_path / "c.parquet", ids, z, coarse, declare=True), "coarse")
    assert other.status_code == 422 and "is not the challenge's grid" in " | ".join(other.json()["problems"])
    quantiles = submit(api, headers, name, result_file(tmp_path / "q.parquet", ids, z, 0.03 * (1 + z)), "q")
    assert quantiles.status_code == 422
    assert "takes PDFs as histogram; this file gives them as quantiles" in quantiles.json()["problems"][0]
    assert [s["algorithm"] for s in requests.get(f"{api}/challenges/{name}", timeout=30).json()["submissions"]] \
        == ["perfect"]

    for bad in ([0.0], [0.0, 1.0, 0.5], [0.0, "far"], list(range(2000))):
        response = requests.post(f"{api}/challenges", headers=admin_headers(services), timeout=30, json={
            "name": f"g_{uuid.uuid4().hex[:8]}", "title": "t", "deadline": "2030-01-01T00:00:00Z",
            "training": {"name": sets["trainingset"], "version": 1},
            "validation": {"name": sets["validationset"], "version": 1}, "histogram_grid": bad})
        assert response.status_code == 422, (bad, response.text)
