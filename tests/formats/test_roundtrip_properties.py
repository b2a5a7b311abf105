"""Generated result tables through every encoder and back through the readers users have.

hypothesis draws tables of every column type the service emits (docs/output-formats.md, "Column
types"), with NULLs anywhere, NULL rows, single-column and zero-row tables, and the values that
break text formats and binary layouts (NaN, infinities, integer limits, subnormals, long strings,
quotes, separators, line breaks, leading ``=``, any Unicode).  Each table is encoded in each
format and read back by astropy, pyvo, pandas, pyarrow and STILTS; every cell must come back as
written, or as docs/output-formats.md ("What each reader gets back") says the format or the
reader turns it into (``_roundtrip.expected``).  A hand-picked table would miss the corners
these tables reach, which is why the examples are drawn, not listed.
"""
from __future__ import annotations

import datetime as dt
import io
import math
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.formats import _roundtrip as rt

settings.register_profile("roundtrip", deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUNDTRIP = settings.get_profile("roundtrip")
#: More examples for a deeper search than `make test` can afford (``ROUNDTRIP_SCALE=50``).
SCALE = int(os.environ.get("ROUNDTRIP_SCALE", "1"))
READERS = [r for r in rt.READERS if not r.startswith("stilts")]

K = rt.KINDS
#: One table with the corners named in issue 21, so that every run (and STILTS) sees them.
CORNERS = rt.Case(
    (K["long"], K["double"], K["float"], K["char"], K["boolean"], K["point"], K["timestamp"], K["int[]"],
     K["unicode8"], K["short"], K["polygon"]),
    ((None, math.nan, 0.1, 'a,"b"\n\t=1+2', True, [1.0, 2.0], dt.datetime(2020, 1, 2, 3, 4, 5, 250000),
      [1, None], "é\u2028x", -(2**15), [0.0, 0.0, 10.0, 0.0, 10.0, 10.0]),
     (None, None, None, None, None, None, None, None, None, None, None),
     (-(2**63), math.inf, -math.inf, "", False, [359.999, -90.0], dt.datetime(1, 1, 1), [],
      "", 2**15 - 1, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
     (2**63 - 1, 5e-324, 1e-45, "x" * 5000, None, None, dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
      [-(2**31), 2**31 - 1], "N/A", 0, None)))


def _check(reader: str, case: rt.Case) -> None:
    fmt = rt.READERS[reader][0]
    problems = rt.differences(reader, case, rt.read(reader, rt.encode(case, fmt), case))
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("reader", READERS)
@settings(ROUNDTRIP, max_examples=40 * SCALE)
@given(case=rt.cases())
@example(case=CORNERS)
def test_every_value_comes_back_as_documented(reader: str, case: rt.Case) -> None:
    """Every cell of a generated table, read back by one reader, is the value written or the
    documented stand-in for it; the column types are the FIELD's."""
    _check(reader, case)


@pytest.mark.parametrize("reader", READERS)
@settings(ROUNDTRIP, max_examples=15 * SCALE)
@given(case=rt.cases(max_columns=1, max_rows=6))
def test_single_column_tables_lose_no_row(reader: str, case: rt.Case) -> None:
    """One column, where an empty cell is an empty line in the text formats."""
    _check(reader, case)


@settings(ROUNDTRIP, max_examples=30 * SCALE)
@given(case=rt.cases(), cut=st.integers(1, 4))
def test_batches_change_nothing(case: rt.Case, cut: int) -> None:
    """A result streamed in several batches encodes as in one, except that VOTable decides char
    vs unicodeChar on the first batch (documented); Parquet (row groups) and FITS (heap
    offsets of empty arrays) differ in bytes, so they must read the same."""
    whole = case.batch()
    parts = [whole.slice(i, cut) for i in range(0, whole.num_rows, cut)] or [whole]
    later_non_ascii = any(
        isinstance(v, str) and not v.isascii()
        for i, k in enumerate(case.kinds) if k.datatype == "char" for v in case.column(i)[cut:])
    for fmt in rt.FORMATS:
        one, many = rt.encode(case, fmt, [whole]), rt.encode(case, fmt, parts)
        if fmt == "parquet":
            assert repr(pq.read_table(io.BytesIO(one)).to_pydict()) == repr(pq.read_table(io.BytesIO(many)).to_pydict())
        elif fmt == "fits":
            assert repr(rt.read_fits_astropy(one)) == repr(rt.read_fits_astropy(many))
        elif not (fmt.startswith("votable") and later_non_ascii):
            assert one == many, fmt


_BMP_TEXT = rt.cases().filter(
    lambda c: all(not isinstance(v, str) or all(ord(ch) <= 0xFFFF for ch in v) for row in c.rows for v in row))


@settings(ROUNDTRIP, max_examples=SCALE, phases=[Phase.explicit, Phase.generate])
@given(cases=st.lists(_BMP_TEXT, min_size=4, max_size=4))
def test_stilts_reads_back_votable_fits_and_csv(cases: list[rt.Case], tmp_path_factory) -> None:
    """STILTS (as TOPCAT reads) on four generated tables and the corner table, in one JVM.

    Only BMP text: STILTS 4.1's TABLEDATA writer, which shows us what it read, mangles a
    surrogate pair (its readers and TOPCAT do not)."""
    folder = tmp_path_factory.mktemp("stilts")
    corners = rt.Case(CORNERS.kinds, tuple(tuple(v.replace("é\u2028", "é") if isinstance(v, str) else v
                                                  for v in row) for row in CORNERS.rows))
    all_cases = [corners, *cases]
    problems = []
    for case, reads in zip(all_cases, rt.stilts_read(all_cases, folder), strict=True):
        for reader, got in reads.items():
            problems += [f"{p}\n  in {case!r}" for p in rt.differences(reader, case, got)]
    assert not problems, "\n".join(problems[:20])


# -- issue 21's defect: NULL rows of a single-column table ----------------------------------------

@pytest.mark.parametrize("kind", ["char", "int", "double", "boolean", "double[]", "timestamp"])
@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_null_rows_of_one_column_are_not_blank_lines(fmt: str, kind: str) -> None:
    """``SELECT TOP 3 NULL AS x``: three rows, never three empty lines that readers skip."""
    case = rt.Case((rt.KINDS[kind],), ((None,), (None,), (None,)))
    data = rt.encode(case, fmt)
    lines = data.decode().splitlines()
    assert len(lines) == 4 and all(lines[1:]), data
    assert lines[1:] == (['""'] * 3 if fmt == "csv" else ["N/A"] * 3)
    sep = "," if fmt == "csv" else "\t"
    assert len(pd.read_csv(io.BytesIO(data), sep=sep)) == 3
    assert pd.read_csv(io.BytesIO(data), sep=sep).iloc[:, 0].isna().all()
    if fmt == "csv":
        table = Table.read(data.decode(), format="ascii.csv")
    else:
        table = Table.read(data.decode(), format="ascii.tab", fill_values=[("N/A", "0"), ("", "0")])
    assert len(table) == 3 and table.mask[table.colnames[0]].all()


@pytest.mark.parametrize("kind", ["char", "double", "float", "boolean", "double[]", "timestamp", "long"])
def test_single_column_csv_matches_the_general_writer(kind: str) -> None:
    """The one-column path writes what Arrow's CSV writer writes for a column next to another,
    except NULL (``""`` instead of nothing)."""
    values = {"char": ['a "q"', "", "=1", "é"], "double": [0.1, math.nan, -0.0, 1e300],
              "float": [0.3, math.inf, 1e-45, -1.5], "boolean": [True, False, True, False],
              "double[]": [[1.5, -2.0], [], [math.nan], [0.1]], "long": [0, -(2**63), 2**63 - 1, 5],
              "timestamp": [dt.datetime(2020, 1, 2, 3, 4, 5, 250000)] * 4}[kind]
    one = rt.Case((rt.KINDS[kind],), tuple((v,) for v in values))
    two = rt.Case((rt.KINDS[kind], rt.KINDS["int"]), tuple((v, 7) for v in values))
    single = rt.encode(one, "csv").decode().split("\r\n")[1:]
    pair = rt.encode(two, "csv").decode().split("\r\n")[1:]
    assert [line + ",7" if line else "" for line in single] == pair


@pytest.mark.parametrize("reader", ["astropy-votable-b2", "astropy-votable-b", "pandas-csv", "pandas-tsv",
                                    "pyarrow-parquet", "json"])
def test_char_n_padding_is_not_part_of_the_value(reader: str) -> None:
    """PostgreSQL hands a ``char(8)`` value padded with blanks (``'ab      '``); the service
    writes the value, as PostgreSQL's own cast to text does (found through the HTTP tests)."""
    case = rt.Case((rt.KINDS["char8"], rt.KINDS["int"]), (("ab      ", 1), ("  x     ", 2)))
    got = rt.read(reader, rt.encode(case, rt.READERS[reader][0]), case)
    assert got[case.names[0]][0] == ["ab", "  x"]
