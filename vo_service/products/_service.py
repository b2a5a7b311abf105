"""ProductRegistry: the domain logic of the PZ Server (no Flask here).

Registering a product is one database transaction: the product row, its table (created,
COPY-loaded, indexed), TAP_SCHEMA rows, column metadata, file rows and provenance all commit
together.  Files are written to a staging directory first and moved into place just before the
commit; if anything fails they are removed, so a failure leaves no trace on disk either.

With :class:`ProductLimits` (the REST API passes the settings) a registration is also bounded:
the file's declared rows, columns and cell sizes are checked before it is read, the table's size
is estimated before loading, metered while loading and measured before the commit, and the
owner's stored bytes stay within their quota (administrators have none).
"""
from __future__ import annotations

import builtins
import hashlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ingest.columns import ColumnError, column_for_role, plan_columns
from ingest.copy import vacuum_analyze
from ingest.errors import LimitExceeded
from ingest.limits import PG_MAX_COLUMNS, Limit, ReadLimits
from ingest.load import LoadLimits, Progress, estimate_table_bytes, publish_arrow_table, table_description, value_bytes
from ingest.readers import ReadError, detect_format, open_table
from tap_schema.loader import publish_table, unpublish_table
from tap_schema.model import TableDescription
from vo_service.auth import AuthService, User
from vo_service.core.columns import OBJECT_KEY, Column
from vo_service.core.errors import UNIQUE_VIOLATION, sqlstate
from vo_service.core.identifiers import is_regular_adql
from vo_service.products._models import (
    PRODUCT_TYPES,
    Product,
    ProductFile,
    ProductLimits,
    ProductType,
    RegistrationRequest,
)
from vo_service.products._storage import ProductStore
from vo_service.provenance import PRODUCT_TYPE as PROV_PRODUCT_TYPE
from vo_service.provenance import TABLE_TYPE as PROV_TABLE_TYPE
from vo_service.provenance import (
    ActivityDescription,
    GenerationDescription,
    ParameterDescription,
    UsageDescription,
    file_entity,
    product_entity_id,
    record_activity,
    record_invalidation,
    table_entity_id,
    user_agent,
)

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Versions are PostgreSQL integers: a larger number names no version (rather than an error).
MAX_VERSION = 2**31 - 1
TABLE_SCHEMA = "pz"
EDITABLE = ("display_name", "description", "release", "official", "pz_code")
COLUMN_EDITABLE = ("description", "unit", "ucd")


#: The method every upload applies (ProvenanceDM ActivityDescription).
PRODUCT_REGISTRATION = ActivityDescription(
    id="pzvo:activitydescription/product-registration/2", name="product registration",
    version="2", type="ingest", subtype="PZ product",
    description="A user uploads a file; pzvo reads and checks it, loads it with binary COPY into a "
                "table published through TAP (tabular types) and records the product "
                "(vo_service/products/_service.py).",
    parameters=(ParameterDescription("product_type", "char", "Product type", None, "meta.code.class"),
                ParameterDescription("name", "char", "Product name", None, "meta.id"),
                ParameterDescription("version", "int", "Product version", None, "meta.version"),
                ParameterDescription("release", "char", "Data release", None, "meta.dataset"),
                ParameterDescription("official", "boolean", "Official product", None, "meta.code")),
    usages=(UsageDescription("main file", "The uploaded file", "pzvo:File"),),
    generations=(GenerationDescription("product table", "The published table", PROV_TABLE_TYPE),
                 GenerationDescription("product", "The stored product (types without a table)",
                                       PROV_PRODUCT_TYPE)))


class InvalidProductError(ValueError):
    """The upload or its metadata cannot become a product; ``problems`` says why."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [message]


class ProductLimitError(InvalidProductError):
    """A product over a limit: ``status`` 413 for its size (rows, bytes, quota), 422 for its
    shape (columns, cell sizes); ``limit`` names the setting, ``value`` what was found."""

    def __init__(self, message: str, *, status: int, limit: str, maximum: int, value: int,
                 used: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit
        self.maximum = maximum
        self.value = value
        self.used = used


class ProductNotFoundError(LookupError):
    pass


QUOTA = "quota_product_bytes"
TABLE_BYTES = "product_max_table_bytes"


class _Budget:
    """One registration's limits and what its owner already stores (no SQL, no Flask)."""

    def __init__(self, limits: ProductLimits, owner: str, used: int, files: int, exempt: bool) -> None:
        self.limits = limits
        self.owner = owner
        self.used = used
        self.files = files
        self.exempt = exempt

    def read_limits(self) -> ReadLimits:
        columns = min(self.limits.max_columns, PG_MAX_COLUMNS)
        label = "product_max_columns" if columns == self.limits.max_columns else \
            "product_max_columns, capped at PostgreSQL's 1600"
        return ReadLimits(rows=Limit("product_max_rows", self.limits.max_rows),
                          columns=Limit(label, columns),
                          cell_bytes=Limit("upload_max_cell_bytes", self.limits.max_cell_bytes))

    def load_limits(self) -> LoadLimits:
        sizes = [Limit(TABLE_BYTES, self.limits.max_table_bytes)]
        if not self.exempt:
            sizes.append(Limit(QUOTA, self.limits.quota_bytes - self.used - self.files))
        return LoadLimits(rows=Limit("product_max_rows", self.limits.max_rows), table_bytes=sizes)

    def check_files(self) -> None:
        self._quota(0, "")

    def check_table(self, table_bytes: int, *, estimated: bool) -> None:
        """The table's size (estimated before loading, or measured) against both limits."""
        at_least = "at least " if estimated else ""
        if table_bytes > self.limits.max_table_bytes:
            raise ProductLimitError(
                f"the table would take {at_least}{table_bytes} bytes in the database; the limit is "
                f"{self.limits.max_table_bytes} ({TABLE_BYTES})", status=413, limit=TABLE_BYTES,
                maximum=self.limits.max_table_bytes, value=table_bytes)
        self._quota(table_bytes, at_least)

    def _quota(self, table_bytes: int, at_least: str) -> None:
        total = self.used + self.files + table_bytes
        if self.exempt or total <= self.limits.quota_bytes:
            return
        raise ProductLimitError(
            f"this upload would bring the products {self.owner} stores to {at_least}{total} bytes "
            f"(files and tables); the quota is {self.limits.quota_bytes} bytes ({QUOTA}) and "
            f"{self.used} are in use: delete products you no longer need, or ask an administrator",
            status=413, limit=QUOTA, maximum=self.limits.quota_bytes, value=total, used=self.used)

    def error(self, exc: LimitExceeded) -> ProductLimitError:
        """A limit the reader or the load met, in the registry's terms."""
        if exc.limit.setting in (QUOTA, TABLE_BYTES):
            try:
                self.check_table(exc.value, estimated=True)
            except ProductLimitError as limit_error:
                return limit_error
        return ProductLimitError(str(exc), status=413 if exc.kind == "size" else 422,
                                 limit=exc.limit.setting, maximum=exc.limit.maximum, value=exc.value)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ProductRegistry:
    """Register, list, edit and delete products; every write checks the user's rights.

    The SQL is :class:`ProductStore`'s (``store``, by default a new one); this class decides
    what runs in which transaction, and checks rights, limits and files.

    ``step_hook`` (tests only) is called with the name of each registration step, so a test
    can make any step fail and check that nothing of the product remains.
    """

    def __init__(self, *, engine: Engine, storage_dir: Path, store: ProductStore | None = None,
                 step_hook: Callable[[str], None] | None = None, object_key: str = OBJECT_KEY) -> None:
        self.engine = engine
        self.object_key = object_key
        self.storage_dir = storage_dir
        self.store = store or ProductStore()
        self._step_hook = step_hook

    def _step(self, name: str) -> None:
        if self._step_hook:
            self._step_hook(name)

    # -- registration ------------------------------------------------------------------------
    def register(self, request: RegistrationRequest, user: User,
                 progress: Progress | None = None,
                 limits: ProductLimits | None = None) -> Product:
        """Create a product (or a new version of one) in a single transaction.

        ``limits`` bound what the upload may hold and what its owner may store; without them
        (trusted callers with database rights) nothing is limited.
        """
        return self.register_many([request], user, progress=progress, limits=limits)[0]

    def register_many(self, requests: builtins.list[RegistrationRequest], user: User, *,
                      progress: Progress | None = None, limits: ProductLimits | None = None,
                      lineage: Callable[[Connection], None] | None = None) -> builtins.list[Product]:
        """Register several products in one transaction: all of them or none.

        For outputs that belong together (a Training Set Maker run's combined catalog, training
        and validation sets).  ``lineage(conn)`` runs first in the same transaction, to record
        the provenance of the work that made the files (the registrations then use the files'
        entities, by checksum), so that nothing of a failed publication is left either.
        """
        AuthService.require_user(user)
        if not requests:
            return []
        if len({r.name for r in requests}) != len(requests):
            raise InvalidProductError("one registration cannot hold two versions of the same product")
        for request in requests:
            if request.official:
                AuthService.require_admin(user, "publish official products")
            self._validate(request)
            if request.description_file is not None and not request.description:
                request.description = _description_text(request.description_file,
                                                        request.description_file_name or "")
        stagings: builtins.list[Path] = []
        placed: builtins.list[tuple[Path, bool]] = []  # (final dir, whether its parent was made)
        done: builtins.list[tuple[str, int, str | None, int | None]] = []
        budget: _Budget | None = None
        started = time.perf_counter()
        try:
            staged = []
            for request in requests:
                stagings.append(self.storage_dir / ".staging" / uuid.uuid4().hex)
                staged.append(self._stage_files(request, stagings[-1]))
            with self.engine.begin() as conn:
                for name in sorted(r.name for r in requests):
                    self.store.lock_name(conn, name)
                for request in requests:
                    self._require_new_version_rights(conn, request.name, user)
                if lineage is not None:
                    lineage(conn)
                    self._step("lineage")
                moves = []
                for request, files, staging in zip(requests, staged, stagings, strict=True):
                    budget = None
                    if limits is not None:
                        exempt = user.is_admin
                        if not exempt:
                            self.store.lock_owner_quota(conn, user.name)
                        budget = _Budget(limits, user.name,
                                         0 if exempt else self.store.stored_bytes(conn, user.name),
                                         sum(f.size for _, f, _ in files), exempt)
                        budget.check_files()
                    version, rows, table_name, final_dir = self._register_in(
                        conn, request, user, files, progress, budget)
                    done.append((request.name, version, table_name, rows))
                    moves.append((staging, final_dir))
                for staging, final_dir in moves:
                    made_parent = not final_dir.parent.exists()
                    final_dir.parent.mkdir(parents=True, exist_ok=True)
                    self._set_aside_orphan(final_dir)
                    staging.rename(final_dir)
                    placed.append((final_dir, made_parent))
                self._step("commit")
        except BaseException as exc:
            for staging in stagings:
                shutil.rmtree(staging, ignore_errors=True)
            for final_dir, made_parent in placed:
                shutil.rmtree(final_dir, ignore_errors=True)
                if made_parent:
                    _remove_if_empty(final_dir.parent)
            for request in requests:
                log.info("product registration failed", extra={"product": request.name, "user": user.name,
                                                               "error": str(exc)})
            raise self._domain_error(exc, budget) from exc
        seconds = round(time.perf_counter() - started, 3)
        products = []
        for name, version, table_name, rows in done:
            if table_name:
                vacuum_analyze(self.engine, f'"{TABLE_SCHEMA}"."{table_name.split(".", 1)[1]}"')
            log.info("product registered", extra={"product": name, "version": version, "user": user.name,
                                                  "rows": rows, "seconds": seconds})
            products.append(self.get(name, version, user=None))
        return products

    def _register_in(self, conn: Connection, request: RegistrationRequest, user: User,
                     files: builtins.list[tuple[str, ProductFile, Path]], progress: Progress | None,
                     budget: _Budget | None) -> tuple[int, int | None, str | None, Path]:
        """One product's rows, table, files and provenance in the caller's transaction; returns
        (version, rows, table name, the directory its staged files go to)."""
        ptype = PRODUCT_TYPES[request.product_type]
        product_id, version = self.store.create_version(
            conn, name=request.name, display_name=request.display_name or request.name,
            product_type=ptype.key, release=request.release, official=request.official,
            status="registering", description=request.description, owner=user.name,
            pz_code=request.pz_code)
        self._step("product-row")
        final_dir = self.storage_dir / request.name / f"v{version}"
        main_path = next(path for role, _, path in files if role == "main")
        source = file_entity(main_path, name=request.main_file_name,
                             location=f"products/{request.name}/v{version}/main/{main_path.name}")
        with record_activity(
                conn, name=f"register {request.name} v{version}", description=PRODUCT_REGISTRATION,
                parameters={"product_type": ptype.key, "name": request.name, "version": version,
                            "release": request.release, "official": request.official},
                agent=user_agent(user.name), used=[(request.source_entity or source, "main file")]) as act:
            rows = table_name = None
            if ptype.tabular:
                rows, table_name, specs = self._load_table(conn, request, ptype, version, progress, budget)
                self._step("table")
                self.store.insert_columns(conn, product_id, specs)
                self._step("columns")
            self._insert_files(conn, product_id, files, final_dir)
            self._step("files")
            self.store.mark_published(conn, product_id, row_count=rows, table_name=table_name)
            if table_name:
                act.generate(table_entity_id(table_name), name=table_name, type=PROV_TABLE_TYPE,
                             location=table_name,
                             role="product table", derived_from=[request.source_entity or source.id],
                             comment=f"{ptype.label} {request.name} v{version}, {rows} rows")
            else:
                act.generate(product_entity_id(request.name, version), name=f"{request.name} v{version}",
                             type=PROV_PRODUCT_TYPE, location=f"products/{request.name}/v{version}",
                             role="product", derived_from=[request.source_entity or source.id],
                             comment=f"{ptype.label} {request.name} v{version}")
            self._step("provenance")
        return version, rows, table_name, final_dir

    def register_table(self, conn: Connection, *, name: str, product_type: str, desc: TableDescription,
                       rows: int, owner: User, roles: dict[str, str] | None = None,
                       data_file: Path | None = None, release: str | None = None, official: bool = False,
                       display_name: str | None = None, description: str | None = None,
                       pz_code: str | None = None) -> int:
        """Record as a product a table that the caller published in its own transaction.

        For tables that are not uploads (the demo data, the photo-z pipeline's PZ tables): the
        caller created, loaded and published ``desc`` and records its own provenance; this adds
        the registry rows (a new version; the version it replaces is marked deleted) and stores
        ``data_file`` (e.g. a Parquet export) as the product's main file.  Returns the product id.
        """
        ptype = PRODUCT_TYPES[product_type]
        roles = roles or {}
        with conn.begin_nested():
            self.store.lock_name(conn, name)
            # The table's live product is replaced (one live product per table).
            self.store.retire_table(conn, desc.qualified_name)
            product_id, version = self.store.create_version(
                conn, name=name, display_name=display_name or name, product_type=ptype.key,
                release=release, official=official, status="published",
                description=description or desc.description, owner=owner.name, pz_code=pz_code,
                row_count=rows, table_name=desc.qualified_name)
            # A regular name keeps its TAP spelling (objectId); a delimited one is kept bare.
            specs = [c.with_(name=c.name if is_regular_adql(c.name) else c.sql_name, original_name=c.sql_name,
                             role=roles.get(c.name)) for c in desc.columns]
            self.store.insert_columns(conn, product_id, specs)
            if data_file is not None:
                final_dir = self.storage_dir / name / f"v{version}"
                self._set_aside_orphan(final_dir)
                staged = self._stage_files(RegistrationRequest(
                    name=name, product_type=product_type, main_file=data_file,
                    main_file_name=data_file.name), final_dir)
                self._insert_files(conn, product_id, staged, final_dir)
        return int(product_id)

    def _validate(self, request: RegistrationRequest) -> None:
        problems = []
        if not NAME.match(request.name or ""):
            problems.append("name must be 1-40 characters: a lower-case letter, then lower-case "
                            "letters, digits or _ (it becomes part of the table name)")
        if request.product_type not in PRODUCT_TYPES:
            problems.append(f"unknown product type {request.product_type!r}; one of "
                            f"{', '.join(PRODUCT_TYPES)}")
        if not request.main_file.exists() or request.main_file.stat().st_size == 0:
            problems.append("the main file is missing or empty")
        if problems:
            raise InvalidProductError("; ".join(problems), problems)

    def _stage_files(self, request: RegistrationRequest, staging: Path) -> list[tuple[str, ProductFile, Path]]:
        staging.mkdir(parents=True)
        entries = [("main", request.main_file, request.main_file_name)]
        if request.description_file is not None:
            entries.append(("description", request.description_file,
                            request.description_file_name or request.description_file.name))
        entries.extend(("auxiliary", p, n) for p, n in request.auxiliary_files)
        staged = []
        for role, src, file_name in entries:
            safe = safe_file_name(file_name)
            dest = staging / role / safe
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dest)
            fmt = (request.file_format if role == "main" and request.file_format else _format_of(safe))
            staged.append((role, ProductFile(role, safe, fmt, dest.stat().st_size, sha256_of(dest), ""), dest))
        return staged

    def _load_table(self, conn: Connection, request: RegistrationRequest, ptype: ProductType, version: int,
                    progress: Progress | None, budget: _Budget | None) -> tuple[int, str, list[Column]]:
        source = open_table(request.main_file, request.file_format or detect_format(
            Path(request.main_file_name)), budget.read_limits() if budget else ReadLimits())
        specs = plan_columns(source.columns, request.columns, object_key=self.object_key)
        if budget is not None and source.num_rows is not None:
            never_null = {c.name for c in source.columns if not c.nullable}
            known = [s for s in specs if s.original_name in never_null]
            budget.check_table(estimate_table_bytes(source.num_rows, value_bytes(known, source.num_rows)),
                               estimated=True)
        missing = [r for r in ptype.required_roles if column_for_role(specs, r) is None]
        if missing:
            raise InvalidProductError(
                f"a {ptype.label.lower()} needs columns with the roles {', '.join(missing)}; "
                "give them in the column metadata (e.g. {\"z_spec\": {\"role\": \"redshift\"}})")
        id_col = column_for_role(specs, "id")
        name = f"{request.name}_v{version}"
        table_text = _table_text(ptype, request.display_name or request.name, request.name, version,
                                 request.release, request.description)
        desc = table_description(TABLE_SCHEMA, name, table_text, specs,
                                 primary_key=id_col.name if id_col else None)
        rows = publish_arrow_table(conn, desc, specs, source.batches(), progress,
                                   budget.load_limits() if budget else None)
        if rows == 0:
            raise InvalidProductError("the file holds no rows")
        self._check_positions(conn, desc.qualified_name, specs)
        if budget is not None:
            budget.check_table(self.store.relation_bytes(conn, desc.qualified_name), estimated=False)
        return rows, desc.qualified_name, specs

    def _check_positions(self, conn: Connection, table: str, specs: list[Column]) -> None:
        """RA in [0, 360] and Dec in [-90, 90] degrees: anything else is another unit or a
        sentinel, and would give wrong cone searches rather than errors."""
        ra, dec = column_for_role(specs, "ra"), column_for_role(specs, "dec")
        checks = [(c, lo, hi) for c, lo, hi in ((ra, 0, 360), (dec, -90, 90)) if c is not None]
        problems = []
        for col, lo, hi in checks:
            bad = self.store.values_outside(conn, table, col.name, lo, hi)
            if bad[0]:
                problems.append(f"column {col.original_name!r} ({col.role}) has {bad[0]} values outside "
                                f"[{lo}, {hi}] degrees (from {bad[1]} to {bad[2]})")
        if problems:
            raise InvalidProductError("; ".join(problems), problems)

    def _insert_files(self, conn: Connection, product_id: int,
                      files: list[tuple[str, ProductFile, Path]], final_dir: Path) -> None:
        """The staged files' rows, each with its path once moved to ``final_dir``."""
        self.store.insert_files(conn, product_id, [
            replace(f, storage_path=str((final_dir / f.role / f.file_name).relative_to(self.storage_dir)))
            for _, f, _ in files])

    def _set_aside_orphan(self, final_dir: Path) -> None:
        """Move away files where a new version's go: no row of this database names them (the
        version number is new here), so they were left by a database of the same name that was
        dropped and created again, or, misconfigured, belong to another server. Never deleted."""
        if not final_dir.exists():
            return
        relative = final_dir.relative_to(self.storage_dir).as_posix().replace("/", "-")
        aside = self.storage_dir / ".orphaned" / f"{relative}-{uuid.uuid4().hex[:8]}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        final_dir.rename(aside)
        log.warning("orphaned product files set aside", extra={"path": str(final_dir), "moved_to": str(aside)})

    def _require_new_version_rights(self, conn: Connection, name: str, user: User) -> None:
        """A name with a live version belongs to that version's owner: only they or an
        administrator add versions, and only an administrator adds to an official product."""
        latest = self.store.latest_live(conn, name)
        if latest is None:
            return
        owner, official = latest
        AuthService.require_owner_or_admin(user, owner, f"add a version to the product {name!r}")
        if official:
            AuthService.require_admin(user, f"add a version to the official product {name!r}")

    @staticmethod
    def _domain_error(exc: BaseException, budget: _Budget | None = None) -> BaseException:
        if isinstance(exc, LimitExceeded) and budget is not None:
            return budget.error(exc)
        if isinstance(exc, ColumnError):
            return InvalidProductError("the columns cannot be published: " + "; ".join(exc.problems),
                                       exc.problems)
        if isinstance(exc, ReadError):
            return InvalidProductError(str(exc))
        if sqlstate(exc) == UNIQUE_VIOLATION:
            return InvalidProductError("the column with the role 'id' has duplicate values; "
                                       "an id must be unique")
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        code = sqlstate(exc) or ""
        if code[:2] in ("22", "54"):
            # Data the file holds but PostgreSQL cannot store (a NUL in text, a number out of
            # range, a row over 8 kB): the file's to fix, not a server failure.
            detail = str(orig).strip().splitlines()[0] if str(orig).strip() else code
            return InvalidProductError(f"the database cannot store the file's data: {detail}")
        return exc

    # -- reading ---------------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None, *, user: User | None,
            include_deleted: bool = False) -> Product:
        if not NAME.match(name):
            raise ProductNotFoundError(f"no product {name!r} (names are lower-case slugs)")
        if version is not None and not 1 <= version <= MAX_VERSION:
            raise ProductNotFoundError(f"no product {name} version {version} (versions count from 1)")
        with self.engine.connect() as conn:
            product = self.store.get(conn, name, version, include_deleted=include_deleted)
        if product is None:
            what = f"{name} version {version}" if version else name
            raise ProductNotFoundError(f"no product {what}")
        return product

    def list(self, *, product_type: str | None = None, release: str | None = None,
             official: bool | None = None, owner: str | None = None, search: str | None = None,
             all_versions: bool = False, page: int = 1, page_size: int = 25) -> tuple[list[Product], int]:
        """Products matching every given filter, newest first, and the total count."""
        with self.engine.connect() as conn:
            return self.store.list(conn, product_type=product_type, release=release, official=official,
                                   owner=owner, search=search, all_versions=all_versions, page=page,
                                   page_size=page_size)

    def find_by_table(self, table_name: str) -> Product | None:
        """The live product whose table this is, if any (provenance pages link to it)."""
        with self.engine.connect() as conn:
            found = self.store.find_by_table(conn, table_name)
        return self.get(found[0], found[1], user=None) if found else None

    def versions(self, name: str) -> builtins.list[int]:
        """The live versions of a product, newest first."""
        with self.engine.connect() as conn:
            return self.store.versions(conn, name)

    def file_path(self, product: Product, role: str = "main",
                  file_name: str | None = None) -> tuple[Path, ProductFile]:
        """A stored file by role (the first of that role, or the one named ``file_name``)."""
        for f in product.files:
            if f.role == role and file_name in (None, f.file_name):
                path = self.storage_dir / f.storage_path
                if not path.is_file():
                    log.error("stored product file is missing", extra={"product": product.name,
                                                                       "path": str(path)})
                    raise ProductNotFoundError(f"the {role} file of {product.name} v{product.version} "
                                               "is missing from the storage; tell the operators")
                return path, f
        named = f" named {file_name!r}" if file_name else ""
        raise ProductNotFoundError(f"product {product.name} v{product.version} has no {role} file{named}")

    # -- changes -------------------------------------------------------------------------------
    def update(self, name: str, version: int | None, changes: dict, user: User) -> Product:
        """Edit product metadata and column descriptions/units/UCDs (owner or admin)."""
        product = self.get(name, version, user=None)
        AuthService.require_owner_or_admin(user, product.owner, "edit this product")
        if "official" in changes and bool(changes["official"]) != product.official:
            AuthService.require_admin(user, "mark products official or not official")
        fields = {k: v for k, v in changes.items() if k in EDITABLE}
        column_changes: dict[str, dict] = changes.get("columns") or {}
        unknown = [c for c in column_changes if c not in {col.name for col in product.columns}]
        if unknown:
            raise InvalidProductError(f"no such column(s): {', '.join(unknown)}")
        with self.engine.begin() as conn:
            self.store.update_product(conn, product.id, fields)
            for col, meta in column_changes.items():
                allowed = {k: v for k, v in meta.items() if k in COLUMN_EDITABLE}
                self.store.update_column(conn, product.id, col, allowed)
            if product.table_name:
                updated = self.store.get_by_id(conn, product.id)
                assert updated is not None, "the row was just updated"
                self._republish(conn, updated)
        return self.get(name, product.version, user=None)

    @staticmethod
    def _republish(conn: Connection, product: Product) -> None:
        """Rewrite the product table's TAP_SCHEMA rows after a metadata edit."""
        specs = [c.with_(original_name=c.original_name or c.name) for c in product.columns]
        id_col = column_for_role(specs, "id")
        ptype = PRODUCT_TYPES[product.product_type]
        desc = table_description(TABLE_SCHEMA, product.table_name.split(".", 1)[1],  # type: ignore[union-attr]
                                 _table_text(ptype, product.display_name, product.name, product.version,
                                             product.release, product.description), specs,
                                 primary_key=id_col.name if id_col else None)
        publish_table(conn, desc)

    def _remove_files(self, name: str, version: int) -> None:
        """A deleted version's folder, and the product's folder once no version is left in it.

        Under the product name's lock: a registration of the same name creates the product
        folder and moves its version in while holding it.
        """
        with self.engine.begin() as conn:
            self.store.lock_name(conn, name)
            shutil.rmtree(self.storage_dir / name / f"v{version}", ignore_errors=True)
            _remove_if_empty(self.storage_dir / name)

    def delete(self, name: str, version: int | None, user: User) -> Product:
        """Remove a product version: table dropped, TAP_SCHEMA rows and files removed, the
        registry row kept with status ``deleted`` so its provenance still resolves."""
        product = self.get(name, version, user=None)
        AuthService.require_owner_or_admin(user, product.owner, "delete this product")
        if product.official:
            AuthService.require_admin(user, "delete an official product")
        with self.engine.begin() as conn:
            entity = product.entity_id
            if self.store.entity_exists(conn, entity):
                record_invalidation(conn, entity, agent=user_agent(user.name),
                                    reason=f"product {product.name} v{product.version} deleted")
            if product.table_name:
                unpublish_table(conn, product.table_name)
                self.store.drop_table(conn, product.table_name)
            self.store.mark_deleted(conn, product.id)
        self._remove_files(product.name, product.version)
        log.info("product deleted", extra={"product": name, "version": product.version, "user": user.name})
        return product


#: Bytes of a stored file's name (file systems allow 255); longer names keep their two ends.
MAX_FILE_NAME = 200


def safe_file_name(file_name: str) -> str:
    """A file name for the storage: ``[A-Za-z0-9._-]`` only, not hidden, not too long."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file_name.replace("\x00", "")).name).lstrip(".") or "file"
    if len(safe) > MAX_FILE_NAME:
        safe = safe[:MAX_FILE_NAME // 2] + safe[-MAX_FILE_NAME // 2:]
    return safe


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (other versions), or already gone


def _description_text(path: Path, file_name: str) -> str | None:
    """The text of a Markdown or plain-text description file (HTML stays a file to download)."""
    if Path(file_name).suffix.lower() not in (".md", ".markdown", ".txt", ""):
        return None
    try:
        return path.read_text(encoding="utf-8")[:20_000].strip() or None
    except UnicodeDecodeError:
        return None


def _format_of(file_name: str) -> str:
    try:
        return detect_format(Path(file_name))
    except ReadError:
        suffix = Path(file_name).suffix.lower().lstrip(".")
        return suffix or "binary"


def _table_text(ptype: ProductType, display_name: str, name: str, version: int, release: str | None,
                description: str | None) -> str:
    """The TAP_SCHEMA description of a product table."""
    head = f"{ptype.label} '{display_name}' (pzvo product {name}, version {version}"
    head += f", release {release})" if release else ")"
    return head + (f": {description}" if description else ".")

