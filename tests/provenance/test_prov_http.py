"""/prov through HTTP: formats that read back into prov.model.ProvDocument, traversal options,
and DALI errors (400/404, never 500) for bad input."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import requests
from astropy.io.votable import parse
from prov.model import ProvDocument
from sqlalchemy import event

from vo_service.provenance import (
    Entity,
    GraphRequest,
    ProvenanceService,
    record_activity,
    to_document,
    user_agent,
)

PHOTOZ = "pzvo:table/pz.photoz_demo"
SPECZ = "pzvo:table/pz.specz_demo"


def get(prov_url: str, **params: object) -> requests.Response:
    return requests.get(prov_url + "/prov", params=params, timeout=60)


def _chain(owner, uid: str) -> list[str]:
    """source -> a1 -> t1 -> a2 -> t2, with a collection holding t1 and t2; returns the ids."""
    src = Entity(id=f"pzvo:test/chain-src-{uid}", name="chain source")
    t1, t2, coll = (f"pzvo:table/test.c1_{uid}", f"pzvo:table/test.c2_{uid}",
                    f"pzvo:collection/chain-{uid}")
    who = user_agent(f"bob{uid}")
    with record_activity(owner, name="step 1", agent=who, used=[(src, "raw")]) as a1:
        a1.generate(t1, name="c1", derived_from=[src.id])
        a1.generate(coll, name="chain collection", type="prov:Collection", members=[t1])
    with record_activity(owner, name="step 2", agent=who, used=[(t1, "input")],
                         informed_by=[a1.id]) as a2:
        a2.generate(t2, name="c2", derived_from=[t1])
        a2.add_members(coll, [t2])
    return [src.id, a1.id, t1, a2.id, t2, coll, who.id]


@pytest.mark.parametrize("fmt", ["PROV-JSON", "PROV-XML"])
def test_output_reads_back_into_the_same_prov_document(prov_url, owner, fmt) -> None:
    r = get(prov_url, ID=PHOTOZ, DEPTH="ALL", AGENT="true", MEMBERS="true", RESPONSEFORMAT=fmt)
    assert r.status_code == 200
    back = ProvDocument.deserialize(content=r.content if fmt == "PROV-XML" else r.text,
                                    format="json" if fmt == "PROV-JSON" else "xml")
    graph = ProvenanceService(engine=owner).graph(GraphRequest(
        ids=[PHOTOZ], depth=None, agents=True, members=True))
    expected = to_document(graph, prov_url + "/provenance/pzvo:")
    assert back == expected
    assert len(back.get_records()) == len(expected.get_records()) > 10
    # and a changed document would not compare equal
    expected.entity(expected.valid_qualified_name("pzvo:test/extra"))
    assert back != expected


def test_prov_json_of_the_demo_says_where_the_photoz_came_from(prov_url) -> None:
    doc = get(prov_url, ID=PHOTOZ, DEPTH="ALL").json()
    assert PHOTOZ in doc["entity"] and SPECZ in doc["entity"]
    derived = {(d["prov:generatedEntity"], d["prov:usedEntity"]) for d in doc["wasDerivedFrom"].values()}
    assert (PHOTOZ, SPECZ) in derived
    act = next(a for a in doc["activity"].values() if a["prov:label"] == "demo kNN photo-z estimation")
    assert act["pzvo:software"] == "pzvo" and act["pzvo:param_k"] == {"$": "20", "type": "xsd:int"}
    assert doc["prefix"]["pzvo"] == prov_url + "/provenance/pzvo:"


def test_prov_n_and_graphviz_and_svg(prov_url) -> None:
    provn = get(prov_url, ID=PHOTOZ, DEPTH=2, RESPONSEFORMAT="PROV-N")
    assert provn.headers["Content-Type"] == "text/provenance-notation; charset=utf-8"
    assert provn.text.startswith("document") and f"entity({PHOTOZ}" in provn.text
    dot = get(prov_url, ID=PHOTOZ, DEPTH=2, RESPONSEFORMAT="GRAPHVIZ")
    assert dot.text.startswith("digraph") and "#FFFC87" in dot.text and "#9FB1FC" in dot.text
    svg = get(prov_url, ID=PHOTOZ, DEPTH=2, AGENT="true", RESPONSEFORMAT="SVG")
    assert svg.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    nodes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    json_doc = get(prov_url, ID=PHOTOZ, DEPTH=2, AGENT="true").json()
    expected = sum(len(json_doc.get(k, {})) for k in ("entity", "activity", "agent"))
    assert len(nodes) == expected
    shapes = {(child.tag.rsplit("}", 1)[1], child.get("fill")) for g in nodes for child in g.iter()
              if child.get("fill") not in (None, "none", "black", "#333333")}
    assert ("ellipse", "#fffc87") in shapes and ("polygon", "#9fb1fc") in shapes
    assert ("polygon", "#fed37f") in shapes


def test_prov_votable_has_one_table_per_class(prov_url) -> None:
    r = get(prov_url, ID=PHOTOZ, DEPTH=2, AGENT="true", RESPONSEFORMAT="PROV-VOTABLE")
    assert r.headers["Content-Type"].startswith("application/x-votable+xml")
    tables = {t.name: t.to_table() for t in parse(io.BytesIO(r.content)).iter_tables()}
    assert {"entity", "activity", "agent", "used", "wasgeneratedby", "parameter"} <= set(tables)
    assert PHOTOZ in list(tables["entity"]["id"])


def test_depth_direction_members_agent(prov_url, owner, uid) -> None:
    src, a1, t1, a2, t2, coll, who = _chain(owner, uid)

    def nodes(**params: object) -> set[str]:
        doc = get(prov_url, **params).json()
        return {k for c in ("entity", "activity", "agent") for k in doc.get(c, {})}

    assert nodes(ID=t2, DEPTH=0) == {t2}
    assert nodes(ID=t2, DEPTH=1) == {t2, a2, t1}  # generated by a2, derived from t1
    assert nodes(ID=t2, DEPTH="ALL") == {t2, a2, t1, a1, src}
    assert nodes(ID=t2, DEPTH="ALL", AGENT="true") == {t2, a2, t1, a1, src, who}
    assert nodes(ID=src, DEPTH="ALL", DIRECTION="FORTH") == {src, a1, t1, coll, a2, t2}
    assert nodes(ID=coll, DEPTH=1) == {coll, a1}
    assert nodes(ID=coll, DEPTH=1, MEMBERS="true") == {coll, a1, t1, t2}
    assert nodes(ID=[t1, t2], DEPTH=0) == {t1, t2}
    assert nodes(ID=who, DEPTH=1, direction="back") == {who, a1, a2}
    # parameter names are case-insensitive, POST works too
    r = requests.post(prov_url + "/prov", data={"id": t2, "depth": "1"}, timeout=30)
    assert set(r.json()["entity"]) == {t2, t1}


def test_traversal_is_one_query(owner, uid) -> None:
    ids = _chain(owner, uid)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(owner, "before_cursor_execute", count)
    try:
        graph = ProvenanceService(engine=owner).graph(GraphRequest(ids=[ids[4]], depth=None,
                                                                   agents=True))
    finally:
        event.remove(owner, "before_cursor_execute", count)
    assert graph.node_count == 6
    assert len([s for s in statements if "provenance" in s]) == 1
    assert "WITH RECURSIVE" in statements[-1]


@pytest.mark.parametrize("params, status, message", [
    ({"ID": "pzvo:table/pz.no_such_table"}, 404, "no entity"),
    ({"ID": PHOTOZ, "DEPTH": "-1"}, 400, "DEPTH"),
    ({"ID": PHOTOZ, "DEPTH": "deep"}, 400, "DEPTH"),
    ({"ID": PHOTOZ, "RESPONSEFORMAT": "image/gif"}, 400, "RESPONSEFORMAT"),
    ({"ID": PHOTOZ, "DIRECTION": "SIDEWAYS"}, 400, "DIRECTION"),
    ({"ID": PHOTOZ, "MEMBERS": "maybe"}, 400, "MEMBERS"),
    ({"DEPTH": "1"}, 400, "ID is required"),
    ({"ID": "http://elsewhere/x"}, 400, "invalid provenance identifier"),
    ({"ID": "pzvo:bad id"}, 400, "invalid provenance identifier"),
])
def test_bad_input_gets_a_dali_error(prov_url, params, status, message) -> None:
    r = get(prov_url, **params)
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("application/x-votable+xml")
    root = ET.fromstring(r.content)
    info = next(e for e in root.iter() if e.tag.endswith("INFO") and e.get("name") == "QUERY_STATUS")
    assert info.get("value") == "ERROR" and message in info.text
