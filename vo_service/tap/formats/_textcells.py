"""Cell text for the text serializations (TABLEDATA, TSV, JSON), built column-wise with Arrow compute.

Each column becomes an Arrow string array of finished cell text; rows are then joined with
``binary_join_element_wise`` and the joined array's data buffer is the output, so no Python
code runs per row.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vo_service.tap.formats._columns import INT_NULL, ColumnEncoding, rebuild_list

_XML_INVALID = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_JSON_OTHER_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"

_SPECIALS = {
    "td": ("NaN", "+Inf", "-Inf"),
    "csv": ("nan", "inf", "-inf"),
    "tsv": ("nan", "inf", "-inf"),
    "json": (None, None, None),
}
_BOOL_TEXT = {"td": ("T", "F"), "csv": ("true", "false"), "tsv": ("true", "false"), "json": ("true", "false")}


def _replace_all(text: pa.Array, pairs: list[tuple[str, str]]) -> pa.Array:
    for old, new in pairs:
        text = pc.replace_substring(text, old, new)
    return text


def escape_xml_text(text: pa.Array) -> pa.Array:
    """XML character data: markup escaped, characters XML 1.0 forbids replaced by "?" (keeps ASCII ASCII).

    CR is written ``&#13;``: a parser turns a literal CR (and CRLF) into LF (XML 1.0, 2.11).
    """
    if pc.any(pc.match_substring_regex(text, _XML_INVALID)).as_py():
        text = pc.replace_substring_regex(text, _XML_INVALID, "?")
    return _replace_all(text, [("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")])


def escape_tsv(text: pa.Array) -> pa.Array:
    """Backslash escapes (as in PostgreSQL's text COPY) so a TSV field never holds a tab or newline."""
    return _replace_all(text, [("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")])


def quote_csv(text: pa.Array) -> pa.Array:
    """RFC 4180 quoted fields (quotes doubled), as Arrow's CSV writer quotes strings; NULL stays NULL."""
    return pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")


def escape_json(text: pa.Array) -> pa.Array:
    """JSON string literals; per value only if rare control characters are present."""
    if pc.any(pc.match_substring_regex(text, _JSON_OTHER_CONTROL)).as_py():
        return pa.array([None if s is None else json.dumps(s, ensure_ascii=False) for s in text.to_pylist()],
                        pa.string())
    body = _replace_all(text, [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")])
    return pc.binary_join_element_wise('"', body, '"', "")


def _number_text(values: pa.Array, style: str) -> pa.Array:
    text = pc.cast(values, pa.string())
    if not pa.types.is_floating(values.type):
        return text
    finite = pc.is_finite(values)
    if pc.all(pc.fill_null(finite, True)).as_py():
        return text
    nan_text, pinf, ninf = _SPECIALS[style]
    if nan_text is None:
        return pc.if_else(finite, text, pa.scalar(None, pa.string()))
    positive = pc.greater(values, 0)
    special = pc.if_else(pc.is_nan(values), nan_text, pc.if_else(positive, pinf, ninf))
    return pc.if_else(finite, text, special)


def _scalar_text(values: pa.Array, style: str) -> pa.Array:
    if pa.types.is_boolean(values.type):
        true_text, false_text = _BOOL_TEXT[style]
        return pc.if_else(values, true_text, false_text)
    return _number_text(values, style)


def _null_element_text(spec: ColumnEncoding, style: str) -> str:
    """A NULL inside an array (PostgreSQL arrays may hold them): NaN for floats, the integer
    null sentinel otherwise, as the binary serializations write it; JSON has ``null``."""
    if style == "json":
        return "null"
    if spec.datatype in INT_NULL:
        return str(INT_NULL[spec.datatype])
    return _SPECIALS[style][0] or ""


_ASTRAL = r"[\x{10000}-\x{10ffff}]"


def truncate_text(text: pa.Array, count: int, *, utf16: bool) -> pa.Array:
    """Values cut to ``count`` characters; for ``unicodeChar`` to ``count`` UTF-16 code units
    (as BINARY counts them), never splitting a surrogate pair."""
    if utf16 and pc.any(pc.match_substring_regex(text, _ASTRAL)).as_py():
        return pa.array([None if s is None else _utf16_prefix(s, count) for s in text.to_pylist()], pa.string())
    return pc.utf8_slice_codeunits(text, 0, count)


def _utf16_prefix(value: str, count: int) -> str:
    units = 0
    for i, char in enumerate(value):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > count:
            return value[:i]
    return value


def cell_text(array: pa.Array, spec: ColumnEncoding, style: str) -> pa.Array:
    """Finished cell text for one normalised column; NULL stays NULL (JSON: the text "null")."""
    if spec.kind == "scalar":
        text = _scalar_text(array, style)
    elif spec.kind == "array":
        child = array.values
        items = pc.fill_null(_scalar_text(child, style), _null_element_text(spec, style))
        joined = pc.binary_join(rebuild_list(array, items), "," if style == "json" else " ")
        text = pc.binary_join_element_wise("[", joined, "]", "") if style == "json" else joined
    else:
        text = array
        if style == "td":
            if spec.count is not None:
                text = truncate_text(text, spec.count, utf16=spec.is_unicode)
            text = escape_xml_text(text)
        elif style == "tsv":
            text = escape_tsv(text)
        elif style == "json":
            text = escape_json(text)
    if style == "json":
        text = pc.fill_null(text, "null")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return text


def join_rows(columns: list[pa.Array], separator: str, prefix: str, suffix: str) -> bytes:
    """``prefix + cells joined by separator + suffix`` for every row, as one bytes object."""
    if not columns:
        return b""
    n = len(columns[0])
    if n == 0:
        return b""
    if len(columns) == 1:
        cells = pc.fill_null(columns[0], "")
        rows = pc.binary_join_element_wise(prefix, cells, suffix, "")
    else:
        joined = pc.binary_join_element_wise(*columns, separator, null_handling="replace", null_replacement="")
        rows = pc.binary_join_element_wise(prefix, joined, suffix, "")
    return _contiguous_bytes(rows)


def _contiguous_bytes(rows: pa.Array) -> bytes:
    large = pa.types.is_large_string(rows.type)
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64 if large else np.int32)
    start = int(offsets[rows.offset])
    end = int(offsets[rows.offset + len(rows)])
    return rows.buffers()[2].slice(start, end - start).to_pybytes()
