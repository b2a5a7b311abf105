"""The comparison page in headless Chromium (sortable table, plots side by side) and the report
in HTML and PDF."""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from scipy.stats import norm

from pipeline.coop.challenges import Cooperative
from pipeline.coop.job import validate_submission
from pipeline.coop.submit import submit
from pipeline.pdf import LEVELS
from tests.coop_api.conftest import admin_headers
from vo_service.auth import User


def filled_challenge(api, services, sets, truth, tmp_path) -> str:
    """A challenge with two validated submissions of two participants (a good and a biased one)."""
    name = f"pg_{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{api}/challenges", headers=admin_headers(services), timeout=30, json={
        "name": name, "title": "Page challenge", "deadline": "2030-01-01T00:00:00Z", "description": "Rules here.",
        "training": {"name": sets["trainingset"], "version": 1},
        "validation": {"name": sets["validationset"], "version": 1}}).status_code == 201
    coop = Cooperative(services.products)
    ids, z = truth["id"].to_numpy(), truth["redshift"].to_numpy()
    rng = np.random.default_rng(4)
    for algorithm, shift in (("good", 0.0), ("biased", 0.08)):
        participant = f"u{uuid.uuid4().hex[:8]}"
        services.auth.add_user(participant)
        z_phot = z + shift * (1 + z) + rng.normal(0, 0.02, z.size) * (1 + z)
        locs = np.clip(z_phot[:, None] + 0.02 * (1 + z)[:, None] * norm.ppf(np.clip(LEVELS, 1e-6, 1 - 1e-6)), 0, None)
        quantiles = {f"q_{round(lv * 1000):04d}": locs[:, i] for i, lv in enumerate(LEVELS)}
        columns = {"id": ids, "z_phot": z_phot, **quantiles}
        path = tmp_path / f"{algorithm}.parquet"
        pq.write_table(pa.table(columns), path)
        number = submit(coop, User(participant), name, path, algorithm=algorithm, description=f"The {algorithm} one.")
        validate_submission(coop, number)
    return name


def test_comparison_page_in_chromium(api, services, sets, truth, tmp_path, server, artifacts_dir) -> None:
    from tests._browser import Browser, chromium_path

    name = filled_challenge(api, services, sets, truth, tmp_path)
    path = chromium_path()
    assert path, "chromium (Debian package) is required: make deps installs it"
    browser = Browser(path)
    try:
        browser.navigate(f"{server.url}/challenges/{name}")
        loaded = browser.wait_for("(() => { const i = [...document.querySelectorAll('#plots img')];"
                                  " return i.length === 4 && i.every(x => x.complete && x.naturalWidth > 300)"
                                  " ? i.length : 0; })()")
        assert loaded == 4
        order = "[...document.querySelectorAll('#comparison tbody tr')].map(r => r.cells[2].textContent)"
        browser.evaluate("document.querySelectorAll('#comparison th')[6].click()")  # bias, ascending
        assert browser.evaluate(order) == ["good", "biased"]
        browser.evaluate("document.querySelectorAll('#comparison th')[6].click()")  # descending
        assert browser.evaluate(order) == ["biased", "good"]
        browser.screenshot(artifacts_dir / "coop_comparison.png")
    finally:
        browser.close()


def test_report_html_and_pdf(api, services, sets, truth, tmp_path, server) -> None:
    name = filled_challenge(api, services, sets, truth, tmp_path)
    html = requests.get(f"{server.url}/challenges/{name}/report", timeout=60)
    assert html.status_code == 200 and "default-src 'none'" in html.headers["Content-Security-Policy"]
    text = html.text
    assert "Page challenge" in text and "The good one." in text and "The biased one." in text
    assert text.count("data:image/png;base64,") == 4 and sets["validationset"] in text
    pdf = requests.get(f"{server.url}/challenges/{name}/report.pdf", timeout=180)
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-" and len(pdf.content) > 20_000
    assert requests.get(f"{server.url}/challenges/no_such_one", timeout=30).status_code == 404
