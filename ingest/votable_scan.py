"""A streaming pre-scan of a VOTable: declared sizes checked before astropy allocates them.

astropy allocates what a VOTable declares: a FIELD of ``arraysize="100000000"`` costs 100 MB
per row (a 245-byte document with one TABLEDATA row made it hold 1.3 GB), a TABLE's ``nrows``
is allocated up front, a variable-length array cell becomes a masked array of about 600 bytes
however short its text, and a ``STREAM href`` is fetched (``file:`` URLs included, so an upload
could read the server's files).  This scan runs first, with expat through callbacks (constant
memory, no DTD or entity processing), and refuses such a document before astropy sees it:

* only UTF-8, US-ASCII and ISO-8859-1 documents are read.  In them every markup character is
  one byte, which the row counts and bounds below rely on; a UTF-16
  document would otherwise hide its later TABLEs from a scan that looks for the bytes of
  ``TABLEDATA``, while astropy reads it normally;
* FIELDs are scalars or char/unicodeChar strings (what products can store); an array FIELD is
  refused whatever its size, except one-dimensional arrays of numbers when the caller takes them
  (``arrays=True``: TAP uploads, which store them as PostgreSQL arrays);
* TABLEDATA rows are counted, from the bytes rather than through a Python call per element
  (which would add half of astropy's own parse time): inside TABLEDATA the callbacks are off
  and the start tags of TR (``<TR``, or ``<prefix:TR`` then a space, ``/`` or ``>``) are
  counted in each chunk; a comment or CDATA holding such text can only make the count too high.  The
  callbacks come back on in the chunk that holds the bytes ``TABLEDATA`` (its end tag), and
  stay on until expat reports that end tag;
* BINARY and BINARY2 rows are bounded by the length of the base64 stream over the narrowest row
  the FIELDs allow; when strings of variable length make that bound pass a limit, the stream
  is decoded piece by piece and its rows counted exactly.
"""
from __future__ import annotations

import base64
import codecs
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.parsers import expat

from ingest.errors import ReadError, UnsupportedData
from ingest.limits import ReadLimits, check

#: Bytes astropy holds per element of each datatype (``unicodeChar`` is numpy's UCS-4).
ELEMENT_BYTES = {"boolean": 1, "bit": 1, "unsignedByte": 1, "short": 2, "int": 4, "long": 8,
                 "char": 1, "unicodeChar": 4, "float": 4, "double": 8, "floatComplex": 8,
                 "doubleComplex": 16}
#: Bytes of one element in a BINARY/BINARY2 stream (``unicodeChar`` is UTF-16 there).
WIRE_BYTES = {**ELEMENT_BYTES, "unicodeChar": 2}
TEXT_TYPES = ("char", "unicodeChar")
#: What a variable-length string costs astropy besides its text: a pointer in an object array
#: and the str object it points to (49 bytes when empty).
VARIABLE_CELL_BYTES = 8 + 49
#: What a variable-length numeric array cell costs astropy besides its values: a masked array
#: object of its own (about 600 bytes, measured with tracemalloc).
VARIABLE_ARRAY_CELL_BYTES = 640
#: Datatypes whose one-dimensional arrays a scan may accept (``arrays=True``: TAP uploads).
NUMERIC_TYPES = ("unsignedByte", "short", "int", "long", "float", "double")
#: A variable-length cell of a BINARY stream starts with its element count (4 bytes).
COUNT_BYTES = 4
_COUNT = struct.Struct(">I")
_DIMENSION = re.compile(r"^(\d*)(\*?)$")
CHUNK = 1 << 16
#: TR start tags with a namespace prefix (a name holds no white space, ``<>/!?:``); those
#: without one are counted as ``<TR``, which also counts elements named TR... (too many only).
_PREFIXED_TR = re.compile(rb"<[^\s<>/!?:]+:TR[\s/>]")
_TR_START = re.compile(rb"<(?:[^\s<>/!?:]+:)?TR[\s/>]")
_NAME_END = re.compile(rb"[\s/>]")
#: A tag cut by a chunk boundary is carried into the next chunk up to this length; a longer one
#: whose name is still open counts as a row (too many rather than too few).
CARRY_MAX = 1024
#: Encodings in which every ASCII character is one byte of the same value.
ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1",
                       "latin1"})
#: An XML declaration longer than this is refused (real ones take under 100 bytes).
XML_DECL_MAX = 4096
_ENCODING_DECL = re.compile(rb"""\sencoding\s*=\s*(["'])([^"']{0,64})\1""")
_WHITESPACE = str.maketrans("", "", " \t\r\n")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
#: Base64 characters decoded at once while counting the rows of a stream.
DECODE_BLOCK = 1 << 16


@dataclass
class ScannedTable:
    """What one TABLE declares: its FIELDs, the bytes of a parsed row, its rows if counted."""

    fields: int = 0
    row_bytes: int = 0
    declared_rows: int | None = None
    counted_rows: int = 0
    serialization: str | None = None
    names: list[str] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    """A BINARY row, FIELD by FIELD: fixed bytes (> 0) or ``-unit`` for a variable-length string."""
    stream_rows: int | None = None
    """Rows of its BINARY/BINARY2 stream: exact when counted, else an upper bound."""

    def min_row_wire(self, binary2: bool) -> int:
        """The fewest bytes a BINARY (or BINARY2, with its null flags) row takes."""
        flags = (self.fields + 7) // 8 if binary2 else 0
        return flags + sum(w if w > 0 else COUNT_BYTES for w in self.wire)


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


def count_rows(data: bytes) -> int:
    """TR start tags in ``data`` (which must not end inside one, see :class:`_Scanner`)."""
    rows = data.count(b"<TR")
    if b":TR" in data:
        rows += len(_PREFIXED_TR.findall(data))
    return rows


def check_encoding(head: bytes, where: str) -> str:
    """The document's encoding from its byte order mark or XML declaration; only single-byte
    ASCII-compatible ones are accepted (see the module docstring)."""
    advice = "save it as UTF-8 (or US-ASCII, ISO-8859-1), the encodings this service reads"
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    elif head.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)):
        raise UnsupportedData(f"{where}: the document is encoded in UTF-16 or UTF-32 (it starts "
                              f"with their byte order mark); {advice}")
    if b"\x00" in head[:4]:
        raise UnsupportedData(f"{where}: the document is encoded in UTF-16 or UTF-32 (NUL bytes "
                              f"in its first characters); {advice}")
    if not (head.startswith(b"<?xml") and head[5:6].isspace()):
        return "utf-8"
    end = head.find(b"?>", 0, XML_DECL_MAX)
    if end < 0:
        raise ReadError(f"{where}: the XML declaration does not end within {XML_DECL_MAX} bytes")
    match = _ENCODING_DECL.search(head, 0, end)
    if match is None:
        return "utf-8"
    name = match.group(2).decode("ascii", "replace")
    if name.lower() not in ENCODINGS:
        raise UnsupportedData(f"{where}: the XML declaration names the encoding {name!r}; {advice}")
    return name.lower()


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """The stream in chunks; the first holds the XML declaration (XML_DECL_MAX bytes at least)."""
    first = stream.read(max(CHUNK, XML_DECL_MAX))
    while len(first) < XML_DECL_MAX and (more := stream.read(XML_DECL_MAX - len(first))):
        first += more
    if first:
        yield first
    while chunk := stream.read(CHUNK):
        yield chunk


class _RowWalker:
    """Counts the rows of decoded BINARY data without keeping it: fixed bytes are skipped and
    each variable-length cell's count is read to skip its elements, as astropy reads them."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = steps
        self.rows = 0
        self.step = 0
        self.skip = 0
        self.count: bytes | None = None

    def feed(self, data: bytes) -> None:
        i = self._walk(data, 0, row_end=True) if self.step or self.skip or self.count is not None else 0
        # Whole rows in ``data``: one pass over the steps per row, no state kept.
        steps, n, unpack, rows = self.steps, len(data), _COUNT.unpack_from, 0
        while i < n:
            p = i
            for step in steps:
                if step > 0:
                    p += step
                elif p + COUNT_BYTES <= n:
                    p += COUNT_BYTES - unpack(data, p)[0] * step
                else:
                    p = n + 1
                    break
            if p > n:
                break
            rows += 1
            i = p
        self.rows += rows
        self._walk(data, i, row_end=False)

    def _walk(self, data: bytes, i: int, *, row_end: bool) -> int:
        """Go through ``data`` from ``i`` step by step, keeping where a row is cut off; with
        ``row_end``, stop where the row in progress ends.  Returns where it stopped."""
        steps, last = self.steps, len(self.steps)
        step, skip, count = self.step, self.skip, self.count
        n = len(data)
        while True:
            if skip:
                taken = min(skip, n - i)
                i += taken
                skip -= taken
                if skip:
                    break
                step += 1
            elif count is not None:
                piece = data[i:i + COUNT_BYTES - len(count)]
                count += piece
                i += len(piece)
                if len(count) < COUNT_BYTES:
                    break
                skip = int.from_bytes(count, "big") * -steps[step]
                count = None
                if skip:
                    continue
                step += 1
            if step == last:
                self.rows += 1
                step = 0
                if row_end:
                    break
            if i >= n:
                break
            if steps[step] > 0:
                skip = steps[step]
            else:
                count = b""
        self.step, self.skip, self.count = step, skip, count
        return i


class _Stream:
    """The base64 text of one BINARY/BINARY2 STREAM: its length, and its rows when walked."""

    def __init__(self, walker: _RowWalker | None, counted: Callable[[int], None]) -> None:
        self.chars = 0
        self.walker = walker
        self.counted = counted
        """Called with the rows walked so far after each block (to stop at a limit early)."""
        self.pending: list[str] = []
        self.pending_chars = 0

    def text(self, data: str) -> None:
        self.chars += len(data.translate(_WHITESPACE))
        if self.walker is None:
            return
        # Characters outside the alphabet (and padding: the decoder stops at it) are dropped,
        # so the walk sees at least the bytes astropy's b64decode will.
        clean = _NOT_BASE64.sub("", data)
        self.pending.append(clean)
        self.pending_chars += len(clean)
        if self.pending_chars >= DECODE_BLOCK:
            self._decode(final=False)

    def _decode(self, *, final: bool) -> None:
        assert self.walker is not None
        text = "".join(self.pending)
        cut = len(text) if final else len(text) - len(text) % 4
        head, rest = text[:cut], text[cut:]
        if final and len(head) % 4 == 1:
            head = head[:-1]  # astropy refuses it; the rows before it still count
        self.walker.feed(base64.b64decode(head + "=" * (-len(head) % 4)))
        self.pending, self.pending_chars = [rest] if rest else [], len(rest)
        if not final:
            self.counted(self.walker.rows)

    def rows(self, row_wire: int) -> tuple[int, bool]:
        """The stream's rows and whether the count is exact (else an upper bound)."""
        if self.walker is not None:
            self._decode(final=True)
            return self.walker.rows, True
        return (self.chars * 3 // 4) // max(row_wire, 1), False


class _Scanner:
    def __init__(self, limits: ReadLimits, where: str, size: int | None, *, arrays: bool = False) -> None:
        self.arrays = arrays
        self.limits = limits
        self.where = where
        self.size = size
        self.tables: list[ScannedTable] = []
        self.table: ScannedTable | None = None
        self.in_tabledata = False
        self.skipping = False
        self.resuming = False
        self.byte_skipping = False
        self.carry = b""
        self.stream: _Stream | None = None
        self.chunk, self.chunk_start = b"", 0
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.EntityDeclHandler = self.entity
        self.parser.ExternalEntityRefHandler = self.external
        self.parser.buffer_text = True  # a STREAM's base64 in few calls
        self.parser.buffer_size = CHUNK
        self.watch(True)

    def watch(self, on: bool) -> None:
        """Turn the element callbacks on or off (off inside TABLEDATA, whose rows are then
        counted from the bytes)."""
        self.parser.StartElementHandler = self.start if on else None
        self.parser.EndElementHandler = self.end if on else None

    def feed(self, stream: BinaryIO) -> None:
        tail = b""
        offset = 0
        for chunk in _chunks(stream):
            if offset == 0:
                # Counting rows by their bytes needs markup of one byte per character.
                self.byte_skipping = check_encoding(chunk, self.where) in ENCODINGS
            # The end tag of a skipped TABLEDATA is in a chunk that names it (maybe across the
            # boundary, hence the tail).  From there the callbacks stay on until expat reports
            # that end tag, which it may do only in a later chunk (``</TABLEDATA`` then a long
            # run of spaces before its ``>``).
            if self.skipping and not self.resuming:
                found = (tail + chunk).find(b"TABLEDATA")
                # Parse up to the ``<`` before the name with the callbacks still off.
                cut = len(chunk) if found < 0 else max(chunk.rfind(b"<", 0, max(found - len(tail), 0)), 0)
                self.count_bytes(chunk[:cut])
                self.parser.Parse(chunk[:cut], False)
                if found >= 0:
                    self.resume()
                self.chunk, self.chunk_start = chunk[cut:], offset + cut
                self.parser.Parse(self.chunk, False)
            else:
                self.chunk, self.chunk_start = chunk, offset
                self.parser.Parse(chunk, False)
            tail = (tail + chunk)[-16:]
            offset += len(chunk)
        self.watch(True)
        self.parser.Parse(b"", True)

    def skip_rest_of_chunk(self) -> None:
        """Callbacks off from here if the rest of this chunk cannot end the TABLEDATA.

        expat may report the start tag only in the chunk after the one it began in (a long
        tag): then the whole of this chunk is looked at.
        """
        here = self.parser.CurrentByteIndex - self.chunk_start
        after = here + len("<TABLEDATA") if here >= 0 else 0
        self.carry = b""
        self.resuming = b"TABLEDATA" in self.chunk[after:]
        if not self.resuming:
            self.watch(False)
            self.count_bytes(self.chunk[max(here, 0):])

    def count_bytes(self, data: bytes) -> None:
        """Count the TR start tags of ``data``, which expat parses with the callbacks off.

        A start tag holds no ``<`` (nor do attribute values), so every tag that begins before
        the last ``<`` ends before it; from there on the bytes wait for the next chunk.
        """
        data = self.carry + data
        last = data.rfind(b"<")
        head, self.carry = (data, b"") if last < 0 else (data[:last], data[last:])
        rows = count_rows(head)
        if len(self.carry) > CARRY_MAX:
            open_name = _NAME_END.search(self.carry, 1) is None
            rows += int(open_name or _TR_START.match(self.carry) is not None)
            self.carry = b""
        self._add_rows(rows)

    def resume(self) -> None:
        """Callbacks on again (this chunk may end the TABLEDATA); the carried tag is counted
        if its name is complete, else expat will report it now that the callbacks are on."""
        self.resuming = True
        self._add_rows(int(_TR_START.match(self.carry) is not None))
        self.carry = b""
        self.watch(True)

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
            self.skipping = self.in_tabledata and self.byte_skipping
            if self.skipping:
                self.skip_rest_of_chunk()
        elif name == "STREAM":
            if "href" in attrs:
                raise ReadError(f"{self.where}: the data is a STREAM with href={attrs['href']!r}; "
                                "only inline data (TABLEDATA, BINARY or BINARY2 with base64) "
                                "is accepted, nothing is fetched")
            if self.table is not None and self.table.serialization in ("BINARY", "BINARY2"):
                self._open_stream()

    def end(self, tag: str) -> None:
        name = tag.rpartition(" ")[2]
        if name == "TABLEDATA":
            self.in_tabledata = self.skipping = self.resuming = False
        elif name == "STREAM" and self.stream is not None:
            self._close_stream()
        elif name == "TABLE":
            self.table = None

    def _cell(self, element: str, attrs: dict[str, str]) -> None:
        label = (attrs.get("name") or attrs.get("ID") or "?")[:64]
        datatype = attrs.get("datatype")
        arraysize = (attrs.get("arraysize") or "").strip()
        size, fixed = cell_bytes(datatype, arraysize)
        shown = f"{datatype}, arraysize {arraysize[:40]}"
        check(self.limits.cell_bytes, size, f"the {element} {label!r} declares cells of "
              f"{{value}} bytes ({shown})", kind="shape", where=self.where)
        if element != "FIELD" or self.table is None:
            return
        array = arraysize not in ("", "1") and datatype not in TEXT_TYPES
        if array and not (self.arrays and datatype in NUMERIC_TYPES and "x" not in arraysize):
            raise UnsupportedData(
                f"{self.where}: the FIELD {label!r} holds arrays ({datatype}, arraysize "
                f"{arraysize[:40]!r}); only scalar columns and char or unicodeChar strings are "
                "accepted")
        self.table.fields += 1
        self.table.names.append(label)
        check(self.limits.columns, self.table.fields, "the table has at least {value} columns",
              kind="shape", where=self.where)
        self.table.row_bytes += size if fixed else (VARIABLE_ARRAY_CELL_BYTES if array else VARIABLE_CELL_BYTES)
        wire = WIRE_BYTES.get(datatype or "", 1)
        if datatype in TEXT_TYPES or array:
            self.table.wire.append(size // ELEMENT_BYTES.get(datatype or "", 8) * wire if fixed else -wire)
        else:
            self.table.wire.append(wire)

    def _declared_rows(self, value: str) -> None:
        assert self.table is not None
        try:
            rows = int(value)
        except ValueError:
            return  # astropy refuses it with its own message
        check(self.limits.rows, rows, "the TABLE declares nrows={value}", kind="size",
              where=self.where)
        self.table.declared_rows = max(rows, 0)

    def _beyond_limits(self, most: int) -> bool:
        """Whether ``most`` rows of the current table could pass the rows or memory limit."""
        assert self.table is not None
        rows, memory = self.limits.rows, self.limits.memory_bytes
        return ((rows is not None and most > rows.maximum)
                or (memory is not None and most * max(self.table.row_bytes, 1) > memory.maximum))

    def _open_stream(self) -> None:
        """Measure the stream; walk its rows when its length alone cannot bound them."""
        table = self.table
        assert table is not None
        walk = False
        if any(w < 0 for w in table.wire):
            row_wire = table.min_row_wire(table.serialization == "BINARY2")
            walk = self.size is None or self._beyond_limits(self.size * 3 // 4 // max(row_wire, 1))
        steps: list[int] = []
        if walk:
            flags = (table.fields + 7) // 8 if table.serialization == "BINARY2" else 0
            for w in [flags, *table.wire]:
                if w > 0 and steps and steps[-1] > 0:
                    steps[-1] += w
                elif w:
                    steps.append(w)
        self.stream = _Stream(_RowWalker(steps) if walk else None,
                              lambda rows: self._stream_rows(rows, "at least "))
        self.parser.CharacterDataHandler = self.stream.text

    def _close_stream(self) -> None:
        assert self.stream is not None
        self.parser.CharacterDataHandler = None
        table = self.table
        stream, self.stream = self.stream, None
        if table is None or not table.fields:
            return  # astropy reads no rows without FIELDs
        rows, exact = stream.rows(table.min_row_wire(table.serialization == "BINARY2"))
        table.stream_rows = rows
        self._stream_rows(rows, "" if exact else "up to ")

    def _stream_rows(self, rows: int, qualifier: str) -> None:
        assert self.table is not None
        check(self.limits.rows, rows, f"the {self.table.serialization} stream holds "
              f"{qualifier}{{value}} rows", kind="size", where=self.where)
        self._memory(rows)

    def _row(self) -> None:
        assert self.table is not None
        self.table.counted_rows += 1
        rows = self.table.counted_rows
        if self.limits.rows is not None and rows > self.limits.rows.maximum:
            check(self.limits.rows, rows, "the table has at least {value} rows", kind="size",
                  where=self.where)
        if rows & 0x3FF == 0:
            self._memory(rows)

    def _add_rows(self, rows: int) -> None:
        """Rows counted from bytes: the same checks as :meth:`_row`, once per chunk."""
        if not rows or self.table is None:
            return
        self.table.counted_rows += rows
        check(self.limits.rows, self.table.counted_rows, "the table has at least {value} rows",
              kind="size", where=self.where)
        self._memory(self.table.counted_rows)

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
                 size: int | None = None, *, arrays: bool = False) -> list[ScannedTable]:
    """Check a VOTable's declared sizes against ``limits``; one summary per TABLE.

    ``size`` (the document's bytes) bounds the rows of BINARY streams, which are then walked
    only when that bound passes a limit.

    ``arrays`` accepts one-dimensional arrays of numbers (fixed ``N``, bounded ``N*`` or ``*``),
    counted at their declared size or, when variable, at what astropy's masked array per cell
    costs.

    Raises :class:`~ingest.errors.LimitExceeded` for a size over a limit,
    :class:`~ingest.errors.UnsupportedData` for other array FIELDs and encodings other than UTF-8,
    US-ASCII and ISO-8859-1, and :class:`~ingest.errors.ReadError` for a document that is not
    XML, declares entities or points at external data.
    """
    scanner = _Scanner(limits, where, size, arrays=arrays)
    try:
        scanner.feed(stream)
    except expat.ExpatError as exc:
        raise ReadError(f"{where}: not well-formed XML ({expat.errors.messages.get(exc.code, exc)}, "
                        f"line {exc.lineno}, column {exc.offset})") from None
    scanner.finish()
    return scanner.tables
