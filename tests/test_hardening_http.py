"""Hostile and odd requests against the running service (issue 14): every one answers with its
protocol's own 4xx, never a 500.  Also CORS, Content-Security-Policy, nosniff, ``Allow`` on 405,
and ``pzvo user delete`` through the command line.

DALI errors under /tap and /prov, RFC 7807 problem documents under /api, HTML pages elsewhere.
"""
from __future__ import annotations

import html.parser
import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests._browser import Browser, chromium_path
from tests.test_auth_cli import add_user, bearer, engine, env, ingest, pzvo  # noqa: F401 (fixtures)
from tests.test_tap_sync import assert_dali_error
from vo_service.app import FORM_FIELD_MAX_BYTES, FORM_MAX_PARTS, INLINE_BODY_MAX_BYTES
from vo_service.tap.adql._dialect import MAX_INTEGER, MAX_NESTING, MAX_TOKENS
from vo_service.tap.adql._translate import MAX_TREE_DEPTH

TABLE = "pz.photoz_demo"
HOSTILE = "<!--<script>"


def adql(tap_url: str, query: str, **extra: str) -> requests.Response:
    return requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": query, **extra}, timeout=120)


def _status_ok(resp: requests.Response, status: int | None) -> None:
    """``status``, or any 4xx when it is None (a rule of another layer decides which)."""
    if status is None:
        assert 400 <= resp.status_code < 500, resp.text[:500]
    else:
        assert resp.status_code == status, resp.text[:500]


def assert_problem(resp: requests.Response, status: int | None, *fragments: str) -> dict:
    _status_ok(resp, status)
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    doc = resp.json()
    assert doc["status"] == resp.status_code
    for fragment in fragments:
        assert fragment.lower() in json.dumps(doc).lower(), doc
    return doc


def assert_html_error(resp: requests.Response, status: int | None, *fragments: str) -> None:
    _status_ok(resp, status)
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<html" in resp.text.lower()
    for fragment in fragments:
        assert fragment.lower() in resp.text.lower(), resp.text[:500]


def assert_protocol_error(resp: requests.Response, protocol: str, status: int | None,
                          *fragments: str) -> None:
    if protocol == "dali":
        assert_dali_error(resp, resp.status_code if status is None else status, *fragments)
        _status_ok(resp, status)
    else:
        {"problem": assert_problem, "html": assert_html_error}[protocol](resp, status, *fragments)


# -- ADQL: deep nesting refused by name, long flat chains answered --------------------------------
@pytest.mark.parametrize("query", [
    f"SELECT ra FROM {TABLE} WHERE " + "(" * 48 + "ra > 1" + ")" * 48,
    f"SELECT ra FROM {TABLE} WHERE " + "(" * 20000 + "ra > 1" + ")" * 20000,
    "SELECT " + "ABS(" * 48 + "ra" + ")" * 48 + f" FROM {TABLE}",
    f"SELECT ra FROM {TABLE} WHERE ra IN " + f"(SELECT ra FROM {TABLE} WHERE ra IN " * 40 + "(1)" + ")" * 40,
    f"SELECT ra FROM {TABLE} WHERE " + "NOT " * 300 + "ra > 1",
    "SELECT " + "- " * 500 + f"ra FROM {TABLE}",
    "SELECT " + "CASE WHEN ra > 1 THEN " * 40 + "1" + " END" * 40 + f" FROM {TABLE}",
])
def test_too_deep_adql_is_a_dali_400_naming_the_limit(tap_url: str, query: str) -> None:
    assert_dali_error(adql(tap_url, query), 400, f"at most {MAX_NESTING}", "nested")


def test_too_deep_operator_trees_are_refused_naming_the_limit(tap_url: str) -> None:
    mixed = "ra" + "".join(" - ra" if i % 2 else " + ra" for i in range(500))
    assert_dali_error(adql(tap_url, f"SELECT {mixed} FROM {TABLE}"), 400, f"more than {MAX_TREE_DEPTH} levels")
    unions = " UNION ".join([f"SELECT ra FROM {TABLE}"] * 300)
    assert_dali_error(adql(tap_url, unions), 400, f"more than {MAX_TREE_DEPTH} levels")


def test_long_flat_chains_are_answered(tap_url: str) -> None:
    ids = requests.get(tap_url + "/sync", params={
        "LANG": "ADQL", "FORMAT": "csv", "QUERY": f"SELECT TOP 2000 objectId FROM {TABLE} ORDER BY objectId"},
        timeout=60).text.split()[1:]
    assert len(ids) == 2000
    ors = " OR ".join(f"objectId = {i}" for i in ids)
    resp = adql(tap_url, f"SELECT objectId FROM {TABLE} WHERE {ors}", FORMAT="csv")
    assert resp.status_code == 200, resp.text[:500]
    assert sorted(resp.text.split()[1:]) == sorted(ids)
    for query in (f"SELECT ra FROM {TABLE} WHERE " + " OR ".join(["ra > 1"] * 300),
                  "SELECT TOP 1 " + " + ".join(["ra"] * 500) + f" FROM {TABLE}"):
        resp = adql(tap_url, query, FORMAT="csv")
        assert resp.status_code == 200, resp.text[:500]
    total = adql(tap_url, "SELECT TOP 1 objectId, " + " + ".join(["ra"] * 500) + f" AS s, ra FROM {TABLE}",
                 FORMAT="csv").text.splitlines()[1].split(",")
    assert float(total[1]) == pytest.approx(500 * float(total[2]))


@pytest.mark.parametrize("query, fragment", [
    (f"SELECT TOP {'9' * 5000} ra FROM {TABLE}", f"at most {MAX_INTEGER}"),
    (f"SELECT ra FROM {TABLE} WHERE ra > {'9' * 5000}", "5000 digits"),
    (f"SELECT ra FROM {TABLE} OFFSET 99999999999999999999", f"at most {MAX_INTEGER}"),
    (f"SELECT ra FROM {TABLE} WHERE objectId IN (" + ",".join(["1"] * (MAX_TOKENS // 2 + 10)) + ")",
     f"at most {MAX_TOKENS}"),
])
def test_huge_adql_numbers_and_lists_are_400(tap_url: str, query: str, fragment: str) -> None:
    assert_dali_error(adql(tap_url, query), 400, fragment)


# -- NUL bytes, odd encodings, huge numbers, odd headers -----------------------------------------
NUL_CASES = [
    ("GET", "/?q=a%00b", {}, "html"),
    ("GET", "/products/a%00b", {}, "html"),
    ("GET", "/pipeline-runs?page=1%00", {}, "html"),
    ("GET", "/provenance/pzvo:table/pz.photoz%00demo", {}, "html"),
    ("GET", "/provenance/?x=%00", {}, "html"),
    ("GET", "/tap/sync?LANG=ADQL&QUERY=SELECT%20ra%20FROM%20pz.photoz_demo%00", {}, "dali"),
    ("GET", "/tap/sync?LA%00NG=ADQL&QUERY=SELECT%201", {}, "dali"),
    ("POST", "/tap/sync", {"data": {"LANG": "ADQL", "QUERY": "SELECT 'a\x00b' AS x FROM pz.photoz_demo"}}, "dali"),
    ("POST", "/tap/sync", {"files": {"LANG": (None, "ADQL"), "QUERY": (None, "SELECT 1\x00")}}, "dali"),
    ("POST", "/tap/sync", {"files": {"LANG": (None, "ADQL"), "t": ("a\x00b.xml", b"<VOTABLE/>")}}, "dali"),
    ("POST", "/tap/async", {"data": {"LANG": "ADQL", "QUERY": "SELECT 1\x00"}}, "dali"),
    ("GET", "/tap/tables/pz.a%00b", {}, "dali"),
    ("GET", "/prov?ID=pzvo:table/pz.photoz_demo%00", {}, "dali"),
    ("POST", "/prov", {"data": {"ID": "pzvo:table/pz.photoz_demo", "DEPTH": "1\x00"}}, "dali"),
    ("GET", "/api/products?q=a%00b", {}, "problem"),
    ("GET", "/api/products/a%00b", {}, "problem"),
    ("POST", "/api/products", {"files": {"name": (None, "x"), "product_type": (None, "other"),
                                         "file": ("a\x00b.txt", b"x")}}, "problem"),
]


@pytest.mark.parametrize("method, path, kwargs, protocol", NUL_CASES)
def test_nul_bytes_anywhere_are_a_400_in_the_protocols_form(server, method, path, kwargs, protocol) -> None:
    resp = requests.request(method, server.url + path, timeout=30, **kwargs)
    assert_protocol_error(resp, protocol, 400, "NUL")


@pytest.mark.parametrize("method, path, kwargs, protocol, status", [
    ("GET", "/?q=%ff%fe%c3", {}, "html", 200),
    ("GET", "/provenance/pzvo:%ff%fe", {}, "html", 400),
    ("GET", "/prov?ID=pzvo:%ff", {}, "dali", 400),
    ("GET", "/tap/sync?LANG=ADQL&QUERY=SELECT%20%ff%fe%20FROM%20x", {}, "dali", 400),
    ("POST", "/tap/sync", {"data": b"LANG=ADQL&QUERY=SELECT%20%ff%20FROM%20x",
                           "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, "dali", 400),
    ("POST", "/tap/sync", {"data": b"--x\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n"
                                   b"\r\n\xff\xfe\r\n--x--\r\n",
                           "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, "dali", 400),
    ("POST", "/tap/sync", {"data": b"garbage", "headers": {"Content-Type": "multipart/form-data"}}, "dali", 400),
    ("GET", "/api/products/%ff", {}, "problem", 404),
    ("GET", "/tap/sync?LANG=ADQL&QUERY=SELECT%20TOP%201%20ra%20FROM%20pz.photoz_demo&MAXREC=" + "9" * 5000,
     {}, "dali", 400),
    ("GET", "/prov?ID=pzvo:table/pz.photoz_demo&DEPTH=" + "9" * 5000, {}, "dali", 400),
    ("GET", "/provenance/pzvo:table/pz.photoz_demo?depth=" + "9" * 5000, {}, "html", 400),
    ("GET", "/api/products?page=99999999999999999999999", {}, "problem", None),
    ("GET", "/api/products/x?version=99999999999", {}, "problem", None),
])
def test_odd_encodings_and_huge_numbers_are_4xx(server, method, path, kwargs, protocol, status) -> None:
    resp = requests.request(method, server.url + path, timeout=30, **kwargs)
    if status == 200:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    else:
        assert_protocol_error(resp, protocol, status)


@pytest.mark.parametrize("accept", ["garbage;;q=abc,*/*;q=-1", "text/html;q=2, application/json",
                                    "\u00e9/\u00e9", "*/*;" * 500])
def test_odd_accept_headers_change_nothing(server, accept) -> None:
    headers = {"Accept": accept.encode("utf-8").decode("latin-1")}
    url = server.url
    sync = requests.get(url + "/tap/sync", headers=headers, timeout=30, params={
        "LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra FROM {TABLE}"})
    assert sync.status_code == 200 and sync.headers["Content-Type"].startswith("application/x-votable+xml")
    prov = requests.get(url + "/prov", headers=headers, params={"ID": "pzvo:table/pz.photoz_demo"}, timeout=30)
    assert prov.status_code == 200 and prov.headers["Content-Type"].startswith("application/json")
    assert requests.get(url + "/api/products", headers=headers, timeout=30).status_code == 200
    assert requests.get(url + "/provenance/", headers=headers, timeout=30).status_code == 200
    missing = requests.get(url + "/tap/tables/no.such", headers=headers, timeout=30)
    assert_dali_error(missing, 404)


@pytest.mark.parametrize("authorization", ["Bearer", "Basic YTpi", "Bearer a b c", "Bearer " + "x" * 6000,
                                           "Bearer \u00e9".encode().decode("latin-1"), "bearer\tzzz"])
def test_bad_credentials_are_a_401_with_a_challenge(server, authorization) -> None:
    for path, protocol in (("/tap/sync?LANG=ADQL&QUERY=SELECT%201", "dali"), ("/prov?ID=pzvo:x", "dali"),
                           ("/api/products", "problem"), ("/provenance/", "html"), ("/", "html")):
        resp = requests.get(server.url + path, headers={"Authorization": authorization}, timeout=30)
        assert_protocol_error(resp, protocol, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), path


# -- request size limits: the 413 names the limit that was hit ----------------------------------
BIG_FIELD = "SELECT TOP 1 ra FROM pz.photoz_demo --" + "x" * 600_000


def test_a_600_kb_form_field_is_a_413_naming_the_field_limit(server) -> None:
    limit = f"at most {FORM_FIELD_MAX_BYTES} bytes"
    multipart = requests.post(server.url + "/tap/sync", timeout=60,
                              files={"LANG": (None, "ADQL"), "QUERY": (None, BIG_FIELD)})
    assert_dali_error(multipart, 413, "form field", limit)
    encoded = requests.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": BIG_FIELD}, timeout=60)
    assert_dali_error(encoded, 413, "'QUERY'", limit)
    prov = requests.post(server.url + "/prov", files={"ID": (None, BIG_FIELD)}, timeout=60)
    assert_dali_error(prov, 413, limit)
    for files in ({"name": (None, BIG_FIELD), "file": ("a.txt", b"x")},
                  {"file": ("a.txt", b"x"), "name": (None, BIG_FIELD)}):
        api = requests.post(server.url + "/api/products", files=files, timeout=60)
        doc = assert_problem(api, 413, limit)
        assert "uploads are limited" not in doc["detail"]  # what it wrongly said before
    just_below = requests.post(server.url + "/tap/sync", timeout=60, files={
        "LANG": (None, "ADQL"), "FORMAT": (None, "csv"),
        "QUERY": (None, f"SELECT TOP 1 ra FROM {TABLE} --" + "x" * (FORM_FIELD_MAX_BYTES - 100))})
    assert just_below.status_code == 200, just_below.text[:300]


def test_form_part_count_and_inline_body_limits(server) -> None:
    parts = requests.post(server.url + "/prov", files=[("ID", (None, "pzvo:x"))] * (FORM_MAX_PARTS + 10),
                          timeout=60)
    assert_dali_error(parts, 413, f"at most {FORM_MAX_PARTS} parts")
    body = requests.post(server.url + "/tap/sync", timeout=60,
                         data={"LANG": "ADQL", "QUERY": "x" * (INLINE_BODY_MAX_BYTES + 10)})
    assert_dali_error(body, 413, f"at most {INLINE_BODY_MAX_BYTES} bytes")
    patch = requests.patch(server.url + "/api/products/x", data=b"{" + b" " * INLINE_BODY_MAX_BYTES + b"}",
                           headers={"Content-Type": "application/json"}, timeout=60)
    assert_problem(patch, 413, f"at most {INLINE_BODY_MAX_BYTES} bytes")


# -- 405 carries Allow ----------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, protocol, allowed", [
    ("DELETE", "/tap/sync", "dali", "POST"),
    ("PUT", "/tap/capabilities", "dali", "GET"),
    ("POST", "/tap/tables", "dali", "GET"),
    ("PATCH", "/tap/async", "dali", "POST"),
    ("DELETE", "/prov", "dali", "POST"),
    ("PUT", "/api/products", "problem", "POST"),
    ("DELETE", "/api/product-types", "problem", "GET"),
    ("POST", "/provenance/", "html", "GET"),
    ("POST", "/", "html", "GET"),
])
def test_405_has_an_allow_header(server, method, path, protocol, allowed) -> None:
    resp = requests.request(method, server.url + path, timeout=30)
    assert_protocol_error(resp, protocol, 405)
    methods = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed in methods and method not in methods


# -- CORS on TAP and /prov ------------------------------------------------------------------------
ORIGIN = "https://aladin.example.org"


@pytest.mark.parametrize("path, method", [("/tap/sync", "POST"), ("/tap/async", "POST"),
                                          ("/tap/async/some-job", "DELETE"), ("/tap/tables", "GET"),
                                          ("/prov", "POST"), ("/prov", "GET")])
def test_cors_preflight(server, path, method) -> None:
    resp = requests.options(server.url + path, timeout=30, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert resp.status_code in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert method in {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert int(resp.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_cors_headers_on_results_and_errors_but_not_the_rest_api(server) -> None:
    h = {"Origin": ORIGIN}
    ok = requests.get(server.url + "/tap/sync", headers=h, timeout=30, params={
        "LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra FROM {TABLE}"})
    error = requests.get(server.url + "/tap/sync", headers=h, timeout=30, params={"LANG": "ADQL"})
    prov = requests.get(server.url + "/prov", headers=h, params={"ID": "pzvo:table/pz.photoz_demo"}, timeout=30)
    for resp in (ok, error, prov):
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        exposed = {v.strip() for v in resp.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Content-Disposition", "Location"} <= exposed
    assert error.status_code == 400
    api = requests.get(server.url + "/api/products", headers=h, timeout=30)
    page = requests.get(server.url + "/provenance/", headers=h, timeout=30)
    assert "Access-Control-Allow-Origin" not in api.headers and "Access-Control-Allow-Origin" not in page.headers


@pytest.fixture
def other_origin() -> Iterator[str]:
    """An empty page on another port of 127.0.0.1: another origin for the browser."""

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Debian chromium is not installed (make deps)")
def test_browser_on_another_origin_reads_tap_and_prov(server, env, other_origin) -> None:  # noqa: F811 - pytest fixture `env`
    token = add_user(env, f"cors_{uuid.uuid4().hex[:8]}")
    browser = Browser(chromium_path())
    try:
        browser.navigate(other_origin + "/")
        browser.wait_for("document.title === 'elsewhere'")
        script = """(async () => {
            const out = {origin: location.origin};
            const body = new URLSearchParams({LANG: 'ADQL', FORMAT: 'csv',
                                              QUERY: 'SELECT TOP 2 objectId FROM pz.photoz_demo'});
            const sync = await fetch(%(base)s + '/tap/sync', {method: 'POST', body: body,
                headers: {'Authorization': 'Bearer ' + %(token)s}});
            out.sync = [sync.status, sync.headers.get('Content-Disposition'), await sync.text()];
            const prov = await fetch(%(base)s + '/prov?ID=pzvo:table/pz.photoz_demo');
            out.prov = [prov.status, Object.keys((await prov.json()).entity || {}).length];
            try { await fetch(%(base)s + '/api/products'); out.api = 'read'; }
            catch (e) { out.api = 'blocked'; }
            return JSON.stringify(out); })()""" % {"base": json.dumps(server.url), "token": json.dumps(token)}  # noqa: UP031 - JavaScript: braces
        out = json.loads(browser.evaluate(script))
    finally:
        browser.close()
    assert out["origin"] == other_origin != server.url
    status, disposition, csv = out["sync"]
    assert status == 200 and "result.csv" in disposition
    assert csv.splitlines()[0] == "objectId" and len(csv.splitlines()) == 3
    assert out["prov"][0] == 200 and out["prov"][1] >= 1
    assert out["api"] == "blocked"  # the browser enforces CORS: the headers above are what let TAP through


# -- Content-Security-Policy, nosniff and the provenance page's data island ----------------------
class _PageAudit(html.parser.HTMLParser):
    """Inline scripts, inline styles and event-handler attributes of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and "src" not in named and named.get("type") != "application/json":
            self._in_inline_script = True
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style>")
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"{tag} {name}=")


def _product_with_hostile_release(server, env) -> str:  # noqa: F811 - pytest fixture `env`
    token = add_user(env, f"xss_{uuid.uuid4().hex[:8]}")
    name = f"xss_{uuid.uuid4().hex[:8]}"
    resp = requests.post(server.url + "/api/products", headers=bearer(token), timeout=60,
                         data={"name": name, "product_type": "other", "release": HOSTILE,
                               "display_name": f"x</script>{HOSTILE}", "description": "a & b > c"},
                         files={"file": ("notes.txt", b"hello\n")})
    assert resp.status_code == 201, resp.text[:500]
    return f"pzvo:product/{name}@1"


def test_pages_send_csp_without_inline_script_and_every_response_nosniff(server, env) -> None:  # noqa: F811 - pytest fixture `env`
    entity = _product_with_hostile_release(server, env)
    product = entity.split("/", 1)[1].split("@")[0]
    pages = ["/", f"/products/{product}", "/products/no_such_product", "/pipeline-runs", "/provenance/",
             f"/provenance/{entity}", "/provenance/pzvo:table/pz.photoz_demo", "/provenance/not-an-id",
             "/provenance/pzvo:table/none", "/tap", "/no/such/page"]
    for path in pages:
        resp = requests.get(server.url + path, timeout=60)
        assert resp.headers["Content-Type"].startswith("text/html"), path
        csp = resp.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", csp
        assert "unsafe-inline" not in csp and directives["object-src"] == "'none'"
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        audit = _PageAudit()
        audit.feed(resp.text)
        assert audit.problems == [], (path, audit.problems)
    others = [requests.get(server.url + p, timeout=60) for p in (
        "/static/provenance/graph.js", "/static/products/pages.css", "/tap/capabilities",
        "/api/products", "/prov?ID=pzvo:table/pz.photoz_demo", "/api/nothing")]
    others.append(adql(server.url + "/tap", f"SELECT TOP 1 ra FROM {TABLE}"))
    for resp in others:
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.url


def test_provenance_data_island_escapes_markup(server, env) -> None:  # noqa: F811 - pytest fixture `env`
    entity = _product_with_hostile_release(server, env)
    page = requests.get(f"{server.url}/provenance/{entity}", timeout=60).text
    island = re.search(r'<script type="application/json" id="prov-nodes">(.*?)</script>', page, re.S).group(1)
    assert "<" not in island and ">" not in island and "&" not in island
    nodes = json.loads(island)
    values = [str(v) for node in nodes.values() for _, v in node["attributes"]]
    assert HOSTILE in values, values  # the release itself, read back intact
    assert page.count("<script") == 2  # the island and graph.js, nothing from the stored text


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Debian chromium is not installed (make deps)")
def test_provenance_page_runs_in_chromium_with_csp_and_a_hostile_release(server, env, artifacts_dir: Path) -> None:  # noqa: F811 - pytest fixture `env`
    entity = _product_with_hostile_release(server, env)
    browser = Browser(chromium_path())
    try:
        browser.navigate(f"{server.url}/provenance/{entity}")
        browser.wait_for("document.body && document.body.getAttribute('data-ready') === 'true'")
        assert int(browser.evaluate("document.body.getAttribute('data-drawn-nodes')")) >= 2
        assert browser.evaluate("document.querySelectorAll('script').length") == 2
        shown = browser.evaluate("""(() => {  // the registration, whose parameters hold the release
            const node = document.querySelector('#prov-graph g.node[data-prov-id^="pzvo:activity/"]');
            node.dispatchEvent(new MouseEvent('mouseenter'));
            return document.getElementById('prov-attributes').textContent; })()""")
        assert HOSTILE in shown
        # The policy is in force: a script added inline does not run.
        assert browser.evaluate("""(() => { const s = document.createElement('script');
            s.textContent = 'window.inlineRan = true'; document.body.appendChild(s);
            return window.inlineRan === undefined; })()""") is True
        browser.screenshot(artifacts_dir / "provenance_hostile_release.png")
    finally:
        browser.close()


# -- pzvo user delete -----------------------------------------------------------------------------
def _async_job(server, token: str) -> str:
    resp = requests.post(server.url + "/tap/async", headers=bearer(token), allow_redirects=False, timeout=30,
                         data={"LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra FROM {TABLE}"})
    assert resp.status_code == 303, resp.text[:300]
    return resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]


def _sync_status(server, token: str) -> int:
    return requests.get(server.url + "/tap/sync", headers=bearer(token), timeout=30, params={
        "LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra FROM {TABLE}"}).status_code


def test_user_delete_refuses_owners_of_live_products_then_reassigns(server, env, engine, tmp_path) -> None:  # noqa: F811 - pytest fixtures `env`, `engine`
    alice, bob = f"alice_{uuid.uuid4().hex[:8]}", f"bob_{uuid.uuid4().hex[:8]}"
    token = add_user(env, alice)
    add_user(env, bob)
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    product = f"del_{uuid.uuid4().hex[:8]}"
    assert ingest(env, notes, "--user", alice, name=product).returncode == 0
    job = _async_job(server, token)

    refused = pzvo(env, "user", "delete", alice)
    assert refused.returncode == 1
    assert product in refused.stderr and "--reassign-to" in refused.stderr
    assert _sync_status(server, token) == 200  # nothing was done
    missing_target = pzvo(env, "user", "delete", alice, "--reassign-to", "nobody_" + uuid.uuid4().hex[:6])
    assert missing_target.returncode == 1 and "no user" in missing_target.stderr
    assert pzvo(env, "user", "delete", alice, "--reassign-to", alice).returncode == 2

    done = pzvo(env, "user", "delete", alice, "--reassign-to", bob)
    assert done.returncode == 0, done.stderr
    assert "1 token(s)" in done.stdout and "1 async job(s)" in done.stdout and f"owned by {bob}" in done.stdout
    assert _sync_status(server, token) == 401
    assert requests.get(f"{server.url}/api/products/{product}", timeout=30).json()["owner"] == bob
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": alice}).first() is None
        phase, expired = conn.execute(text(
            "SELECT phase, destruction <= now() FROM uws.jobs WHERE job_id = :j"), {"j": job}).one()
    assert phase == "ABORTED" and expired  # the reaper removes it with its files
    assert alice not in pzvo(env, "user", "list").stdout


def test_user_delete_of_a_user_whose_products_are_deleted(server, env, engine, tmp_path) -> None:  # noqa: F811 - pytest fixtures `env`, `engine`
    carol = f"carol_{uuid.uuid4().hex[:8]}"
    token = add_user(env, carol)
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    product = f"gone_{uuid.uuid4().hex[:8]}"
    assert ingest(env, notes, "--user", carol, name=product).returncode == 0
    assert pzvo(env, "products", "delete", product, "--user", carol).returncode == 0
    done = pzvo(env, "user", "delete", carol)
    assert done.returncode == 0, done.stderr
    assert "(0 live) now owned by pzvo" in done.stdout
    assert _sync_status(server, token) == 401
    with engine.connect() as conn:
        owner, status = conn.execute(text(
            "SELECT owner, status FROM registry.products WHERE name = :n"), {"n": product}).one()
    assert (owner, status) == ("pzvo", "deleted")
    assert pzvo(env, "user", "delete", carol).returncode == 1  # gone
    assert pzvo(env, "user", "delete", "pzvo").returncode == 2  # the operator account stays
