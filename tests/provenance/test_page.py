"""The provenance graph page, in headless Chromium (Debian ``chromium``) and over plain HTTP."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests._browser import Browser, chromium_path

PHOTOZ = "pzvo:table/pz.photoz_demo"
SPECZ = "pzvo:table/pz.specz_demo"


def _expected_nodes(prov_url: str, record_id: str) -> int:
    doc = requests.get(prov_url + "/prov", params={"ID": record_id, "DEPTH": 2, "AGENT": "true",
                                                   "MEMBERS": "true"}, timeout=30).json()
    return sum(len(doc.get(k, {})) for k in ("entity", "activity", "agent"))


def test_page_links_product_formats_and_adql(prov_url) -> None:
    r = requests.get(f"{prov_url}/provenance/{PHOTOZ}", timeout=30)
    assert r.status_code == 200 and "<svg" in r.text
    assert "SELECT TOP 100 * FROM pz.photoz_demo" in requests.utils.unquote(r.text.replace("+", " "))
    for fmt in ("PROV-JSON", "PROV-N", "PROV-XML", "PROV-VOTABLE", "SVG", "GRAPHVIZ"):
        assert f"RESPONSEFORMAT={fmt}" in r.text
    assert "SELECT * FROM provenance.entity WHERE id IN (" in r.text.replace("&#39;", "'")
    assert "http://" not in r.text.split("<svg", 1)[0].replace(prov_url, "")  # nothing from elsewhere
    index = requests.get(prov_url + "/provenance/", timeout=30)
    assert index.status_code == 200 and f"/provenance/{PHOTOZ}" in index.text


def test_page_errors_are_html_4xx(prov_url) -> None:
    assert requests.get(f"{prov_url}/provenance/pzvo:table/none", timeout=30).status_code == 404
    assert requests.get(f"{prov_url}/provenance/{PHOTOZ}?depth=-3", timeout=30).status_code == 400
    assert requests.get(f"{prov_url}/provenance/not-an-id", timeout=30).status_code == 400


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Debian chromium is not installed (make deps)")
def test_graph_page_in_chromium_draws_and_recentres(prov_url, artifacts_dir) -> None:
    browser = Browser(chromium_path())
    try:
        browser.navigate(f"{prov_url}/provenance/{PHOTOZ}")
        browser.wait_for("document.body && document.body.getAttribute('data-ready') === 'true'")
        drawn = int(browser.evaluate("document.body.getAttribute('data-drawn-nodes')"))
        assert drawn == _expected_nodes(prov_url, PHOTOZ) >= 5
        assert browser.evaluate("document.querySelectorAll('#prov-graph g.node ellipse').length") >= 3
        hosts = json.loads(browser.evaluate(
            "JSON.stringify(performance.getEntriesByType('resource').map(e => new URL(e.name).host))"))
        assert set(hosts) <= {prov_url.split("//", 1)[1]}
        browser.screenshot(artifacts_dir / "provenance_graph.png")

        point = browser.evaluate(f"""(() => {{
            const node = document.querySelector('#prov-graph g.node[data-prov-id="{SPECZ}"]');
            const r = node.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        browser.click(*point)
        browser.wait_for(f"document.body && document.body.getAttribute('data-centre') === '{SPECZ}'"
                         " && document.body.getAttribute('data-ready') === 'true'")
        assert browser.evaluate("document.getElementById('prov-details-title').textContent") == "pz.specz_demo"
        assert "depth=2" in browser.evaluate("location.search")
        drawn = int(browser.evaluate("document.body.getAttribute('data-drawn-nodes')"))
        assert drawn == _expected_nodes(prov_url, SPECZ)
        time.sleep(0.2)
        browser.screenshot(artifacts_dir / "provenance_graph_recentred.png")
    finally:
        browser.close()
