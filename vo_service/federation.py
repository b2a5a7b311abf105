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
placeholder, TOP n and ORDER BY <key>.  Each chunk is uploaded and joined on its own while the
next one is fetched, so at most two chunks of the source result are held at a time; the joined
chunks are concatenated, which is the whole answer when the target query treats uploaded rows
independently (joins and filters, not
aggregates, TOP or DISTINCT over the whole).  See docs/federation.md.
"""
from __future__ import annotations

import html
import io
import math
import queue
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyvo
import requests
import urllib3
from astropy.io import votable
from astropy.io.votable import from_table
from astropy.table import MaskedColumn, Table, vstack

from vo_service.tap import DecodedTable, decode_binary2, encode_binary2

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

    timeout: float = 3600.0

    def session(self) -> requests.Session:
        session = requests.Session()
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def service(self) -> pyvo.dal.TAPService:
        """A pyvo TAPService with the same credentials (for a notebook's own queries)."""
        return pyvo.dal.TAPService(self.url, session=self.session())


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


_INFO = re.compile(rb"<INFO\b([^>]*?)(?:/>|>(.*?)</INFO>)", re.DOTALL)
_ATTR = re.compile(rb'(\w+)="([^"]*)"')


def _query_status(document: bytes) -> tuple[str | None, str]:
    """The DALI QUERY_STATUS of a VOTable (the last one given) and its text."""
    status, text = None, ""
    for match in _INFO.finditer(document):
        attrs = dict(_ATTR.findall(match.group(1)))
        if attrs.get(b"name") == b"QUERY_STATUS":
            status = attrs.get(b"value", b"").decode()
            text = (match.group(2) or b"").decode("utf-8", "replace").strip()
    return status, html.unescape(text)


def _to_astropy(decoded: DecodedTable) -> Table:
    table = Table()
    for info, values, mask in zip(decoded.fields, decoded.values, decoded.masks, strict=True):
        table[info.name] = MaskedColumn(values, mask=mask, unit=info.unit, description=info.description)
    return table


@dataclass(frozen=True)
class _Result:
    """A query's rows, and the VOTable they came in when it can be uploaded as it is (BINARY2
    of fixed-width scalars, read and checked by the numpy decoder): re-encoding it would only
    cost time and drop the FIELDs' units, UCDs and descriptions."""

    table: Table
    document: bytes | None = None


def _run(side: TapEndpoint, query: str, uploads: dict[str, bytes] | None = None,
         maxrec: int | None = None) -> _Result:
    """A synchronous TAP query (DALI's parameters, TAP 1.1 uploads); BINARY2 results of
    fixed-width columns are decoded with numpy (astropy takes seconds per million rows),
    anything else with astropy."""
    what = "run the query" + (" with the upload" if uploads else "")
    params = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    if maxrec is not None:
        params["MAXREC"] = str(maxrec)
    files = {}
    if uploads:
        params["UPLOAD"] = ";".join(f"{name},param:{name}" for name in uploads)
        files = {name: (f"{name}.vot", document, "application/x-votable+xml") for name, document in uploads.items()}
    try:
        with side.session().post(side.url.rstrip("/") + "/sync", data=params, files=files or None,
                                 timeout=side.timeout, stream=True) as response:
            # One read of the whole body: requests' ``content`` joins 10 kB pieces (0.1 s more
            # for a 23 MB result).
            content = response.raw.read(decode_content=True)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise _failed(side, what, exc) from exc
    status, text = _query_status(content)
    if response.status_code >= 400 or status == "ERROR":
        detail = text or f"HTTP {response.status_code} {response.reason}: {response.text[:300]}"
        raise FederationError(f"the {side.label} TAP service ({side.url}) failed to {what}: {detail}")
    if status == "OVERFLOW":
        raise FederationError(f"the {side.label} TAP service ({side.url}) cut the result at its row limit: "
                              "go in chunks (chunk_by, chunk_rows below that limit)")
    decoded = decode_binary2(content)
    if decoded is not None:
        return _Result(_to_astropy(decoded), content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _Result(votable.parse(io.BytesIO(content), verify="ignore").get_first_table().to_table(
                use_names_over_ids=True))
    except Exception as exc:  # not a VOTable
        raise _failed(side, what + " (reading its answer)", exc) from exc


def _upload_document(result: _Result) -> bytes:
    """The rows as a BINARY2 VOTable (what TOPCAT and STILTS send; compact and exact): the
    document they came in when it is clean BINARY2, else written with numpy when every column
    is a number or boolean, else by astropy."""
    if result.document is not None:
        return result.document
    table = result.table
    data = encode_binary2(_to_arrow(table)) if _numeric(table) else None
    if data is not None:
        return data
    clean = table.copy(copy_data=False)
    clean.meta.clear()
    out = io.BytesIO()
    from_table(clean).to_xml(out, tabledata_format="binary2")
    return out.getvalue()


def _numeric(table: Table) -> bool:
    return all(table[name].dtype.kind in "iufb" and table[name].ndim == 1 for name in table.colnames)


def _to_arrow(table: Table) -> pa.Table:
    arrays = []
    for name in table.colnames:
        column = table[name]
        mask = np.ma.getmaskarray(column)
        arrays.append(pa.array(np.asarray(np.ma.getdata(column)), mask=mask if mask.any() else None))
    return pa.table(arrays, names=table.colnames)


def _source_results(source: TapEndpoint, query: str, *, chunk_by: str | None, chunk_rows: int | None,
                    maxrec: int | None) -> Iterator[_Result]:
    """The source query's result, whole (up to ``maxrec`` rows, else the service's default
    limit) or in key-ordered chunks."""
    if not chunk_rows:
        yield _run(source, query, maxrec=maxrec)
        return
    if not chunk_by or not _NAME.match(chunk_by):
        raise FederationError("chunking needs chunk_by, the name of a unique key column of the source result")
    after: Any = None
    while True:
        result = _run(source, chunk_query(query, chunk_by, chunk_rows, after), maxrec=chunk_rows)
        table = result.table
        if len(table) == 0:
            return
        column = next((c for c in table.colnames if c.lower() == chunk_by.lower()), None)
        if column is None:
            raise FederationError(f"the {source.label} result has no column {chunk_by!r} to chunk by")
        yield result
        if len(table) < chunk_rows:
            return
        after = table[column][-1]


_DONE = object()


def _prefetched(chunks: Iterator[_Result]) -> Iterator[_Result]:
    """``chunks`` with the next item fetched in a thread while the caller works on this one:
    the source service answers the next page while the target joins the last, and no more
    than one page waits (memory stays at two chunks).  The producer's errors surface here."""
    slot: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        slot.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slot.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            slot.put(exc)

    worker = threading.Thread(target=produce, name="federate-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slot.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full slot
            try:
                slot.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def federate(source: TapEndpoint, source_query: str, *, name: str, query: str, target: TapEndpoint,
             chunk_by: str | None = None, chunk_rows: int | None = None, maxrec: int | None = None,
             progress: Callable[[ChunkProgress], None] | None = None) -> Table:
    """Run ``source_query`` on ``source``, upload each result (chunk) to ``target`` as
    ``TAP_UPLOAD.<name>`` and run ``query`` there; the joined rows as one astropy Table."""
    if not _NAME.match(name):
        raise FederationError(f"upload name {name!r}: letters, digits and _, starting with a letter")
    parts: list[Table] = []
    source_rows = joined = 0
    chunks = _source_results(source, source_query, chunk_by=chunk_by, chunk_rows=chunk_rows, maxrec=maxrec)
    for index, chunk in enumerate(_prefetched(chunks) if chunk_rows else chunks, start=1):
        source_rows += len(chunk.table)
        part = _run(target, query, uploads={name: _upload_document(chunk)}, maxrec=maxrec).table
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
