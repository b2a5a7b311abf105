"""A training set given as a registered product (``training: product:<name>[@<version>]``).

The product's table is exported to Parquet in the run's output directory with the column
names of the uploaded file (the registry normalizes them to lower case, the pipeline reads
LSST Object names such as ``u_cModelFlux``), and its redshift column is the one with the
``redshift`` role.  The run's provenance then uses the product's table entity.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.product_tables import PRODUCT_PREFIX, ProductInputError, find_product, read_product_table
from vo_service.products import ProductRegistry

__all__ = ["PRODUCT_PREFIX", "TrainingProduct", "TrainingProductError", "resolve_training_product"]


class TrainingProductError(ValueError):
    """The named product is missing or cannot serve as a training set."""


@dataclass(frozen=True)
class TrainingProduct:
    path: Path
    redshift_column: str
    label: str
    entity_id: str


def resolve_training_product(registry: ProductRegistry, spec: str, out_dir: Path) -> TrainingProduct:
    try:
        product = find_product(registry, spec)
    except ProductInputError as exc:
        raise TrainingProductError(f"training product {spec!r}: {exc}") from exc
    if product.product_type != "trainingset":
        raise TrainingProductError(f"{product.name} v{product.version} is a {product.type.label.lower()}, "
                                   "not a training set")
    original = {c.name: c.original_name or c.name for c in product.columns}
    redshift = next(c.name for c in product.columns if c.role == "redshift")
    table = read_product_table(registry, product)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"training_{product.name}_v{product.version}.parquet"
    pq.write_table(table, path)
    return TrainingProduct(path=path, redshift_column=original[redshift],
                           label=f"{product.name} v{product.version}", entity_id=product.entity_id)
