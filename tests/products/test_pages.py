"""The product browser in headless Chromium: list, filter, open a product, see its columns."""
from __future__ import annotations

import pytest

from tests.products.conftest import SPECZ_COLUMNS, unique_name, upload


@pytest.fixture(scope="module")
def browser():
    from tests._browser import Browser, chromium_path

    path = chromium_path()
    assert path, "chromium (Debian package) is required: make deps installs it"
    b = Browser(path)
    yield b
    b.close()


@pytest.mark.slow
def test_product_pages_list_filter_and_detail(server, api, user, specz_parquet, browser, artifacts_dir) -> None:
    name = unique_name("web")
    upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS, release="DP1",
           display_name=f"Web test {name}", description="shown in the browser")
    browser.navigate(f"{server.url}/?q={name}")
    rows = browser.wait_for("document.querySelectorAll('#products tbody tr').length")
    assert rows == 1
    assert browser.evaluate("document.querySelector('#count').textContent").startswith("1 product")
    browser.evaluate("document.querySelector('#products tbody a').click()")
    browser.wait_for("document.querySelector('#product-name') !== null")
    assert name in browser.evaluate("document.querySelector('#product-name').textContent")
    columns = browser.evaluate("[...document.querySelectorAll('#columns tbody tr td:first-child')]"
                               ".map(td => td.textContent)")
    assert {"id", "ra", "dec", "z_spec", "z_err"} <= set(columns)
    ucds = browser.evaluate("[...document.querySelectorAll('#columns tbody tr td:nth-child(5)')]"
                            ".map(td => td.textContent)")
    assert "pos.eq.ra;meta.main" in ucds
    assert browser.evaluate("document.querySelectorAll('#preview tbody tr').length") == 10
    assert f"pz.{name}_v1" in browser.evaluate("document.querySelector('#adql').textContent")
    href = browser.evaluate("document.querySelector('#provenance-link').getAttribute('href')")
    assert href.startswith("/provenance/")
    browser.screenshot(artifacts_dir / "product_page.png")


def test_filter_by_type_shows_no_foreign_types(server, api, user, browser, tmp_path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    assert upload(api, user[1], model, name=unique_name("tr"), product_type="trainingresults").status_code == 201
    browser.navigate(f"{server.url}/?type=trainingresults")
    browser.wait_for("document.querySelector('#count') !== null")
    types = browser.evaluate("[...document.querySelectorAll('#products tbody tr td:nth-child(2)')]"
                             ".map(td => td.textContent)")
    assert types and all(t == "Training results" for t in types)


def test_pages_of_a_filtered_list(server, api, user, tmp_path) -> None:
    """52 matching products: page 1 holds 50 and links to page 2 with the same filters, page 2
    the other 2 and a link back; following the links never repeats a product."""
    import re

    import requests

    model = tmp_path / "m.bin"
    model.write_bytes(b"w")
    prefix = unique_name("pg")
    for i in range(52):
        assert upload(api, user[1], model, name=f"{prefix}_{i:02d}", product_type="other").status_code == 201

    def names_and_links(query: str) -> tuple[set[str], dict[str, str]]:
        html = requests.get(f"{server.url}/?{query}", timeout=60).text
        links = {rel: href.replace("&amp;", "&") for rel, href in re.findall(r'rel="(\w+)" href="\?([^"]*)"', html)}
        return set(re.findall(rf"{prefix}_\d\d", html)), links

    first, links = names_and_links(f"q={prefix}&type=other")
    assert len(first) == 50 and set(links) == {"next"}
    assert sorted(links["next"].split("&")) == sorted([f"q={prefix}", "type=other", "page=2"])
    second, links2 = names_and_links(links["next"])
    assert len(second) == 2 and not first & second and set(links2) == {"prev"}
    assert "page=1" in links2["prev"] and f"q={prefix}" in links2["prev"]


def test_pipeline_runs_page_shows_phase_and_progress(server, database, browser, tmp_path, artifacts_dir) -> None:
    """Two job records written the way a pipeline run writes them: one half-way, one failed."""
    from sqlalchemy import text

    from pipeline.run import JobRecord, Progress
    from vo_service.core.database import owner_engine

    engine = owner_engine(database)
    release = unique_name("runs")
    base = {"release": release, "estimator": {"name": "toy", "version": "1.0"}, "fingerprint": "f" * 32,
            "inputs": {"objects": "objects/"}, "table": "pz.photoz_runs_page"}
    running = JobRecord(tmp_path / "a" / "run.json", base, engine=engine)
    running(Progress(3, 8, 30_000, "part-3.parquet"))
    failed = JobRecord(tmp_path / "b" / "run.json", base, engine=engine)
    failed.finish("ERROR", error="partition objects/zz.parquet failed: ArrowInvalid")
    try:
        browser.navigate(f"{server.url}/pipeline-runs")
        browser.wait_for("document.querySelector('#runs') !== null")
        row = f"document.querySelector('#run-{running.record['run_id']}')"
        assert browser.evaluate(f"{row}.querySelector('.phase').textContent") == "EXECUTING"
        assert browser.evaluate(f"{row}.querySelector('.done').textContent") == "3 / 8"
        assert browser.evaluate(f"{row}.querySelector('progress').value") == 3
        bad = f"document.querySelector('#run-{failed.record['run_id']}')"
        assert "zz.parquet failed" in browser.evaluate(f"{bad}.querySelector('.phase').textContent")
        assert browser.evaluate("document.querySelector('header a[href=\"/pipeline-runs\"]') !== null")
        browser.screenshot(artifacts_dir / "pipeline_runs.png")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM registry.pipeline_runs WHERE release = :r"), {"r": release})
