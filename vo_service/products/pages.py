"""The product browser: ``/`` lists products, ``/products/<name>`` shows one, ``/pipeline-runs``
lists the photo-z pipeline's runs with their progress.

Server-rendered HTML (Jinja templates, no resource from another host); the data comes from the
same ProductRegistry and TapService the API uses, so the page shows what ADQL returns.
"""
from __future__ import annotations

from datetime import UTC
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, render_template, request

from vo_service.auth import AuthError
from vo_service.auth.web import current_reader
from vo_service.products._models import PRODUCT_TYPES
from vo_service.products._runs import PipelineRunStore
from vo_service.products._service import ProductNotFoundError, ProductRegistry
from vo_service.tap import QueryParams, TapService

pages = Blueprint("product_pages", __name__)
PREVIEW_ROWS = 10
RUNS_PER_PAGE = 50
PRODUCTS_PER_PAGE = 50


def _runs() -> PipelineRunStore:
    return current_app.extensions["pzvo.runs"]


def _registry() -> ProductRegistry:
    return current_app.extensions["pzvo.products"]


@pages.errorhandler(AuthError)
def _auth(exc: AuthError) -> tuple[str, int]:
    return render_template("products/error.html", message=exc.message), exc.http_status


#: Pages beyond this are empty anyway; the bound keeps OFFSET within PostgreSQL's bigint.
MAX_PAGE = 100_000


def _page_number() -> int:
    return min(MAX_PAGE, max(1, request.args.get("page", 1, type=int) or 1))


@pages.get("/")
def product_list() -> str:
    current_reader()
    args = request.args
    if any("\x00" in value for value in args.values()):
        abort(400, "The filters must not contain NUL characters.")
    official = {"yes": True, "no": False}.get(args.get("official", ""))
    page = _page_number()
    products, total = _registry().list(
        product_type=args.get("type") or None, release=args.get("release") or None,
        official=official, owner=args.get("owner") or None, search=args.get("q") or None,
        page=page, page_size=PRODUCTS_PER_PAGE)
    return render_template("products/list.html", products=products, total=total, page=page,
                           types=PRODUCT_TYPES, args=args, tap=request.host_url.rstrip("/") + "/tap",
                           pages=_page_links(page, total, PRODUCTS_PER_PAGE))


def _page_links(page: int, total: int, per_page: int) -> dict[str, str]:
    """Query strings of the previous and next pages, keeping the other filters."""
    kept = {k: v for k, v in request.args.items() if k != "page"}
    links = {}
    if page > 1:
        links["previous"] = urlencode({**kept, "page": page - 1})
    if total > page * per_page:
        links["next"] = urlencode({**kept, "page": page + 1})
    return links


@pages.get("/products/<name>")
def product_page(name: str) -> str:
    current_reader()
    try:
        product = _registry().get(name, request.args.get("version", type=int), user=None)
    except ProductNotFoundError:
        abort(404)
    preview = _preview(product.table_name) if product.table_name else None
    versions = _registry().versions(name)
    plots = [f for f in product.files if f.role == "auxiliary" and f.file_name.lower().endswith(".png")]
    return render_template("products/product.html", p=product, preview=preview, versions=versions,
                           plots=plots, tap=request.host_url.rstrip("/") + "/tap")


@pages.get("/pipeline-runs")
def pipeline_runs() -> str:
    current_reader()
    page = _page_number()
    runs, total = _runs().list(page=page, page_size=RUNS_PER_PAGE)
    for run in runs:
        for key in ("started", "finished"):
            run[f"{key}_utc"] = run[key].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if run[key] else ""
    return render_template("products/runs.html", runs=runs, total=total, page=page,
                           pages=_page_links(page, total, RUNS_PER_PAGE))


def _preview(table_name: str) -> tuple[list[str], list[list[object]]]:
    """The first rows, through the same query path as TAP."""
    tap: TapService = current_app.extensions["pzvo.tap"]
    result = tap.stream(QueryParams.adql(f"SELECT TOP {PREVIEW_ROWS} * FROM {table_name}",
                                         maxrec=PREVIEW_ROWS))
    names = [f.name for f in result.fields]
    return names, [[_fmt(v) for v in row] for row in result.rows()]


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
