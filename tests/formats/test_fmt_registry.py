"""RESPONSEFORMAT lookup, format table and the Arrow type fallback."""
from __future__ import annotations

import pyarrow as pa
import pytest

from vo_service.core.columns import Column, datatype_for_arrow
from vo_service.tap.formats import OUTPUT_FORMATS, UnknownFormatError, find_format
from vo_service.tap.results import ResultStatus


def test_default_first():
    assert OUTPUT_FORMATS[0].key == "votable"
    assert find_format(None).key == "votable"
    assert find_format("").key == "votable"
    assert find_format("  ").key == "votable"


def test_keys():
    assert [f.key for f in OUTPUT_FORMATS] == [
        "votable", "votable/b2", "votable/b", "votable/td", "csv", "tsv", "fits", "parquet", "json"]


@pytest.mark.parametrize("value,key", [
    ("votable", "votable"),
    ("VOTABLE", "votable"),
    ("application/x-votable+xml", "votable"),
    ("text/xml", "votable"),
    ("application/x-votable+xml;serialization=binary2", "votable/b2"),
    ("application/x-votable+xml; serialization=BINARY2", "votable/b2"),
    ("application/x-votable+xml ;serialization = binary2", "votable/b2"),
    ("votable/b2", "votable/b2"),
    ("binary2", "votable/b2"),
    ("votableb2", "votable/b2"),
    ("votable/td", "votable/td"),
    ("application/x-votable+xml;serialization=tabledata", "votable/td"),
    ("application/x-votable+xml;serialization=TABLEDATA", "votable/td"),
    ("votable/b", "votable/b"),
    ("application/x-votable+xml;serialization=binary", "votable/b"),
    ("csv", "csv"),
    ("text/csv", "csv"),
    ("text/csv;header=present", "csv"),
    ("Text/CSV; header=present", "csv"),
    ("tsv", "tsv"),
    ("text/tab-separated-values", "tsv"),
    ("fits", "fits"),
    ("application/fits", "fits"),
    ("parquet", "parquet"),
    ("application/vnd.apache.parquet", "parquet"),
    ("application/x-parquet", "parquet"),
    ("json", "json"),
    ("application/json", "json"),
    (" csv ", "csv"),
])
def test_find_format(value, key):
    assert find_format(value).key == key


def test_unknown_lists_accepted():
    with pytest.raises(UnknownFormatError) as info:
        find_format("application/vnd.ms-excel")
    message = str(info.value)
    assert "application/vnd.ms-excel" in message
    assert "votable" in message and "text/csv" in message and "parquet" in message


def test_unknown_is_value_error():
    with pytest.raises(ValueError):
        find_format("xls")


def test_every_alias_resolves_to_its_format():
    for fmt in OUTPUT_FORMATS:
        assert find_format(fmt.key) is fmt
        for alias in fmt.aliases:
            assert find_format(alias) is fmt, alias


def test_metadata_present():
    for fmt in OUTPUT_FORMATS:
        assert fmt.mime_type and fmt.extension and fmt.description


@pytest.mark.parametrize("arrow,expected", [
    (pa.bool_(), ("boolean", None)),
    (pa.int8(), ("short", None)),
    (pa.uint8(), ("unsignedByte", None)),
    (pa.int16(), ("short", None)),
    (pa.int32(), ("int", None)),
    (pa.int64(), ("long", None)),
    (pa.float32(), ("float", None)),
    (pa.float64(), ("double", None)),
    (pa.decimal128(10, 2), ("double", None)),
    (pa.string(), ("char", "*")),
    (pa.large_string(), ("char", "*")),
    (pa.timestamp("us"), ("char", "*")),
    (pa.list_(pa.float64()), ("double", "*")),
    (pa.list_(pa.float64(), 3), ("double", "3")),
    (pa.list_(pa.int32()), ("int", "*")),
    (pa.binary(), ("unsignedByte", "*")),
    (pa.dictionary(pa.int32(), pa.string()), ("char", "*")),
])
def test_datatype_for_arrow(arrow, expected):
    assert datatype_for_arrow(arrow) == expected


def _sample():
    fields = [Column("id", "long"), Column("s", "char", "*")]
    batch = pa.record_batch([pa.array(range(10), pa.int64()), pa.array([str(i) for i in range(10)])], names=["a", "b"])
    return fields, batch


@pytest.mark.parametrize("key", [f.key for f in OUTPUT_FORMATS if f.key != "fits"])
def test_streaming_consumes_batches_one_at_a_time(key):

    fields, batch = _sample()
    pulled = []

    def batches():
        for i in range(100):
            pulled.append(i)
            yield batch

    stream = find_format(key).encode(fields, batches(), ResultStatus())
    next(stream)
    next(stream)
    assert len(pulled) <= 3
    assert sum(len(c) for c in stream) > 0
    assert len(pulled) == 100


@pytest.mark.parametrize("key", [f.key for f in OUTPUT_FORMATS])
def test_every_format_yields_bytes(key):

    fields, batch = _sample()
    chunks = list(find_format(key).encode(fields, iter([batch, batch]), ResultStatus()))
    assert chunks and all(isinstance(c, bytes) for c in chunks)


@pytest.mark.parametrize("key", [f.key for f in OUTPUT_FORMATS])
def test_uncastable_type_published_as_text(key):
    interval = pa.array([pa.scalar((1, 2, 3), pa.month_day_nano_interval())], pa.month_day_nano_interval())
    batch = pa.record_batch([interval], names=["a"])
    data = b"".join(find_format(key).encode([Column("iv", "")], iter([batch]), ResultStatus()))
    assert data


@pytest.mark.parametrize("key", [f.key for f in OUTPUT_FORMATS])
def test_field_count_mismatch_raises(key):
    batch = pa.record_batch([pa.array([1])], names=["a"])
    with pytest.raises(ValueError):
        b"".join(find_format(key).encode([Column("a", "long"), Column("b", "long")], iter([batch]),
                                         ResultStatus()))
