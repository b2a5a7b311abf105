"""The service's VOResource record (GET /tap/resource): valid against the IVOA schemas, and
holding what a registry lists: identifier, curation, content, the TAP and VOSI capabilities and
every published table.

The schemas are the published ones, committed under ``vo_service/vosi/schema`` (README there
says from where); their imports are resolved to those files, and to the UWS package's xlink and
xml schemas, by an lxml resolver that refuses every other address: no network is touched.  The
/tap/capabilities and /tap/tables documents share the record's template parts, so they are
validated too (VOSI 1.0 capabilities, VOSI 1.1 tables).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.conftest import LiveServer
from vo_service.core.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "vo_service" / "vosi" / "schema"
W3C_SCHEMAS = ROOT / "vo_service" / "uws" / "schema"
RI = "http://www.ivoa.net/xml/RegistryInterface/v1.0"
VR = "http://www.ivoa.net/xml/VOResource/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
VOSI_CAPS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"
VOSI_AVAILABILITY = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

#: Each schema a document here needs, by namespace: the versions named in the issue.
BY_NAMESPACE = {
    RI: SCHEMAS / "RegistryInterface-v1.0.xsd",
    VR: SCHEMAS / "VOResource-v1.1.xsd",
    VS: SCHEMAS / "VODataService-v1.2.xsd",
    TR: SCHEMAS / "TAPRegExt-v1.0.xsd",
    VOSI_CAPS: SCHEMAS / "VOSICapabilities-v1.0.xsd",
    VOSI_TABLES: SCHEMAS / "VOSITables-v1.1.xsd",
    VOSI_AVAILABILITY: SCHEMAS / "VOSIAvailability-v1.0.xsd",
}
#: Every address the schemas import from, and the local copy that stands for it.
LOCAL_COPIES = {
    VR: BY_NAMESPACE[VR],
    "https://www.ivoa.net/xml/VOResource/VOResource-v1.0.xsd": BY_NAMESPACE[VR],
    VS: BY_NAMESPACE[VS],
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": SCHEMAS / "stc-v1.30.xsd",
    "http://vo.ari.uni-heidelberg.de/docs/schemata/stc-v1.30.xsd": SCHEMAS / "stc-v1.30.xsd",
    "http://vo.ari.uni-heidelberg.de/docs/schemata/xlink.xsd": W3C_SCHEMAS / "xlink.xsd",
}


class _LocalOnly(etree.Resolver):
    """Imports from the committed copies; any other remote address fails the schema build
    instead of being fetched."""

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        if system_url in LOCAL_COPIES:
            return self.resolve_filename(str(LOCAL_COPIES[system_url]), context)
        if "://" in system_url and not system_url.startswith("file:"):
            raise AssertionError(f"a schema imports {system_url}, which has no local copy")
        return None


def ivoa_schema(*namespaces: str) -> etree.XMLSchema:
    """One schema holding the given namespaces (a driver schema importing each one's file)."""
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{BY_NAMESPACE[ns].as_uri()}"/>'
                      for ns in namespaces)
    driver = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
              f'targetNamespace="urn:pzvo:test-driver">{imports}</xs:schema>')
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalOnly())
    return etree.XMLSchema(etree.fromstring(driver.encode(), parser,
                                            base_url=(SCHEMAS / "driver.xsd").as_uri()))


@pytest.fixture(scope="module")
def record_schema() -> etree.XMLSchema:
    return ivoa_schema(RI, VR, VS, TR)


def fetch(url: str, **headers: str) -> tuple[requests.Response, etree._Element]:
    resp = requests.get(url, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return resp, etree.fromstring(resp.content)


def assert_valid(schema: etree.XMLSchema, doc: etree._Element) -> None:
    ok = schema.validate(doc)
    assert ok, "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)


@pytest.fixture(scope="module")
def record(tap_url: str) -> etree._Element:
    return fetch(f"{tap_url}/resource")[1]


def test_record_is_valid_against_the_ivoa_schemas(tap_url: str,
                                                  record_schema: etree.XMLSchema) -> None:
    resp, doc = fetch(f"{tap_url}/resource")
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert doc.tag == f"{{{RI}}}Resource" and doc.get(XSI_TYPE) == "vs:CatalogService"
    assert_valid(record_schema, doc)


def test_the_schemas_reject_a_broken_record(record: etree._Element,
                                            record_schema: etree.XMLSchema) -> None:
    """The validation has teeth: without its identifier, or with a wrong datatype, the record
    is refused (a schema that silently skipped an xsi:type would accept anything)."""
    broken = etree.fromstring(etree.tostring(record))
    broken.remove(broken.find("identifier"))
    assert not record_schema.validate(broken)
    broken = etree.fromstring(etree.tostring(record))
    broken.find("tableset/schema/table/column/dataType").text = "float64"
    assert not record_schema.validate(broken)


def test_the_other_vosi_documents_are_valid_too(tap_url: str) -> None:
    """Capabilities and tables render the same template parts as the record."""
    assert_valid(ivoa_schema(VOSI_CAPS, VR, VS, TR), fetch(f"{tap_url}/capabilities")[1])
    tables_schema = ivoa_schema(VOSI_TABLES, VS)
    assert_valid(tables_schema, fetch(f"{tap_url}/tables")[1])
    assert_valid(tables_schema, fetch(f"{tap_url}/tables?detail=min")[1])
    assert_valid(ivoa_schema(VOSI_AVAILABILITY), fetch(f"{tap_url}/availability")[1])


def test_record_header_identifier_curation_content(record: etree._Element,
                                                   database: Settings) -> None:
    assert record.findtext("identifier") == database.registry_identifier == "ivo://pzvo.example/tap"
    assert record.get("status") == "active"
    assert record.get("created") == record.get("updated") == database.registry_created
    assert record.findtext("title") and len(record.findtext("shortName")) <= 16
    assert record.findtext("curation/publisher") == "pzvo operators"
    assert record.findtext("curation/contact/name") == "pzvo operators"
    assert record.find("curation/contact/email") is None  # no address configured
    assert record.findall("content/subject") and "photo-z" in record.findtext("content/description")
    assert record.findtext("content/type") == "Catalog"
    assert record.findtext("content/contentLevel") == "Research"
    assert record.findtext("rights").startswith("public")  # the test service is public_read


def test_record_capabilities_are_those_of_the_capabilities_document(
        tap_url: str, record: etree._Element) -> None:
    """Standard IDs, TAPRegExt content (languages, formats, uploads, limits) and access URLs:
    one rendering for both documents, so a registry sees what a client sees."""
    caps = fetch(f"{tap_url}/capabilities")[1]
    in_caps = [etree.tostring(c, method="c14n", exclusive=True) for c in caps.findall("capability")]
    in_record = [etree.tostring(c, method="c14n", exclusive=True) for c in record.findall("capability")]
    assert len(in_record) == 5 and in_record == in_caps
    by_std = {c.get("standardID"): c for c in record.findall("capability")}
    tap = by_std["ivo://ivoa.net/std/TAP"]
    assert tap.get(XSI_TYPE) == "tr:TableAccess"
    assert tap.findtext("interface/accessURL") == tap_url
    assert {v.text for v in tap.findall("language/version")} == {"2.0", "2.1"}
    assert {u.get("ivo-id").rsplit("#", 1)[1] for u in tap.findall("uploadMethod")} == {
        "upload-inline", "upload-http", "upload-https"}
    assert tap.findtext("outputLimit/hard").isdigit()
    for std, path in (("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities"),
                      ("ivo://ivoa.net/std/VOSI#availability", "/availability"),
                      ("ivo://ivoa.net/std/VOSI#tables-1.1", "/tables")):
        assert by_std[std].findtext("interface/accessURL") == tap_url + path


def test_access_urls_follow_the_address_the_client_used(server: LiveServer) -> None:
    """Behind a proxy the record names the public address (Host as the front passes it)."""
    doc = fetch(f"{server.url}/tap/resource", Host="pz.example.org:8443")[1]
    urls = {u.text for u in doc.iter("accessURL")}
    assert "http://pz.example.org:8443/tap" in urls
    assert "http://pz.example.org:8443/tap/tables" in urls
    assert doc.findtext("content/referenceURL") == "http://pz.example.org:8443/tap"


def test_tableset_lists_every_published_table_as_the_tables_document(
        tap_url: str, record: etree._Element) -> None:
    tables = fetch(f"{tap_url}/tables")[1]
    assert ([etree.tostring(s, method="c14n", exclusive=True) for s in record.findall("tableset/schema")]
            == [etree.tostring(s, method="c14n", exclusive=True) for s in tables.findall("schema")])
    names = {t.findtext("name") for t in record.iter("table")}
    assert {"pz.specz_demo", "pz.photoz_demo", "tap_schema.columns", "bench.photoz"} <= names
    specz = next(t for t in record.iter("table") if t.findtext("name") == "pz.specz_demo")
    ra = next(c for c in specz.iter("column") if c.findtext("name") == "ra")
    assert ra.findtext("unit") == "deg" and ra.findtext("ucd") == "pos.eq.ra;meta.main"
    assert ra.find("dataType").get(XSI_TYPE) == "vs:VOTableType"
    assert ra.findtext("dataType") == "double" and ra.findtext("description")
    columns = next(t for t in record.iter("table") if t.findtext("name") == "tap_schema.columns")
    assert columns.findtext("foreignKey/targetTable") == "tap_schema.tables"
    assert columns.findtext("foreignKey/fkColumn/fromColumn") == "table_name"


def test_registry_settings_change_the_record(database: Settings,
                                             record_schema: etree.XMLSchema) -> None:
    from tests._services import app_for

    settings = dataclasses.replace(
        database, registry_identifier="ivo://linea.org.br/pzvo/tap", registry_publisher="LIneA",
        registry_contact_email="pzvo@example.org", registry_updated="2027-03-01T12:00:00Z",
        public_read=False)
    with LiveServer(app_for(settings)) as live:
        doc = fetch(f"{live.url}/tap/resource")[1]  # the record itself needs no token
    assert_valid(record_schema, doc)
    assert doc.findtext("identifier") == "ivo://linea.org.br/pzvo/tap"
    assert doc.findtext("curation/publisher") == doc.findtext("curation/contact/name") == "LIneA"
    assert doc.findtext("curation/contact/email") == "pzvo@example.org"
    assert (doc.get("created"), doc.get("updated")) == (settings.registry_created,
                                                        "2027-03-01T12:00:00Z")
    assert doc.findtext("rights").startswith("proprietary")


@pytest.mark.parametrize("name, value", [
    ("registry_identifier", "http://pz.example.org/tap"), ("registry_identifier", "ivo://x"),
    ("registry_identifier", "ivo://pz.example/tap?x=1"), ("registry_created", "2026-12-04"),
    ("registry_created", "2026-13-01T00:00:00Z"), ("registry_updated", "yesterday"),
])
def test_a_malformed_identifier_or_time_is_a_configuration_error(
        name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry would refuse the record long after the typo; the service refuses to start."""
    monkeypatch.setenv(f"PZVO_{name.upper()}", value)
    with pytest.raises(SettingsError, match=f"PZVO_{name.upper()}"):
        load_settings()
