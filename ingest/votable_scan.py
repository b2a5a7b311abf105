"""A streaming pre-scan of a VOTable: declared sizes checked before astropy allocates them.

astropy allocates what a VOTable declares: a FIELD of ``arraysize="100000000"`` costs 100 MB
per row (a 245-byte document with one TABLEDATA row made it hold 1.3 GB), a TABLE's ``nrows``
is allocated up front, and a ``STREAM href`` is fetched (``file:`` URLs included, so an
upload could read the server's files).  This scan runs first, with expat through callbacks
(constant memory, no DTD or entity processing), and refuses such a document before astropy sees
it.  BINARY and BINARY2 rows cost at least their fixed width in the (already size-limited)
stream, so they cannot expand beyond it; TABLEDATA rows can (``<TR/>`` is five bytes, a row of
fixed-width cells many more), so the scan counts them, unless the document is too small to hold
enough of them to matter: then it skips the rows without a Python call per element, which keeps
the scan of typical uploads at a few percent of astropy's parse.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.parsers import expat

from ingest.errors import ReadError
from ingest.limits import ReadLimits, check

#: Bytes astropy holds per element of each datatype (``unicodeChar`` is numpy's UCS-4).
ELEMENT_BYTES = {"boolean": 1, "bit": 1, "unsignedByte": 1, "short": 2, "int": 4, "long": 8,
                 "char": 1, "unicodeChar": 4, "float": 4, "double": 8, "floatComplex": 8,
                 "doubleComplex": 16}
#: What a variable-length cell costs astropy besides its content: a pointer in an object array.
VARIABLE_CELL_BYTES = 8
_DIMENSION = re.compile(r"^(\d*)(\*?)$")
#: The fewest bytes a TABLEDATA row takes (``<TR/>``).
MIN_ROW_TEXT = 5
CHUNK = 1 << 16


@dataclass
class ScannedTable:
    """What one TABLE declares: its FIELDs, the bytes of a parsed row, its rows if counted."""

    fields: int = 0
    row_bytes: int = 0
    declared_rows: int | None = None
    counted_rows: int = 0
    serialization: str | None = None
    names: list[str] = field(default_factory=list)


def cell_bytes(datatype: str | None, arraysize: str | None) -> tuple[int, bool]:
    """Declared bytes of one cell (upper bound for ``N*``) and whether its size is fixed."""
    element = ELEMENT_BYTES.get(datatype or "", 8)
    if not arraysize:
        return element, True
    count, fixed = 1, True
    for dimension in arraysize.strip().split("x"):
        match = _DIMENSION.match(dimension.strip())
        if match is None:
            return element, True  # astropy refuses it with its own message
        digits, star = match.groups()
        if star:
            fixed = False
        if digits:
            count *= int(digits)
    return count * element, fixed


class _Scanner:
    def __init__(self, limits: ReadLimits, where: str, size: int | None) -> None:
        self.limits = limits
        self.where = where
        self.size = size
        self.tables: list[ScannedTable] = []
        self.table: ScannedTable | None = None
        self.in_tabledata = False
        self.skipping = False
        self.chunk, self.chunk_start = b"", 0
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.EntityDeclHandler = self.entity
        self.parser.ExternalEntityRefHandler = self.external
        self.watch(True)

    def watch(self, on: bool) -> None:
        """Turn the element callbacks on or off (off only inside TABLEDATA that need no count)."""
        self.parser.StartElementHandler = self.start if on else None
        self.parser.EndElementHandler = self.end if on else None

    def feed(self, stream: BinaryIO) -> None:
        tail = b""
        offset = 0
        while chunk := stream.read(CHUNK):
            # The end tag of a TABLEDATA completes in a chunk that names it (maybe across the
            # boundary, hence the tail): there the callbacks must be on to see it.
            self.chunk, self.chunk_start = chunk, offset
            self.watch(not (self.skipping and b"TABLEDATA" not in tail + chunk))
            self.parser.Parse(chunk, False)
            tail = chunk[-16:]
            offset += len(chunk)
        self.watch(True)
        self.parser.Parse(b"", True)

    def skip_rest_of_chunk(self) -> None:
        """Callbacks off from here if the rest of this chunk cannot end the TABLEDATA."""
        here = self.parser.CurrentByteIndex - self.chunk_start
        if b"TABLEDATA" not in self.chunk[here + len("<TABLEDATA"):]:
            self.watch(False)

    def entity(self, name: str, *_: object) -> None:
        raise ReadError(f"{self.where}: the document declares the XML entity {name!r}; "
                        "entity declarations are not accepted")

    def external(self, *_: object) -> int:
        raise ReadError(f"{self.where}: the document refers to an external entity, which is not read")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        name = tag.rpartition(" ")[2]
        if name == "TD":
            return
        if name == "TR":
            if self.in_tabledata and self.table is not None:
                self._row()
            return
        if name in ("FIELD", "PARAM"):
            self._cell(name, attrs)
        elif name == "TABLE":
            self.table = ScannedTable()
            self.tables.append(self.table)
            if "nrows" in attrs:
                self._declared_rows(attrs["nrows"])
        elif name in ("TABLEDATA", "BINARY", "BINARY2", "FITS", "PARQUET") and self.table is not None:
            self.table.serialization = name
            self.in_tabledata = name == "TABLEDATA"
            if self.table.declared_rows is not None:
                self._memory(self.table.declared_rows)
            self.skipping = self.in_tabledata and not self._must_count()
            if self.skipping:
                self.skip_rest_of_chunk()
        elif name == "STREAM":
            if "href" in attrs:
                raise ReadError(f"{self.where}: the data is a STREAM with href={attrs['href']!r}; "
                                "only inline data (TABLEDATA, BINARY or BINARY2 with base64) "
                                "is accepted, nothing is fetched")

    def end(self, tag: str) -> None:
        name = tag.rpartition(" ")[2]
        if name == "TABLEDATA":
            self.in_tabledata = self.skipping = False
        elif name == "TABLE":
            self.table = None

    def _cell(self, element: str, attrs: dict[str, str]) -> None:
        label = (attrs.get("name") or attrs.get("ID") or "?")[:64]
        size, fixed = cell_bytes(attrs.get("datatype"), attrs.get("arraysize"))
        shown = f"{attrs.get('datatype')}, arraysize {attrs.get('arraysize', '')[:40]}"
        check(self.limits.cell_bytes, size, f"the {element} {label!r} declares cells of "
              f"{{value}} bytes ({shown})", kind="shape", where=self.where)
        if element != "FIELD" or self.table is None:
            return
        self.table.fields += 1
        self.table.names.append(label)
        check(self.limits.columns, self.table.fields, "the table has at least {value} columns",
              kind="shape", where=self.where)
        self.table.row_bytes += size if fixed else VARIABLE_CELL_BYTES

    def _declared_rows(self, value: str) -> None:
        assert self.table is not None
        try:
            rows = int(value)
        except ValueError:
            return  # astropy refuses it with its own message
        check(self.limits.rows, rows, "the TABLE declares nrows={value}", kind="size",
              where=self.where)
        self.table.declared_rows = max(rows, 0)

    def _must_count(self) -> bool:
        """Whether the rows this document could hold might pass a limit before astropy is done."""
        assert self.table is not None
        if self.size is None:
            return True
        most = self.size // MIN_ROW_TEXT
        memory = self.limits.memory_bytes
        return memory is not None and most * max(self.table.row_bytes, 1) > memory.maximum

    def _row(self) -> None:
        assert self.table is not None
        self.table.counted_rows += 1
        rows = self.table.counted_rows
        if self.limits.rows is not None and rows > self.limits.rows.maximum:
            check(self.limits.rows, rows, "the table has at least {value} rows", kind="size",
                  where=self.where)
        if rows & 0x3FF == 0:
            self._memory(rows)

    def _memory(self, rows: int) -> None:
        assert self.table is not None
        check(self.limits.memory_bytes, rows * max(self.table.row_bytes, 1),
              f"{rows} rows of {self.table.row_bytes} declared bytes take {{value}} bytes when "
              "parsed", kind="size", where=self.where)

    def finish(self) -> None:
        for table in self.tables:
            if table.serialization == "TABLEDATA" and table.counted_rows:
                self.table = table
                self._memory(table.counted_rows)
        self.table = None


def scan_votable(stream: BinaryIO, limits: ReadLimits, where: str,
                 size: int | None = None) -> list[ScannedTable]:
    """Check a VOTable's declared sizes against ``limits``; one summary per TABLE.

    ``size`` (the document's bytes) lets the scan skip counting rows that cannot matter;
    ``counted_rows`` is then 0 for that table (the rows limit is checked after parsing).

    Raises :class:`~ingest.errors.LimitExceeded` for a size over a limit and
    :class:`~ingest.errors.ReadError` for a document that is not XML, declares entities or
    points at external data.
    """
    scanner = _Scanner(limits, where, size)
    try:
        scanner.feed(stream)
    except expat.ExpatError as exc:
        raise ReadError(f"{where}: not well-formed XML ({expat.errors.messages.get(exc.code, exc)}, "
                        f"line {exc.lineno}, column {exc.offset})") from None
    scanner.finish()
    return scanner.tables

