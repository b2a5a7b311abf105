"""Registered products read back as Arrow tables: ``product:NAME`` or ``product:NAME@VERSION``.

The pipeline and the Training Set Maker take products as inputs; they read the product's table
(in a fixed order, so that a run's inputs and seeded draws are reproducible) with the column
names of the uploaded file, and use the product's entity in provenance.
"""
from __future__ import annotations

from collections.abc import Sequence

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from vo_service.core.identifiers import quote_ident
from vo_service.products import Product, ProductNotFoundError, ProductRegistry

PRODUCT_PREFIX = "product:"


class ProductInputError(ValueError):
    """The named product is missing, malformed as a reference, or of the wrong type."""


def is_product_spec(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(PRODUCT_PREFIX)


def parse_product_spec(spec: str) -> tuple[str, int | None]:
    """``product:NAME[@VERSION]`` -> (NAME, VERSION or None)."""
    if not is_product_spec(spec):
        raise ProductInputError(f"{spec!r} is not a product reference (product:NAME or product:NAME@VERSION)")
    name, at, version = spec[len(PRODUCT_PREFIX):].partition("@")
    if not name or (at and not version.isdigit()):
        raise ProductInputError(f"{spec!r} is not a product reference (product:NAME or product:NAME@VERSION)")
    return name, int(version) if version else None


def find_product(registry: ProductRegistry, spec: str, types: Sequence[str] = ()) -> Product:
    """The product version ``spec`` names (the latest when no version is given), of one of ``types``."""
    name, version = parse_product_spec(spec)
    try:
        product = registry.get(name, version, user=None)
    except (ProductNotFoundError, ValueError) as exc:
        raise ProductInputError(f"product {spec[len(PRODUCT_PREFIX):]!r}: {exc}") from exc
    if types and product.product_type not in types:
        wanted = " or ".join(types)
        raise ProductInputError(f"{name} v{product.version} is a {product.type.label.lower()} "
                                f"({product.product_type}), not {wanted}")
    if not product.table_name:
        raise ProductInputError(f"{name} v{product.version} has no table")
    return product


def read_product_table(registry: ProductRegistry, product: Product) -> pa.Table:
    """The product's whole table, columns named as in the uploaded file, rows in a fixed order.

    A parallel or synchronized scan may return rows in another order each time; ordered by every
    column (ties are equal rows), the same product always gives the same table.
    """
    original = {c.sql_name: c.original_name or c.name for c in product.columns}
    names = ", ".join(quote_ident(c.sql_name) for c in product.columns)
    order = ", ".join(str(i + 1) for i in range(len(product.columns)))
    url = registry.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {names} FROM {product.table_name} ORDER BY {order}")
        table = cur.fetch_arrow_table()
    return table.rename_columns([original.get(n, n) for n in table.column_names])
