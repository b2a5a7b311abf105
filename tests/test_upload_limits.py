"""TAP uploads with bounded memory: declared sizes are refused before astropy allocates them.

Each hostile VOTable is a few hundred bytes that declare gigabytes (or point at a server file);
it is sent anonymously through /tap/sync and /tap/async, must get a DALI error naming the limit,
and must not grow the server process (which runs in this test process).
"""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from tests.test_upload import post, read, votable_bytes

#: The 245-byte document of issue 14: one row of a 100 MB char cell (1.1-1.5 GB before).
HUGE_CELL = (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
             b'<RESOURCE><TABLE><FIELD name="a" datatype="char" arraysize="100000000"/><DATA><TABLEDATA>'
             b'<TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>')
#: RSS growth allowed while a refused upload is handled (the old code grew by over 1 GB).
GROWTH_BOUND = 150 * 2**20


def vot(fields: str, data: str = "<TABLEDATA><TR><TD>1</TD></TR></TABLEDATA>", table: str = "") -> bytes:
    return (f'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            f"<RESOURCE><TABLE{table}>{fields}<DATA>{data}</DATA></TABLE></RESOURCE></VOTABLE>").encode()


def peak_rss_growth(action: Callable[[], object]) -> tuple[int, object]:
    """The highest RSS of this process while ``action`` runs, over the RSS before it."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return peak[0] - base, result


def async_post(tap_url: str, body: bytes) -> requests.Response:
    return requests.post(tap_url + "/async", data={"LANG": "ADQL", "UPLOAD": "t,param:t",
                                                   "QUERY": "SELECT * FROM TAP_UPLOAD.t"},
                         files={"t": ("t.vot", body)}, allow_redirects=False, timeout=60)


@pytest.fixture(scope="module")
def small_tap(database) -> Iterator[str]:
    """A service whose uploads may be 100 kB (so 800 kB parsed) and 20 columns."""
    from tests._services import app_for
    from tests.conftest import LiveServer

    app = app_for(dataclasses.replace(database, upload_max_bytes=100_000, upload_max_columns=20))
    with LiveServer(app) as live:
        yield live.url + "/tap"



#: Run in a child process: tracemalloc counts every thread's allocations, and this process has
#: live servers and UWS workers whose threads may allocate while the reader is measured.
_MEASURE_READER = """
import json, sys, tracemalloc
from vo_service.tap._uploads import UploadError, UploadLimits, read_votable
body = sys.stdin.buffer.read()
tracemalloc.start()
try:
    read_votable("t", body, UploadLimits(int(sys.argv[1]), 1_000_000))
    message = None
except UploadError as exc:
    message = str(exc)
print(json.dumps({"message": message, "peak": tracemalloc.get_traced_memory()[1]}))
"""


def assert_refused_without_allocating(body: bytes, match: str, *, max_bytes: int = 32 * 2**20) -> None:
    """The reader refuses ``body`` with a message matching ``match`` before any large array
    exists: under 5 MiB traced (numpy allocations are traced by tracemalloc)."""
    child = subprocess.run([sys.executable, "-c", _MEASURE_READER, str(max_bytes)], input=body,
                           capture_output=True, check=True, cwd=Path(__file__).parent.parent)
    outcome = json.loads(child.stdout)
    assert outcome["message"] is not None and re.search(match, outcome["message"]), outcome
    assert outcome["peak"] < 5 * 2**20, f"peak {outcome['peak'] >> 20} MiB"


def test_huge_declared_cell_is_refused_before_parsing_sync(tap_url: str) -> None:
    growth, r = peak_rss_growth(lambda: post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": HUGE_CELL}))
    assert r.status_code == 400
    assert 'value="ERROR"' in r.text
    assert "100000000 bytes" in r.text and "upload_max_cell_bytes" in r.text
    assert growth < GROWTH_BOUND, f"the server grew by {growth >> 20} MiB"


def test_huge_declared_cell_is_refused_before_parsing_async(tap_url: str) -> None:
    growth, r = peak_rss_growth(lambda: async_post(tap_url, HUGE_CELL))
    assert r.status_code == 400 and "upload_max_cell_bytes" in r.text
    assert growth < GROWTH_BOUND, f"the server grew by {growth >> 20} MiB"


def test_reader_allocates_nothing_for_a_refused_declaration() -> None:
    """Through the reader API: the refusal comes before any array exists (numpy allocations
    are traced by tracemalloc; astropy's array for this row alone is 100 MB)."""
    assert_refused_without_allocating(HUGE_CELL, "upload_max_cell_bytes")


def test_multidimensional_and_param_cells_count_too(tap_url: str) -> None:
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t",
             {"t": vot('<FIELD name="m" datatype="double" arraysize="1000x1000"/>')})
    assert r.status_code == 400 and "8000000 bytes" in r.text
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": vot(
        '<PARAM name="p" datatype="unicodeChar" arraysize="50000000*" value="x"/>'
        '<FIELD name="k" datatype="int"/>')})
    assert r.status_code == 400 and "PARAM 'p'" in r.text and "upload_max_cell_bytes" in r.text


def test_too_many_columns_are_refused(small_tap: str) -> None:
    fields = "".join(f'<FIELD name="c{i}" datatype="int"/>' for i in range(21))
    r = post(small_tap, "SELECT * FROM TAP_UPLOAD.t", {"t": vot(fields)})
    assert r.status_code == 400 and "at least 21 columns" in r.text and "upload_max_columns" in r.text
    r = async_post(small_tap, vot(fields))
    assert r.status_code == 400 and "upload_max_columns" in r.text


def test_declared_nrows_is_checked_before_allocation(tap_url: str) -> None:
    body = vot('<FIELD name="k" datatype="double"/>', table=' nrows="900000000"')
    growth, r = peak_rss_growth(lambda: post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body}))
    assert r.status_code == 400 and "nrows=900000000" in r.text and "upload_max_rows" in r.text
    assert growth < GROWTH_BOUND


def test_tabledata_rows_are_counted_against_the_parsed_size(small_tap: str) -> None:
    """Short rows of wide (allowed) cells: 1,000 rows of 14 bytes declare 1 MB once parsed, over
    8 x the 100 kB upload limit."""
    body = vot('<FIELD name="s" datatype="char" arraysize="1000"/>',
               "<TABLEDATA>" + "<TR><TD/></TR>" * 1000 + "</TABLEDATA>")
    assert len(body) < 100_000
    r = post(small_tap, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400
    assert "1000 declared bytes" in r.text and "8 x upload_max_bytes" in r.text
    fine = vot('<FIELD name="s" datatype="char" arraysize="10"/>',
               "<TABLEDATA>" + "<TR><TD>ab</TD></TR>" * 1000 + "</TABLEDATA>")
    assert len(read(post(small_tap, "SELECT * FROM TAP_UPLOAD.t", {"t": fine}))) == 1000


@pytest.mark.parametrize("body,fragment", [
    (vot('<FIELD name="a" datatype="char" arraysize="64"/>',
         '<BINARY><STREAM href="file:///etc/passwd"/></BINARY>'), "nothing is fetched"),
    (vot('<FIELD name="a" datatype="char" arraysize="64"/>',
         '<FITS><STREAM href="file:///etc/hostname"/></FITS>'), "nothing is fetched"),
    (b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY e "x">]>' + vot('<FIELD name="a" datatype="int"/>')[21:],
     "entity"),
    (b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='int'/>", "not well-formed"),
])
def test_external_data_and_entities_are_refused(tap_url: str, body: bytes, fragment: str) -> None:
    """astropy fetches STREAM href URLs, file: ones included: an anonymous upload could read
    the server's files into a query result."""
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400 and fragment in r.text, r.text[:500]
    assert "root:" not in r.text


def test_service_is_healthy_after_refusals(tap_url: str) -> None:
    body = votable_bytes({"k": ("int", np.arange(5, dtype=np.int32)),
                          "s": ("char", np.array(["a", "b", "c", "d", "e"], dtype=object))}, 5)
    assert list(read(post(tap_url, "SELECT k FROM TAP_UPLOAD.t ORDER BY k", {"t": body}))["k"]) == [0, 1, 2, 3, 4]


def test_a_later_table_is_checked_after_rows_that_are_skipped(tap_url: str) -> None:
    """The scan skips the rows of a narrow TABLEDATA without a callback per element; it must
    still see what follows them (here a second table declaring 100 MB cells)."""
    rows = "<TR><TD>1</TD></TR>" * 20_000
    body = (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            b'<RESOURCE><TABLE><FIELD name="k" datatype="int"/><DATA><TABLEDATA>' + rows.encode()
            + b"</TABLEDATA></DATA></TABLE></RESOURCE><RESOURCE><TABLE>"
            b'<FIELD name="a" datatype="char" arraysize="100000000"/><DATA><TABLEDATA><TR><TD>x</TD></TR>'
            b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    assert len(body) > 5 * 65_536
    r = post(tap_url, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400 and "upload_max_cell_bytes" in r.text


# -- encodings: the scan reads the bytes astropy reads --------------------------------------------
_SECOND_TABLES = {
    "a 20 MB cell": '<FIELD name="a" datatype="char" arraysize="20000000"/><DATA><TABLEDATA>'
                    "<TR><TD>x</TD></TR></TABLEDATA></DATA>",
    "a file: STREAM": '<FIELD name="a" datatype="char" arraysize="64"/><DATA><BINARY>'
                      '<STREAM href="file:///etc/passwd"/></BINARY></DATA>',
}


def two_tables(second: str, declaration: str = '<?xml version="1.0"?>', end_tag: str = "</TABLEDATA>") -> str:
    """A tiny first TABLE (read with the callbacks off) then ``second``."""
    return (f'{declaration}<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            '<RESOURCE><TABLE><FIELD name="k" datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR>'
            f"{end_tag}</DATA></TABLE></RESOURCE><RESOURCE><TABLE>{second}</TABLE></RESOURCE></VOTABLE>")


@pytest.mark.parametrize("second", list(_SECOND_TABLES.values()), ids=list(_SECOND_TABLES))
@pytest.mark.parametrize("encoding,declared", [
    ("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_documents_are_refused_whatever_they_hide(tap_url: str, second: str, encoding: str,
                                                         declared: str) -> None:
    """In UTF-16 the bytes of ``TABLEDATA`` never appear, so a scan that waits for them to turn
    its callbacks back on saw nothing after the first table, while astropy read the document:
    a 20 MB cell passed (300 MB parsed) and a file: STREAM was fetched."""
    body = two_tables(second, f'<?xml version="1.0" encoding="{declared}"?>').encode(encoding)
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400 and 'value="ERROR"' in r.text, r.text[:500]
    assert "UTF-16 or UTF-32" in r.text and "UTF-8" in r.text
    assert "root:" not in r.text


def test_encodings_other_than_utf8_ascii_latin1_are_refused_by_name(tap_url: str) -> None:
    body = two_tables("", '<?xml version="1.0" encoding="UTF-16"?>').encode()
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400 and "encoding 'UTF-16'" in r.text
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?><VOTABLE version="1.4" '
             'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
             '<FIELD name="s" datatype="char" arraysize="*"/><DATA><TABLEDATA>'
             "<TR><TD>caf\u00e9</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode("latin-1")
    assert list(read(post(tap_url, "SELECT s FROM TAP_UPLOAD.t", {"t": latin}))["s"]) == ["caf\u00e9"]


def test_a_utf16_document_allocates_nothing() -> None:
    """Through the reader API: the document of the review parsed to 321 MB (traced)."""
    body = two_tables(_SECOND_TABLES["a 20 MB cell"], '<?xml version="1.0" encoding="UTF-16"?>')
    assert_refused_without_allocating(body.encode("utf-16"), "UTF-16")


def test_an_end_tag_cut_by_spaces_does_not_hide_what_follows(tap_url: str) -> None:
    """``</TABLEDATA`` followed by more than a chunk of spaces: expat reports the end tag only in
    a chunk that does not name it, where the scan had its callbacks off for good."""
    body = two_tables(_SECOND_TABLES["a file: STREAM"], end_tag="</TABLEDATA" + " " * 200_000 + ">")
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body.encode()})
    assert r.status_code == 400 and "nothing is fetched" in r.text, r.text[:500]
    assert "root:" not in r.text


# -- arrays and rows: what astropy would build is bounded before it builds it ----------------------
@pytest.mark.parametrize("field", [
    '<FIELD name="v" datatype="short" arraysize="2x*"/>',
    '<FIELD name="v" datatype="boolean" arraysize="3"/>',
    '<FIELD name="v" datatype="floatComplex" arraysize="2"/>',
])
def test_array_fields_other_than_one_dimensional_numbers_are_refused_by_the_scan(tap_url: str, field: str) -> None:
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": vot(field, "<TABLEDATA><TR><TD/></TR></TABLEDATA>")})
    assert r.status_code == 400, r.text[:500]
    assert "FIELD 'v' holds arrays" in r.text and "only scalar columns" in r.text


def test_variable_length_arrays_are_counted_at_what_astropy_makes_of_them() -> None:
    """200,000 rows of ``<TR><TD/></TR>`` (2.8 MB) in a ``double[*]`` FIELD: astropy would build
    a masked array per cell (about 600 bytes each, 120 MB); the scan counts them so and refuses
    the document at the memory bound (8 x upload_max_bytes, here 8 x 8 MiB) before astropy
    builds anything."""
    body = vot('<FIELD name="v" datatype="double" arraysize="*"/>',
               "<TABLEDATA>" + "<TR><TD/></TR>" * 200_000 + "</TABLEDATA>")
    assert_refused_without_allocating(body, "upload_max_bytes", max_bytes=8 * 2**20)


@pytest.fixture(scope="module")
def few_rows_tap(database) -> Iterator[str]:
    """A service whose uploads may have 1,000 rows."""
    from tests._services import app_for
    from tests.conftest import LiveServer

    app = app_for(dataclasses.replace(database, upload_max_rows=1000))
    with LiveServer(app) as live:
        yield live.url + "/tap"


def _binary(fields: str, payload: bytes, serialization: str = "BINARY") -> bytes:
    import base64

    stream = base64.encodebytes(payload).decode()
    return vot(fields, f'<{serialization}><STREAM encoding="base64">{stream}</STREAM></{serialization}>')


@pytest.mark.parametrize("body,fragment", [
    (vot('<FIELD name="k" datatype="int"/>', "<TABLEDATA>" + "<TR><TD>1</TD></TR>" * 1001 + "</TABLEDATA>"),
     "the table has at least 1001 rows"),
    (vot('<FIELD name="k" datatype="int"/>', '<TABLEDATA>' + '<vot:TR xmlns:vot="http://www.ivoa.net/xml/'
         'VOTable/v1.3"><TD>1</TD></vot:TR>' * 1001 + "</TABLEDATA>"), "the table has at least 1001 rows"),
    (_binary('<FIELD name="k" datatype="int"/>', bytes(4 * 2000)), "the BINARY stream holds up to 2000 rows"),
    (_binary('<FIELD name="s" datatype="char" arraysize="*"/><FIELD name="k" datatype="short"/>',
             b"\0\0\0\0\2ab\0\7" * 1500, "BINARY2"), "the BINARY2 stream holds 1500 rows"),
])
def test_rows_are_counted_by_the_scan(few_rows_tap: str, body: bytes, fragment: str) -> None:
    """TABLEDATA rows from the bytes, BINARY rows from the stream's length over the row width,
    and when strings of variable length make that a loose bound, by walking the stream."""
    r = post(few_rows_tap, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400, r.text[:500]
    assert fragment in r.text and "upload_max_rows" in r.text, r.text[:800]


def test_rows_up_to_the_limit_still_load(few_rows_tap: str) -> None:
    tabledata = vot('<FIELD name="k" datatype="int"/>',
                    "<TABLEDATA>" + "<TR><TD>1</TD></TR>" * 1000 + "</TABLEDATA>")
    assert len(read(post(few_rows_tap, "SELECT * FROM TAP_UPLOAD.t", {"t": tabledata}))) == 1000
    # 1,000 rows of 19 bytes: the stream could hold 2,714 rows of the narrowest width (7 bytes).
    binary2 = _binary('<FIELD name="s" datatype="char" arraysize="*"/><FIELD name="k" datatype="short"/>',
                      b"\0\0\0\0\x0cgalaxy-00042\0\7" * 1000, "BINARY2")
    table = read(post(few_rows_tap, "SELECT s, k FROM TAP_UPLOAD.t", {"t": binary2}))
    assert len(table) == 1000 and set(table["s"]) == {"galaxy-00042"} and set(table["k"]) == {7}
