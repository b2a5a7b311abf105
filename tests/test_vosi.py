"""VOSI and DALI examples documents: well-formed, complete, consistent with TAP_SCHEMA."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import requests
from astropy.io.votable import parse_single_table

NS = {
    "vosi": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
    "vt": "http://www.ivoa.net/xml/VOSITables/v1.0",
    "avl": "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
    "xhtml": "http://www.w3.org/1999/xhtml",
}


def get_xml(url: str) -> ET.Element:
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return ET.fromstring(resp.content)


def test_availability_says_available(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/availability")
    assert root.find("avl:available", NS).text == "true"


def test_capabilities_declare_tap_languages_formats_and_limits(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/capabilities")
    caps = {c.get("standardID"): c for c in root.findall("capability")}
    for std in ("ivo://ivoa.net/std/TAP", "ivo://ivoa.net/std/VOSI#capabilities",
                "ivo://ivoa.net/std/VOSI#availability", "ivo://ivoa.net/std/VOSI#tables-1.1",
                "ivo://ivoa.net/std/DALI#examples"):
        assert std in caps
    tap = caps["ivo://ivoa.net/std/TAP"]
    assert {v.text for v in tap.findall("language/version")} == {"2.0", "2.1"}
    mimes = {m.text.split(";")[0] for m in tap.findall("outputFormat/mime")}
    assert {"text/csv", "application/fits", "application/json", "application/x-votable+xml",
            "text/tab-separated-values", "application/vnd.apache.parquet"} <= mimes
    feature_types = {lf.get("type") for lf in tap.findall("language/languageFeatures")}
    assert "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo" in feature_types
    assert tap.find("outputLimit/hard").text.isdigit()


def test_capabilities_access_url_points_at_this_service(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/capabilities")
    urls = {u.text for u in root.iter("accessURL")}
    assert tap_url in urls


def test_tables_lists_every_tap_schema_table_with_columns(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/tables")
    names = {t.findtext("name") for t in root.iter("table")}
    assert {"pz.specz_demo", "pz.photoz_demo", "tap_schema.columns", "bench.photoz"} <= names
    resp = requests.post(f"{tap_url}/sync", data={"LANG": "ADQL", "MAXREC": 1000,
                                                  "QUERY": "SELECT table_name FROM TAP_SCHEMA.tables"})
    published = set(parse_single_table(io.BytesIO(resp.content)).to_table()["table_name"])
    assert names == published
    specz = [t for t in root.iter("table") if t.findtext("name") == "pz.specz_demo"][0]
    ra = [c for c in specz.iter("column") if c.findtext("name") == "ra"][0]
    assert ra.findtext("unit") == "deg" and ra.findtext("ucd") == "pos.eq.ra;meta.main"


def test_tables_detail_min_omits_columns(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/tables?detail=min")
    assert list(root.iter("table"))
    assert not list(root.iter("column"))


def test_single_table_endpoint(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/tables/pz.photoz_demo")
    assert root.findtext("name") == "pz.photoz_demo"
    assert len(list(root.iter("column"))) == 18


def test_unknown_single_table_is_404(tap_url: str) -> None:
    assert requests.get(f"{tap_url}/tables/pz.nothing", timeout=10).status_code == 404


def test_foreign_keys_of_tap_schema_are_listed(tap_url: str) -> None:
    root = get_xml(f"{tap_url}/tables/tap_schema.columns")
    assert root.find("foreignKey/targetTable").text == "tap_schema.tables"


def _examples(tap_url: str) -> list[tuple[str, str]]:
    root = get_xml(f"{tap_url}/examples")
    found = []
    for div in root.iter(f"{{{NS['xhtml']}}}div"):
        if div.get("typeof") == "example":
            query = [e for e in div.iter() if e.get("property") == "query"][0].text
            found.append((div.get("id"), query))
    return found


def test_examples_document_has_at_least_five_examples(tap_url: str) -> None:
    assert len(_examples(tap_url)) >= 5


def test_every_example_runs_on_the_demo_data(tap_url: str) -> None:
    """Examples that crossmatch an upload get, as TAP_UPLOAD.mine, 50 demo spec-z positions."""
    positions = requests.post(f"{tap_url}/sync", timeout=60, data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 50 id, ra, dec FROM pz.specz_demo ORDER BY id",
        "RESPONSEFORMAT": "votable/b2"}).content
    for ex_id, query in _examples(tap_url):
        data = {"LANG": "ADQL", "QUERY": query}
        files = None
        if "TAP_UPLOAD.mine" in query:
            data["UPLOAD"] = "mine,param:mine"
            files = {"mine": ("mine.vot", positions)}
        resp = requests.post(f"{tap_url}/sync", data=data, files=files, timeout=60)
        assert resp.status_code == 200, (ex_id, resp.text[:400])
        rows = parse_single_table(io.BytesIO(resp.content)).to_table()
        assert len(rows) > 0, ex_id
