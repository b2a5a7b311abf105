"""Generated result tables, the service's encoders, the readers users have, and what each reader
must return for each value: the shared part of the property-based round-trip tests.

A table is a list of :class:`ColumnKind` (the VOTable type the service publishes and the Arrow
type the database layer hands to the encoders) and rows of Python values, ``None`` for NULL.
``expected(format, reader, kind, value)`` is the value a reader must give back: the value
itself, except where docs/output-formats.md says the format or the reader cannot carry it and
what is written instead.  Every such rule here has its line in that document.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import subprocess
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.io.ascii import convert_numpy
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from hypothesis import strategies as st
from lxml import etree
from pyvo.dal import DALResults

from vo_service.core.columns import Column
from vo_service.tap.formats import find_format
from vo_service.tap.results import ResultStatus

INT_RANGE = {"short": 16, "int": 32, "long": 64}
INT_NULL = {"short": -(2**15), "int": -(2**31), "long": -(2**63)}
ARROW_INT = {"short": pa.int16(), "int": pa.int32(), "long": pa.int64()}
PG_TYPE = {"boolean": "boolean", "short": "smallint", "int": "integer", "long": "bigint",
           "float": "real", "double": "double precision"}


@dataclass(frozen=True)
class ColumnKind:
    """One column type the service emits: its FIELD (``datatype``, ``arraysize``, ``xtype``),
    the Arrow type of the batches, and its PostgreSQL type for the HTTP tests."""

    key: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    arrow: pa.DataType
    pg: str
    #: Compared to a relative 1e-12: pg_sphere stores radians, so degrees come back rounded.
    approx: bool = False

    def column(self, name: str) -> Column:
        return Column(name, self.datatype, self.arraysize, xtype=self.xtype)

    @property
    def is_string(self) -> bool:
        return self.datatype in ("char", "unicodeChar") and self.xtype != "timestamp"

    @property
    def is_array(self) -> bool:
        return self.arraysize is not None and self.datatype not in ("char", "unicodeChar")

    @property
    def count(self) -> int | None:
        return int(self.arraysize) if self.arraysize and self.arraysize.isdigit() else None


def _scalar(datatype: str) -> ColumnKind:
    arrow = {"boolean": pa.bool_(), "float": pa.float32(), "double": pa.float64(), **ARROW_INT}[datatype]
    return ColumnKind(datatype, datatype, None, None, arrow, PG_TYPE[datatype])


KINDS: dict[str, ColumnKind] = {k.key: k for k in (
    *(_scalar(d) for d in ("boolean", "short", "int", "long", "float", "double")),
    ColumnKind("char", "char", "*", None, pa.string(), "text"),
    ColumnKind("char8", "char", "8", None, pa.string(), "char(8)"),
    ColumnKind("unicode", "unicodeChar", "*", None, pa.string(), "text"),
    ColumnKind("unicode8", "unicodeChar", "8", None, pa.string(), "text"),
    ColumnKind("timestamp", "char", "*", "timestamp", pa.timestamp("us"), "timestamp"),
    ColumnKind("double[]", "double", "*", None, pa.list_(pa.float64()), "double precision[]"),
    ColumnKind("int[]", "int", "*", None, pa.list_(pa.int32()), "integer[]"),
    ColumnKind("float[3]", "float", "3", None, pa.list_(pa.float32(), 3), "real[]"),
    ColumnKind("short[2]", "short", "2", None, pa.list_(pa.int16(), 2), "smallint[]"),
    ColumnKind("bytes", "unsignedByte", "*", None, pa.binary(), "bytea"),
    ColumnKind("point", "double", "2", "point", pa.list_(pa.float64(), 2), "double precision[]"),
    ColumnKind("circle", "double", "3", "circle", pa.list_(pa.float64(), 3), "double precision[]"),
    ColumnKind("polygon", "double", "*", "polygon", pa.list_(pa.float64()), "double precision[]"),
)}
#: The geometry types as the service stores them (pg_sphere), for the tests through the database.
PG_GEOMETRY: dict[str, ColumnKind] = {k.key: k for k in (
    ColumnKind("spoint", "double", "2", "point", pa.list_(pa.float64(), 2), "spoint", approx=True),
    ColumnKind("scircle", "double", "3", "circle", pa.list_(pa.float64(), 3), "scircle", approx=True),
    ColumnKind("spoly", "double", "*", "polygon", pa.list_(pa.float64()), "spoly", approx=True),
)}

# -- values --------------------------------------------------------------------------------------

#: Text the database can hold: any Unicode scalar value but NUL (PostgreSQL text has none).
_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_SPECIAL_TEXT = st.sampled_from(['"', ",", "\t", "\n", "\r\n", "=1+2", "=HYPERLINK(\"x\")", "+1", "-1",
                                 "@x", " lead", "trail ", "a,b", '"quoted"', "N/A", "nan", "NULL",
                                 "\\N", "\\", "é", "\u2028", "𝄞", "x" * 3000, "\x01\x1f\x7f"])
TEXT = st.one_of(st.text(_CHARS, max_size=12), _SPECIAL_TEXT,
                 st.lists(st.one_of(_SPECIAL_TEXT, st.text(_CHARS, max_size=3)), max_size=4).map("".join))
_TS = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999))


def _ints(datatype: str) -> st.SearchStrategy[int]:
    bits = INT_RANGE[datatype]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return st.one_of(st.sampled_from([lo, lo + 1, -1, 0, 1, hi]), st.integers(lo, hi))


def _floats(width: int) -> st.SearchStrategy[float]:
    tiny = float(np.finfo(np.float32 if width == 32 else np.float64).smallest_subnormal)
    big = float(np.finfo(np.float32 if width == 32 else np.float64).max)
    specials = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, tiny, -tiny, big, -big, 0.1])
    return st.one_of(specials, st.floats(width=width))


def _fixed_text(n: int) -> st.SearchStrategy[str]:
    """At most ``n`` characters, no trailing blanks: the database's char(n) pads and strips them."""
    return TEXT.map(lambda s: s[:n].rstrip(" "))


def value_strategy(kind: ColumnKind) -> st.SearchStrategy[Any]:
    """Non-NULL values of a column of this kind."""
    if kind.key == "boolean":
        return st.booleans()
    if kind.key in INT_RANGE:
        return _ints(kind.key)
    if kind.key in ("float", "double"):
        return _floats(32 if kind.key == "float" else 64)
    if kind.key in ("char", "unicode"):
        return TEXT
    if kind.key in ("char8", "unicode8"):
        return _fixed_text(8)
    if kind.key == "timestamp":
        return _TS
    if kind.key == "double[]":
        return st.lists(st.one_of(st.none(), _floats(64)), max_size=5)
    if kind.key == "int[]":
        return st.lists(st.one_of(st.none(), _ints("int")), max_size=5)
    if kind.key == "float[3]":
        return st.lists(_floats(32), min_size=3, max_size=3)
    if kind.key == "short[2]":
        return st.lists(st.one_of(st.none(), _ints("short")), min_size=2, max_size=2)
    if kind.key == "bytes":
        return st.binary(max_size=6)
    if kind.key in PG_GEOMETRY:
        return _pg_geometry(kind.key)
    ra = st.floats(0, 360, exclude_max=True)
    dec = st.floats(-90, 90)
    if kind.key == "point":
        return st.tuples(ra, dec).map(list)
    if kind.key == "circle":
        return st.tuples(ra, dec, st.floats(0, 180, exclude_min=True)).map(list)
    return st.lists(st.tuples(ra, dec), min_size=3, max_size=6).map(lambda pts: [c for p in pts for c in p])


def _pg_geometry(key: str) -> st.SearchStrategy[list[float]]:
    """Shapes pg_sphere keeps as given: no pole (longitude is 0 there), no longitude near 360
    (wraps to 0), counter-clockwise triangles small enough to be valid polygons."""
    ra = st.floats(0, 359).map(lambda x: round(x, 6))
    dec = st.floats(-80, 80).map(lambda x: round(x, 6))
    if key == "spoint":
        return st.tuples(ra, dec).map(list)
    if key == "scircle":
        return st.tuples(ra, dec, st.floats(0.001, 10).map(lambda x: round(x, 6))).map(list)
    return st.tuples(ra, dec).map(lambda p: [p[0], p[1], p[0] + 0.5, p[1], p[0], p[1] + 0.5])


def pg_literal(kind: ColumnKind, value: list[float]) -> str:
    """pg_sphere's text input, in degrees."""
    points = [f"({value[i]}d, {value[i + 1]}d)" for i in range(0, len(value) - 1, 2)]
    if kind.key == "spoint":
        return points[0]
    if kind.key == "scircle":
        return f"<{points[0]}, {value[2]}d>"
    return "{" + ", ".join(points) + "}"


@dataclass(frozen=True)
class Case:
    """A generated result: its column kinds and rows (``None`` is NULL)."""

    kinds: tuple[ColumnKind, ...]
    rows: tuple[tuple[Any, ...], ...]

    @property
    def names(self) -> list[str]:
        return [f"c{i}_{k.key.replace('[', '').replace(']', '')}" for i, k in enumerate(self.kinds)]

    @property
    def fields(self) -> list[Column]:
        return [k.column(n) for k, n in zip(self.kinds, self.names, strict=True)]

    def column(self, i: int) -> list[Any]:
        return [row[i] for row in self.rows]

    def batch(self) -> pa.RecordBatch:
        arrays = [pa.array(self.column(i), k.arrow) for i, k in enumerate(self.kinds)]
        return pa.record_batch(arrays, names=[f"q{i}" for i in range(len(arrays))])

    def __repr__(self) -> str:
        return f"Case(kinds={[k.key for k in self.kinds]}, rows={self.rows!r})"


@st.composite
def cases(draw: st.DrawFn, kinds: Sequence[str] = tuple(KINDS), max_columns: int = 4,
          max_rows: int = 5, never_null: frozenset[str] = frozenset()) -> Case:
    """Tables of 1..max_columns columns and 0..max_rows rows; any cell may be NULL (but in the
    kinds ``never_null``) and some rows are NULL throughout."""
    chosen = tuple({**KINDS, **PG_GEOMETRY}[k] for k in draw(st.lists(st.sampled_from(list(kinds)), min_size=1,
                                                   max_size=max_columns)))
    n = draw(st.integers(0, max_rows))
    all_null = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=2)) if n else set()
    rows = []
    for r in range(n):
        row = []
        for kind in chosen:
            null = kind.key not in never_null and (r in all_null or draw(st.integers(0, 4)) == 0)
            row.append(None if null else draw(value_strategy(kind)))
        rows.append(tuple(row))
    return Case(chosen, tuple(rows))


# -- encoding ------------------------------------------------------------------------------------

FORMATS = ("votable", "votable/b", "votable/td", "csv", "tsv", "fits", "parquet", "json")


def encode(case: Case, key: str, batches: list[pa.RecordBatch] | None = None) -> bytes:
    batches = [case.batch()] if batches is None else batches
    status = ResultStatus(rows=len(case.rows))
    return b"".join(find_format(key).encode(case.fields, iter(batches), status))


# -- readers -------------------------------------------------------------------------------------
# Each returns {column name: (values, type tag)}; values are normalised Python values (None for
# NULL, tuples for arrays) and the tag names the reader's type ("int64", "float32", "str", ...).

Read = dict[str, tuple[list[Any], str]]


def _py(value: Any) -> Any:
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, np.ma.MaskedArray):
        return tuple(None if m else _py(v) for v, m in zip(value.data, np.ma.getmaskarray(value), strict=True))
    if isinstance(value, np.ndarray):
        return tuple(_py(v) for v in value)
    if isinstance(value, (list, tuple)):
        return tuple(_py(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _astropy_columns(table: Table) -> Read:
    out: Read = {}
    for name in table.colnames:
        col = table[name]
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else np.zeros(len(col), bool)
        if mask.ndim > 1:
            mask = mask.all(axis=tuple(range(1, mask.ndim)))
        values = [None if m else _py(col[i]) for i, m in enumerate(mask)]
        out[name] = (values, col.dtype.str.lstrip("<>=|"))
    return out


def read_votable_astropy(data: bytes) -> Read:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = parse_votable(io.BytesIO(data), verify="exception").get_first_table()
    return _astropy_columns(table.to_table())


def read_votable_pyvo(data: bytes) -> Read:
    results = DALResults(parse_votable(io.BytesIO(data)))
    out: Read = {}
    for name in results.fieldnames:
        column = results.getcolumn(name)
        mask = np.ma.getmaskarray(column)
        if mask.ndim > 1:
            mask = mask.all(axis=tuple(range(1, mask.ndim)))
        out[name] = ([None if m else _py(column[i]) for i, m in enumerate(mask)], column.dtype.str.lstrip("<>=|"))
    return out


def read_fits_astropy(data: bytes) -> Read:
    with fits.open(io.BytesIO(data)) as hdus:
        table = Table.read(hdus["RESULTS"])
    return _astropy_columns(table)


def read_csv_astropy(data: bytes, case: Case) -> Read:
    """``ascii.csv`` with the string columns read as text (CSV has no types: a user who knows
    the schema says so; the numeric columns are left to astropy's type guessing)."""
    text_columns = [n for n, k in zip(case.names, case.kinds, strict=True) if not _numeric_text(k)]
    converters = {n: [convert_numpy(str)] for n in text_columns}
    table = Table.read(data.decode("utf-8"), format="ascii.csv", converters=converters)
    return _astropy_columns(table)


def _numeric_text(kind: ColumnKind) -> bool:
    return kind.datatype in PG_TYPE and not kind.is_array


_PANDAS_DTYPE = {"boolean": "boolean", "short": "Int16", "int": "Int32", "long": "Int64", "float": "float64",
                 "double": "float64"}


def _pandas_dtypes(case: Case) -> dict[str, str]:
    return {n: _PANDAS_DTYPE.get(k.key, "string") for n, k in zip(case.names, case.kinds, strict=True)}


def _pandas_na(case: Case, na: list[str]) -> dict[str, list[str]]:
    """NULL texts per column; pandas' float64 parser needs ``nan`` among them to read NaN."""
    return {n: na + (["nan"] if k.key in ("float", "double") else [])
            for n, k in zip(case.names, case.kinds, strict=True)}


def _pandas_columns(frame: pd.DataFrame) -> Read:
    out: Read = {}
    for name in frame.columns:
        col = frame[name]
        values = [None if v is pd.NA or v is None or (isinstance(v, float) and math.isnan(v) and
                                                      col.dtype == object) else _py(v) for v in col]
        out[str(name)] = (values, str(col.dtype))
    return out


def read_csv_pandas(data: bytes, case: Case) -> Read:
    """``read_csv`` with the nullable dtypes of the schema (without them an integer column with
    a NULL becomes float64 and loses integers above 2**53)."""
    frame = pd.read_csv(io.BytesIO(data), dtype=_pandas_dtypes(case), keep_default_na=False,
                        na_values=_pandas_na(case, [""]))
    return _pandas_columns(frame)


def read_tsv_pandas(data: bytes, case: Case) -> Read:
    """``read_csv(sep="\\t", quoting=QUOTE_NONE)``: TSV has no quoting, so a pandas user must
    switch it off (by default a field starting with ``"`` is taken for a quoted one)."""
    na = ["", "N/A"] if len(case.kinds) == 1 else [""]
    frame = pd.read_csv(io.BytesIO(data), sep="\t", quoting=csv.QUOTE_NONE, dtype=_pandas_dtypes(case),
                        keep_default_na=False, na_values=_pandas_na(case, na))
    return _pandas_columns(frame)


def read_parquet_pyarrow(data: bytes) -> Read:
    table = pq.read_table(io.BytesIO(data))
    return {name: ([_py(v) for v in table.column(name).to_pylist()], str(table.schema.field(name).type))
            for name in table.column_names}


def read_parquet_pandas(data: bytes) -> Read:
    return _pandas_columns(pd.read_parquet(io.BytesIO(data), dtype_backend="pyarrow"))


def read_json(data: bytes) -> Read:
    doc = json.loads(data)
    names = [c["name"] for c in doc["columns"]]
    return {n: ([_py(row[i]) for row in doc["data"]], doc["columns"][i]["datatype"]) for i, n in enumerate(names)}


READERS: dict[str, tuple[str, Callable[..., Read], bool]] = {
    # name: (format, reader, takes the case)
    "astropy-votable-b2": ("votable", read_votable_astropy, False),
    "astropy-votable-b": ("votable/b", read_votable_astropy, False),
    "astropy-votable-td": ("votable/td", read_votable_astropy, False),
    "pyvo-votable-b2": ("votable", read_votable_pyvo, False),
    "astropy-fits": ("fits", read_fits_astropy, False),
    "astropy-csv": ("csv", read_csv_astropy, True),
    "pandas-csv": ("csv", read_csv_pandas, True),
    "pandas-tsv": ("tsv", read_tsv_pandas, True),
    "pyarrow-parquet": ("parquet", read_parquet_pyarrow, False),
    "pandas-parquet": ("parquet", read_parquet_pandas, False),
    "json": ("json", read_json, False),
}


def read(reader: str, data: bytes, case: Case) -> Read:
    _, function, needs_case = READERS[reader]
    return function(data, case) if needs_case else function(data)


# -- expectations --------------------------------------------------------------------------------

NULL = None
#: Either NULL or NaN is right: the reader turns NaN into a masked value (astropy masks NaN in
#: float columns of VOTable and FITS) or has no NULL apart from NaN (numpy floats in pandas).
NAN_OR_NULL = "NaN-or-NULL"
#: A blank FITS string: astropy masks it in a column it decodes as bytes, not in one of text.
BLANK = "blank"
VOTABLE = ("votable", "votable/b", "votable/td")
#: What ``str.splitlines`` breaks lines at: astropy's ASCII reader splits the text with it and
#: joins the lines of a quoted field with ``\n``.
_LINE_BREAKS = ("\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
ASTROPY = ("astropy-votable-b2", "astropy-votable-b", "astropy-votable-td", "pyvo-votable-b2", "astropy-fits")
#: Blanks that astropy strips: around TABLEDATA cells (XML whitespace), at the end of FITS
#: strings (bytes.rstrip), and blanks and tabs anywhere around CSV fields and line breaks.
_XML_SPACE = " \t\n\r"
_ASCII_SPACE = " \t\n\r\x0b\x0c"


class OneOf(tuple):
    """Any of these values is right: astropy strips a FITS string with ``str.rstrip()`` (also
    ``\x1c``-``\x1f``) in a column it decodes as ASCII, with ``bytes.rstrip()`` otherwise."""


def _f32(x: float) -> float:
    return float(np.float32(x))


def ts_text(value: dt.datetime) -> str:
    """DALI timestamp text as the service writes it: ISO 8601, trailing zero fractions dropped."""
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text


def _xml_text(text: str) -> str:
    return "".join("?" if (ord(c) < 32 and c not in "\t\n\r") or c in "\ufffe\uffff" else c for c in text)


def tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def utf16_prefix(value: str, count: int) -> str:
    """The longest prefix of at most ``count`` UTF-16 code units (pairs never split)."""
    units = 0
    for i, char in enumerate(value):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > count:
            return value[:i]
    return value


def number_text(value: float | int | bool | None, datatype: str) -> str:
    """Number text of CSV and TSV: shortest round trip, ``nan``/``inf``/``-inf``, ``true``."""
    if value is None:
        return str(INT_NULL[datatype]) if datatype in INT_NULL else "nan"
    if datatype == "boolean":
        return "true" if value else "false"
    if datatype in ("float", "double"):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        arrow = pa.float32() if datatype == "float" else pa.float64()
        return pa.array([value], arrow).cast(pa.string())[0].as_py()
    return str(value)


def expected(reader: str, kind: ColumnKind, value: Any, *, ncols: int) -> Any:
    """What ``reader`` must return for ``value`` (None = NULL) of a column of ``kind``; every
    substitution here is a line of docs/output-formats.md ("What each reader gets back")."""
    fmt = READERS[reader][0]
    if reader.startswith("stilts"):
        return _expected_stilts(fmt, kind, value)
    if kind.is_array:
        return _expected_array(reader, fmt, kind, value)
    if kind.xtype == "timestamp" and value is not None and fmt != "parquet":
        value = ts_text(value)
    if kind.is_string or kind.xtype == "timestamp":
        return _expected_text(reader, fmt, kind, value, ncols)
    return _expected_scalar(reader, fmt, kind.datatype, value)


def _expected_scalar(reader: str, fmt: str, datatype: str, value: Any) -> Any:
    if value is None:
        if fmt == "fits" and datatype == "boolean":
            return False
        if reader in ("pandas-csv", "pandas-tsv") and datatype in ("float", "double"):
            return NAN_OR_NULL
        return NULL
    if datatype in INT_NULL and value == INT_NULL[datatype] and fmt in ("votable/b", "fits"):
        return NULL
    if datatype == "boolean" and reader == "astropy-csv":
        return "true" if value else "false"
    if isinstance(value, float):
        if datatype == "float" and fmt not in ("csv", "tsv"):
            value = _f32(value)
        if not math.isfinite(value) and fmt == "json":
            return NULL
        if math.isnan(value) and (reader in ASTROPY or reader in ("pandas-csv", "pandas-tsv")):
            return NAN_OR_NULL
    return value


def _expected_text(reader: str, fmt: str, kind: ColumnKind, value: str | None, ncols: int) -> Any:
    if value is None:
        if fmt in ("parquet", "json"):
            return NULL
        if reader in ASTROPY and fmt != "fits":
            return ""
        return BLANK if fmt == "fits" else NULL
    if kind.count is not None and fmt in VOTABLE:
        value = utf16_prefix(value, kind.count) if _published_unicode(kind, value) else value[: kind.count]
    if fmt == "votable/td":
        value = _xml_text(value).strip(_XML_SPACE)
    if fmt == "tsv":
        value = tsv_escape(value)
        if value == "" or (ncols == 1 and value == "N/A"):
            return NULL
    if fmt == "csv":
        if reader == "astropy-csv":
            value = astropy_csv_text(value)
        if value == "":
            return NULL
    if fmt == "fits":
        stripped = {value.rstrip(_ASCII_SPACE), value.rstrip() if value.isascii() else value.rstrip(_ASCII_SPACE)}
        if "" in stripped:
            return BLANK
        return OneOf(sorted(stripped)) if len(stripped) > 1 else stripped.pop()
    return value


def astropy_csv_text(value: str) -> str:
    """Text compared for astropy's CSV reader: its line breaks made ``\n``, blanks, tabs and
    other Unicode white space (a no-break space after a line break, say) removed (it strips
    them around fields, quoted or not, and after line breaks in a field), and runs of line
    breaks made one (it drops the empty lines inside a quoted field)."""
    for brk in _LINE_BREAKS:
        value = value.replace(brk, "\n")
    return re.sub(r"\n+", "\n", re.sub(r"[^\S\n]", "", value))


def _published_unicode(kind: ColumnKind, value: str) -> bool:
    """Fixed ``char`` holding non-ASCII text is published as ``unicodeChar`` (UTF-16 units)."""
    return kind.datatype == "unicodeChar" or not value.isascii()


def _expected_array(reader: str, fmt: str, kind: ColumnKind, value: list[Any] | None) -> Any:
    datatype = kind.datatype
    if value is None:
        if reader in ("astropy-votable-b", "astropy-votable-td", "astropy-fits") and kind.count is None:
            return ()
        return NULL
    if fmt in ("csv", "tsv"):
        text = " ".join(number_text(v, datatype) for v in value)
        return NULL if text == "" else text
    return tuple(_expected_element(reader, fmt, kind, v) for v in value)


def _expected_element(reader: str, fmt: str, kind: ColumnKind, v: Any) -> Any:
    datatype = kind.datatype
    if fmt in ("parquet", "json"):
        if isinstance(v, float) and not math.isfinite(v) and fmt == "json":
            return NULL
        return _f32(v) if (datatype == "float" and v is not None) else v
    if datatype in INT_NULL:
        sentinel = INT_NULL[datatype]
        declared = fmt == "votable/b" or (fmt == "fits" and kind.count is not None)
        if v is None or v == sentinel:
            return NULL if declared else sentinel
        return v
    if v is None or math.isnan(v):
        return NAN_OR_NULL if reader in ASTROPY else math.nan
    return _f32(v) if datatype == "float" else v


#: What Java's ``String.trim`` removes: every character up to U+0020.
_JAVA_BLANKS = "".join(map(chr, range(0x21)))


def _expected_stilts(fmt: str, kind: ColumnKind, value: Any) -> Any:
    """STILTS's reading, as its TABLEDATA output shows it: an empty cell is NULL or ``""``; the
    control characters XML cannot hold are ``¿`` and a CR is LF (its writer writes CR as is and
    the XML parser turns it into LF): both are how its output shows the text, not its reading.
    Its CSV reader takes a field of only blanks and control characters (``String.trim``) for NULL."""
    datatype = kind.datatype
    if value is None and kind.count is not None and fmt in ("votable/b", "fits"):
        if datatype in INT_NULL:
            return OneOf([(INT_NULL[datatype],) * kind.count, NULL])
        return (NAN_OR_NULL,) * kind.count
    if value is None or (isinstance(value, (list, bytes, str)) and len(value) == 0):
        return NAN_OR_NULL if datatype in ("float", "double") and not kind.is_array and fmt != "csv" else NULL
    if kind.is_array:
        if fmt == "csv":
            return " ".join(number_text(v, datatype) for v in value)
        return tuple(_stilts_element(fmt, kind, v) for v in value)
    if kind.xtype == "timestamp":
        return ts_text(value)
    if kind.is_string:
        if kind.count is not None and fmt in VOTABLE:
            value = utf16_prefix(value, kind.count) if _published_unicode(kind, value) else value[: kind.count]
        if fmt == "votable/td":
            value = _xml_text(value)
        if fmt == "fits":
            value = "".join(c if c.isascii() else "\ufffd" * len(c.encode("utf-8")) for c in value).rstrip(" ")
        if fmt == "csv":
            value = value.encode("utf-8").decode("latin-1")
            if not value.strip(_JAVA_BLANKS):
                return NULL
        value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "\u00bf", value)
        return value.replace("\r\n", "\n").replace("\r", "\n") or NULL
    if datatype in INT_NULL and value == INT_NULL[datatype] and fmt in ("votable/b", "fits"):
        return NULL
    if isinstance(value, float) and math.isnan(value):
        return NAN_OR_NULL
    return value


def _stilts_element(fmt: str, kind: ColumnKind, v: Any) -> Any:
    if kind.datatype in INT_NULL:
        return INT_NULL[kind.datatype] if v is None else v
    return math.nan if v is None else v


def same(a: Any, b: Any, datatype: str) -> bool:
    """Value equality with NaN equal to NaN, float32 compared as float32, and types equal."""
    if isinstance(b, OneOf):
        return any(same(a, x, datatype) for x in b)
    if b == BLANK:
        return a is None or a == ""
    if b == NAN_OR_NULL:
        return a is None or (isinstance(a, float) and math.isnan(a))
    if a is None and isinstance(b, tuple) and b and all(
            x is None or x == NAN_OR_NULL or (isinstance(x, float) and math.isnan(x)) for x in b):
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y, datatype) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if datatype == "float":
            return bool(np.float32(a) == np.float32(b))
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(np.float32(a) == np.float32(b)) if datatype == "float" else a == b
    return a == b and type(a) is type(b)


_NUMPY = {"boolean": "b1", "unsignedByte": "u1", "short": "i2", "int": "i4", "long": "i8", "float": "f4",
          "double": "f8"}
_ARROW = {"boolean": "bool", "unsignedByte": "uint8", "short": "int16", "int": "int32", "long": "int64",
          "float": "float", "double": "double"}


def type_ok(reader: str, kind: ColumnKind, tag: str, values: list[Any]) -> bool:
    """Whether the reader's type of the column is the one the FIELD promises.  CSV and TSV
    readers guess types from the text (or were told them), so only the typed formats count."""
    fmt = READERS[reader][0]
    text = kind.is_string or kind.xtype == "timestamp"
    if reader.startswith("stilts") and fmt != "csv":
        if text:
            return tag.startswith(("char", "unicodeChar"))
        return tag.split("[")[0] == kind.datatype
    if reader in ASTROPY:
        if text:
            return tag[0] in "UOS"
        if kind.is_array and kind.count is None:
            return tag == "O"
        return tag == _NUMPY[kind.datatype]
    if reader == "pyarrow-parquet":
        if kind.xtype == "timestamp":
            return tag == "timestamp[us]"
        if kind.is_string:
            return tag == "string"
        element = _ARROW[kind.datatype]
        if kind.is_array:
            prefixes = ("list<", "large_list<") if kind.count is None else ("fixed_size_list<",)
            suffix = f": {element}>" + ("" if kind.count is None else f"[{kind.count}]")
            return tag.startswith(prefixes) and tag.endswith(suffix)
        return tag == element
    if reader == "json":
        published = {kind.datatype, "unicodeChar"} if kind.datatype == "char" else {kind.datatype}
        return tag in published
    return True


def _same_number(got: float, text: str) -> bool:
    """STILTS guesses a CSV column's type from its text, quoted or not: a text column (or a
    one-element array) whose values all read as numbers comes back as numbers."""
    try:
        number = float(text)
    except ValueError:
        return False
    return (math.isnan(number) and math.isnan(got)) or number == got


def _close(got: Any, want: Any) -> bool:
    """Coordinates equal to 1e-12, as tuples or as the space-separated text of CSV and TSV."""
    if isinstance(got, str) and isinstance(want, str):
        got, want = tuple(map(float, got.split())), tuple(map(float, want.split()))
    if not (isinstance(got, tuple) and isinstance(want, tuple)) or len(got) != len(want):
        return False
    return all(isinstance(x, (int, float)) and isinstance(y, (int, float))
               and math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12) for x, y in zip(got, want, strict=True))


def differences(reader: str, case: Case, got: Read) -> list[str]:
    """Every cell where ``reader`` did not return the expected value."""
    out = []
    names = list(got)
    if len(names) != len(case.kinds):
        return [f"{reader}: {len(names)} columns read, {len(case.kinds)} written"]
    for i, (kind, name) in enumerate(zip(case.kinds, names, strict=True)):
        values, tag = got[name]
        if case.rows and not type_ok(reader, kind, tag, values):
            out.append(f"{reader}: column {name} ({kind.key}) read as type {tag}")
        if len(values) != len(case.rows):
            out.append(f"{reader}: column {name}: {len(values)} rows read, {len(case.rows)} written")
            continue
        for r, value in enumerate(case.column(i)):
            want = expected(reader, kind, value, ncols=len(case.kinds))
            got_value = values[r]
            if reader == "astropy-csv" and isinstance(got_value, str) and not kind.is_array:
                got_value = astropy_csv_text(got_value) or None
            if reader == "stilts-csv" and isinstance(got_value, (int, float)) and isinstance(want, str):
                if _same_number(got_value, want):
                    continue
            if kind.approx and _close(got_value, want):
                continue
            if not same(got_value, want, kind.datatype):
                out.append(f"{reader}: {name}[{r}] ({kind.key}, read as {tag}): wrote {value!r}, "
                           f"expected {want!r}, read {values[r]!r}")
    return out


STILTS_READERS = {"stilts-votable-b2": ("votable", "votable"), "stilts-votable-b": ("votable/b", "votable"),
                  "stilts-votable-td": ("votable/td", "votable"), "stilts-fits": ("fits", "fits"),
                  "stilts-csv": ("csv", "csv(header=true)")}
for _name, (_fmt, _) in STILTS_READERS.items():
    READERS[_name] = (_fmt, lambda data: {}, False)


def stilts_read(cases: Sequence[Case], folder: Path) -> list[dict[str, Read]]:
    """Every case in every STILTS_READERS format read by STILTS as TOPCAT reads it, in one JVM:
    ``stilts tmultin`` (``tcopy`` for several tables) writes them all as one TABLEDATA VOTable,
    whose cells are parsed here with lxml, typed by the FIELDs STILTS wrote.

    A CSV of no rows (the header line alone) is not given to STILTS: its CSV reader (4.1.3)
    fails on it with NegativeArraySizeException.  CSV is read with ``csv(header=true)``: left to
    guess, STILTS takes the header line for a row when every column holds text
    (docs/output-formats.md)."""
    inputs = [(c, reader) for c, case in enumerate(cases) for reader in STILTS_READERS
              if case.rows or reader != "stilts-csv"]
    args = ["stilts", "tmultin", f"nin={len(inputs)}", "ofmt=votable-tabledata", f"out={folder / 'stilts.vot'}"]
    for n, (c, reader) in enumerate(inputs, 1):
        fmt, stilts_fmt = STILTS_READERS[reader]
        path = folder / f"case{c}-{reader}.{stilts_fmt.split('(')[0]}"
        path.write_bytes(encode(cases[c], fmt))
        args += [f"in{n}={path}", f"ifmt{n}={stilts_fmt}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = _tabledata_tables((folder / "stilts.vot").read_bytes())
    out: list[dict[str, Read]] = [{} for _ in cases]
    for (c, reader), table in zip(inputs, tables, strict=True):
        out[c][reader] = table
    return out


def _tabledata_tables(data: bytes) -> list[Read]:
    ns = {"v": etree.fromstring(data).nsmap[None]}
    tables = []
    for table in etree.fromstring(data).iterfind(".//v:TABLE", ns):
        fields = table.findall("v:FIELD", ns)
        rows = [[td.text or "" for td in tr.findall("v:TD", ns)] for tr in table.iterfind(".//v:TR", ns)]
        read: Read = {}
        for i, field in enumerate(fields):
            datatype, arraysize = field.get("datatype"), field.get("arraysize")
            values = [_stilts_value(row[i], datatype, arraysize) for row in rows]
            read[field.get("name")] = (values, datatype + (f"[{arraysize}]" if arraysize else ""))
        tables.append(read)
    return tables


def _stilts_number(text: str, datatype: str) -> Any:
    if datatype == "boolean":
        return {"T": True, "F": False}.get(text)
    if datatype in ("float", "double"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}.get(text) or float(text)
    return int(text)


def _stilts_value(text: str, datatype: str, arraysize: str | None) -> Any:
    if datatype in ("char", "unicodeChar"):
        return text or None
    if text == "":
        return None
    if arraysize:
        return tuple(_stilts_number(t, datatype) for t in text.split())
    return _stilts_number(text, datatype)
