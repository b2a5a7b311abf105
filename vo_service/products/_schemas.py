"""Marshmallow schemas of the REST API (also used by the CLI to print a product)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate

from vo_service.products._models import FILE_ROLES, PRODUCT_TYPES, Product

TABLE_FORMATS = ("parquet", "csv", "fits", "votable")


class Text(fields.String):
    """A string input without NUL characters, which PostgreSQL text cannot hold."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result:
            raise ValidationError("must not contain NUL characters")
        return result


class ProblemSchema(Schema):
    """RFC 7807 problem details, the body of every API error."""

    type = fields.String(required=True, metadata={"description": "URI reference of the problem type"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    problems = fields.List(fields.String(), metadata={"description": "each thing that is wrong"})
    errors = fields.Dict(metadata={"description": "per-field validation errors"})
    limit = fields.String(metadata={"description": "the setting whose limit was exceeded"})
    maximum = fields.Integer(metadata={"description": "that limit"})
    value = fields.Integer(metadata={"description": "what the upload has or would bring"})
    used = fields.Integer(metadata={"description": "bytes the owner stores now (quota problems)"})


class FileSchema(Schema):
    role = fields.String(validate=validate.OneOf(FILE_ROLES))
    file_name = fields.String()
    format = fields.String()
    size = fields.Integer()
    sha256 = fields.String()


class ColumnSchema(Schema):
    name = fields.String()
    original_name = fields.String(allow_none=True)
    datatype = fields.String()
    unit = fields.String(allow_none=True)
    ucd = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    role = fields.String(allow_none=True)


class ProductSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    latest_version = fields.Integer(allow_none=True)
    display_name = fields.String()
    product_type = fields.String(validate=validate.OneOf(list(PRODUCT_TYPES)))
    release = fields.String(allow_none=True)
    official = fields.Boolean()
    status = fields.String()
    description = fields.String(allow_none=True)
    owner = fields.String()
    pz_code = fields.String(allow_none=True)
    row_count = fields.Integer(allow_none=True)
    table_name = fields.String(allow_none=True, metadata={"description": "ADQL table name"})
    adql = fields.String(allow_none=True, metadata={"description": "a query that returns the table"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    files = fields.List(fields.Nested(FileSchema))
    columns = fields.List(fields.Nested(ColumnSchema))
    links = fields.Dict(keys=fields.String(), values=fields.String())


class PageSchema(Schema):
    """What every listing returns besides its items."""

    total = fields.Integer(required=True, metadata={"description": "items matching, on all pages"})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class PageQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


class ProductListSchema(PageSchema):
    items = fields.List(fields.Nested(ProductSchema), required=True)


class ProductQuerySchema(PageQuerySchema):
    type = Text(validate=validate.OneOf(list(PRODUCT_TYPES)))
    release = Text(validate=validate.Length(max=64))
    official = fields.Boolean()
    owner = Text(validate=validate.Length(max=64))
    q = Text(validate=validate.Length(max=200), metadata={"description": "text search"})
    all_versions = fields.Boolean(load_default=False)


class VersionQuerySchema(Schema):
    version = fields.Integer(metadata={"description": "a version (default: the latest); one that "
                                                      "does not exist is 404"})


class FileQuerySchema(VersionQuerySchema):
    role = Text(load_default="main", validate=validate.OneOf(FILE_ROLES))
    file = Text(load_default=None, metadata={"description": "the file's name, when a role has several "
                                                            "(auxiliary files such as plots)"})


class TableQuerySchema(VersionQuerySchema):
    format = Text(load_default="parquet", validate=validate.OneOf(TABLE_FORMATS))


class ProductFormSchema(Schema):
    """Metadata sent with a multipart upload."""

    name = Text(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$"))
    product_type = Text(required=True, validate=validate.OneOf(list(PRODUCT_TYPES)))
    display_name = Text(validate=validate.Length(max=200))
    release = Text(validate=validate.Length(max=64))
    official = fields.Boolean(load_default=False)
    description = Text(validate=validate.Length(max=20_000))
    pz_code = Text(validate=validate.Length(max=200))
    format = Text(validate=validate.OneOf(["parquet", "csv", "tsv", "fits", "votable", "hdf5"]))
    columns = Text(metadata={"description": "JSON object: column -> {role, unit, ucd, description, name}"})


class ProductFilesSchema(Schema):
    file = Upload(required=True, metadata={"description": "the product file"})
    description_file = Upload(metadata={"description": "an HTML or Markdown description"})


class ColumnPatchSchema(Schema):
    description = Text(validate=validate.Length(max=5000))
    unit = Text(validate=validate.Length(max=64))
    ucd = Text(validate=validate.Length(max=200))


class ProductPatchSchema(Schema):
    display_name = Text(validate=validate.Length(min=1, max=200))
    description = Text(validate=validate.Length(max=20_000))
    release = Text(validate=validate.Length(max=64))
    official = fields.Boolean()
    pz_code = Text(validate=validate.Length(max=200))
    columns = fields.Dict(keys=Text(), values=fields.Nested(ColumnPatchSchema))


class ProductTypeSchema(Schema):
    key = Text()
    label = Text()
    tabular = fields.Boolean()
    required_roles = fields.List(Text())


def product_document(product: Product, base_url: str = "") -> dict:
    """A product as the API and the CLI show it (before ProductSchema dumps it), with links and
    the ADQL to query it."""
    return {
        **{k: getattr(product, k) for k in (
            "name", "version", "latest_version", "display_name", "product_type", "release",
            "official", "status", "description", "owner", "pz_code", "row_count", "table_name",
            "created_at", "updated_at")},
        "files": [f.__dict__ for f in product.files],
        "columns": [c.__dict__ for c in product.columns],
        "adql": f"SELECT TOP 100 * FROM {product.table_name}" if product.table_name else None,
        "links": _links(product, base_url),
    }


def _links(product: Product, base: str) -> dict[str, str]:
    api = f"{base}/api/products/{product.name}"
    links = {"self": f"{api}?version={product.version}", "file": f"{api}/file?version={product.version}",
             "page": f"{base}/products/{product.name}?version={product.version}"}
    if product.table_name:
        links["table"] = f"{api}/table?version={product.version}&format=parquet"
        links["tap"] = f"{base}/tap"
    return links


RUN_PHASES = ("EXECUTING", "COMPLETED", "ERROR")


class PipelineRunSchema(Schema):
    """One ``pzvo pipeline run``: its job record (phase and progress as partitions finish)."""

    run_id = fields.String(required=True)
    release = fields.String(required=True)
    table_name = fields.String(required=True, metadata={"description": "schema.table the run publishes"})
    estimator = fields.Dict(required=True, metadata={"description": "name, version, parameters"})
    fingerprint = fields.String(required=True, metadata={"description": "what a resumed run must match"})
    inputs = fields.Dict(required=True)
    output_dir = fields.String(required=True)
    phase = fields.String(required=True, validate=validate.OneOf(RUN_PHASES))
    done = fields.Integer(required=True, metadata={"description": "partitions finished"})
    total = fields.Integer(allow_none=True, metadata={"description": "partitions in all"})
    progress = fields.Float(allow_none=True, metadata={"description": "done / total"})
    rows = fields.Integer(required=True)
    started = fields.DateTime(required=True)
    updated = fields.DateTime(required=True)
    finished = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)
    summary = fields.Dict(allow_none=True, metadata={"description": "timings, quality, publishing"})


class PipelineRunListSchema(PageSchema):
    items = fields.List(fields.Nested(PipelineRunSchema), required=True)


class PipelineRunQuerySchema(PageQuerySchema):
    phase = Text(validate=validate.OneOf(RUN_PHASES))
    release = Text(validate=validate.Length(max=64))
