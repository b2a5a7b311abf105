"""Spec-z catalogs as the Training Set Maker reads them: registered products or table files.

Each input names its columns for the standard keys of ``pipeline.tsm.combine`` (id, ra, dec, z,
z_err, z_flag, survey) in three ways, the first that applies winning: the configuration's
``columns`` map; a product's column roles (id, ra, dec, redshift, redshift_err, quality_flag,
survey); the usual names of spec-z catalogs (:data:`USUAL_NAMES`, case-insensitive).  ``survey``
may also be one name for the whole catalog.  ra, dec and z are required; without an id the row
number serves; without z_err, z_flag or survey the column is null (a null flag is outside a survey's rule
unless the rule gives ``missing: N``; else an error, or dropped with ``on_unknown: drop``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.readers import ReadError, open_table
from pipeline.product_tables import ProductInputError, find_product, is_product_spec, read_product_table
from pipeline.tsm.combine import STANDARD_COLUMNS, SpeczCatalog
from vo_service.products import Product, ProductRegistry

#: Standard key -> the product column role that provides it.
ROLE_FOR: dict[str, str] = {"id": "id", "ra": "ra", "dec": "dec", "z": "redshift", "z_err": "redshift_err",
                            "z_flag": "quality_flag", "survey": "survey"}
#: Standard key -> names that spec-z catalogs commonly use for it (lower case).
USUAL_NAMES: dict[str, tuple[str, ...]] = {
    "id": ("id", "objid", "specobjid", "source_id", "targetid"),
    "ra": ("ra", "ra_deg", "raj2000", "ra_j2000"),
    "dec": ("dec", "dec_deg", "dej2000", "dec_j2000"),
    "z": ("z", "redshift", "z_spec", "zspec", "specz"),
    "z_err": ("z_err", "zerr", "redshift_err", "z_error", "e_z"),
    "z_flag": ("z_flag", "zflag", "quality_flag", "flag", "zwarning", "zwarn", "zquality", "q_z"),
    "survey": ("survey",),
}
REQUIRED = ("ra", "dec", "z")


class InputError(ValueError):
    """An input catalog that cannot be used; the message names it."""


@dataclass(frozen=True)
class CatalogSpec:
    """One ``catalogs`` entry of a TSM configuration."""

    source: str
    columns: Mapping[str, str] = field(default_factory=dict)
    survey: str | None = None
    label: str | None = None

    def name(self) -> str:
        if self.label:
            return self.label
        return self.source if is_product_spec(self.source) else Path(self.source).name


@dataclass(frozen=True)
class LoadedCatalog:
    """A catalog ready to combine, and what provenance needs to know of its origin."""

    catalog: SpeczCatalog
    spec: CatalogSpec
    columns: dict[str, str | None]
    entity_id: str | None = None  # a product's table entity
    path: Path | None = None  # a file's path
    product: str | None = None  # "NAME vVERSION"


def _pick(key: str, names: Sequence[str], mapped: Mapping[str, str], roles: Mapping[str, str],
          label: str) -> str | None:
    if key in mapped:
        wanted = mapped[key]
        match = [n for n in names if n == wanted] or [n for n in names if n.lower() == str(wanted).lower()]
        if not match:
            raise InputError(f"catalog {label!r}: column {wanted!r} (given for {key}) is not in it; "
                             f"its columns: {', '.join(names)}")
        return match[0]
    role = ROLE_FOR[key]
    if role in roles:
        return roles[role]
    lower = {n.lower(): n for n in names}
    return next((lower[u] for u in USUAL_NAMES[key] if u in lower), None)


def check_spec(spec: CatalogSpec) -> None:
    unknown = sorted(set(spec.columns) - set(STANDARD_COLUMNS))
    if unknown:
        raise InputError(f"catalog {spec.name()!r}: unknown column key(s) {', '.join(unknown)}; "
                         f"the keys are {', '.join(STANDARD_COLUMNS)}")


def resolve_columns(names: Sequence[str], spec: CatalogSpec,
                    roles: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The input column of each standard key (None: absent); InputError without ra, dec or z."""
    check_spec(spec)
    label = spec.name()
    chosen = {key: _pick(key, names, spec.columns, roles or {}, label) for key in STANDARD_COLUMNS}
    if spec.survey is not None and "survey" not in spec.columns:
        chosen["survey"] = None
    missing = [k for k in REQUIRED if chosen[k] is None]
    if missing:
        raise InputError(f"catalog {label!r} has no column for {', '.join(missing)} (by role, by column map or by "
                         f"usual name); its columns: {', '.join(names)}. Give them under 'columns'.")
    return chosen


def product_roles(product: Product) -> dict[str, str]:
    """Role -> the product's column (as named in its file)."""
    return {c.role: c.original_name or c.name for c in product.columns if c.role}


def standardize(table: pa.Table, spec: CatalogSpec, roles: Mapping[str, str] | None = None,
                extra_columns: Sequence[str] = ()) -> tuple[SpeczCatalog, dict[str, str | None]]:
    """The catalog with standard column names (and the extra columns asked for, when present)."""
    label = spec.name()
    names = table.column_names
    chosen = resolve_columns(names, spec, roles)
    n = table.num_rows
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for key in STANDARD_COLUMNS:
        source = chosen[key]
        if source is not None:
            columns[key] = table.column(source)
        elif key == "id":
            columns[key] = pa.array(np.arange(n, dtype=np.int64))
        elif key == "survey" and spec.survey is not None:
            columns[key] = pa.array([spec.survey] * n, pa.string())
        else:
            columns[key] = pa.nulls(n, pa.string() if key == "survey" else pa.float64())
    lower = {c.lower(): c for c in names}
    for extra in extra_columns:
        found = extra if extra in names else lower.get(extra.lower())
        if found is not None and extra not in columns:
            columns[extra] = table.column(found)
    return SpeczCatalog(label=label, table=pa.table(columns)), chosen


def load_catalog(spec: CatalogSpec, *, registry: ProductRegistry | None = None,
                 extra_columns: Sequence[str] = ()) -> LoadedCatalog:
    """Read one input (a ``speczcat`` product or a table file) and standardize its columns."""
    check_spec(spec)
    if is_product_spec(spec.source):
        if registry is None:
            raise InputError(f"catalog {spec.source!r} is a product: the product registry (a database) is needed")
        try:
            product = find_product(registry, spec.source, types=("speczcat",))
            table = read_product_table(registry, product)
        except ProductInputError as exc:
            raise InputError(f"catalog {spec.source!r}: {exc}") from exc
        catalog, chosen = standardize(table, spec, product_roles(product), extra_columns)
        return LoadedCatalog(catalog=catalog, spec=spec, columns=chosen, entity_id=product.entity_id,
                             product=f"{product.name} v{product.version}")
    path = Path(spec.source)
    if not path.is_file():
        raise InputError(f"catalog {spec.source!r}: no such file")
    try:
        source = open_table(path)
        table = pa.Table.from_batches(list(source.batches()), schema=source.schema)
    except ReadError as exc:
        raise InputError(f"catalog {spec.source!r}: {exc}") from exc
    catalog, chosen = standardize(table, spec, None, extra_columns)
    return LoadedCatalog(catalog=catalog, spec=spec, columns=chosen, path=path)

