"""HTTP side of provenance: ``/prov`` (ProvSAP-style) and the graph browser ``/provenance/<id>``.

Handlers parse, call :class:`ProvenanceService`, and format; every error from ``/prov`` is a
DALI error document (VOTable, QUERY_STATUS=ERROR) with 400 or 404, the page answers in HTML.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from vo_service.auth import AuthError
from vo_service.auth.web import current_reader
from vo_service.provenance._exceptions import ProvenanceError
from vo_service.provenance._models import TABLE_TYPE, GraphRequest, check_id
from vo_service.provenance._params import (
    mime_type,
    parse_depth,
    parse_direction,
    parse_provsap,
)
from vo_service.provenance._serialize import (
    FORMATS,
    MAX_DRAWN_NODES,
    adql_queries,
    node_summaries,
    serialize,
)
from vo_service.provenance._service import ProvenanceService
from vo_service.tap import dali_http_error
from vo_service.tap.formats import error_document

log = logging.getLogger(__name__)

provenance = Blueprint("provenance", __name__)
VOTABLE_MIME = "application/x-votable+xml"
PAGE_FORMATS = ("PROV-JSON", "PROV-N", "PROV-XML", "PROV-VOTABLE", "SVG", "GRAPHVIZ")


def provenance_service() -> ProvenanceService:
    """The app's service, reading as the read-only role (built by the composition root)."""
    return current_app.extensions["pzvo.provenance"]


def namespace_uri() -> str:
    """Where ``pzvo:`` identifiers resolve: this service's graph page."""
    return request.host_url.rstrip("/") + "/provenance/pzvo:"


def _dali_error(message: str, status: int) -> Response:
    g.log_extra = {**getattr(g, "log_extra", {}), "error": message}
    return Response(error_document(message), status=status, mimetype=VOTABLE_MIME)


def _is_api() -> bool:
    return request.path == "/prov" or request.path.startswith("/prov/")


@provenance.errorhandler(ProvenanceError)
def _provenance_error(exc: ProvenanceError) -> Response:
    status = exc.http_status if exc.http_status in (400, 404) else 400
    if _is_api():
        return _dali_error(exc.message, status)
    return Response(render_template("provenance_error.html", message=exc.message, status=status),
                    status=status, mimetype="text/html")


@provenance.errorhandler(AuthError)
def _auth_error(exc: AuthError) -> Response:
    """Provenance is read like TAP: anonymous readers only where reads are public."""
    if _is_api():
        response = _dali_error(exc.message, exc.http_status)
    else:
        response = Response(render_template("provenance_error.html", message=exc.message,
                                            status=exc.http_status),
                            status=exc.http_status, mimetype="text/html")
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pzvo"'
    return response


@provenance.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> BaseResponse:
    if _is_api():
        return dali_http_error(exc)
    return exc.get_response()


@provenance.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error in a provenance request")
    message = f"Internal error ({type(exc).__name__}); the service log has details."
    if _is_api():
        return _dali_error(message, 500)
    return Response(render_template("provenance_error.html", message=message, status=500),
                    status=500, mimetype="text/html")


@provenance.route("/prov", methods=["GET", "POST"], strict_slashes=False)
def prov() -> Response:
    """ProvSAP-style access: ID (repeatable), DEPTH, DIRECTION, MEMBERS, AGENT, RESPONSEFORMAT."""
    current_reader()
    params = request.args.to_dict(flat=False)
    for name, values in request.form.to_dict(flat=False).items():
        params.setdefault(name, []).extend(values)
    req, fmt = parse_provsap(params)
    graph = provenance_service().graph(req)
    body = serialize(graph, fmt, namespace_uri())
    g.log_extra = {"ids": req.ids, "depth": req.depth if req.depth is not None else "ALL",
                   "direction": req.direction, "format": fmt, "nodes": graph.node_count}
    return Response(body, content_type=mime_type(fmt))


_ISLAND_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def json_island(value: object) -> Markup:
    """JSON for a ``<script type="application/json">`` element, safe whatever the strings hold.

    Escaping ``</`` alone is not enough: ``<!--<script>`` in a stored text switches the HTML
    parser into a state where the island's ``</script>`` no longer closes it.  With ``<``, ``>``
    and ``&`` written as ``\\u003c`` etc. no markup can appear, and JSON.parse reads the same text.
    """
    return Markup(json.dumps(value, default=str).translate(_ISLAND_ESCAPES))


def _flag(name: str, default: bool) -> bool:
    """A page checkbox: the form sends a hidden ``false`` then, when ticked, ``true``."""
    values = request.args.getlist(name)
    if not values:
        return default
    return values[-1].strip().lower() in ("1", "true", "yes", "on")


@provenance.route("/provenance/", strict_slashes=False)
def index() -> str:
    """Recorded products (table entities), newest first, each linked to its graph."""
    current_reader()
    rows = provenance_service().recent_entities(entity_type=TABLE_TYPE)
    return render_template("provenance_index.html", entities=rows)


@provenance.route("/provenance/<path:record_id>")
def page(record_id: str) -> str:
    """The graph browser centred on one entity, activity or agent."""
    current_reader()
    check_id(record_id)
    depth_text = request.args.get("depth", "2")
    depth = parse_depth(depth_text)
    direction = parse_direction(request.args.get("direction", "BACK"))
    agents = _flag("agent", True)
    members = _flag("members", True)
    req = GraphRequest(ids=[record_id], depth=depth, direction=direction, members=members,
                       agents=agents)
    graph = provenance_service().graph(req)
    nodes = node_summaries(graph)
    drawn = graph.node_count <= MAX_DRAWN_NODES
    svg = ""
    if drawn:
        svg_doc = serialize(graph, "SVG", namespace_uri()).decode("utf-8")
        svg = svg_doc[svg_doc.index("<svg"):]
    prov_params = {"ID": record_id, "DEPTH": "ALL" if depth is None else str(depth),
                   "DIRECTION": direction, "AGENT": str(agents).lower(),
                   "MEMBERS": str(members).lower()}
    downloads = [(fmt, url_for("provenance.prov") + "?" + urlencode({**prov_params,
                                                                      "RESPONSEFORMAT": fmt}))
                 for fmt in PAGE_FORMATS]
    queries = [(cls, adql, "/tap/sync?" + urlencode({"REQUEST": "doQuery", "LANG": "ADQL",
                                                     "QUERY": adql}))
               for cls, adql in adql_queries(graph)]
    centre = nodes[record_id]
    product = None
    entity_row = next((e for e in graph.entity if e["id"] == record_id), None)
    if entity_row and entity_row["type"] == TABLE_TYPE and entity_row["location"]:
        loc = entity_row["location"]
        product = {"table": loc, "metadata": f"/tap/tables/{loc}",
                   "query": "/tap/sync?" + urlencode({"REQUEST": "doQuery", "LANG": "ADQL",
                                                      "QUERY": f"SELECT TOP 100 * FROM {loc}"})}
        registered = current_app.extensions["pzvo.products"].find_by_table(loc)
        if registered is not None:
            product["page"] = f"/products/{registered.name}?version={registered.version}"
            product["label"] = f"{registered.display_name} (v{registered.version})"
    g.log_extra = {"ids": [record_id], "nodes": graph.node_count}
    return render_template(
        "provenance.html", record_id=record_id, centre=centre, svg=Markup(svg), drawn=drawn,
        max_drawn=MAX_DRAWN_NODES, node_count=graph.node_count, nodes_json=json_island(nodes),
        depth_text="ALL" if depth is None else str(depth), direction=direction, agents=agents,
        members=members, downloads=downloads, queries=queries, product=product,
        page_base=url_for("provenance.index"), formats=sorted({c for c, _ in FORMATS.values()}))
