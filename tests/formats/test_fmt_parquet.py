"""Parquet encoder read back by pyarrow."""
from __future__ import annotations

import datetime
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vo_service.core.columns import Column
from vo_service.tap.formats import find_format
from vo_service.tap.results import ResultStatus

FIELDS = [
    Column("id", "long", ucd="meta.id", description="Identifier"),
    Column("ra", "double", unit="deg", ucd="pos.eq.ra"),
    Column("z", "float"),
    Column("name", "char", "*"),
    Column("t", "char", "*", xtype="timestamp"),
    Column("pos", "double", "2", xtype="point"),
    Column("poly", "double", "*", xtype="polygon"),
    Column("ok", "boolean"),
    Column("x", "double"),
]

TIMES = [datetime.datetime(2020, 1, 1, 12), None, datetime.datetime(1999, 1, 1, 0, 0, 0, 5)]


def sample_batch() -> pa.RecordBatch:
    columns = [
        pa.array([1, None, 2**62]),
        pa.array([0.1, None, float("nan")]),
        pa.array([0.5, None, 2.25], pa.float32()),
        pa.array(["a", None, "Ångström"]),
        pa.array(TIMES, pa.timestamp("us")),
        pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float64())),
        pa.array([[1.0], [], None], pa.list_(pa.float64())),
        pa.array([True, None, False]),
        pa.array(["1.5", None, "2"]),
    ]
    return pa.record_batch(columns, names=[f"c{i}" for i in range(len(columns))])


def encode(batches=None, status=None, infos=None) -> bytes:
    batches = [sample_batch()] if batches is None else batches
    status = status or ResultStatus()
    return b"".join(find_format("parquet").encode(FIELDS, iter(batches), status, infos=infos or {}))


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_values():
    rows = read(encode()).to_pylist()
    assert rows[0] == {"id": 1, "ra": 0.1, "z": 0.5, "name": "a", "t": TIMES[0], "pos": [1.0, 2.0], "poly": [1.0],
                       "ok": True, "x": 1.5}
    assert all(v is None for k, v in rows[1].items() if k != "poly")
    assert rows[1]["poly"] == []
    assert rows[2]["name"] == "Ångström" and rows[2]["t"] == TIMES[2] and rows[2]["x"] == 2.0


def test_types():
    schema = read(encode()).schema
    assert schema.field("id").type == pa.int64()
    assert schema.field("z").type == pa.float32()
    assert schema.field("t").type == pa.timestamp("us")
    assert schema.field("pos").type == pa.list_(pa.float64(), 2)
    assert schema.field("poly").type == pa.list_(pa.float64())
    assert schema.field("x").type == pa.float64()


def test_field_metadata():
    schema = read(encode()).schema
    assert schema.field("ra").metadata == {b"datatype": b"double", b"unit": b"deg", b"ucd": b"pos.eq.ra"}
    assert schema.field("id").metadata[b"description"] == b"Identifier"
    assert schema.field("pos").metadata[b"xtype"] == b"point"


@pytest.mark.parametrize("overflow", [True, False])
def test_overflow_in_key_value_metadata(overflow):
    meta = pq.ParquetFile(io.BytesIO(encode(status=ResultStatus(overflow=overflow)))).metadata.metadata
    assert meta[b"pzvo.overflow"] == (b"true" if overflow else b"false")
    assert meta[b"pzvo.rows"] == b"3"


def test_infos_in_metadata():
    meta = pq.ParquetFile(io.BytesIO(encode(infos={"QUERY": "SELECT 1"}))).metadata.metadata
    assert meta[b"pzvo.info.QUERY"] == b"SELECT 1"


def test_zero_rows():
    table = read(encode([]))
    assert table.num_rows == 0
    assert table.schema.names == [f.name for f in FIELDS]


def test_one_row_group_per_batch():
    batch = sample_batch()
    data = encode([batch, batch.slice(0, 0), batch.slice(1)])
    f = pq.ParquetFile(io.BytesIO(data))
    assert f.metadata.num_row_groups == 2
    assert f.read().num_rows == 5


def test_streams_before_end():
    batch = sample_batch()
    chunks = list(find_format("parquet").encode(FIELDS, iter([batch] * 5), ResultStatus()))
    assert len(chunks) >= 5
    assert chunks[0].startswith(b"PAR1")
    assert chunks[-1].endswith(b"PAR1")


def test_duplicate_names_made_unique():
    fields = [Column("a", "int"), Column("a", "int")]
    batch = pa.record_batch([pa.array([1], pa.int32()), pa.array([2], pa.int32())], names=["p", "q"])
    data = b"".join(find_format("parquet").encode(fields, iter([batch]), ResultStatus()))
    table = read(data)
    assert table.schema.names == ["a", "a_2"]
    assert table.schema.field("a_2").metadata[b"name"] == b"a"
    assert [c.to_pylist() for c in table.columns] == [[1], [2]]
