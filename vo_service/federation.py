"""Federated queries: a query's result on one TAP service joined with tables of another.

The IVOA way, with nothing but TAP on both sides: run ``remote_query`` on the source service,
upload its result to the target service as ``TAP_UPLOAD.<name>`` (TAP 1.1 section 4.1.5) and
run ``query`` there, which joins it with the target's own tables.  ``direction="local"``
brings a remote selection (e.g. RSP Object rows) to this service's PZ tables;
``direction="remote"`` takes a query of this service (e.g. photo-zs) to the remote service.

>>> from vo_service.federation import TapEndpoint, federate
>>> rsp = TapEndpoint("https://data.lsst.cloud/api/tap", token=os.environ["RSP_TOKEN"], label="remote")
>>> here = TapEndpoint("http://127.0.0.1:8000/tap", label="local")
>>> joined = federate(rsp, "SELECT objectId, coord_ra, coord_dec FROM dp02_dc2_catalogs.Object WHERE ...",
...                   name="obj", target=here,
...                   query="SELECT o.*, p.z_phot FROM TAP_UPLOAD.obj AS o "
...                         "JOIN pz.photoz_demo AS p ON p.object_id = o.objectId")

Large results go in chunks of ``chunk_rows`` ordered by ``chunk_by`` (a unique key such as
objectId): each chunk is ``SELECT TOP n * FROM (<source query>) AS chunk WHERE chunk.<key> >
<last> ORDER BY chunk.<key>``, or, when the source query holds the placeholder ``{chunk}`` (for
services without subqueries in FROM), that query with ``<key> > <last>`` in place of the
placeholder, TOP n and ORDER BY <key>.  Each chunk is uploaded and joined on its own, so only one
chunk of the source result is held at a time; the joined chunks are concatenated, which is the
whole answer when the target query treats uploaded rows independently (joins and filters, not
aggregates, TOP or DISTINCT over the whole).  See docs/federation.md.
"""
from __future__ import annotations

import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyvo
import requests
from astropy.io.votable import from_table
from astropy.table import Table, vstack

#: Placeholder a source query may hold for the chunk's key condition.
CHUNK_PLACEHOLDER = "{chunk}"
_SELECT = re.compile(r"^\s*SELECT\s+(DISTINCT\s+)?", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class FederationError(RuntimeError):
    """A federated query that failed; the message says which side and why."""


@dataclass(frozen=True)
class TapEndpoint:
    """One TAP service: its URL and, when it needs one, a bearer token."""

    url: str
    token: str | None = None
    label: str = "service"

    def service(self) -> pyvo.dal.TAPService:
        session = requests.Session()
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        return pyvo.dal.TAPService(self.url, session=session)


@dataclass(frozen=True)
class ChunkProgress:
    chunk: int
    source_rows: int
    joined_rows: int


def _failed(side: TapEndpoint, what: str, exc: Exception) -> FederationError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return FederationError(f"the {side.label} TAP service ({side.url}) failed to {what}: {detail}")


def chunk_query(query: str, key: str, rows: int, after: Any) -> str:
    """The source query's next chunk (module docstring)."""
    condition = "1=1" if after is None else f"{key} > {_literal(after)}"
    if CHUNK_PLACEHOLDER in query:
        match = _SELECT.match(query)
        if not match:
            raise FederationError("a chunked source query with {chunk} must start with SELECT")
        body = query.replace(CHUNK_PLACEHOLDER, condition)
        return f"{match.group(0)}TOP {rows} {body[match.end():]} ORDER BY {key}"
    outer = "" if after is None else f" WHERE chunk.{key} > {_literal(after)}"
    return f"SELECT TOP {rows} * FROM ({query}) AS chunk{outer} ORDER BY chunk.{key}"


def _literal(value: Any) -> str:
    if isinstance(value, str | np.str_):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        raise FederationError(f"cannot continue after a non-finite key value {value!r}")
    return repr(value.item() if isinstance(value, np.generic) else value)


def _run(side: TapEndpoint, query: str, uploads: dict[str, Any] | None = None,
         maxrec: int | None = None) -> Table:
    what = "run the query" + (" with the upload" if uploads else "")
    try:
        result = side.service().run_sync(query, uploads=uploads, maxrec=maxrec)
    except Exception as exc:  # pyvo raises DALQueryError (with the DALI text), DALServiceError, ...
        raise _failed(side, what, exc) from exc
    if getattr(result, "query_status", None) == "OVERFLOW":
        raise FederationError(f"the {side.label} TAP service ({side.url}) cut the result at its row limit "
                              f"({len(result)} rows): go in chunks (chunk_by, chunk_rows below that limit)")
    return result.to_table()


def _upload_file(table: Table, directory: str) -> Path:
    """The table as a BINARY2 VOTable file (what TOPCAT and STILTS send; compact and exact)."""
    path = Path(directory) / "upload.vot"
    clean = table.copy(copy_data=False)
    clean.meta.clear()
    votable = from_table(clean)
    votable.to_xml(str(path), tabledata_format="binary2")
    return path


def source_chunks(source: TapEndpoint, query: str, *, chunk_by: str | None = None,
                  chunk_rows: int | None = None) -> Iterator[Table]:
    """The source query's result, whole or in key-ordered chunks."""
    if not chunk_rows:
        yield _run(source, query)
        return
    if not chunk_by or not _NAME.match(chunk_by):
        raise FederationError("chunking needs chunk_by, the name of a unique key column of the source result")
    after: Any = None
    while True:
        table = _run(source, chunk_query(query, chunk_by, chunk_rows, after), maxrec=chunk_rows)
        if len(table) == 0:
            return
        column = next((c for c in table.colnames if c.lower() == chunk_by.lower()), None)
        if column is None:
            raise FederationError(f"the {source.label} result has no column {chunk_by!r} to chunk by")
        yield table
        if len(table) < chunk_rows:
            return
        after = table[column][-1]


def federate(source: TapEndpoint, source_query: str, *, name: str, query: str, target: TapEndpoint,
             chunk_by: str | None = None, chunk_rows: int | None = None,
             progress: Callable[[ChunkProgress], None] | None = None) -> Table:
    """Run ``source_query`` on ``source``, upload each result (chunk) to ``target`` as
    ``TAP_UPLOAD.<name>`` and run ``query`` there; the joined rows as one astropy Table."""
    if not _NAME.match(name):
        raise FederationError(f"upload name {name!r}: letters, digits and _, starting with a letter")
    parts: list[Table] = []
    source_rows = joined = 0
    with tempfile.TemporaryDirectory(prefix="pzvo-federate-") as work:
        for index, chunk in enumerate(source_chunks(source, source_query, chunk_by=chunk_by,
                                                    chunk_rows=chunk_rows), start=1):
            source_rows += len(chunk)
            part = _run(target, query, uploads={name: str(_upload_file(chunk, work))})
            joined += len(part)
            parts.append(part)
            if progress is not None:
                progress(ChunkProgress(index, source_rows, joined))
    if not parts:
        return Table()
    return parts[0] if len(parts) == 1 else vstack(parts, join_type="exact", metadata_conflicts="silent")


#: Output formats: name -> astropy's writer and its options.
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "votable": ("votable", {"tabledata_format": "binary2"}), "csv": ("ascii.csv", {}), "ecsv": ("ascii.ecsv", {}),
    "fits": ("fits", {}), "parquet": ("parquet", {}),
}
_SUFFIXES = {".vot": "votable", ".xml": "votable", ".csv": "csv", ".ecsv": "ecsv", ".fits": "fits",
             ".fit": "fits", ".parquet": "parquet"}


def write_table(table: Table, out: str | None, fmt: str | None = None) -> None:
    """Write the joined table to ``out`` (CSV on stdout without it) in ``fmt`` or by its suffix."""
    name = fmt or (_SUFFIXES.get(Path(out).suffix.lower()) if out else "csv")
    if name not in FORMATS:
        raise FederationError(f"output format {fmt or out!r}: one of {', '.join(FORMATS)}")
    writer, options = FORMATS[name]
    if out is None:
        if name != "csv":
            raise FederationError("only csv goes to standard output; give --out for other formats")
        table.write(sys.stdout, format=writer)
        return
    table.write(out, format=writer, overwrite=True, **options)
