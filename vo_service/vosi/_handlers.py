"""VOSI 1.1 endpoints under ``/tap``, and the service's VOResource record for registries
(``/tap/resource``), rendered from XML templates that share their capability and table parts.

Capabilities list exactly what the ADQL layer and the encoders implement (both export their
tables of features and formats), so the document cannot drift from the code.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import yaml
from flask import Blueprint, Response, abort, current_app, render_template, request

from vo_service.tap import TapError
from vo_service.tap.adql import SUPPORTED_FEATURES
from vo_service.tap.catalog import Catalog
from vo_service.tap.formats import OUTPUT_FORMATS
from vo_service.vosi._record import resource_record

log = logging.getLogger(__name__)

vosi = Blueprint("vosi", __name__, url_prefix="/tap")
EXAMPLES_FILE = Path(__file__).resolve().parent / "examples.yaml"

#: TAPRegExt identifiers of the standard output formats.
FORMAT_IVOIDS = {
    "votable": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
    "votable/b2": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
    "votable/td": "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
    "votable/b": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary",
}


def _xml(template: str, status: int = 200, **context: object) -> Response:
    return _document(template, context, status=status)


def _document(template: str, context: Mapping[str, object], *, status: int = 200,
              mimetype: str = "text/xml") -> Response:
    return Response(render_template(template, **context), status=status, mimetype=mimetype)


def _base() -> str:
    return request.host_url.rstrip("/") + "/tap"


def _capability_context() -> dict[str, object]:
    """What the capability elements are rendered from, in /capabilities and /resource alike."""
    service = current_app.extensions["pzvo.tap"]
    formats = [(f, FORMAT_IVOIDS.get(f.key)) for f in OUTPUT_FORMATS if f.key != "votable/b2"]
    return {"base": _base(), "features": SUPPORTED_FEATURES, "formats": formats,
            "settings": service.settings}


@vosi.route("/capabilities")
def capabilities() -> Response:
    return _document("capabilities.xml", _capability_context())


@vosi.route("/availability")
def availability() -> Response:
    service = current_app.extensions["pzvo.tap"]
    try:
        service.catalog(refresh=True)
        available, note = True, "The service is accepting queries."
    except TapError as exc:
        available, note = False, exc.message
    return _xml("availability.xml", available=available, note=note)


def _tableset(detail: str | None) -> tuple[Catalog, dict[str, list], dict[str, list]]:
    catalog = current_app.extensions["pzvo.tap"].catalog()
    by_schema: dict[str, list] = {}
    for table in catalog.tables:
        by_schema.setdefault(table.schema_name, []).append(table)
    keys: dict[str, list] = {}
    for fk in catalog.foreign_keys:
        keys.setdefault(fk.from_table, []).append(fk)
    return catalog, by_schema, keys


@vosi.route("/tables")
def tables() -> Response:
    detail = (request.args.get("detail") or "").lower()
    if detail not in ("", "min", "max"):
        abort(400, "detail must be min or max")
    catalog, by_schema, keys = _tableset(detail)
    return _xml("tables.xml", schemas=catalog.schemas, by_schema=by_schema, keys=keys,
                with_columns=detail != "min")


@vosi.route("/tables/<path:name>")
def table(name: str) -> Response:
    catalog, _, keys = _tableset(None)
    schema, _, bare = name.rpartition(".")
    found = catalog.find_table(bare, schema or None)
    if found is None:
        abort(404, f"No published table named {name}; GET /tap/tables lists them.")
    return _xml("table.xml", table=found, keys=keys.get(found.table_name, []))


@vosi.route("/resource")
def resource() -> Response:
    """The service's VOResource record (a VODataService CatalogService with the TAP capability
    and every published table), for a publishing registry to harvest: docs/federation.md."""
    catalog, by_schema, keys = _tableset(None)
    context = _capability_context()
    record = resource_record(current_app.extensions["pzvo.tap"].settings, reference_url=_base())
    return _document("resource.xml", {**context, "record": record, "schemas": catalog.schemas,
                                      "by_schema": by_schema, "keys": keys},
                     mimetype="application/xml")


def load_examples() -> list[dict[str, str]]:
    with EXAMPLES_FILE.open() as fh:
        return yaml.safe_load(fh)["examples"]


@vosi.route("/examples")
def examples() -> Response:
    body = render_template("examples.xhtml", examples=load_examples(), base=_base())
    return Response(body, mimetype="application/xhtml+xml")
