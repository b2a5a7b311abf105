"""A Training Set Maker run: combine, crossmatch, split, write, publish with provenance.

``run(config)`` is what ``pzvo tsm run``, the REST job and a notebook call.  Every check that
can be made before the work (the configuration, the flag rules, that each product exists and
each file is there, that the registry is given when products are read or published) is made
first, so a run that starts does not fail for a typo.  Nothing is registered until every step
has succeeded; then the three products are registered in one transaction
(``ProductRegistry.register_many``) together with the provenance of the steps: one activity
per step (combine, crossmatch, split) with every parameter, using the input products, the flag
translation file and the object catalog, generating the run's files.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.engine import Connection

from pipeline.catalog import DEC_COLUMN, ID_COLUMN, RA_COLUMN, input_identity, list_partitions
from pipeline.photometry import BANDS, flux_column, flux_err_column
from pipeline.tsm.checks import TsmError, check_run, find_input
from pipeline.tsm.combine import REMOVED, CombineResult, combine
from pipeline.tsm.config import TsmConfig
from pipeline.tsm.crossmatch import CrossmatchResult, Footprint, crossmatch, file_footprint, may_overlap
from pipeline.tsm.flags import DEFAULT_FLAG_RULES, FlagRules
from pipeline.tsm.inputs import LoadedCatalog, load_catalog
from pipeline.tsm.plots import make_plots
from pipeline.tsm.split import SplitResult, split
from vo_service.auth import User
from vo_service.core import __version__
from vo_service.core.identifiers import quote_ident
from vo_service.products import Product, ProductRegistry, RegistrationRequest
from vo_service.provenance import (
    COLLECTION_TYPE,
    FILE_TYPE,
    ActivityDescription,
    Entity,
    collection_entity_id,
    file_entity,
    record_activity,
    sha256_file,
    user_agent,
)

log = logging.getLogger(__name__)

#: Longest wait for a remote TAP service's async query of the objects.
TAP_TIMEOUT_S = 3600.0
STEPS = ("check", "inputs", "combine", "objects", "crossmatch", "split", "write", "publish")
#: Export a product's object table in files of this many rows (one crossmatch task each).
EXPORT_ROWS = 500_000

COMBINE = ActivityDescription(
    id="pzvo:activitydescription/tsm-combine/1", name="TSM combine spec-z catalogs", version="1",
    type="combination", subtype="spec-z",
    description="Training Set Maker: spec-z catalogs' flags homogenized by a translation file, the same "
                "galaxy cross-identified within a radius, duplicates resolved (pipeline/tsm/combine.py).")
CROSSMATCH = ActivityDescription(
    id="pzvo:activitydescription/tsm-crossmatch/1", name="TSM crossmatch with the Object catalog", version="1",
    type="crossmatch", subtype="nearest neighbour",
    description="Training Set Maker: nearest object within a radius of each spec-z row, on Dask over the "
                "Object catalog's files (pipeline/tsm/crossmatch.py).")
SPLIT = ActivityDescription(
    id="pzvo:activitydescription/tsm-split/1", name="TSM training/validation split", version="1",
    type="selection", subtype="split",
    description="Training Set Maker: seeded random split, optionally stratified in redshift, or a "
                "science-driven hook (pipeline/tsm/split.py).")


@dataclass(frozen=True)
class TsmProgress:
    step: str
    index: int
    total: int
    detail: str = ""


ProgressHook = Callable[[TsmProgress], None]


@dataclass
class TsmResult:
    """What a run made: tables a notebook can use, the files, the report, the products."""

    run_id: str
    combined: pa.Table
    matched: pa.Table
    unmatched: pa.Table
    training: pa.Table
    validation: pa.Table
    report: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    products: list[Product] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts of the one-screen summary."""
        c, x, s = self.report["combine"], self.report["crossmatch"], self.report["split"]
        return {"rows_in": c["rows_in"], "invalid": c["invalid"], "cut": c["cut"],
                "unknown_dropped": c["flags"]["dropped"]["unknown_survey"] + c["flags"]["dropped"]["unknown_flag"],
                "duplicates_removed": sum(c["resolved_by"].values()), "unresolved_ties": c["unresolved_ties"]["groups"],
                "combined": c["rows_out"], "matched": x["matched"], "unmatched": x["unmatched"],
                "training": s["training"], "validation": s["validation"],
                "products": [f"{p.name} v{p.version}" for p in self.products]}


@dataclass
class _Objects:
    files: list[Path]
    entity: Entity | str
    label: str


def _notify(hooks: Sequence[ProgressHook], step: str, detail: str = "") -> None:
    for hook in hooks:
        hook(TsmProgress(step, STEPS.index(step), len(STEPS), detail))


def run(config: TsmConfig, *, registry: ProductRegistry | None = None, owner: User | None = None,
        client: Any = None, hooks: Sequence[ProgressHook] = ()) -> TsmResult:
    """Run the Training Set Maker (module docstring); ``hooks`` see each step as it starts."""
    started = time.perf_counter()
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    _notify(hooks, "check")
    rules = check_run(config, registry, owner)
    timings: dict[str, float] = {}

    def timed(step: str) -> Callable[[], None]:
        _notify(hooks, step)
        t0 = time.perf_counter()
        return lambda: timings.__setitem__(step, round(time.perf_counter() - t0, 3))

    done = timed("inputs")
    loaded = [load_catalog(spec, registry=registry, extra_columns=config.extra_columns) for spec in config.catalogs]
    _check_overlap(config, registry, loaded)
    done()
    done = timed("combine")
    combined = combine([item.catalog for item in loaded], rules, mode=config.mode,  # type: ignore[arg-type]
                       radius_arcsec=config.radius_arcsec, tie=config.tie,  # type: ignore[arg-type]
                       survey_priority=config.survey_priority, z_threshold=config.z_threshold,
                       flag_cut=config.flag_cut, on_unknown=config.on_unknown,  # type: ignore[arg-type]
                       keep_stars=config.keep_stars, extra_columns=config.extra_columns, seed=config.seed)
    done()
    if combined.table.num_rows == 0:
        raise TsmError("combine: no spec-z row is left after the cuts; see the flag cut and the flag rules")
    out_dir = config.output.dir / config.output.name / run_id
    done = timed("objects")
    objects = _resolve_objects(config, registry, combined.table, out_dir / "objects")
    done()
    done = timed("crossmatch")
    candidates = combined.table.filter(pc.not_equal(combined.table.column("tie_result"), REMOVED))
    matched = crossmatch(candidates, objects.files, radius_arcsec=config.match_radius_arcsec,
                         columns=config.columns, magnitudes=config.magnitudes, client=client,
                         scheduler=config.scheduler, workers=config.workers)
    done()
    if matched.matched.num_rows == 0:
        raise TsmError(f"crossmatch: none of the {candidates.num_rows} spec-z rows has an object within "
                       f"{config.match_radius_arcsec} arcsec in {objects.label}: the catalogs do not overlap")
    done = timed("split")
    parts = split(matched.matched, fraction=config.split.fraction, seed=config.split.seed,
                  stratify=config.split.stratify, hook=config.split.hook, hook_params=config.split.params)
    done()
    done = timed("write")
    files = _write(out_dir, combined, matched, parts, config.keep_unmatched)
    if config.plots:
        plots = make_plots(out_dir / "plots", inputs={item.catalog.label: item.catalog.table for item in loaded},
                           combined=combined.table, matched=matched.matched, training=parts.training,
                           validation=parts.validation)
        files.update({f"plot_{name}": path for name, path in plots.items()})
    report: dict[str, Any] = {"run_id": run_id, "software": f"pzvo {__version__}", "parameters": config.parameters(),
              "inputs": [_input_record(item) for item in loaded], "objects": objects.label,
              "combine": combined.report, "crossmatch": dict(matched.counts), "split": parts.report,
              "seconds": timings}
    result = TsmResult(run_id=run_id, combined=combined.table, matched=matched.matched,
                       unmatched=matched.unmatched, training=parts.training, validation=parts.validation,
                       report=report, files=files)
    done()
    if config.output.publish:
        assert registry is not None and owner is not None
        done = timed("publish")
        result.products = _publish(config, registry, owner, result, loaded, rules, objects, matched)
        done()
    report["seconds"]["total"] = round(time.perf_counter() - started, 3)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    files["report"] = out_dir / "report.json"
    log.info("tsm run finished", extra={"run_id": run_id, "seconds": report["seconds"]["total"],
                                        **{k: v for k, v in result.summary().items() if k != "products"}})
    return result


#: Largest object product whose footprint is read with one aggregate query before the work.
OVERLAP_QUERY_ROWS = 5_000_000


def _object_footprints(config: TsmConfig, registry: ProductRegistry | None) -> list[Footprint] | None:
    """The Object catalog's footprints without reading objects (None when that is not cheap)."""
    spec = config.objects
    assert spec is not None
    if spec.path is not None:
        return [file_footprint(pq.read_metadata(p.source)) for p in list_partitions(spec.path)]
    if spec.product is None:
        return None  # a TAP query is bounded by the spec-z box anyway
    product = find_input(registry, spec.product, ("objectcatalog",))
    roles = {c.role: c.name for c in product.columns if c.role}
    if (product.row_count or 0) > OVERLAP_QUERY_ROWS or not {"ra", "dec"} <= set(roles):
        return None
    assert registry is not None
    ra, dec = quote_ident(roles["ra"]), quote_ident(roles["dec"])
    with registry.engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT min({ra}), max({ra}), min({dec}), max({dec}), count(*) "
                                   f"FROM {product.table_name}").one()
    if not row[4]:
        return [Footprint(0.0, 0.0, 0.0, 0.0, 0)]
    return [Footprint(float(row[2]), float(row[3]), float(row[0]), float(row[1]), int(row[4]))]


def _check_overlap(config: TsmConfig, registry: ProductRegistry | None, loaded: Sequence[LoadedCatalog]) -> None:
    """Refuse catalogs that cannot match the Object catalog before combining them."""
    footprints = _object_footprints(config, registry)
    if footprints is None:
        return
    ra = np.concatenate([np.asarray(i.catalog.table.column("ra").to_numpy(zero_copy_only=False), float)
                         for i in loaded])
    dec = np.concatenate([np.asarray(i.catalog.table.column("dec").to_numpy(zero_copy_only=False), float)
                          for i in loaded])
    if not may_overlap(ra, dec, footprints, config.match_radius_arcsec):
        assert config.objects is not None
        raise TsmError(f"objects: none of the {ra.size} spec-z positions is within {config.match_radius_arcsec} "
                       f"arcsec of the Object catalog {config.objects.describe()}: the catalogs do not overlap")


def _input_record(item: LoadedCatalog) -> dict[str, Any]:
    return {"label": item.catalog.label, "source": item.spec.source, "product": item.product,
            "rows": item.catalog.table.num_rows, "columns": item.columns}


def _write(out_dir: Path, combined: CombineResult, matched: CrossmatchResult, parts: SplitResult,
           keep_unmatched: bool) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {"combined": combined.table, "matched": matched.matched, "training": parts.training,
              "validation": parts.validation}
    if keep_unmatched:
        tables["unmatched"] = matched.unmatched
    files = {}
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        pq.write_table(table, path)
        files[name] = path
    return files


def _resolve_objects(config: TsmConfig, registry: ProductRegistry | None, specz: pa.Table,
                     work_dir: Path) -> _Objects:
    spec = config.objects
    assert spec is not None
    if spec.path is not None:
        parts = list_partitions(spec.path)
        digest = hashlib.sha256("\n".join(f"{p.relative}:{input_identity(p.source)}" for p in parts)
                                .encode()).hexdigest()[:16]
        entity = Entity(id=collection_entity_id(f"object-catalog-{digest}"),
                        name=f"object catalog {spec.path.name} ({len(parts)} files)", type=COLLECTION_TYPE,
                        location=str(spec.path))
        return _Objects([p.source for p in parts], entity, str(spec.path))
    if spec.product:
        product = find_input(registry, spec.product, ("objectcatalog",))
        assert registry is not None
        files = export_product(registry, product, work_dir)
        return _Objects(files, product.entity_id, f"{product.name} v{product.version}")
    return _tap_objects(config, specz, work_dir)


def export_product(registry: ProductRegistry, product: Product, work_dir: Path) -> list[Path]:
    """Stream a product's table into Parquet files of EXPORT_ROWS rows, with the uploaded file's
    column names (the LSST Object names the crossmatch reads)."""
    original = {c.sql_name: c.original_name or c.name for c in product.columns}
    names = ", ".join(quote_ident(c.sql_name) for c in product.columns)
    url = registry.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    work_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {names} FROM {product.table_name}")
        reader = cur.fetch_record_batch()
        schema = pa.schema([f.with_name(original.get(f.name, f.name)) for f in reader.schema])
        writer: pq.ParquetWriter | None = None
        rows = 0
        for batch in reader:
            if writer is None or rows >= EXPORT_ROWS:
                if writer is not None:
                    writer.close()
                files.append(work_dir / f"part-{len(files):05d}.parquet")
                writer, rows = pq.ParquetWriter(files[-1], schema), 0
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            rows += batch.num_rows
        if writer is not None:
            writer.close()
    if not files:
        raise TsmError(f"objects {product.name} v{product.version}: the table has no rows")
    return files


def _tap_objects(config: TsmConfig, specz: pa.Table, work_dir: Path) -> _Objects:
    """The objects of a remote TAP table inside the spec-z catalog's bounding box."""
    import pyvo  # noqa: PLC0415 - only runs with a remote object catalog
    import requests  # noqa: PLC0415

    spec = config.objects
    assert spec is not None and spec.tap_url and spec.tap_table
    session = requests.Session()
    if spec.tap_token_env:
        token = os.environ.get(spec.tap_token_env)
        if not token:
            raise TsmError(f"objects: the environment variable {spec.tap_token_env} (the TAP token) is not set")
        session.headers.update({"Authorization": f"Bearer {token}"})
    ra: dict[str, float] = pc.min_max(specz.column("ra")).as_py()
    dec: dict[str, float] = pc.min_max(specz.column("dec")).as_py()
    margin = config.match_radius_arcsec / 3600.0
    dec_lo, dec_hi = max(dec["min"] - margin, -90.0), min(dec["max"] + margin, 90.0)
    query = (f"SELECT * FROM {spec.tap_table} WHERE coord_dec BETWEEN {dec_lo!r} AND {dec_hi!r}")
    ra_lo, ra_hi = ra["min"], ra["max"]
    if ra_hi - ra_lo < 180 and max(abs(dec_lo), abs(dec_hi)) < 80:
        query += f" AND coord_ra BETWEEN {max(ra_lo - 1.0, 0.0)!r} AND {min(ra_hi + 1.0, 360.0)!r}"
    job = None
    try:
        service = pyvo.dal.TAPService(spec.tap_url, session=session)
        job = service.submit_job(query, maxrec=2_000_000_000)
        job.run()
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=TAP_TIMEOUT_S)
        job.raise_if_error()
        table = job.fetch_result().to_table()
    except Exception as exc:
        raise TsmError(f"objects: the TAP service {spec.tap_url} failed: {' '.join(str(exc).split())}") from exc
    finally:
        if job is not None:
            with contextlib.suppress(Exception):  # the remote job's files are not ours to keep
                job.delete()
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "tap-objects.parquet"
    for name in table.colnames:
        table[name].meta.clear()
    canonical = {name.lower(): name for name in LSST_OBJECT_COLUMNS}  # TAP names may come back in any case
    pq.write_table(pa.table({canonical.get(name.lower(), name): _arrow_column(table[name]) for name in table.colnames}),
                   path)
    digest = hashlib.sha256(f"{spec.tap_url}\n{query}".encode()).hexdigest()[:16]
    entity = Entity(id=collection_entity_id(f"tap-objects-{digest}"), name=f"{spec.tap_table} at {spec.tap_url}",
                    type=COLLECTION_TYPE, location=spec.tap_url, comment=query)
    return _Objects([path], entity, f"{spec.tap_table} at {spec.tap_url}")


#: The Object columns the crossmatch reads, as LSST names them.
LSST_OBJECT_COLUMNS = (ID_COLUMN, RA_COLUMN, DEC_COLUMN, *(flux_column(b) for b in BANDS),
                       *(flux_err_column(b) for b in BANDS))


def _arrow_column(column: Any) -> pa.Array:
    """An astropy column as Arrow, masked values as nulls."""
    data = np.ma.getdata(column)
    if isinstance(column, np.ma.MaskedArray) and np.ma.getmaskarray(column).any():
        return pa.array(np.asarray(data), mask=np.ma.getmaskarray(column))
    return pa.array(np.asarray(data))


# -- publishing ------------------------------------------------------------------------------
#: Roles of the outputs' columns.  The quality flag is the survey's own (with its survey), so an
#: output read back as a TSM input is translated as its rows were the first time.
SPECZ_ROLES = {"combined_id": "id", "ra": "ra", "dec": "dec", "z": "redshift", "z_err": "redshift_err",
               "z_flag": "quality_flag", "survey": "survey"}


def _roles(table: pa.Table) -> dict[str, dict[str, str]]:
    roles = {name: {"role": role} for name, role in SPECZ_ROLES.items() if name in table.column_names}
    if ID_COLUMN in table.column_names:  # the matched object: the Object catalog's key, with the RSP's UCD
        roles[ID_COLUMN] = {"role": "object_id"}
    for name in table.column_names:
        for prefix, role in (("mag_", "mag_"), ("magerr_", "magerr_")):
            band = name[len(prefix):]
            if name.startswith(prefix) and len(band) == 1 and band in "ugrizy":
                roles[name] = {"role": role + band}
        for suffix, role in (("_cModelFlux", "flux_"), ("_cModelFluxErr", "fluxerr_")):
            band = name[: -len(suffix)] if name.endswith(suffix) else ""
            if len(band) == 1 and band in "ugrizy":
                roles[name] = {"role": role + band}
    return roles


def _run_entity(run_id: str, name: str, path: Path, role: str) -> Entity:
    digest = sha256_file(path)
    return Entity(id=f"pzvo:tsm/{run_id}/{name}", name=f"{name}.parquet (TSM run {run_id})", type=FILE_TYPE,
                  location=str(path), checksum=f"sha256:{digest}", content_type="application/vnd.apache.parquet",
                  comment=role)


def _flat(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value, default=str)


def _publish(config: TsmConfig, registry: ProductRegistry, owner: User, result: TsmResult,
             loaded: list[LoadedCatalog], rules: FlagRules, objects: _Objects,
             matched: CrossmatchResult) -> list[Product]:
    files, run_id, params = result.files, result.run_id, config.parameters()
    entities = {name: _run_entity(run_id, name, files[name], name)
                for name in ("combined", "matched", "training", "validation")}
    rules_path = rules.path or DEFAULT_FLAG_RULES
    rules_entity = file_entity(rules_path, name=f"flag translation {rules_path.name}")
    inputs: list[tuple[Entity | str, str]] = [
        (item.entity_id if item.entity_id else file_entity(item.path or Path(item.spec.source)),
         f"spec-z catalog {item.catalog.label}") for item in loaded]

    def lineage(conn: Connection) -> None:
        agent = user_agent(owner.name)
        common = {"run_id": run_id, "software": f"pzvo {__version__}"}
        combine_params = {**common, **{k: _flat(params[k]) for k in (
            "catalogs", "flags", "flag_cut", "on_unknown", "keep_stars", "mode", "radius_arcsec", "tie",
            "z_threshold", "survey_priority", "extra_columns", "seed")}}
        with record_activity(conn, name=f"TSM combine {config.output.name} {run_id}", description=COMBINE,
                             parameters=combine_params, agent=agent,
                             used=[*inputs, (rules_entity, "flag translation")]) as act:
            used_ids = [e if isinstance(e, str) else e.id for e, _ in inputs]
            act.generate(entities["combined"], role="combined catalog", derived_from=[*used_ids, rules_entity.id])
        cross_params = {**common, "radius_arcsec": config.match_radius_arcsec, "magnitudes": config.magnitudes,
                        "columns": _flat(params["columns"]), "objects": objects.label,
                        **{f"count_{k}": v for k, v in matched.counts.items()}}
        object_id = objects.entity if isinstance(objects.entity, str) else objects.entity.id
        with record_activity(conn, name=f"TSM crossmatch {config.output.name} {run_id}", description=CROSSMATCH,
                             parameters=cross_params, agent=agent,
                             used=[(entities["combined"].id, "combined catalog"),
                                   (objects.entity, "object catalog")]) as act:
            act.generate(entities["matched"], role="matched catalog",
                         derived_from=[entities["combined"].id, object_id])
        split_params = {**common, **{k: _flat(v) for k, v in params["split"].items()},
                        "training_rows": result.training.num_rows, "validation_rows": result.validation.num_rows}
        with record_activity(conn, name=f"TSM split {config.output.name} {run_id}", description=SPLIT,
                             parameters=split_params, agent=agent,
                             used=[(entities["matched"].id, "matched catalog")]) as act:
            for name in ("training", "validation"):
                act.generate(entities[name], role=f"{name} set", derived_from=[entities["matched"].id])

    name, release = config.output.name, config.output.release
    description = config.output.description or "Made by the Training Set Maker"
    requests = [
        RegistrationRequest(name=f"{name}_{part}", product_type=ptype, main_file=files[part],
                            main_file_name=f"{name}_{part}.parquet", display_name=f"{name} {label}",
                            release=release, official=config.output.official,
                            description=f"{description} (run {run_id}): {label}.",
                            pz_code=f"pzvo {__version__} TSM", columns=_roles(table),
                            source_entity=entities[part].id,
                            auxiliary_files=[(path, path.name) for key, path in files.items()
                                             if key.startswith("plot_")])
        for part, ptype, label, table in (
            ("combined", "speczcat", "combined spec-z catalog", result.combined),
            ("training", "trainingset", "training set", result.training),
            ("validation", "validationset", "validation set", result.validation))]
    return registry.register_many(requests, owner, lineage=lineage)
