"""JSON encoder read back with json."""
from __future__ import annotations

import datetime
import json

import pyarrow as pa
import pytest

from vo_service.core.columns import Column
from vo_service.tap.formats import find_format
from vo_service.tap.results import ResultStatus

FIELDS = [
    Column("id", "long", ucd="meta.id", description="The id"),
    Column("x", "double", unit="deg"),
    Column("s", "char", "*"),
    Column("b", "boolean"),
    Column("pt", "double", "2", xtype="point"),
    Column("t", "char", "*", xtype="timestamp"),
    Column("id", "float"),
]

ROWS = [
    [1, 0.1, 'q"uote\\ \n\t', True, [1.0, 2.0], "2020-01-02T03:04:05", 1.5],
    [None, None, None, None, None, None, None],
    [2**62, 1e300, "Ångström ☃", False, [0.5, -0.5], "2001-01-01T00:00:00.5", 0.25],
]


def sample_batch() -> pa.RecordBatch:
    times = [datetime.datetime(2020, 1, 2, 3, 4, 5), None, datetime.datetime(2001, 1, 1, 0, 0, 0, 500000)]
    columns = [
        pa.array([r[0] for r in ROWS], pa.int64()),
        pa.array([r[1] for r in ROWS]),
        pa.array([r[2] for r in ROWS]),
        pa.array([r[3] for r in ROWS]),
        pa.array([r[4] for r in ROWS], pa.list_(pa.float64(), 2)),
        pa.array(times, pa.timestamp("us")),
        pa.array([r[6] for r in ROWS], pa.float32()),
    ]
    return pa.record_batch(columns, names=[f"c{i}" for i in range(len(columns))])


def encode(batches=None, status=None, fields=FIELDS, infos=None) -> dict:
    batches = [sample_batch()] if batches is None else batches
    status = status or ResultStatus()
    data = b"".join(find_format("json").encode(fields, iter(batches), status, infos=infos or {}))
    return json.loads(data)


def test_values():
    assert encode()["data"] == ROWS


def test_columns_metadata():
    columns = encode()["columns"]
    assert [c["name"] for c in columns] == ["id", "x", "s", "b", "pt", "t", "id"]
    assert columns[0] == {"name": "id", "datatype": "long", "arraysize": None, "xtype": None, "unit": None,
                          "ucd": "meta.id", "description": "The id"}
    assert columns[4]["xtype"] == "point" and columns[4]["arraysize"] == "2"
    assert columns[1]["unit"] == "deg"


def test_key_order_columns_data_overflow_rows():
    data = b"".join(find_format("json").encode(FIELDS, iter([sample_batch()]), ResultStatus()))
    text = data.decode()
    assert text.index('"columns"') < text.index('"data"') < text.index('"overflow"') < text.index('"rows"')


@pytest.mark.parametrize("overflow", [True, False])
def test_overflow_and_rows(overflow):
    doc = encode(status=ResultStatus(overflow=overflow))
    assert doc["overflow"] is overflow
    assert doc["rows"] == 3


def test_nan_and_infinity_are_null():
    fields = [Column("v", "double"), Column("a", "double", "*")]
    batch = pa.record_batch([pa.array([float("nan"), float("inf"), -float("inf"), 1.0]),
                             pa.array([[float("nan"), 1.0], [], None, [float("inf")]])], names=["p", "q"])
    assert encode([batch], fields=fields)["data"] == [[None, [None, 1.0]], [None, []], [None, None], [1.0, [None]]]


def test_zero_rows():
    doc = encode([])
    assert doc["data"] == [] and doc["rows"] == 0 and len(doc["columns"]) == 7


def test_many_batches():
    batch = sample_batch()
    doc = encode([batch, batch.slice(0, 0), batch.slice(1), batch.slice(0, 1)])
    assert doc["data"] == ROWS + ROWS[1:] + ROWS[:1]
    assert doc["rows"] == 6


def test_rare_control_characters():
    fields = [Column("s", "char", "*")]
    batch = pa.record_batch([pa.array(["a\x01b", "c"])], names=["p"])
    assert encode([batch], fields=fields)["data"] == [["a\x01b"], ["c"]]


def test_infos():
    assert encode(infos={"QUERY": "SELECT 1"})["infos"] == {"QUERY": "SELECT 1"}
