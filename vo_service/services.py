"""The composition root: every service of pzvo, built once from the settings.

The web application (:func:`vo_service.app.create_app`), the async worker (``pzvo worker``),
the command line, the pipeline's commands, the demo loader and the tests all receive a
:class:`Services` instead of building engines, pools and services of their own, so that one
process holds one owner engine, one pool of query connections and one instance of each service,
and a test can build the whole stack against its own database.  Nothing below this module reads
the settings from the environment.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import Engine

from vo_service.auth import AuthService, User
from vo_service.core.database import owner_engine
from vo_service.core.pool import ConnectionPool
from vo_service.core.settings import Settings
from vo_service.products import PipelineRunStore, ProductRegistry
from vo_service.provenance import ProvenanceService
from vo_service.tap import TapService, UploadStore
from vo_service.uws import JobRunner, JobStore, UwsService, Worker


@dataclass
class Services:
    """The services of one process, sharing its engines and pools.

    ``owner_engine`` writes (registry, ingest, jobs, TAP_SCHEMA); ``reader_engine`` and
    ``query_pool`` read as the read-only query role (provenance pages through SQLAlchemy, user
    queries through ADBC).  Engines and pools connect lazily, so building a ``Services`` opens
    no connection: a command that only needs the settings pays nothing for the rest.
    """

    settings: Settings
    owner_engine: Engine
    reader_engine: Engine
    query_pool: ConnectionPool
    auth: AuthService
    tap: TapService
    products: ProductRegistry
    runs: PipelineRunStore
    jobs: JobStore
    uws: UwsService
    provenance: ProvenanceService
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, pool_size: int | None = None) -> Services:
        """Every service for ``settings``; ``pool_size`` overrides the query pool's size (a
        worker process sizes it to its job threads)."""
        engine = owner_engine(settings)
        reader_url = make_url(settings.query_url()).set(drivername="postgresql+psycopg2")
        reader = create_engine(reader_url, pool_size=2, max_overflow=4, pool_pre_ping=True)
        pool = ConnectionPool(settings.query_url(), size=pool_size or settings.pool_size,
                              statement_timeout_ms=int(settings.query_timeout_s * 1000))
        jobs = JobStore(engine)
        return cls(
            settings=settings, owner_engine=engine, reader_engine=reader, query_pool=pool,
            auth=AuthService(engine=engine, trust_proxy_header=settings.trust_proxy_header,
                             public_read=settings.public_read, retire_jobs=jobs.retire_owner),
            tap=TapService(settings=settings, pool=pool, upload_store=UploadStore.from_settings(settings)),
            products=ProductRegistry(engine=engine, storage_dir=settings.products_dir,
                                     object_key=settings.object_key_column),
            runs=PipelineRunStore(engine), jobs=jobs, uws=UwsService(settings=settings, store=jobs),
            provenance=ProvenanceService(engine=reader))

    def worker(self, *, threads: int | None = None, name: str | None = None,
               runners: Mapping[str, JobRunner] | None = None) -> Worker:
        """An async-job worker on these services (one per ``pzvo worker`` process); with
        ``runners``, it also runs pipeline jobs of those kinds (given by ``vo_service.cli``,
        which may import the pipeline where this module may not)."""
        return Worker(settings=self.settings, store=self.jobs, tap=self.tap, name=name,
                      threads=threads if threads is not None else self.settings.uws_worker_threads,
                      runners=runners)

    def operator(self, name: str | None = None) -> User:
        """Who a command acts as (see :meth:`AuthService.operator`)."""
        return self.auth.operator(name)

    def close(self) -> None:
        """Close the query pool and the reader engine (the owner engine is shared per URL)."""
        if not self._closed:
            self._closed = True
            self.query_pool.close()
            self.reader_engine.dispose()
