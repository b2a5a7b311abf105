"""VOTable encoders read back by astropy (strict) and pyvo, value by value."""
from __future__ import annotations

import base64
import datetime
import io
import math
import struct
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse
from astropy.io.votable.exceptions import W33
from pyvo.dal import DALQueryError, DALResults

from vo_service.core.columns import Column
from vo_service.tap.formats import error_document, find_format
from vo_service.tap.results import ResultStatus

SERIALIZATIONS = ["votable", "votable/b", "votable/td"]

FIELDS = [
    Column("object_id", "long", ucd="meta.id;meta.main", description="Object identifier"),
    Column("n_obs", "int"),
    Column("flags", "short"),
    Column("quality", "unsignedByte"),
    Column("good", "boolean"),
    Column("z_phot", "float", ucd="src.redshift.phot"),
    Column("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main", description="Right ascension <ICRS> & more"),
    Column("name", "char", "*"),
    Column("obs_time", "char", "*", xtype="timestamp"),
    Column("pos", "double", "2", xtype="point", unit="deg", ucd="pos.eq"),
    Column("region", "double", "3", xtype="circle", unit="deg"),
    Column("footprint", "double", "*", xtype="polygon", unit="deg"),
    Column("blob", "unsignedByte", "*"),
    Column("code", "char", "4"),
]

ROWS = [
    (1, 10, 3, 7, True, 0.5, 10.25, "alpha", datetime.datetime(2020, 5, 17, 3, 4, 5, 250000),
     [10.0, 20.0], [1.0, 2.0, 0.5], [0.0, 0.0, 1.0, 0.0, 1.0, 1.0], b"\x00\x01\xff", "ABCD"),
    (None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (2**62, -(2**31) + 1, -32767, 254, False, -1.25e-30, 1e300, "", datetime.datetime(1999, 12, 31),
     [359.5, -89.9], [0.0, 0.0, 0.1], [], b"", "xy"),
    (-5, 0, 0, 0, True, float("inf"), -0.1, "with <xml> & \"quotes\"", None,
     [0.1, 0.2], [3.0, 4.0, 5.0], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5], b"abc", ""),
]

ARROW_TYPES = [
    pa.int64(), pa.int32(), pa.int16(), pa.uint8(), pa.bool_(), pa.float32(), pa.float64(), pa.string(),
    pa.timestamp("us"), pa.list_(pa.float64(), 2), pa.list_(pa.float64()), pa.list_(pa.float64()),
    pa.binary(), pa.string(),
]


def sample_batches(rows=ROWS, chunk: int | None = None) -> list[pa.RecordBatch]:
    columns = [pa.array([r[i] for r in rows], t) for i, t in enumerate(ARROW_TYPES)]
    batch = pa.record_batch(columns, names=[f"c{i}" for i in range(len(columns))])
    if chunk is None:
        return [batch]
    return [batch.slice(i, chunk) for i in range(0, batch.num_rows, chunk)]


def encode(key: str, fields=FIELDS, batches=None, status=None, infos=None) -> bytes:
    batches = sample_batches() if batches is None else batches
    status = ResultStatus(rows=sum(b.num_rows for b in batches)) if status is None else status
    return b"".join(find_format(key).encode(fields, iter(batches), status, infos=infos or {}))


def strict_parse(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(data), verify="exception")


def strict_table(data: bytes):
    return strict_parse(data).get_first_table()


def is_masked(value) -> bool:
    return value is np.ma.masked or (np.ma.isMaskedArray(value) and bool(np.all(value.mask)))


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_integers_and_nulls(key):
    table = strict_table(encode(key)).to_table()
    for name, expected in [("object_id", [1, None, 2**62, -5]), ("n_obs", [10, None, -(2**31) + 1, 0]),
                           ("flags", [3, None, -32767, 0]), ("quality", [7, None, 254, 0])]:
        column = table[name]
        for i, value in enumerate(expected):
            if value is None:
                assert is_masked(column[i]), (name, i)
            else:
                assert int(column[i]) == value, (name, i)


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_integer_dtypes(key):
    table = strict_table(encode(key)).to_table()
    assert table["object_id"].dtype == np.int64
    assert table["n_obs"].dtype == np.int32
    assert table["flags"].dtype == np.int16
    assert table["quality"].dtype == np.uint8


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_boolean(key):
    column = strict_table(encode(key)).to_table()["good"]
    assert bool(column[0]) is True
    assert is_masked(column[1])
    assert bool(column[2]) is False
    assert bool(column[3]) is True


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_floats_round_trip_exactly(key):
    table = strict_table(encode(key)).to_table()
    assert table["z_phot"].dtype == np.float32
    assert table["z_phot"][0] == np.float32(0.5)
    assert table["z_phot"][2] == np.float32(-1.25e-30)
    assert np.isinf(table["z_phot"][3]) and table["z_phot"][3] > 0
    assert table["ra"][0] == 10.25
    assert table["ra"][2] == 1e300
    assert table["ra"][3] == -0.1
    assert is_masked(table["ra"][1])
    assert is_masked(table["z_phot"][1])


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_strings(key):
    column = strict_table(encode(key)).to_table()["name"]
    assert column[0] == "alpha"
    assert column[3] == 'with <xml> & "quotes"'
    assert column[2] == ""


def stream_bytes(data: bytes) -> bytes:
    text = data.decode()
    return base64.b64decode(text.split('<STREAM encoding="base64">', 1)[1].split("</STREAM>", 1)[0])


def test_binary2_flags_null_string_not_empty_one():
    fields = [Column("s", "char", "*")]
    batch = pa.record_batch([pa.array(["", None, "ab"])], names=["a"])
    raw = stream_bytes(encode("votable", fields=fields, batches=[batch]))
    assert raw == b"\x00" + bytes(4) + b"\x80" + bytes(4) + b"\x00\x00\x00\x00\x02ab"


def test_binary2_layout_of_numbers():
    fields = [Column("i", "int"), Column("d", "double"), Column("f", "float")]
    batch = pa.record_batch([pa.array([1, None], pa.int32()), pa.array([None, 2.0]),
                             pa.array([0.5, None], pa.float32())], names=["a", "b", "c"])
    raw = stream_bytes(encode("votable", fields=fields, batches=[batch]))
    row1 = b"\x40" + struct.pack(">i", 1) + struct.pack(">d", math.nan) + struct.pack(">f", 0.5)
    assert raw[:17] == row1
    assert raw[17] == 0xA0
    assert raw[22:30] == struct.pack(">d", 2.0)


def test_tabledata_null_string_is_empty_cell():
    text = encode("votable/td").decode()
    assert "<TR><TD></TD><TD></TD>" in text


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_fixed_char(key):
    column = strict_table(encode(key)).to_table()["code"]
    assert column[0] == "ABCD"
    assert column[2] == "xy"


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_timestamp_iso(key):
    column = strict_table(encode(key)).to_table()["obs_time"]
    assert column[0] == "2020-05-17T03:04:05.25"
    assert column[2] == "1999-12-31T00:00:00"


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_point_and_circle(key):
    table = strict_table(encode(key)).to_table()
    assert list(table["pos"][0]) == [10.0, 20.0]
    assert list(table["pos"][2]) == [359.5, -89.9]
    assert list(table["region"][3]) == [3.0, 4.0, 5.0]
    assert np.all(np.ma.getmaskarray(table["pos"][1])) or np.all(np.isnan(np.ma.getdata(table["pos"][1])))


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_variable_arrays(key):
    table = strict_table(encode(key)).to_table()
    assert list(table["footprint"][0]) == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert len(table["footprint"][2]) == 0
    assert list(table["footprint"][3]) == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5]
    assert len(table["footprint"][1]) == 0 or is_masked(table["footprint"][1])


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_bytes(key):
    table = strict_table(encode(key)).to_table()
    assert list(table["blob"][0]) == [0, 1, 255]
    assert list(table["blob"][3]) == [97, 98, 99]
    assert len(table["blob"][2]) == 0


def test_field_metadata():
    table = strict_table(encode("votable"))
    ra = table.get_field_by_id("ra")
    assert ra.unit.to_string() == "deg"
    assert ra.ucd == "pos.eq.ra;meta.main"
    assert ra.description == "Right ascension <ICRS> & more"
    assert table.get_field_by_id("pos").xtype == "point"
    assert table.get_field_by_id("region").xtype == "circle"
    assert table.get_field_by_id("footprint").arraysize == "*"
    assert table.get_field_by_id("obs_time").xtype == "timestamp"
    assert table.get_field_by_id("object_id").description == "Object identifier"


def test_binary_declares_integer_null_sentinels():
    text = encode("votable/b").decode()
    assert '<VALUES null="-9223372036854775808"/>' in text
    assert '<VALUES null="-2147483648"/>' in text
    assert '<VALUES null="255"/>' in text


def test_binary2_declares_no_values_null():
    assert "<VALUES" not in encode("votable").decode()


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_version_namespace_and_resource(key):
    votable = strict_parse(encode(key))
    assert votable.version == "1.4"
    text = encode(key).decode()
    assert 'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"' in text
    assert votable.resources[0].type == "results"


@pytest.mark.parametrize("key", ["votable", "votable/b"])
def test_stream_is_base64_in_lines(key):
    text = encode(key).decode()
    stream = text.split('<STREAM encoding="base64">\n', 1)[1].split("</STREAM>", 1)[0]
    lines = stream.splitlines()
    assert all(len(line) == 76 for line in lines[:-1])
    assert 0 < len(lines[-1]) <= 76


def test_serialization_elements():
    assert "<BINARY2>" in encode("votable").decode()
    assert "<BINARY2>" in encode("votable/b2").decode()
    assert "<BINARY>" in encode("votable/b").decode()
    assert "<TABLEDATA>" in encode("votable/td").decode()


def _status_positions(text: str) -> tuple[int, int, int]:
    return text.find('value="OK"'), text.find("<TABLE>"), text.find('value="OVERFLOW"')


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_overflow_info_after_table(key):
    text = encode(key, status=ResultStatus(overflow=True, rows=4)).decode()
    ok, table, overflow = _status_positions(text)
    assert 0 < ok < table < text.find("</TABLE>") < overflow < text.find("</RESOURCE>")
    strict_parse(text.encode())


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_no_overflow_info(key):
    text = encode(key, status=ResultStatus(overflow=False, rows=4)).decode()
    assert 'value="OVERFLOW"' not in text
    assert text.count("QUERY_STATUS") == 1


def test_overflow_set_while_streaming_is_reported():
    status = ResultStatus()

    def batches():
        yield from sample_batches()
        status.overflow = True

    data = b"".join(find_format("votable").encode(FIELDS, batches(), status))
    assert b'value="OVERFLOW"' in data


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_pyvo_reads_ok_and_overflow(key):
    ok = DALResults(strict_parse(encode(key)))
    assert ok.status[0] == "OK"
    assert len(ok) == 4
    with pytest.warns(Warning):
        over = DALResults(strict_parse(encode(key, status=ResultStatus(overflow=True))))
    assert over.status[0] == "OVERFLOW"
    assert list(over.to_table()["object_id"][:1]) == [1]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_pyvo_values(key):
    results = DALResults(strict_parse(encode(key)))
    assert results[0]["name"] == "alpha"
    assert results[3]["ra"] == -0.1
    assert list(results[0]["pos"]) == [10.0, 20.0]


def test_astropy_table_read():
    from astropy.table import Table

    table = Table.read(io.BytesIO(encode("votable")), format="votable")
    assert list(table["object_id"].filled(0)) == [1, 0, 2**62, -5]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_extra_infos_before_table(key):
    infos = {"QUERY": "SELECT *\nFROM pz.t WHERE a < 1 & b > \"x\"", "server": "pzvo"}
    data = encode(key, infos=infos)
    votable = strict_parse(data)
    got = {i.name: i.value for i in votable.resources[0].infos}
    assert got["QUERY"] == infos["QUERY"]
    assert got["server"] == "pzvo"
    text = data.decode()
    assert text.find('name="QUERY"') < text.find("<TABLE>")


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_status_infos_after_table(key):
    status = ResultStatus(rows=4, infos={"elapsed": "0.1"})
    text = encode(key, status=status).decode()
    assert text.find("</TABLE>") < text.find('name="elapsed"')
    strict_parse(text.encode())


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_zero_rows_no_batches(key):
    data = encode(key, batches=[])
    table = strict_table(data)
    assert len(table.array) == 0
    assert [f.name for f in table.fields] == [f.name for f in FIELDS]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_zero_rows_empty_batch(key):
    data = encode(key, batches=[sample_batches()[0].slice(0, 0)])
    assert len(strict_table(data).array) == 0


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_many_batches_equal_one_batch(key):
    rng = np.random.default_rng(5)
    rows = [ROWS[i] for i in rng.integers(0, len(ROWS), 1001)]
    one = strict_table(encode(key, batches=sample_batches(rows))).to_table()
    many = strict_table(encode(key, batches=sample_batches(rows, chunk=37))).to_table()
    assert len(many) == 1001
    for name in ("object_id", "ra", "name", "footprint"):
        assert repr(list(one[name])) == repr(list(many[name]))


@pytest.mark.parametrize("key", ["votable", "votable/b"])
def test_many_batches_stream_identical_to_one_batch(key):
    rows = ROWS * 50
    one = encode(key, batches=sample_batches(rows))
    many = encode(key, batches=sample_batches(rows, chunk=7))
    assert one == many


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_duplicate_names_get_unique_ids(key):
    fields = [Column("x", "int"), Column("x", "double"), Column("1 bad id", "int")]
    batch = pa.record_batch([pa.array([1], pa.int32()), pa.array([2.5]), pa.array([3], pa.int32())],
                            names=["a1", "a2", "a3"])
    data = encode(key, fields=fields, batches=[batch])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", W33)
        table = parse(io.BytesIO(data)).get_first_table()
    assert [f.name for f in table.fields] == ["x", "x", "1 bad id"]
    ids = [f.ID for f in table.fields]
    assert len(set(ids)) == 3
    assert all(i[0].isalpha() or i[0] == "_" for i in ids)
    assert list(table.array[0]) == [1, 2.5, 3]


NON_ASCII = ["Ångström", None, "naïve ☃", "plain", "𝔘nicode"]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_non_ascii_in_char_column(key):
    fields = [Column("label", "char", "*")]
    batch = pa.record_batch([pa.array(NON_ASCII)], names=["a"])
    table = strict_table(encode(key, fields=fields, batches=[batch]))
    assert table.fields[0].datatype == "unicodeChar"
    values = table.to_table()["label"]
    assert [values[i] for i in (0, 2, 3, 4)] == ["Ångström", "naïve ☃", "plain", "𝔘nicode"]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_declared_unicode_char(key):
    fields = [Column("label", "unicodeChar", "*")]
    batch = pa.record_batch([pa.array(NON_ASCII)], names=["a"])
    values = strict_table(encode(key, fields=fields, batches=[batch])).to_table()["label"]
    assert values[0] == "Ångström" and values[4] == "𝔘nicode"


def test_ascii_char_stays_char():
    fields = [Column("label", "char", "*")]
    batch = pa.record_batch([pa.array(["a", "b"])], names=["a"])
    assert strict_table(encode("votable", fields=fields, batches=[batch])).fields[0].datatype == "char"


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_undeclared_types_fall_back_on_arrow(key):
    fields = [Column("a", ""), Column("b", ""), Column("c", "")]
    batch = pa.record_batch([pa.array([1, None], pa.int16()), pa.array(["x", "y"]), pa.array([1.5, 2.5])],
                            names=["a", "b", "c"])
    table = strict_table(encode(key, fields=fields, batches=[batch]))
    assert [f.datatype for f in table.fields] == ["short", "char", "double"]
    assert list(table.to_table()["c"]) == [1.5, 2.5]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_declared_type_casts_data(key):
    fields = [Column("n", "long"), Column("x", "double")]
    batch = pa.record_batch([pa.array([1, 2], pa.int32()), pa.array(["1.5", "2.25"])], names=["a", "b"])
    table = strict_table(encode(key, fields=fields, batches=[batch])).to_table()
    assert table["n"].dtype == np.int64
    assert list(table["x"]) == [1.5, 2.25]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_nan_in_array_elements(key):
    fields = [Column("v", "double", "*")]
    batch = pa.record_batch([pa.array([[1.0, None, float("nan")]], pa.list_(pa.float64()))], names=["a"])
    value = strict_table(encode(key, fields=fields, batches=[batch])).to_table()["v"][0]
    data = np.ma.getdata(value)
    assert data[0] == 1.0 and math.isnan(data[1]) and math.isnan(data[2])


def test_many_columns_null_mask_spans_bytes():
    n = 19
    fields = [Column(f"c{i}", "int") for i in range(n)]
    arrays = [pa.array([i if j != i else None for j in range(n)], pa.int32()) for i in range(n)]
    batch = pa.record_batch(arrays, names=[f"a{i}" for i in range(n)])
    table = strict_table(encode("votable", fields=fields, batches=[batch])).to_table()
    for i in range(n):
        for j in range(n):
            assert is_masked(table[f"c{i}"][j]) == (i == j)


def test_error_document_parses():
    data = error_document("Syntax error near <FROM> & \"x\"", infos={"QUERY": "SELEC"})
    votable = strict_parse(data)
    infos = votable.resources[0].infos
    status = [i for i in infos if i.name == "QUERY_STATUS"]
    assert status[0].value == "ERROR"
    assert status[0].content == "Syntax error near <FROM> & \"x\""
    assert votable.resources[0].type == "results"


def test_error_document_pyvo_raises():
    with pytest.raises(DALQueryError, match="division by zero"):
        DALResults(parse(io.BytesIO(error_document("division by zero"))))


def test_error_document_control_characters():
    strict_parse(error_document("bad\x00byte\nsecond line"))


def test_xml_invalid_characters_in_strings_replaced():
    fields = [Column("s", "char", "*")]
    batch = pa.record_batch([pa.array(["a\x01b"])], names=["a"])
    assert strict_table(encode("votable/td", fields=fields, batches=[batch])).to_table()["s"][0] == "a?b"


def test_chunks_are_bytes():
    chunks = list(find_format("votable").encode(FIELDS, iter(sample_batches()), ResultStatus()))
    assert all(isinstance(c, bytes) for c in chunks)
    assert len(chunks) >= 3


def test_batches_consumed_lazily():
    consumed = []

    def batches():
        for i, batch in enumerate(sample_batches(ROWS * 10, chunk=4)):
            consumed.append(i)
            yield batch

    stream = find_format("votable").encode(FIELDS, batches(), ResultStatus())
    next(stream)
    assert len(consumed) == 1
    next(stream)
    assert len(consumed) <= 2


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_fixed_unicode_char(key):
    fields = [Column("u", "unicodeChar", "3")]
    batch = pa.record_batch([pa.array(["Åb", None, "xyzw"])], names=["a"])
    values = strict_table(encode(key, fields=fields, batches=[batch])).to_table()["u"]
    assert values[0] == "Åb"
    assert values[2] in ("xyz", "xyzw")


def test_non_ascii_after_first_batch_is_utf8():
    fields = [Column("s", "char", "*")]
    batches = [pa.record_batch([pa.array(["plain"])], names=["a"]), pa.record_batch([pa.array(["Å"])], names=["a"])]
    assert "Å".encode() in stream_bytes(encode("votable", fields=fields, batches=batches))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = parse(io.BytesIO(encode("votable/td", fields=fields, batches=batches))).get_first_table()
    assert list(table.to_table()["s"]) == ["plain", "Å"]


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_timestamp_with_time_zone_and_dates(key):
    fields = [Column("t", "char", "*", xtype="timestamp"), Column("d", "char", "*", xtype="timestamp")]
    utc = pa.array([datetime.datetime(2020, 1, 1, 23, 30, tzinfo=datetime.UTC)], pa.timestamp("us", tz="UTC"))
    moscow = utc.cast(pa.timestamp("us", tz="Europe/Moscow"))
    batch = pa.record_batch([moscow, pa.array([datetime.date(2021, 2, 3)], pa.date32())], names=["a", "b"])
    table = strict_table(encode(key, fields=fields, batches=[batch])).to_table()
    assert table["t"][0] == "2020-01-01T23:30:00"
    assert table["d"][0] == "2021-02-03"


@pytest.mark.parametrize("key", SERIALIZATIONS)
def test_large_string_and_chunked_input(key):
    fields = [Column("s", "char", "*"), Column("n", "long")]
    batch = pa.record_batch([pa.array(["a", None, "ccc"], pa.large_string()), pa.array([1, 2, 3])], names=["a", "b"])
    table = strict_table(encode(key, fields=fields, batches=[batch.slice(1), batch.slice(0, 1)])).to_table()
    assert list(table["n"]) == [2, 3, 1]
    assert table["s"][1] == "ccc"
