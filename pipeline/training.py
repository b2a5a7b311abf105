"""A training set given as a registered product (``training: product:<name>[@<version>]``).

The product's table is exported to Parquet in the run's output directory with the column
names of the uploaded file (the registry normalizes them to lower case, the pipeline reads
LSST Object names such as ``u_cModelFlux``), and its redshift column is the one with the
``redshift`` role.  The run's provenance then uses the product's table entity.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pyarrow.parquet as pq

from vo_service.core.identifiers import quote_ident
from vo_service.products import ProductNotFoundError, ProductRegistry

PRODUCT_PREFIX = "product:"


class TrainingProductError(ValueError):
    """The named product is missing or cannot serve as a training set."""


@dataclass(frozen=True)
class TrainingProduct:
    path: Path
    redshift_column: str
    label: str
    entity_id: str


def resolve_training_product(registry: ProductRegistry, spec: str, out_dir: Path) -> TrainingProduct:
    name, _, version = spec[len(PRODUCT_PREFIX):].partition("@")
    engine = registry.engine
    try:
        product = registry.get(name, int(version) if version else None, user=None)
    except (ProductNotFoundError, ValueError) as exc:
        raise TrainingProductError(f"training product {spec!r}: {exc}") from exc
    if product.product_type != "trainingset" or not product.table_name:
        raise TrainingProductError(f"{name} v{product.version} is a {product.type.label.lower()}, "
                                   "not a training set")
    original = {c.name: c.original_name or c.name for c in product.columns}
    redshift = next(c.name for c in product.columns if c.role == "redshift")
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    # In a fixed order: a parallel or synchronized scan may return rows in another order each
    # time, which would change the file's checksum (the run's fingerprint: no resume) and the
    # estimator's seeded hold-out (another model).  Ordered by every column, ties are equal rows.
    names = ", ".join(quote_ident(c.name) for c in product.columns)
    order = ", ".join(str(i + 1) for i in range(len(product.columns)))
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {names} FROM {product.table_name} ORDER BY {order}")
        table = cur.fetch_arrow_table()
    table = table.rename_columns([original.get(n, n) for n in table.column_names])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"training_{name}_v{product.version}.parquet"
    pq.write_table(table, path)
    return TrainingProduct(path=path, redshift_column=original[redshift],
                           label=f"{name} v{product.version}", entity_id=product.entity_id)
