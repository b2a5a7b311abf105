"""A challenge's standard training and validation sets, from the Training Set Maker's output or
from any spec-z catalog: a seeded split (:func:`pipeline.tsm.split.split`, optionally stratified
in redshift), both registered as official products in one transaction with the provenance of
the split (the source product version used, every parameter)."""
from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy.engine import Connection

from pipeline.coop._models import id_role_of
from pipeline.coop.challenges import NAME, CoopError, CoopPermissionError
from pipeline.product_tables import ProductInputError, find_product, read_product_table
from pipeline.tsm.split import SplitError, split
from vo_service.auth import User
from vo_service.products import Product, ProductRegistry, RegistrationRequest
from vo_service.provenance import (
    FILE_TYPE,
    ActivityDescription,
    Entity,
    ParameterDescription,
    record_activity,
    sha256_file,
    user_agent,
)

STANDARD_SETS = ActivityDescription(
    id="pzvo:activitydescription/coop-standard-sets/1", name="Validation Cooperative standard sets", version="1",
    type="selection", subtype="training/validation split",
    description="A seeded random split of a spec-z catalog or Training Set Maker output into a challenge's "
                "official training and validation sets (pipeline/coop/sets.py).",
    parameters=(ParameterDescription("source", "char", "The product split", None, "meta.id"),
                ParameterDescription("fraction", "double", "Training fraction", None, "stat.value"),
                ParameterDescription("seed", "long", "Seed of the split", None, "meta.code"),
                ParameterDescription("stratify", "int", "Redshift bins with the same fraction (0: none)", None,
                                     "meta.number")))
#: Product types a standard set may be made from.
SOURCE_TYPES = ("speczcat", "trainingset", "validationset")


@dataclass(frozen=True)
class StandardSets:
    training: Product
    validation: Product


def make_standard_sets(registry: ProductRegistry, user: User, source: str, prefix: str, *, fraction: float = 0.7,
                       seed: int = 0, stratify: int | None = None, release: str | None = None) -> StandardSets:
    """Split ``source`` (``product:NAME[@V]``) into ``<prefix>_training`` and ``<prefix>_validation``."""
    if user.anonymous or not user.is_admin:
        raise CoopPermissionError("official standard sets are made by administrators (the PZ Coordination Group)")
    if not NAME.match(prefix) or len(prefix) > 28:
        raise CoopError(f"prefix {prefix!r}: lower-case letters, digits and _, at most 28 characters")
    spec = source if source.startswith("product:") else f"product:{source}"
    try:
        product = find_product(registry, spec, SOURCE_TYPES)
        table = read_product_table(registry, product)
    except ProductInputError as exc:
        raise CoopError(str(exc)) from exc
    roles = {c.role: c.original_name or c.name for c in product.columns if c.role}
    if "redshift" not in roles or id_role_of(roles) is None:
        raise CoopError(f"{product.name} v{product.version} needs the id (or object_id) and redshift roles")
    try:
        parts = split(table, fraction=fraction, seed=seed, stratify=stratify or None, z_column=roles["redshift"])
    except SplitError as exc:
        raise CoopError(str(exc)) from exc
    columns = {c.original_name or c.name: {"role": c.role} for c in product.columns if c.role}
    parameters = {"source": f"{product.name}@{product.version}", "fraction": fraction, "seed": seed,
                  "stratify": stratify or 0}

    run_id = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="pzvo-sets-") as work:
        files: dict[str, tuple[str, Path, Entity]] = {}
        for kind, rows in (("trainingset", parts.training), ("validationset", parts.validation)):
            name = f"{prefix}_{kind.removesuffix('set')}"
            path = Path(work) / f"{name}.parquet"
            pq.write_table(rows, path)
            files[kind] = (name, path, Entity(
                id=f"pzvo:coop-sets/{run_id}/{kind}", name=f"{path.name} (standard sets {run_id})", type=FILE_TYPE,
                location=str(path), checksum=f"sha256:{sha256_file(path)}",
                content_type="application/vnd.apache.parquet", comment=f"{kind.removesuffix('set')} set"))

        def lineage(conn: Connection) -> None:
            """The split used the source product and generated both files, from which the
            registrations derive the product tables: source -> split -> sets -> tables."""
            with record_activity(conn, name=f"standard sets {prefix} from {product.name} v{product.version}",
                                 description=STANDARD_SETS, agent=user_agent(), parameters=parameters,
                                 used=[(product.entity_id, "source")]) as act:
                for kind, (_, _, entity) in files.items():
                    act.generate(entity, role=f"{kind.removesuffix('set')} set", derived_from=[product.entity_id])

        requests = [RegistrationRequest(
            name=name, product_type=kind, main_file=path, main_file_name=path.name, release=release,
            official=True, columns=columns, source_entity=entity.id,
            description=f"Standard {kind.removesuffix('set')} set: {rows} of the {table.num_rows} rows of "
                        f"{product.name} v{product.version}, seed {seed}, training fraction {fraction}"
                        + (f", stratified in {stratify} redshift bins" if stratify else "") + ".")
            for kind, (name, path, entity), rows in zip(files, files.values(),
                                                        (parts.training.num_rows, parts.validation.num_rows),
                                                        strict=True)]
        made = registry.register_many(requests, user, lineage=lineage)
    return StandardSets(training=made[0], validation=made[1])
