"""Domain types of the registry: product types and their rules, products, files, limits."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from vo_service.core.columns import Column
from vo_service.core.settings import Settings
from vo_service.provenance import product_entity_id, table_entity_id


@dataclass(frozen=True)
class ProductType:
    key: str
    label: str
    tabular: bool
    required_roles: tuple[str, ...] = ()


PRODUCT_TYPES: dict[str, ProductType] = {t.key: t for t in (
    ProductType("speczcat", "Spec-z catalog", True, ("ra", "dec", "redshift")),
    ProductType("trainingset", "Training set", True, ("redshift",)),
    ProductType("validationset", "Validation set", True, ("redshift",)),
    ProductType("trainingresults", "Training results", False),
    ProductType("validationresults", "Validation results", True),
    ProductType("pztable", "PZ table", True, ("photoz",)),
    ProductType("objectcatalog", "Object catalog", True, ("ra", "dec")),
    ProductType("other", "Other", False),
)}

FILE_ROLES = ("main", "description", "auxiliary")
STATUSES = ("registering", "published", "processing", "failed", "deleted")


@dataclass(frozen=True)
class ProductFile:
    role: str
    file_name: str
    format: str
    size: int
    sha256: str
    storage_path: str


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    version: int
    display_name: str
    product_type: str
    release: str | None
    official: bool
    status: str
    description: str | None
    owner: str
    pz_code: str | None
    row_count: int | None
    table_name: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    files: tuple[ProductFile, ...] = ()
    columns: tuple[Column, ...] = ()
    latest_version: int | None = None

    @property
    def type(self) -> ProductType:
        return PRODUCT_TYPES[self.product_type]

    @property
    def entity_id(self) -> str:
        """The provenance entity of this product version: its table, else its own product
        entity (derived from the main file, which other products may share)."""
        if self.table_name:
            return table_entity_id(self.table_name)
        return product_entity_id(self.name, self.version)


@dataclass
class RegistrationRequest:
    """What a user uploads: the main file and its description."""

    name: str
    product_type: str
    main_file: Path
    main_file_name: str
    display_name: str | None = None
    release: str | None = None
    official: bool = False
    description: str | None = None
    pz_code: str | None = None
    file_format: str | None = None
    columns: dict[str, dict] = field(default_factory=dict)
    description_file: Path | None = None
    description_file_name: str | None = None
    auxiliary_files: list[tuple[Path, str]] = field(default_factory=list)
    source_entity: str | None = None
    """The recorded provenance entity of the main file, when the work that made it recorded one
    (a Training Set Maker run); by default the file's content entity (``pzvo:file/<sha256>``)."""


@dataclass(frozen=True)
class ProductLimits:
    """What one upload may hold and what one user may store (``docs/products.md``, "Limits").

    The REST API passes the service's settings; callers with database rights (the CLI, the
    pipeline) may pass none and are then not limited.
    """

    max_rows: int = 50_000_000
    max_columns: int = 500
    max_cell_bytes: int = 1024 * 1024
    max_table_bytes: int = 4 * 1024**3
    quota_bytes: int = 20 * 1024**3

    @classmethod
    def from_settings(cls, settings: Settings) -> ProductLimits:
        return cls(max_rows=settings.product_max_rows, max_columns=settings.product_max_columns,
                   max_cell_bytes=settings.upload_max_cell_bytes,
                   max_table_bytes=settings.product_max_table_bytes,
                   quota_bytes=settings.quota_product_bytes)
