"""Publish a pipeline run's PZ table into PostgreSQL, partitioned for billions of rows.

The table (described by the run's ``tap_schema/`` YAML) is hash-partitioned on its Object key
(``objectId``, its only primary-key column):
every partition holds a uniform share of objects whatever the id layout, point lookups by id
prune to one partition, and each partition's indexes (primary key, pg_sphere GiST on the
position, B-tree on ``z_phot``) stay small enough to build in parallel and to fit in memory.

Steps, and why:

1. An unpublished staging table ``<schema>__load.<name>`` with its partitions (no indexes yet:
   building them after loading is several times faster than maintaining them during COPY).
2. ``COPY`` in parallel: ``workers`` connections, each streaming its share of the Parquet files
   (``ingest.load.copy_arrow``, binary COPY); PostgreSQL routes rows to partitions.  Several connections
   cannot share one transaction, which is why loading happens in staging.
3. Indexes per partition, in parallel (the expressions come from ``tap_schema.loader``).
4. **One transaction** swaps the table in: drop the old table, move the staging table and its
   partitions into the published schema, add the primary key and indexes on the parent (which
   PostgreSQL attaches from the partitions' matching indexes instead of building anew), write
   TAP_SCHEMA (``tap_schema.loader.publish_table``), and record the product
   (:func:`record_product`, the single place where the registry and provenance of issues 4 and 5
   plug in).  Readers see the old table or the new one, never a half-loaded one.
5. ``VACUUM (ANALYZE)`` after the commit (``ingest.copy.vacuum_analyze``).
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from ingest.copy import vacuum_analyze
from ingest.load import copy_arrow
from pipeline.catalog import input_identity, list_partitions, stored_input_identity
from pipeline.outputs import RunResult, is_finished
from tap_schema.loader import (
    create_indexes_sql,
    create_table_sql,
    publish_table,
    qualified,
)
from tap_schema.model import TableDescription, load_table
from vo_service.auth import User
from vo_service.core.columns import Column
from vo_service.core.identifiers import pg_name, quote_ident
from vo_service.products import ProductRegistry, RegistrationRequest
from vo_service.provenance import (
    TABLE_TYPE,
    ActivityDescription,
    collection_entity,
    collection_entity_id,
    file_entity,
    next_entity_version,
    record_activity,
    table_entity_id,
    user_agent,
)

log = logging.getLogger(__name__)



def partition_key(desc: TableDescription) -> str:
    """The PostgreSQL name of the PZ table's key (its one primary-key column), which the table is
    hash-partitioned on."""
    if len(desc.primary_key) != 1:
        raise ValueError(f"{desc.qualified_name}: the partitioned load needs a one-column primary key "
                         f"(the Object key), not {list(desc.primary_key)}")
    return pg_name(desc.primary_key[0])


def staging_schema(desc: TableDescription) -> str:
    return f"{desc.schema}__load"


def partition_name(desc: TableDescription, i: int) -> str:
    return f"{desc.name}_p{i:03d}"


def _batches(files: list[Path], batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    for path in files:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)


def _load_files(engine: Engine, table: str, files: list[Path]) -> int:
    """Binary COPY of some output files into the staging table (one connection of several);
    pgpq encodes the fixed-size PDF lists as PostgreSQL ``real[]`` directly."""
    schema = pq.read_schema(files[0])
    specs = [Column.from_arrow(f.name, f.type) for f in schema]
    with engine.begin() as conn:
        return copy_arrow(conn, table, specs, _batches(files))


def _index_partition(engine: Engine, part: TableDescription, key: str) -> None:
    """The primary key and the description's indexes of one partition (the parent's ALTER
    TABLE / CREATE INDEX later attach these instead of building them again)."""
    stmts = [f"ALTER TABLE {qualified(part)} ADD PRIMARY KEY ({quote_ident(key)})",
             *create_indexes_sql(part)]
    with engine.begin() as conn:
        for stmt in stmts:
            conn.execute(text(stmt))


def record_product(conn: Connection, desc: TableDescription, result: RunResult | None, *,
                   registry: ProductRegistry | None = None, owner: User | None = None) -> None:
    """Record the published table's provenance and register it as a PZ-table product, in the
    transaction that publishes the table (all three appear together or not at all).
    ``registry`` and ``owner`` (who official products are registered as) are needed with a
    ``result``.

    The activity uses the training set (a file entity, by checksum) and the object catalog (a
    collection of its Parquet files), carries the estimator's name, version and parameters, the
    release and the run fingerprint, and generates the table entity (a new version when the
    table is republished; the old one is invalidated).
    """
    if result is None:
        log.info("published without a run record: no product registered", extra={"table": desc.qualified_name})
        return
    registry, owner = _require_registry(registry, owner)

    est = result.estimator
    method = ActivityDescription(
        id=f"pzvo:activitydescription/pz-pipeline/{est['name']}/{est['version']}",
        name=f"photo-z pipeline, estimator {est['name']}", version=str(est["version"]),
        type="estimation", subtype="photo-z",
        description="Dask photo-z pipeline over an object catalog (pipeline/run.py); the estimator is "
                    f"{est['name']} {est['version']}.")
    objects = Path(result.inputs["objects"])
    # The catalog is the files the run estimated, each by path and content identity (size and
    # Parquet footer), so two catalogs share an entity only when they hold the same files.
    files = list_partitions(objects)
    identities = [stored_input_identity(result.data_dir / p.relative) or input_identity(p.source) for p in files]
    digest = hashlib.sha256("\n".join(f"{p.relative}:{ident}" for p, ident in zip(files, identities, strict=True))
                            .encode()).hexdigest()[:16]
    catalog = collection_entity(collection_entity_id(f"object-catalog-{digest}"),
                                name=f"object catalog {objects.name} ({len(files)} files)",
                                location=str(objects))
    training = result.inputs.get("training_entity") or file_entity(
        Path(result.inputs["training"]), name=Path(result.inputs["training"]).name)
    training_id = training if isinstance(training, str) else training.id
    params = {"release": result.release, "fingerprint": result.fingerprint, "estimator": est["name"],
              "estimator_version": est["version"], "redshift_column": result.inputs.get("redshift_column", "redshift"),
              **{f"param_{k}": v for k, v in (est.get("params") or {}).items()}}
    with record_activity(conn, name=f"photo-z {est['name']} for {result.release}", description=method,
                         parameters=params, agent=user_agent(),
                         used=[(training, "training set"), (catalog, "object catalog")]) as act:
        entity_id, older = next_entity_version(conn, table_entity_id(desc.qualified_name))
        for old in older:
            act.invalidate(old, role="replaced table")
        act.generate(entity_id, name=desc.qualified_name, type=TABLE_TYPE, location=desc.qualified_name,
                     role="PZ table", derived_from=[training_id, catalog.id],
                     comment=f"{result.rows} rows, release {result.release}")
        roles = {desc.primary_key[0]: "object_id", "ra": "ra", "dec": "dec", "z_phot": "photoz",
                 "z_err": "photoz_err", "odds": "odds"}
        registry.register_table(conn, name=desc.name, product_type="pztable", desc=desc, rows=result.rows,
                                owner=owner, roles=roles,
                                data_file=result.table_yaml,
                                release=result.release, official=True,
                                pz_code=f"{est['name']} {est['version']}")
    log.info("product registered", extra={"table": desc.qualified_name, "entity": entity_id})


def register_quality_report(registry: ProductRegistry | None, result: RunResult, table_name: str, *,
                            owner: User | None) -> str:
    """Register the quality report as a validation-results product (``<table>_quality``).

    Its table holds the per-object estimates on the held-out validation set (z_true, z_phot,
    z_err, odds), queryable by ADQL; quality.json and the plots are its auxiliary files.
    Returns the product name.
    """
    registry, owner = _require_registry(registry, owner)

    quality = result.quality or {}
    per_object = Path(quality["per_object"])
    name = f"{table_name}_quality"
    est = result.estimator
    request = RegistrationRequest(
        name=name, product_type="validationresults", main_file=per_object,
        main_file_name=per_object.name, release=result.release, official=True,
        display_name=f"Quality of {table_name} ({est['name']} {est['version']})",
        description=(f"Held-out validation of {est['name']} {est['version']} for release {result.release}: "
                     f"sigma_MAD {quality.get('sigma_mad', float('nan')):.4f}, bias "
                     f"{quality.get('bias', float('nan')):.4f}, outlier fraction "
                     f"{quality.get('outlier_fraction', float('nan')):.4f}."),
        pz_code=f"{est['name']} {est['version']}",
        columns={"z_true": {"role": "redshift"}, "z_phot": {"role": "photoz"},
                 "z_err": {"role": "photoz_err"}, "odds": {"role": "odds"}},
        auxiliary_files=[(Path(f), Path(f).name) for f in quality.get("files", [])])
    registry.register(request, owner)
    return name


def publish_table_files(engine: Engine, desc: TableDescription, files: list[Path], *, partitions: int = 16,
                        workers: int = 2, result: RunResult | None = None,
                        registry: ProductRegistry | None = None, owner: User | None = None) -> dict[str, Any]:
    """Load Parquet files into the partitioned table ``desc`` and publish it (steps 1-5 above).
    With a run's ``result`` the table becomes a product of ``registry``, owned by ``owner``."""
    started = time.perf_counter()
    if result is not None:
        _require_registry(registry, owner)
    key = partition_key(desc)
    stage = replace(desc, schema=staging_schema(desc), primary_key=())
    parts = [replace(desc, schema=stage.schema, name=partition_name(desc, i)) for i in range(partitions)]
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(stage.schema)}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {qualified(stage)} CASCADE"))
        create = create_table_sql(stage)[-1] + f" PARTITION BY HASH ({quote_ident(key)})"
        conn.execute(text(create))
        for i, part in enumerate(parts):
            conn.execute(text(f"CREATE TABLE {qualified(part)} PARTITION OF {qualified(stage)} "
                              f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i})"))
    if not files:
        raise ValueError(f"{desc.qualified_name}: no files to publish")
    shares = [share for share in (files[w::workers] for w in range(workers)) if share]
    # One connection per thread, whatever the shared engine's pool holds (its 10 would make an
    # 11th worker wait, then fail).
    loader = create_engine(engine.url, pool_size=workers, max_overflow=0)
    try:
        with ThreadPoolExecutor(len(shares)) as pool:
            rows = sum(pool.map(lambda share: _load_files(loader, qualified(stage), share), shares))
        loaded = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda part: _index_partition(loader, part, key), parts))
        indexed = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {qualified(desc)} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(desc.schema)}"))
            for table in (stage, *parts):
                conn.execute(text(f"ALTER TABLE {qualified(table)} SET SCHEMA {quote_ident(desc.schema)}"))
            conn.execute(text(f"ALTER TABLE {qualified(desc)} ADD PRIMARY KEY ({quote_ident(key)})"))
            for stmt in create_indexes_sql(desc):
                conn.execute(text(stmt))
            publish_table(conn, desc)
            record_product(conn, desc, result, registry=registry, owner=owner)
    except BaseException:
        # The published table is untouched; the half-loaded copy would hold its disk until the
        # next publish of this table (at billions of rows, a lot of it).
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {qualified(stage)} CASCADE"))
        raise
    finally:
        loader.dispose()
    vacuum_analyze(engine, qualified(desc))
    timings = {"table": desc.qualified_name, "rows": rows, "partitions": partitions, "workers": workers,
               "copy_seconds": round(loaded - started, 3), "index_seconds": round(indexed - loaded, 3),
               "seconds": round(time.perf_counter() - started, 3)}
    log.info("published table", extra=timings)
    return timings


def publish_run(registry: ProductRegistry | None, result: RunResult, *, owner: User | None,
                partitions: int = 16, workers: int = 2) -> dict[str, Any]:
    """Publish a finished run's table from its output directory into the registry's database and
    register it as a product of ``registry`` owned by ``owner`` (the operator account, for the
    official PZ tables)."""
    registry, owner = _require_registry(registry, owner)
    if result.table_yaml is None:
        raise ValueError("the run has no table description")
    desc = load_table(result.table_yaml)
    # The run's own outputs, one per input file: not whatever else lies in the directory; and
    # made from the inputs as they are now, or the table's provenance would name other files.
    parts = list_partitions(Path(result.inputs["objects"]))
    files = [result.data_dir / part.relative for part in parts]
    # Every output must be this run's (another run's file under the same name would be published
    # with this run's provenance).
    foreign = [str(out) for out in files if not is_finished(out, result.fingerprint)]
    if foreign:
        raise ValueError(f"{len(foreign)} output file(s) are missing or not this run's (first: {foreign[0]}): "
                         "run the pipeline again, then publish")
    changed = [str(p.source) for p, out in zip(parts, files, strict=True)
               if stored_input_identity(out) not in (None, input_identity(p.source))]
    if changed:
        raise ValueError(f"{len(changed)} input file(s) changed since the run estimated them (first: "
                         f"{changed[0]}): run the pipeline again, then publish")
    return publish_table_files(registry.engine, desc, files, partitions=partitions, workers=workers,
                               result=result, registry=registry, owner=owner)


def _require_registry(registry: ProductRegistry | None, owner: User | None) -> tuple[ProductRegistry, User]:
    if registry is None or owner is None:
        raise ValueError("registering a product needs the product registry and its owner (registry, owner)")
    return registry, owner
