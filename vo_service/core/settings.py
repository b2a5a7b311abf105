"""Configuration: environment variables first, then ``pzvo.toml``, then defaults.

Every setting has an environment variable ``PZVO_<NAME>`` (upper case) and a key ``<name>`` in
the optional TOML file named by ``PZVO_CONFIG`` (default ``pzvo.toml`` in the project root).
The table of settings is documented in ``docs/operations.md``. An unknown key or ``PZVO_*``
variable, or a value that does not parse, is a :class:`SettingsError`: a misspelt setting would
otherwise be silently ignored and its default used.
"""
from __future__ import annotations

import difflib
import logging
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: ``PZVO_*`` environment variables that are not settings, with why each exists. Any other
#: ``PZVO_*`` variable must name a setting: keep this in step with docs/operations.md.
NOT_SETTINGS: dict[str, str] = {
    "PZVO_CONFIG": "names the TOML settings file itself (default pzvo.toml in the project root)",
    "PZVO_USER": "who `pzvo ingest` and `pzvo products delete` act as: per command, not a setting",
    "PZVO_BEHIND_FRONT": "set by `pzvo serve` for gunicorn behind nginx (trust X-Forwarded-*)",
    "PZVO_TEST_DB": "name of the test suite's database in the private cluster (tests/conftest.py)",
    "PZVO_TEST_DATABASE_URL": "a disposable external PostgreSQL for the test suite",
    "PZVO_TAP_URL": "the TAP endpoint benchmarks/loadtest.py loads, which may be another server's",
}

#: Settings with a fixed set of values (``front`` as in ``vo_service/serving.py``), checked here
#: so that a typo is a configuration error, not a traceback from wherever the value is used.
_CHOICES: dict[str, tuple[str, ...]] = {
    "front": ("nginx", "none"),
    "log_level": tuple(logging.getLevelNamesMapping()),
}
#: Settings whose text has a form (a registry refuses a record with a malformed identifier or
#: time long after the typo): the pattern, and what the error message calls it.
_UTC_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
_FORMS: dict[str, tuple[str, str]] = {
    "registry_identifier": (r"ivo://[\w\d][\w\d\-_\.!~\*'\(\)\+=]{2,}(/[\w\d\-_\.!~\*'\(\)\+=]+)*",
                            "an IVOA identifier ivo://authority/key"),
    "registry_created": (_UTC_TIME, "a UTC time YYYY-MM-DDThh:mm:ssZ"),
    "registry_updated": (f"({_UTC_TIME})?", "a UTC time YYYY-MM-DDThh:mm:ssZ, or empty"),
    "object_key_column": (r"[A-Za-z][A-Za-z0-9_]{0,62}", "a regular ADQL identifier such as objectId"),
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """An invalid configuration; the message names every bad key (and value), on one line."""


@dataclass(frozen=True)
class Settings:
    """Service and database settings; see ``docs/operations.md`` for each one."""

    database_url: str | None = None
    """Owner connection (migrations, ingest). Unset: the private cluster under ``var/``."""
    reader_url: str | None = None
    """Connection for user queries; unset: ``database_url`` with the ``pzvo_reader`` role."""
    reader_password: str | None = None
    var_dir: Path = PROJECT_ROOT / "var"
    db_port: int = 54329
    db_name: str = "pzvo"
    maxrec_default: int = 100_000
    maxrec_limit: int = 10_000_000
    query_timeout_s: float = 60.0
    catalog_ttl_s: float = 2.0
    pool_size: int = 4
    log_level: str = "INFO"
    product_max_bytes: int = 2 * 1024**3
    """Largest product upload (the whole request body under /api); larger ones get 413."""
    public_read: bool = False
    """Let anonymous users read (TAP queries, product lists): for a public demo. `make run` sets it."""
    trust_proxy_header: bool = False
    """Behind the RSP auth proxy: take the user from its ``X-Auth-Request-User`` header."""
    # -- async TAP (UWS) and uploads; see docs/async.md -----------------------------------------
    uws_execution_duration_s: int = 600
    """Execution duration an async job gets when it asks for none."""
    uws_max_execution_duration_s: int = 3600
    """Hard limit on a job's execution duration (larger requests, and 0, are capped to it)."""
    uws_retention_s: int = 7 * 86400
    """Default time from creation to destruction of a job and its results."""
    uws_max_retention_s: int = 30 * 86400
    """Latest destruction a user may ask for, counted from creation."""
    uws_max_active_jobs: int = 10
    """Jobs one owner may have QUEUED or EXECUTING at once (anonymous users share one quota)."""
    uws_workers: int = 2
    """Worker processes `pzvo serve` starts next to the web server."""
    uws_worker_threads: int = 2
    """Jobs one worker process runs at once."""
    uws_heartbeat_s: float = 2.0
    tsm_scheduler: str = ""
    """Dask scheduler address for Training Set Maker jobs (empty: a threaded cluster in the worker)."""
    object_key_column: str = "objectId"
    """Name of the Object catalog's key (the RSP's ``objectId``): the name the key gets in every
    published table keyed by Object (PZ tables, TSM outputs, products with the ``object_id``
    role, the demo), and the column the felis export declares a foreign key to,
    ``Object.<this>`` (docs: federation, exports)."""
    uws_lease_s: float = 30.0
    """A job whose worker has not sent a heartbeat for this long is taken back (worker died)."""
    uws_max_attempts: int = 2
    """Times a job is started before a dead worker sends it to ERROR instead of the queue."""
    uws_wait_max_s: float = 60.0
    """Longest a blocking WAIT on a job holds the request."""
    upload_max_bytes: int = 32 * 1024 * 1024
    upload_max_rows: int = 1_000_000
    upload_url_prefixes: str = ""
    """Comma-separated URL prefixes UPLOAD=name,URL may fetch from; empty: no fetching at all."""
    upload_max_columns: int = 500
    """Most columns a TAP upload may declare (checked before any row is read)."""
    upload_max_cell_bytes: int = 1024 * 1024
    """Largest declared size of one cell of an upload (VOTable arraysize, HDF5 string length)."""
    # -- limits of the public service; see docs/security.md -------------------------------------
    uws_anonymous_max_execution_duration_s: int = 60
    """Execution duration limit of jobs created without a token."""
    uws_anonymous_retention_s: int = 86400
    """Latest destruction of a job created without a token, after creation (default and limit):
    anonymous users share one quota of stored bytes, which must drain soon."""
    uws_anonymous_max_active_jobs: int = 4
    """Jobs all anonymous users together may have QUEUED or EXECUTING."""
    uws_anonymous_slots: int = 1
    """Anonymous jobs EXECUTING at once across all workers: the rest of the slots stay for users."""
    uws_wait_per_client: int = 2
    """Blocking WAIT requests one client (user, or address when anonymous) may hold at once."""
    uws_wait_thread_share: float = 0.25
    """Share of a web process's request threads that may block in WAIT at once."""
    quota_job_result_bytes: int = 5 * 1024**3
    """Stored async-job results one user may hold; further jobs are refused until some are deleted."""
    quota_anonymous_job_result_bytes: int = 256 * 1024**2
    """Stored async-job results all anonymous users together may hold."""
    product_max_rows: int = 50_000_000
    """Most rows of one product table (the file's declared rows, checked before loading)."""
    product_max_table_bytes: int = 4 * 1024**3
    """Largest expanded (in-database) size of one product table."""
    product_max_columns: int = 500
    """Most columns of one product table."""
    quota_product_bytes: int = 20 * 1024**3
    """Stored product files and tables one user may hold (administrators have no quota)."""
    web_workers: int = 2
    """gunicorn processes behind the front (`pzvo serve`)."""
    web_threads: int = 4
    """Request threads per gunicorn process."""
    front: str = "nginx"
    """What faces clients in `pzvo serve`: ``nginx`` (buffering proxy) or ``none`` (gunicorn alone)."""
    # -- the service's VOResource record at /tap/resource; see docs/federation.md ----------------
    registry_identifier: str = "ivo://pzvo.example/tap"
    """IVOA identifier of the TAP service (``ivo://authority/key``): a registry lists it by this name."""
    registry_publisher: str = "pzvo operators"
    """Who publishes the service (curation/publisher); also the contact's name."""
    registry_contact_email: str = ""
    """Contact address in the record (empty: none given)."""
    registry_created: str = "2026-12-04T00:00:00Z"
    """When the record was first published (UTC, ``YYYY-MM-DDThh:mm:ssZ``); never changes after."""
    registry_updated: str = ""
    """When the record last changed in a way a registry must notice (UTC); empty: ``registry_created``."""

    @property
    def pg_dir(self) -> Path:
        return self.var_dir / "pg"

    @property
    def products_dir(self) -> Path:
        """Product files, one directory per database: databases that share ``var/`` (the
        tests', a scratch copy) must never see, or remove, each other's files."""
        name = None
        if self.database_url:
            from sqlalchemy.engine import make_url  # noqa: PLC0415 - sqlalchemy: 0.2-0.4 s, `pzvo` loads settings at start

            name = make_url(self.database_url).database
        return self.products_dir_for(name)

    def products_dir_for(self, database: str | None) -> Path:
        """The product files of the database an engine is connected to (``db_name`` when the
        URL names none, as libpq then does not either: the same rule for every caller)."""
        return self.var_dir / "products" / (database or self.db_name)

    @property
    def uses_private_cluster(self) -> bool:
        return self.database_url is None

    def owner_url(self) -> str:
        """SQLAlchemy URL of the owner role (schema changes, ingest)."""
        if self.database_url:
            return self.database_url
        return f"postgresql://pzvo:{_secret(self, 'owner')}@127.0.0.1:{self.db_port}/{self.db_name}"

    def reader_role_password(self) -> str:
        return self.reader_password or _secret(self, "reader")

    def query_url(self) -> str:
        """libpq URL of the read-only role that runs user queries."""
        if self.reader_url:
            return self.reader_url
        from sqlalchemy.engine import make_url  # noqa: PLC0415 - sqlalchemy: see products_dir

        url = make_url(self.owner_url()).set(
            drivername="postgresql", username="pzvo_reader", password=self.reader_role_password())
        return url.render_as_string(hide_password=False)


def _secret(settings: Settings, name: str) -> str:
    """A password for the private cluster, generated once and kept under ``var/`` (mode 600)."""
    path = settings.var_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _parse(name: str, kind: str, value: object) -> object:
    """``value`` (a string from the environment, or a TOML value) as a setting of type ``kind``;
    ValueError saying what was expected when it is not one."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"not a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")
    if kind in ("int", "float"):
        what = "an integer" if kind == "int" else "a number"
        # TOML's true is an int to Python, and 2.5 is not an integer: neither is truncated
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (
                kind == "int" and isinstance(value, float)):
            raise ValueError(f"not {what}")
        try:
            return int(value) if kind == "int" else float(value)
        except ValueError:
            raise ValueError(f"not {what}") from None
    if kind in ("str", "str | None", "Path"):
        if not isinstance(value, str):
            raise ValueError("not a string")
        if name in _CHOICES:
            chosen = value.upper() if name == "log_level" else value
            if chosen not in _CHOICES[name]:
                raise ValueError(f"not one of {', '.join(_CHOICES[name])}")
            return chosen
        if name in _FORMS and not _well_formed(name, value):
            raise ValueError(f"not {_FORMS[name][1]}")
        return Path(value) if kind == "Path" else value
    raise TypeError(f"setting {name} has a type load_settings cannot read: {kind}")


def _well_formed(name: str, value: str) -> bool:
    """``value`` has the form of setting ``name``; a time must also be a real one (no 13th month)."""
    if not re.fullmatch(_FORMS[name][0], value):
        return False
    if value and name in ("registry_created", "registry_updated"):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
    return True


def _unknown(key: str, known: list[str]) -> str:
    """The hint for an unknown key: the closest known name, if one is close."""
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def load_settings(**overrides: object) -> Settings:
    """Read settings from overrides, the environment and the TOML file, in that order.

    Every source is checked whole, even where a higher one wins: a bad value or unknown key is
    a mistake waiting for the day that higher source goes away."""
    kinds = {f.name: str(f.type) for f in fields(Settings)}
    problems: list[str] = []
    named = os.environ.get("PZVO_CONFIG")
    config_path = Path(named) if named else PROJECT_ROOT / "pzvo.toml"
    from_file: dict[str, object] = {}
    if named and not config_path.is_file():
        problems.append(f"PZVO_CONFIG names {config_path}, which is not a file")
    elif config_path.exists():
        try:
            with config_path.open("rb") as fh:
                from_file = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"cannot read {config_path}: {exc}")
    values: dict[str, object] = {}
    for key, raw in from_file.items():
        if key not in kinds:
            problems.append(f"unknown key {key!r} in {config_path}"
                            f"{_unknown(key.lower().removeprefix('pzvo_'), sorted(kinds))}")
            continue
        try:
            values[key] = _parse(key, kinds[key], raw)
        except ValueError as exc:
            problems.append(f"{key} = {raw!r} in {config_path}: {exc}")
    env_names = {f"PZVO_{name.upper()}": name for name in kinds}
    for var, raw in sorted(os.environ.items()):
        if not var.startswith("PZVO_") or var in NOT_SETTINGS:
            continue
        if var not in env_names:
            problems.append(f"unknown environment variable {var}"
                            f"{_unknown(var, sorted([*env_names, *NOT_SETTINGS]))}")
        elif raw != "":  # set but empty counts as unset, as with a shell's `VAR= command`
            try:
                values[env_names[var]] = _parse(env_names[var], kinds[env_names[var]], raw)
            except ValueError as exc:
                problems.append(f"{var}={raw!r}: {exc}")
    for name in overrides:
        if name not in kinds:
            problems.append(f"unknown setting {name!r} passed to load_settings"
                            f"{_unknown(name, sorted(kinds))}")
    if problems:
        raise SettingsError("; ".join(problems))
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
