"""Provenance graphs out: W3C PROV (JSON, PROV-N, XML) through the ``prov`` package, a VOTable
with one table per ProvenanceDM class, and Graphviz (dot, SVG) in the W3C PROV shapes and colours.

The ``pzvo`` prefix maps to a namespace URI the caller chooses; the HTTP layer uses the graph
page's URL (``<service>/provenance/pzvo:``), so every identifier's URI opens its graph.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
from collections.abc import Callable, Sequence, Set
from typing import Any

from astropy.io.votable import from_table
from astropy.io.votable.tree import Resource, VOTableFile
from astropy.table import MaskedColumn, Table
from prov.model import PROV, ProvDocument, QualifiedName
from prov.serializers.provjson import encode_json_representation

from vo_service.provenance._exceptions import GraphTooLargeError, ProvenanceError
from vo_service.provenance._models import ProvGraph

#: Largest graph drawn by Graphviz (``dot`` needs seconds beyond this, and nobody reads it).
MAX_DRAWN_NODES = 1500

_AGENT_TYPES = {"Individual": PROV["Person"], "Organization": PROV["Organization"],
                "Software": PROV["SoftwareAgent"]}
_ATTR = re.compile(r"[^A-Za-z0-9_]+")


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _typed(value: str | None, value_type: str | None) -> object:
    if value is None:
        return None
    try:
        if value_type in ("short", "int", "long", "unsignedByte"):
            return int(value)
        if value_type in ("float", "double"):
            return float(value)
        if value_type == "boolean":
            return value.lower() in ("true", "1", "t", "yes")
    except ValueError:
        pass
    return value


def to_document(graph: ProvGraph, namespace_uri: str) -> ProvDocument:
    """The graph as a ``prov.model.ProvDocument``."""
    doc = ProvDocument()
    ns = doc.add_namespace("pzvo", namespace_uri)

    def qname(value: str) -> QualifiedName | str:
        prefix, _, local = value.partition(":")
        if prefix == "pzvo":
            return ns[local]
        if prefix == "prov":
            return PROV[local]
        return value

    def attrs(pairs: Sequence[tuple[QualifiedName, Any]]) -> list[tuple[QualifiedName, Any]]:
        return [(k, v) for k, v in pairs if v is not None]

    params: dict[str, list[dict]] = {}
    for p in graph.parameter:
        params.setdefault(p["activity_id"], []).append(p)

    for e in graph.entity:
        doc.entity(ns[e["id"][5:]], attrs([
            (PROV["label"], e["name"]), (PROV["type"], qname(e["type"]) if e["type"] else None),
            (PROV["location"], e["location"]), (ns["checksum"], e["checksum"]),
            (ns["contentType"], e["content_type"]), (ns["comment"], e["comment"]),
            (ns["kind"], e["description_name"])]))
    for a in graph.activity:
        method = a["description_name"]
        if method and a["description_version"]:
            method = f"{method} {a['description_version']}"
        pairs = [(PROV["label"], a["name"]), (ns["status"], a["status"]),
                 (ns["method"], method), (ns["software"], a["software_name"]),
                 (ns["softwareVersion"], a["software_version"]), (ns["host"], a["host"]),
                 (ns["comment"], a["comment"])]
        pairs += [(ns["param_" + _ATTR.sub("_", p["name"])], _typed(p["param_value"], p["value_type"]))
                  for p in params.get(a["id"], ())]
        doc.activity(ns[a["id"][5:]], _time(a["start_time"]), _time(a["end_time"]), attrs(pairs))
    for g in graph.agent:
        doc.agent(ns[g["id"][5:]], attrs([
            (PROV["label"], g["name"]), (PROV["type"], _AGENT_TYPES.get(g["type"])),
            (ns["email"], g["email"]), (ns["affiliation"], g["affiliation"]),
            (ns["url"], g["url"]), (ns["comment"], g["comment"])]))

    def role(r: dict) -> list[tuple[QualifiedName, Any]] | None:
        return [(PROV["role"], r["role"])] if r.get("role") else None

    for u in graph.used:
        doc.used(qname(u["activity_id"]), qname(u["entity_id"]), _time(u["usage_time"]),
                 other_attributes=role(u))
    for g in graph.wasgeneratedby:
        doc.wasGeneratedBy(qname(g["entity_id"]), qname(g["activity_id"]),
                           _time(g["generation_time"]), other_attributes=role(g))
    for d in graph.wasderivedfrom:
        doc.wasDerivedFrom(qname(d["generated_entity_id"]), qname(d["used_entity_id"]),
                           qname(d["activity_id"]) if d["activity_id"] else None)
    for i in graph.wasinformedby:
        doc.wasInformedBy(qname(i["informed_activity_id"]), qname(i["informant_activity_id"]))
    for w in graph.wasassociatedwith:
        doc.wasAssociatedWith(qname(w["activity_id"]), qname(w["agent_id"]),
                              other_attributes=role(w))
    for t in graph.wasattributedto:
        doc.wasAttributedTo(qname(t["entity_id"]), qname(t["agent_id"]), other_attributes=role(t))
    for h in graph.hadmember:
        doc.hadMember(qname(h["collection_id"]), qname(h["entity_id"]))
    for v in graph.wasinvalidatedby:
        doc.wasInvalidatedBy(qname(v["entity_id"]), qname(v["activity_id"]),
                             _time(v["invalidation_time"]), other_attributes=role(v))
    return doc


def to_prov_json(doc: ProvDocument) -> bytes:
    """PROV-JSON written by the ``prov`` package (the reference for :func:`graph_to_prov_json`)."""
    text = doc.serialize(format="json")
    assert text is not None, "serialize() without a destination returns the document"
    return text.encode("utf-8")


def graph_to_prov_json(graph: ProvGraph, namespace_uri: str) -> bytes:
    """PROV-JSON written straight from the graph's rows, without building ``prov`` objects.

    Why not the ``prov`` package here: for the 998-node, 2,653-relation benchmark graph
    (benchmarks/bench_provenance.py) building the ``ProvDocument`` took 47 ms and its JSON
    serializer 70 ms, more than half of the 200 ms budget, against a few ms for this writer.
    The output is the same document: it reads back into a ``prov.model.ProvDocument`` equal to
    :func:`to_document`'s (tests/provenance/test_prov_http.py), and attribute values are
    encoded by ``prov``'s own ``encode_json_representation``.
    """

    def qn(value: str) -> dict[str, str]:
        return {"$": value, "type": "xsd:QName"}

    def put(out: dict, key: str, value: object) -> None:
        if value is not None:
            out[key] = value

    params: dict[str, list[dict]] = {}
    for p in graph.parameter:
        params.setdefault(p["activity_id"], []).append(p)
    doc: dict[str, object] = {"prefix": {"pzvo": namespace_uri}}
    if graph.entity:
        entities = doc["entity"] = {}
        for e in graph.entity:
            rec: dict[str, object] = {}
            put(rec, "prov:label", e["name"])
            put(rec, "prov:type", qn(e["type"]) if e["type"] and ":" in e["type"] else e["type"])
            put(rec, "prov:location", e["location"])
            put(rec, "pzvo:checksum", e["checksum"])
            put(rec, "pzvo:contentType", e["content_type"])
            put(rec, "pzvo:comment", e["comment"])
            put(rec, "pzvo:kind", e["description_name"])
            entities[e["id"]] = rec
    if graph.activity:
        activities = doc["activity"] = {}
        for a in graph.activity:
            rec = {}
            put(rec, "prov:startTime", a["start_time"])
            put(rec, "prov:endTime", a["end_time"])
            method = a["description_name"]
            if method and a["description_version"]:
                method = f"{method} {a['description_version']}"
            put(rec, "prov:label", a["name"])
            put(rec, "pzvo:status", a["status"])
            put(rec, "pzvo:method", method)
            put(rec, "pzvo:software", a["software_name"])
            put(rec, "pzvo:softwareVersion", a["software_version"])
            put(rec, "pzvo:host", a["host"])
            put(rec, "pzvo:comment", a["comment"])
            for p in params.get(a["id"], ()):
                value = _typed(p["param_value"], p["value_type"])
                if value is not None:
                    rec["pzvo:param_" + _ATTR.sub("_", p["name"])] = encode_json_representation(value)
            activities[a["id"]] = rec
    if graph.agent:
        agents = doc["agent"] = {}
        for g in graph.agent:
            rec = {}
            put(rec, "prov:label", g["name"])
            kind = _AGENT_TYPES.get(g["type"])
            put(rec, "prov:type", qn(f"prov:{kind.localpart}") if kind else None)
            for col, attr in (("email", "email"), ("affiliation", "affiliation"), ("url", "url"),
                              ("comment", "comment")):
                put(rec, f"pzvo:{attr}", g[col])
            agents[g["id"]] = rec
    counter = 0

    def relations(name: str, rows: list[dict], fields: list[tuple[str, str]], time_col: str | None,
                  with_role: bool) -> None:
        nonlocal counter
        if not rows:
            return
        out = doc[name] = {}
        for r in rows:
            rec: dict[str, object] = {}
            for attr, col in fields:
                put(rec, attr, r[col])
            if time_col:
                put(rec, "prov:time", r[time_col])
            if with_role:
                put(rec, "prov:role", r.get("role") or None)
            counter += 1
            out[f"_:id{counter}"] = rec

    relations("used", graph.used, [("prov:activity", "activity_id"), ("prov:entity", "entity_id")],
              "usage_time", True)
    relations("wasGeneratedBy", graph.wasgeneratedby,
              [("prov:entity", "entity_id"), ("prov:activity", "activity_id")], "generation_time", True)
    relations("wasDerivedFrom", graph.wasderivedfrom,
              [("prov:generatedEntity", "generated_entity_id"), ("prov:usedEntity", "used_entity_id"),
               ("prov:activity", "activity_id")], None, False)
    relations("wasInformedBy", graph.wasinformedby,
              [("prov:informed", "informed_activity_id"), ("prov:informant", "informant_activity_id")],
              None, False)
    relations("wasAssociatedWith", graph.wasassociatedwith,
              [("prov:activity", "activity_id"), ("prov:agent", "agent_id")], None, True)
    relations("wasAttributedTo", graph.wasattributedto,
              [("prov:entity", "entity_id"), ("prov:agent", "agent_id")], None, True)
    relations("hadMember", graph.hadmember,
              [("prov:collection", "collection_id"), ("prov:entity", "entity_id")], None, False)
    relations("wasInvalidatedBy", graph.wasinvalidatedby,
              [("prov:entity", "entity_id"), ("prov:activity", "activity_id")], "invalidation_time", True)
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def to_prov_n(doc: ProvDocument) -> bytes:
    return doc.get_provn().encode("utf-8")


def to_prov_xml(doc: ProvDocument) -> bytes:
    buf = io.BytesIO()
    doc.serialize(buf, format="xml")
    return buf.getvalue()


def to_dot(doc: ProvDocument, *, seeds: Set[str] = frozenset(), namespace_uri: str = "") -> str:
    """Graphviz source in W3C PROV style: entities yellow ellipses, activities blue boxes,
    agents orange houses, arrows pointing to the past (drawn bottom to top); seeds in bold."""
    from prov.dot import prov_to_dot  # noqa: PLC0415 - prov.dot: pydot, 0.3 s; only dot/SVG output needs it

    dot = prov_to_dot(doc, use_labels=True, direction="BT", show_nary=False,
                      show_element_attributes=False, show_relation_attributes=False)
    seed_urls = {f'"{namespace_uri}{s[5:]}"' for s in seeds}
    for node in dot.get_nodes():
        url = node.get("URL")
        if url is None:
            continue
        node.set("tooltip", url.replace(namespace_uri, "pzvo:", 1))
        node.set("fontname", "DejaVu Sans")
        node.set("target", "_top")
        if url in seed_urls:
            node.set("penwidth", "3")
            node.set("color", "#B22222")
    for edge in dot.get_edges():
        edge.set("fontname", "DejaVu Sans")
    return dot.to_string()


def to_svg(dot_source: str, timeout_s: float = 30.0) -> bytes:
    """Render dot source with Graphviz's ``dot`` (Debian ``graphviz``)."""
    try:
        proc = subprocess.run(["dot", "-Tsvg"], input=dot_source.encode("utf-8"),
                              capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise ProvenanceError("SVG needs Graphviz's dot (Debian package graphviz)") from exc
    if proc.returncode != 0:
        raise ProvenanceError(f"Graphviz failed: {proc.stderr.decode(errors='replace')[:300]}")
    return proc.stdout


def to_votable(graph: ProvGraph) -> bytes:
    """PROV-VOTABLE: one RESOURCE, one TABLE per ProvenanceDM class present in the graph,
    named and with columns as the ProvTAP tables (``provenance.<class>``)."""
    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    for cls in ProvGraph.NODE_CLASSES + ProvGraph.RELATION_CLASSES + ("parameter",):
        rows = getattr(graph, cls)
        if not rows:
            continue
        table = Table()
        for col in rows[0]:
            values = [r[col] for r in rows]
            if col == "id" and isinstance(values[0], int):
                table[col] = values
            else:
                table[col] = MaskedColumn([("" if v is None else str(v)) for v in values],
                                          mask=[v is None for v in values], dtype=str)
        vt = from_table(table).get_first_table()
        vt.name = cls
        vt.ID = cls
        resource.tables.append(vt)
    buf = io.BytesIO()
    votable.to_xml(buf)
    return buf.getvalue()


#: RESPONSEFORMAT value (upper case) -> (canonical name, MIME type); aliases included.
FORMATS: dict[str, tuple[str, str]] = {
    "PROV-JSON": ("PROV-JSON", "application/json"),
    "APPLICATION/JSON": ("PROV-JSON", "application/json"),
    "JSON": ("PROV-JSON", "application/json"),
    "PROV-N": ("PROV-N", "text/provenance-notation; charset=utf-8"),
    "TEXT/PROVENANCE-NOTATION": ("PROV-N", "text/provenance-notation; charset=utf-8"),
    "PROV-XML": ("PROV-XML", "application/xml"),
    "APPLICATION/XML": ("PROV-XML", "application/xml"),
    "TEXT/XML": ("PROV-XML", "application/xml"),
    "PROV-VOTABLE": ("PROV-VOTABLE", "application/x-votable+xml"),
    "VOTABLE": ("PROV-VOTABLE", "application/x-votable+xml"),
    "APPLICATION/X-VOTABLE+XML": ("PROV-VOTABLE", "application/x-votable+xml"),
    "SVG": ("SVG", "image/svg+xml"),
    "IMAGE/SVG+XML": ("SVG", "image/svg+xml"),
    "GRAPHVIZ": ("GRAPHVIZ", "text/vnd.graphviz; charset=utf-8"),
    "DOT": ("GRAPHVIZ", "text/vnd.graphviz; charset=utf-8"),
    "TEXT/VND.GRAPHVIZ": ("GRAPHVIZ", "text/vnd.graphviz; charset=utf-8"),
}


def serialize(graph: ProvGraph, fmt: str, namespace_uri: str) -> bytes:
    """Encode ``graph`` in the canonical format ``fmt`` (a value of :data:`FORMATS`)."""
    if fmt == "PROV-VOTABLE":
        return to_votable(graph)
    if fmt == "PROV-JSON":
        return graph_to_prov_json(graph, namespace_uri)
    if fmt in ("SVG", "GRAPHVIZ") and graph.node_count > MAX_DRAWN_NODES:
        raise GraphTooLargeError(
            f"the graph has {graph.node_count} nodes; {fmt} is drawn for at most "
            f"{MAX_DRAWN_NODES}: ask for a smaller DEPTH or a PROV format")
    doc = to_document(graph, namespace_uri)
    writers: dict[str, Callable[[ProvDocument], bytes]] = {
        "PROV-JSON": to_prov_json, "PROV-N": to_prov_n, "PROV-XML": to_prov_xml}
    if fmt in writers:
        return writers[fmt](doc)
    dot = to_dot(doc, seeds=set(graph.request.ids), namespace_uri=namespace_uri)
    return dot.encode("utf-8") if fmt == "GRAPHVIZ" else to_svg(dot)


# --- for the graph page ------------------------------------------------------------------------

_HIDDEN = {"id", "description_version", "activitydescription_id", "entitydescription_id"}


def node_summaries(graph: ProvGraph) -> dict[str, dict]:
    """id -> {"kind", "label", "attributes": [[name, value], ...]} of every node, for display."""
    params: dict[str, list[dict]] = {}
    for p in graph.parameter:
        params.setdefault(p["activity_id"], []).append(p)
    out: dict[str, dict] = {}
    for kind in ProvGraph.NODE_CLASSES:
        for row in getattr(graph, kind):
            attrs = [[k, v] for k, v in row.items() if k not in _HIDDEN and v not in (None, "")]
            for p in params.get(row["id"], ()):
                unit = f" {p['unit']}" if p.get("unit") else ""
                attrs.append([f"parameter {p['name']}", f"{p['param_value']}{unit}"])
            out[row["id"]] = {"kind": kind, "label": row.get("name") or row["id"],
                              "attributes": attrs}
    return out


def adql_queries(graph: ProvGraph, max_ids: int = 500) -> list[tuple[str, str]]:
    """(class, ADQL) pairs that return, through /tap/sync, exactly the graph's records."""
    queries = []
    for cls in ProvGraph.NODE_CLASSES + ProvGraph.RELATION_CLASSES + ("parameter",):
        rows = getattr(graph, cls)
        if not rows or len(rows) > max_ids:
            continue
        if cls in ProvGraph.NODE_CLASSES:
            ids = ", ".join("'" + r["id"].replace("'", "''") + "'" for r in rows)
        else:
            ids = ", ".join(str(int(r["id"])) for r in rows)
        queries.append((cls, f"SELECT * FROM provenance.{cls} WHERE id IN ({ids})"))
    return queries
