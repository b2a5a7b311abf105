"""BINARY2 VOTable tables of fixed-width scalar fields, read and written with numpy.

astropy reads and writes a BINARY2 stream value by value in Python: about 8 s each way for
1,000,000 rows of one ``long`` column on this project's machine (docs/performance.md,
"Federation"), which made a 1,000,000-row upload join take 35 s.  When every FIELD is a
fixed-width scalar (boolean, unsignedByte, short, int, long, float, double), a BINARY2 row is
the null bitmap followed by the big-endian values, so the whole stream is one numpy structured
array after base64.  Anything else (arrays, strings, BINARY or TABLEDATA, a STREAM by
reference, several tables) is left to astropy: :func:`decode` returns None for it, and
:func:`encode` for a table it cannot write.
"""
from __future__ import annotations

import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pyarrow as pa

from vo_service.tap.formats import Base64Lines

#: VOTable datatype -> big-endian numpy type of one value in a BINARY2 row.
FIXED: dict[str, str] = {"boolean": "S1", "unsignedByte": "u1", "short": ">i2", "int": ">i4", "long": ">i8",
                         "float": ">f4", "double": ">f8"}
_FROM_ARROW: dict[pa.DataType, str] = {pa.bool_(): "boolean", pa.uint8(): "unsignedByte", pa.int16(): "short",
                                       pa.int32(): "int", pa.int64(): "long", pa.float32(): "float",
                                       pa.float64(): "double", pa.int8(): "short"}
_NS = "http://www.ivoa.net/xml/VOTable/v1.3"
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n"


@dataclass(frozen=True)
class FieldInfo:
    """What a FIELD says of its column."""

    name: str
    datatype: str
    arraysize: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class DecodedTable:
    fields: list[FieldInfo]
    values: list[np.ndarray]
    masks: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.values[0]) if self.values else 0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


_STREAM_OPEN = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?STREAM\b[^>]*>")
_STREAM_CLOSE = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?STREAM\s*>")


def _split_stream(data: bytes) -> tuple[bytes, bytes | None]:
    """The document without its base64 STREAM text, and that text (None when there is no
    single plain STREAM): the XML parser then reads only the metadata, not megabytes of
    base64 that it would copy into one string to be split and joined again."""
    opening = _STREAM_OPEN.search(data)
    if opening is None or opening.group(0).endswith(b"/>"):
        return data, None
    closing = _STREAM_CLOSE.search(data, opening.end())
    if closing is None or _STREAM_OPEN.search(data, closing.end()) is not None:
        return data, None
    text = data[opening.end():closing.start()]
    if b"<" in text or b"&" in text:  # markup or character references: leave it to the parser
        return data, None
    return data[:opening.end()] + data[closing.start():], text


def decode(data: bytes) -> DecodedTable | None:
    """The first TABLE of a VOTable document, if it is BINARY2 of fixed-width scalars; else None."""
    skeleton, text = _split_stream(data)
    try:
        root = ET.fromstring(skeleton)
    except ET.ParseError:
        return None
    table = next((e for e in root.iter() if _local(e.tag) == "TABLE"), None)
    if table is None or sum(1 for e in root.iter() if _local(e.tag) == "TABLE") != 1:
        return None
    fields: list[FieldInfo] = []
    nulls: list[str | None] = []
    for element in table:
        if _local(element.tag) != "FIELD":
            continue
        datatype, arraysize = element.get("datatype", ""), element.get("arraysize")
        if datatype not in FIXED or arraysize not in (None, "1"):
            return None
        declared = _child(element, "VALUES")
        nulls.append(declared.get("null") if declared is not None else None)
        description = _child(element, "DESCRIPTION")
        fields.append(FieldInfo(
            name=element.get("name") or element.get("ID") or f"col{len(fields) + 1}", datatype=datatype,
            unit=element.get("unit"), ucd=element.get("ucd"), utype=element.get("utype"), xtype=element.get("xtype"),
            description=(description.text or "").strip() or None if description is not None else None))
    data_element = _child(table, "DATA")
    if fields and data_element is None:  # no rows (astropy writes no DATA then)
        return DecodedTable(fields, [np.zeros(0, FIXED[f.datatype]).astype(bool if f.datatype == "boolean" else
                                                                           np.dtype(FIXED[f.datatype]).newbyteorder("="))
                                     for f in fields], [np.zeros(0, bool) for _ in fields])
    binary2 = _child(data_element, "BINARY2") if data_element is not None else None
    stream = _child(binary2, "STREAM") if binary2 is not None else None
    if not fields or stream is None or stream.get("href") or stream.get("encoding", "base64") != "base64":
        return None
    encoded = text if text is not None else (stream.text or "").encode("ascii", "replace")
    if encoded.translate(None, _BASE64_BYTES):  # anything but base64 and white space
        return None
    try:
        raw = binascii.a2b_base64(encoded)
    except (binascii.Error, ValueError):
        return None
    mask_bytes = (len(fields) + 7) // 8
    dtype = np.dtype([("nulls", "u1", (mask_bytes,))] + [(f"f{i}", FIXED[f.datatype]) for i, f in enumerate(fields)])
    if len(raw) % dtype.itemsize:
        return None
    rows = np.frombuffer(raw, dtype=dtype)
    bits = np.unpackbits(rows["nulls"], axis=1, bitorder="big") if len(rows) else np.zeros((0, 8 * mask_bytes), "u1")
    values: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for i, info in enumerate(fields):
        column = rows[f"f{i}"]
        mask = bits[:, i].astype(bool)
        if info.datatype == "boolean":
            upper = np.char.upper(column)
            value = (upper == b"T") | (column == b"1")
            mask |= ~(value | (upper == b"F") | (column == b"0"))
            values.append(value)
        else:
            value = column.astype(column.dtype.newbyteorder("="))
            if value.dtype.kind == "f":
                mask |= np.isnan(value)
            elif nulls[i] is not None:
                try:
                    mask |= value == int(nulls[i])  # type: ignore[arg-type]
                except ValueError:
                    return None
            values.append(value)
        masks.append(mask)
    return DecodedTable(fields, values, masks)


def encode(table: pa.Table, name: str = "upload") -> bytes | None:
    """A VOTable 1.3 document with ``table`` as BINARY2, if every column is a fixed-width
    scalar (numbers, booleans); else None."""
    kinds = []
    for field in table.schema:
        kind = _FROM_ARROW.get(field.type)
        if kind is None:
            return None
        kinds.append(kind)
    n, mask_bytes = table.num_rows, (table.num_columns + 7) // 8
    dtype = np.dtype([("nulls", "u1", (mask_bytes,))] + [(f"f{i}", FIXED[k]) for i, k in enumerate(kinds)])
    rows = np.zeros(n, dtype=dtype)
    null_bits = np.zeros((n, 8 * mask_bytes), dtype="u1")
    for i, (column, kind) in enumerate(zip(table.columns, kinds, strict=True)):
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        null_bits[:, i] = nulls
        if kind == "boolean":
            filled = np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
            rows[f"f{i}"] = np.where(nulls, b"?", np.where(filled, b"T", b"F"))
        else:
            fill = float("nan") if kind in ("float", "double") else 0
            filled = array.cast(pa.int16()) if array.type == pa.int8() else array
            rows[f"f{i}"] = np.asarray(filled.fill_null(fill).to_numpy(zero_copy_only=False))
    rows["nulls"] = np.packbits(null_bits, axis=1, bitorder="big")
    fields = "".join(f"<FIELD name={quoteattr(f.name)} ID={quoteattr(f'c{i}')} datatype=\"{k}\"/>"
                     for i, (f, k) in enumerate(zip(table.schema, kinds, strict=True)))
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE version="1.3" xmlns="{_NS}">'
            f"<RESOURCE type=\"results\"><TABLE name={quoteattr(escape(name))}>{fields}"
            "<DATA><BINARY2><STREAM encoding=\"base64\">")
    tail = "</STREAM></BINARY2></DATA></TABLE></RESOURCE></VOTABLE>\n"
    lines = Base64Lines()
    return head.encode() + lines.feed(rows.tobytes()) + lines.close() + tail.encode()


def to_arrow(decoded: DecodedTable) -> pa.Table:
    """The decoded columns as Arrow, masked values as nulls, named as their FIELDs."""
    return pa.table([pa.array(v, mask=m if m.any() else None) for v, m in zip(decoded.values, decoded.masks,
                                                                             strict=True)],
                    names=[f.name for f in decoded.fields])
