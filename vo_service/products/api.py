"""REST API under ``/api`` (flask-smorest): products, their files and tables.

HTTP only: parse, call :class:`ProductRegistry`, format.  Every error is an RFC 7807 problem
document (``application/problem+json``), and the OpenAPI 3 document at ``/api/openapi.json``
describes exactly these responses (schemathesis checks it in the test suite).
"""
from __future__ import annotations

import json
import tempfile
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import Response, current_app, request, send_file
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from flask_smorest.spec import prepare_response
from werkzeug.exceptions import HTTPException

from vo_service.auth import AuthError, AuthService
from vo_service.auth.web import current_reader, current_user
from vo_service.core.hangup import QueryGuard
from vo_service.products._download import download_transform
from vo_service.products._models import PRODUCT_TYPES, Product, ProductLimits, ProductType, RegistrationRequest
from vo_service.products._runs import PipelineRunStore, RunNotFoundError
from vo_service.products._schemas import (
    FileQuerySchema,
    PipelineRunListSchema,
    PipelineRunQuerySchema,
    PipelineRunSchema,
    ProblemSchema,
    ProductFilesSchema,
    ProductFormSchema,
    ProductListSchema,
    ProductPatchSchema,
    ProductQuerySchema,
    ProductSchema,
    ProductTypeSchema,
    TableQuerySchema,
    VersionQuerySchema,
    product_document,
)
from vo_service.products._service import (
    InvalidProductError,
    ProductLimitError,
    ProductNotFoundError,
    ProductRegistry,
    safe_file_name,
)
from vo_service.tap import QueryParams, TapError, stream_response

PROBLEM_MIME = "application/problem+json"

blp = Blueprint("products", __name__, url_prefix="/api",
                description="PZ products: upload, describe, share, download.")


class ProblemApi(Api):
    """flask-smorest's Api with RFC 7807 problem documents as the error format."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in HTTPStatus:
            response: dict = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIME)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:
        data = getattr(error, "data", None) or {}
        detail = data.get("message") or error.description
        if error.code == 413:
            detail = f"uploads are limited to {current_app.extensions['pzvo.settings'].product_max_bytes} bytes"
        errors = data.get("messages") or data.get("errors")
        return problem(error.code or 500, error.name, detail, errors=errors,
                       headers=data.get("headers"))


def problem(status: int, title: str, detail: str | None = None, *, problems: list[str] | None = None,
            errors: dict | None = None, headers: dict | None = None,
            extensions: dict | None = None) -> Response:
    body: dict = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if problems:
        body["problems"] = problems
    if errors:
        body["errors"] = errors
    body.update(extensions or {})
    response = Response(json.dumps(body, default=str), status=status, mimetype=PROBLEM_MIME)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def auth_problem(exc: AuthError) -> Response:
    """401 (with the Bearer challenge) or 403 as a problem document: every ``/api`` blueprint's."""
    headers = {"WWW-Authenticate": 'Bearer realm="pzvo"'} if exc.http_status == 401 else None
    title = "Unauthorized" if exc.http_status == 401 else "Forbidden"
    return problem(exc.http_status, title, exc.message, headers=headers)


blp.errorhandler(AuthError)(auth_problem)


@blp.errorhandler(ProductNotFoundError)
def _not_found(exc: ProductNotFoundError) -> Response:
    return problem(404, "Not Found", str(exc))


@blp.errorhandler(RunNotFoundError)
def _run_not_found(exc: RunNotFoundError) -> Response:
    return problem(404, "Not Found", str(exc))


@blp.errorhandler(TapError)
def _table_error(exc: TapError) -> Response:
    """A product table that cannot be read out (the database failed before the first byte)."""
    return problem(exc.http_status, HTTPStatus(exc.http_status).phrase, exc.message)


@blp.errorhandler(InvalidProductError)
def _invalid(exc: InvalidProductError) -> Response:
    return problem(422, "Unprocessable Entity", exc.message, problems=exc.problems)


@blp.errorhandler(RecursionError)
def _too_deep(exc: RecursionError) -> Response:
    """JSON nested deeper than Python's parser recurses (a PATCH body, the columns field)."""
    return problem(400, "Bad Request", "the JSON is nested too deeply")


@blp.errorhandler(ProductLimitError)
def _over_limit(exc: ProductLimitError) -> Response:
    """413 for a product's size, 422 for its shape, naming the limit and the value found."""
    extensions = {"limit": exc.limit, "maximum": exc.maximum, "value": exc.value}
    if exc.used is not None:
        extensions["used"] = exc.used
    return problem(exc.status, HTTPStatus(exc.status).phrase, exc.message, problems=exc.problems,
                   extensions=extensions)


def runs() -> PipelineRunStore:
    return current_app.extensions["pzvo.runs"]


def registry() -> ProductRegistry:
    return current_app.extensions["pzvo.products"]


def _base() -> str:
    return request.host_url.rstrip("/")


def _page(items: list, total: int, args: dict) -> dict:
    """One page of a listing, as the *ListSchema responses describe it."""
    return {"items": items, "total": total, "page": args["page"], "page_size": args["page_size"]}


def _doc(product: Product) -> dict:
    return product_document(product, _base())


@blp.route("/product-types")
class ProductTypes(MethodView):
    @blp.response(200, ProductTypeSchema(many=True))
    def get(self) -> list[ProductType]:
        """Product types, whether each becomes a table, and the column roles each requires."""
        return list(PRODUCT_TYPES.values())


@blp.route("/pipeline-runs")
class PipelineRuns(MethodView):
    @blp.arguments(PipelineRunQuerySchema, location="query")
    @blp.response(200, PipelineRunListSchema)
    def get(self, args: dict) -> dict:
        """Photo-z pipeline runs, newest first: phase, partitions done of total, rows."""
        current_reader()
        items, total = runs().list(phase=args.get("phase"), release=args.get("release"),
                                 page=args["page"], page_size=args["page_size"])
        return _page(items, total, args)


@blp.route("/pipeline-runs/<string:run_id>")
class PipelineRun(MethodView):
    @blp.response(200, PipelineRunSchema)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such run")
    def get(self, run_id: str) -> dict[str, Any]:
        """One pipeline run's job record."""
        current_reader()
        return runs().get(run_id)


@blp.route("/upload-permission")
class UploadPermission(MethodView):
    @blp.response(204)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the request carries no valid credentials for an upload")
    def get(self) -> None:
        """May the credentials of this request upload a product?  The nginx front asks this
        (``auth_request``) before it accepts a product upload's body of up to 2 GiB, so that
        requests without a valid user are refused before anything is stored."""
        if request.headers.get("X-Original-Method", "POST").upper() == "POST":
            AuthService.require_user(current_user())
        return None


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(ProductQuerySchema, location="query")
    @blp.response(200, ProductListSchema)
    def get(self, args: dict) -> dict:
        """List products (latest versions unless all_versions), filtered and paginated."""
        current_reader()
        items, total = registry().list(
            product_type=args.get("type"), release=args.get("release"), official=args.get("official"),
            owner=args.get("owner"), search=args.get("q"), all_versions=args["all_versions"],
            page=args["page"], page_size=args["page_size"])
        return _page([_doc(p) for p in items], total, args)

    @blp.arguments(ProductFormSchema, location="form")
    @blp.arguments(ProductFilesSchema, location="files")
    @blp.response(201, ProductSchema)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the file or its metadata cannot become a product")
    @blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the upload, its table or its owner's stored products are "
                                  "over a limit (``limit`` names it)")
    def post(self, form: dict, files: dict) -> dict:
        """Upload a product (multipart: the file, and metadata as form fields)."""
        user = AuthService.require_user(current_user())
        try:
            columns = json.loads(form["columns"]) if form.get("columns") else {}
        except json.JSONDecodeError as exc:
            raise InvalidProductError(f"columns is not valid JSON: {exc}") from None
        if not isinstance(columns, dict) or not all(isinstance(v, dict) for v in columns.values()):
            raise InvalidProductError("columns must be a JSON object: column -> {role, unit, ucd, description}")
        for part in ("file", "description_file"):
            if files.get(part) is not None and "\x00" in (files[part].filename or ""):
                raise InvalidProductError(f"the file name of the {part} part contains a NUL character")
        settings = current_app.extensions["pzvo.settings"]
        incoming = settings.products_dir / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=incoming) as tmp:
            main = files["file"]
            # Saved under the (safe) name it came with, so that messages about it name it.
            main_path = Path(tmp) / "main" / safe_file_name(main.filename or "upload")
            main_path.parent.mkdir()
            main.save(main_path)
            desc_path = None
            if files.get("description_file"):
                desc_path = Path(tmp) / "description"
                files["description_file"].save(desc_path)
            req = RegistrationRequest(
                name=form["name"], product_type=form["product_type"], main_file=main_path,
                main_file_name=main.filename or "upload", display_name=form.get("display_name"),
                release=form.get("release"), official=form.get("official", False),
                description=form.get("description"), pz_code=form.get("pz_code"),
                file_format=form.get("format"), columns=columns, description_file=desc_path,
                description_file_name=files["description_file"].filename if desc_path else None)
            product = registry().register(req, user, limits=ProductLimits.from_settings(settings))
        return _doc(product)


@blp.route("/products/<string:name>")
class ProductResource(MethodView):
    @blp.arguments(VersionQuerySchema, location="query")
    @blp.response(200, ProductSchema)
    def get(self, args: dict, name: str) -> dict:
        """One product version (the latest unless ``version`` is given)."""
        current_reader()
        return _doc(registry().get(name, args.get("version"), user=None))

    @blp.arguments(ProductPatchSchema)
    @blp.arguments(VersionQuerySchema, location="query")
    @blp.response(200, ProductSchema)
    @blp.alt_response(415, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the body is not JSON")
    def patch(self, changes: dict, args: dict, name: str) -> dict | Response:
        """Edit metadata and column descriptions (owner or admin)."""
        if request.get_data(cache=True) and not request.is_json:
            return problem(415, "Unsupported Media Type", "send the changes as JSON "
                           "(Content-Type: application/json)")
        return _doc(registry().update(name, args.get("version"), changes, current_user()))

    @blp.arguments(VersionQuerySchema, location="query")
    @blp.response(200, ProductSchema)
    def delete(self, args: dict, name: str) -> dict:
        """Delete a version: its table leaves TAP_SCHEMA, its provenance stays (owner or admin)."""
        return _doc(registry().delete(name, args.get("version"), current_user()))


@blp.route("/products/<string:name>/file")
class ProductFileResource(MethodView):
    @blp.arguments(FileQuerySchema, location="query")
    @blp.response(200, description="the file as uploaded",
                  content_type="application/octet-stream")
    def get(self, args: dict, name: str) -> Response:
        """Download a product file (the original upload by default)."""
        current_reader()
        product = registry().get(name, args.get("version"), user=None)
        path, meta = registry().file_path(product, args["role"], args.get("file"))
        if meta.file_name.lower().endswith(".png"):  # plots are shown on the product page
            return send_file(path, download_name=meta.file_name, mimetype="image/png")
        return send_file(path, as_attachment=True, download_name=meta.file_name,
                         mimetype="application/octet-stream")


@blp.route("/products/<string:name>/table")
class ProductTableResource(MethodView):
    @blp.arguments(TableQuerySchema, location="query")
    @blp.response(200, description="the product table in the chosen format",
                  content_type="application/octet-stream")
    def get(self, args: dict, name: str) -> Response:
        """Download a tabular product's table as Parquet, CSV, FITS or VOTable."""
        current_reader()
        product = registry().get(name, args.get("version"), user=None)
        if not product.table_name:
            raise ProductNotFoundError(f"{name} is a {product.type.label.lower()}: it has a file, not a table")
        tap = current_app.extensions["pzvo.tap"]
        settings = current_app.extensions["pzvo.settings"]
        rows = product.row_count or 0
        if rows > settings.maxrec_limit:
            # CSV and Parquet cannot say that rows are missing, so a cut download is never sent.
            return problem(413, "Payload Too Large",
                           f"{product.table_name} has {rows} rows, more than a download holds "
                           f"({settings.maxrec_limit}, PZVO_MAXREC_LIMIT): query it through TAP "
                           "(/tap/async for large results) with the columns and rows you need")
        params = QueryParams.adql(f"SELECT * FROM {product.table_name}", maxrec=max(rows, 1),
                                  format=args["format"])
        # An async job's time, not a sync query's: the whole table streams through this request.
        guard = QueryGuard(request.environ, describe=params.query)
        result = tap.stream(params, statement_timeout_ms=settings.uws_max_execution_duration_s * 1000,
                            on_connection=guard.attach, on_release=guard.release,
                            transform=download_transform(params.format),
                            infos={"PRODUCT": f"{product.name} v{product.version}"},
                            name=f"{product.name}_v{product.version}")
        return stream_response(result, attachment=True)
