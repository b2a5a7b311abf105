"""The product browser in headless Chromium: list, filter, open a product, see its columns."""
from __future__ import annotations

import pytest

from tests.products.conftest import SPECZ_COLUMNS, unique_name, upload


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    from tests._browser import Browser, chromium_path

    path = chromium_path()
    assert path, "chromium (Debian package) is required: make deps installs it"
    b = Browser(path)
    yield b
    b.close()


@pytest.mark.slow
def test_product_pages_list_filter_and_detail(server, api, user, specz_parquet, browser, artifacts_dir) -> None:  # noqa: ANN001
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


def test_filter_by_type_shows_no_foreign_types(server, browser) -> None:  # noqa: ANN001
    browser.navigate(f"{server.url}/?type=trainingresults")
    browser.wait_for("document.querySelector('#count') !== null")
    types = browser.evaluate("[...document.querySelectorAll('#products tbody tr td:nth-child(2)')]"
                             ".map(td => td.textContent)")
    assert all(t == "Training results" for t in types)
