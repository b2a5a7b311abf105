"""A Python client for notebooks: the PZ Server's products from Python, then pyvo for ADQL.

>>> from vo_service.client import PZServer
>>> pz = PZServer("http://127.0.0.1:8000", token="pzvo_...")
>>> pz.list_products(product_type="speczcat")          # an astropy Table of products
>>> cat = pz.get_product("my_specz")                    # the product table as an astropy Table
>>> pz.tap.run_sync(f"SELECT ... FROM {pz.table_name('my_specz')}")   # go on with pyvo

The operations follow LIneA's ``pzserver`` client (list, metadata, get, download, upload,
update, delete) and add the ADQL table name, a ready pyvo TAPService, and Training Set Maker
jobs (``tsm_submit``, ``tsm_job``, ``tsm_wait``).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pyvo
import requests
from astropy.table import Table


class PZServerError(RuntimeError):
    """An API error, with the server's problem-details message."""

    def __init__(self, status: int, detail: str, problems: list[str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.problems = problems or []


class PZServer:
    """Talk to a pzvo service's REST API (``/api``) with an optional bearer token."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None,
                 timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> requests.Response:
        resp = self.session.request(method, f"{self.url}/api{path}", timeout=self.timeout, **kw)
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise PZServerError(resp.status_code, body.get("detail") or body.get("title", ""),
                                    body.get("problems"))
            except ValueError:
                raise PZServerError(resp.status_code, resp.text[:500]) from None
        return resp

    @property
    def tap(self) -> pyvo.dal.TAPService:
        """A pyvo TAP service on the same server, sending the same token."""
        return pyvo.dal.TAPService(f"{self.url}/tap", session=self.session)

    # -- reading -------------------------------------------------------------------------------
    def list_products(self, *, product_type: str | None = None, release: str | None = None,
                      official: bool | None = None, owner: str | None = None,
                      search: str | None = None, all_versions: bool = False) -> Table:
        """Products matching the filters (all pages), one row each."""
        params: dict[str, Any] = {"type": product_type, "release": release, "owner": owner,
                                  "q": search, "page_size": 200, "all_versions": str(all_versions).lower()}
        if official is not None:
            params["official"] = str(official).lower()
        params = {k: v for k, v in params.items() if v is not None}
        rows: list[dict] = []
        page = 1
        while True:
            doc = self._call("GET", "/products", params={**params, "page": page}).json()
            rows.extend(doc["items"])
            if len(rows) >= doc["total"] or not doc["items"]:
                break
            page += 1
        keys = ["name", "version", "display_name", "product_type", "release", "official", "owner",
                "row_count", "table_name", "created_at"]
        return Table(rows=[[r.get(k) for k in keys] for r in rows], names=keys) if rows else Table(names=keys)

    def get_product_metadata(self, name: str, version: int | None = None) -> dict:
        return self._call("GET", f"/products/{name}", params=_version(version)).json()

    def table_name(self, name: str, version: int | None = None) -> str:
        """The ADQL name of a product's table, for pyvo or TOPCAT."""
        table = self.get_product_metadata(name, version)["table_name"]
        if not table:
            raise PZServerError(404, f"{name} has no table (it is not a tabular product)")
        return table

    def get_product(self, name: str, version: int | None = None) -> Table:
        """A tabular product as an astropy Table (units and descriptions kept)."""
        resp = self._call("GET", f"/products/{name}/table",
                          params={**_version(version), "format": "votable"})
        return Table.read(io.BytesIO(resp.content), format="votable")

    def download_product(self, name: str, save_in: str | Path = ".", version: int | None = None,
                         role: str = "main") -> Path:
        """Save a product file (the original upload by default); return its path."""
        resp = self._call("GET", f"/products/{name}/file", params={**_version(version), "role": role},
                          stream=True)
        disposition = resp.headers.get("Content-Disposition", "")
        file_name = disposition.split("filename=")[-1].strip('"') if "filename=" in disposition else name
        path = Path(save_in) / file_name
        with path.open("wb") as fh:
            for chunk in resp.iter_content(1 << 20):
                fh.write(chunk)
        return path

    # -- writing -------------------------------------------------------------------------------
    def upload(self, name: str, path: str | Path, product_type: str, *, release: str | None = None,
               display_name: str | None = None, description: str | None = None,
               pz_code: str | None = None, official: bool = False,
               columns: dict[str, dict] | None = None, description_file: str | Path | None = None) -> dict:
        """Register a product; ``columns`` maps file columns to roles/units/UCDs/descriptions."""
        data = {"name": name, "product_type": product_type, "official": str(official).lower()}
        for key, value in (("release", release), ("display_name", display_name),
                           ("description", description), ("pz_code", pz_code)):
            if value is not None:
                data[key] = value
        if columns:
            data["columns"] = json.dumps(columns)
        path = Path(path)
        with path.open("rb") as fh:
            files: dict[str, Any] = {"file": (path.name, fh)}
            if description_file:
                dpath = Path(description_file)
                files["description_file"] = (dpath.name, dpath.read_bytes())
            return self._call("POST", "/products", data=data, files=files).json()

    def update(self, name: str, version: int | None = None, **changes: Any) -> dict:
        """Edit metadata (display_name, description, release, official, pz_code, columns)."""
        return self._call("PATCH", f"/products/{name}", params=_version(version), json=changes).json()

    def update_description(self, name: str, description: str, version: int | None = None) -> dict:
        return self.update(name, version, description=description)

    def delete(self, name: str, version: int | None = None) -> dict:
        return self._call("DELETE", f"/products/{name}", params=_version(version)).json()

    # -- Validation Cooperative --------------------------------------------------------------
    def list_challenges(self) -> list[dict]:
        """Every Validation Cooperative challenge (docs/coop.md)."""
        return self._call("GET", "/challenges").json()["items"]

    def get_challenge(self, name: str) -> dict:
        """One challenge with its submissions and their metrics."""
        return self._call("GET", f"/challenges/{name}").json()

    def create_challenge(self, name: str, title: str, training: tuple[str, int], validation: tuple[str, int],
                         deadline: str, *, description: str = "", pdf_forms: tuple[str, ...] = ("quantiles",),
                         metric_set: tuple[str, ...] | None = None,
                         histogram_grid: list[float] | None = None) -> dict:
        """Create a challenge (administrators); products as (name, version)."""
        body: dict[str, Any] = {"name": name, "title": title, "description": description, "deadline": deadline,
                                "training": {"name": training[0], "version": training[1]},
                                "validation": {"name": validation[0], "version": validation[1]},
                                "pdf_forms": list(pdf_forms)}
        if metric_set is not None:
            body["metric_set"] = list(metric_set)
        if histogram_grid is not None:
            body["histogram_grid"] = [float(v) for v in histogram_grid]
        return self._call("POST", "/challenges", json=body).json()

    def set_metric_set(self, challenge: str, metric_set: list[str]) -> dict:
        """Change a challenge's metrics (administrators); every submission is validated again."""
        return self._call("PATCH", f"/challenges/{challenge}", json={"metric_set": list(metric_set)}).json()

    def revalidate(self, challenge: str) -> dict:
        """Validate every submission of a challenge again (administrators)."""
        return self._call("POST", f"/challenges/{challenge}/revalidate").json()

    def submit_result(self, challenge: str, path: str | Path, algorithm: str, description: str | None = None) -> dict:
        """Submit a photo-z result file; returns the submission (its ``id`` and validation ``job``)."""
        path = Path(path)
        data = {"algorithm": algorithm}
        if description:
            data["description"] = description
        with path.open("rb") as fh:
            return self._call("POST", f"/challenges/{challenge}/submissions", data=data,
                              files={"file": (path.name, fh)}).json()

    def get_submission(self, challenge: str, submission_id: int) -> dict:
        return self._call("GET", f"/challenges/{challenge}/submissions/{submission_id}").json()

    # -- Training Set Maker ------------------------------------------------------------------
    def tsm_submit(self, config: dict | str | Path, run_id: str | None = None) -> dict:
        """Queue a Training Set Maker run (a configuration as in docs/examples/tsm_demo.yaml:
        a mapping, or a YAML file); returns the job (``job_id``, ``phase``, ``url``)."""
        if not isinstance(config, dict):
            import yaml  # noqa: PLC0415 - only for a configuration given as a file

            config = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        return self._call("POST", "/tsm", json={"config": config, "run_id": run_id}).json()

    def tsm_job(self, job_id: str) -> dict:
        """A Training Set Maker job: phase, progress, error, summary, products, report."""
        return self._call("GET", f"/tsm/{job_id}").json()

    def tsm_wait(self, job_id: str, timeout: float = 3600, poll: float = 2.0) -> dict:
        """Poll the job until it ends; raises PZServerError when it failed."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.tsm_job(job_id)
            if job["phase"] == "COMPLETED":
                return job
            if job["phase"] in ("ERROR", "ABORTED"):
                raise PZServerError(200, f"TSM job {job_id} {job['phase']}: {job.get('error')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"TSM job {job_id} still {job['phase']} ({job.get('progress')})")
            time.sleep(poll)


def _version(version: int | None) -> dict[str, int]:
    return {"version": version} if version is not None else {}
