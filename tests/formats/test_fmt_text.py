"""CSV and TSV encoders read back by astropy and pyarrow.csv."""
from __future__ import annotations

import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from astropy.table import Table

from vo_service.core.columns import Column
from vo_service.tap.formats import find_format
from vo_service.tap.results import ResultStatus

FIELDS = [
    Column("object_id", "long"),
    Column("ra", "double", unit="deg"),
    Column("z", "float"),
    Column("name", "char", "*"),
    Column("good", "boolean"),
    Column("t", "char", "*", xtype="timestamp"),
    Column("pos", "double", "2", xtype="point"),
]


def sample_batch(n: int = 1) -> pa.RecordBatch:
    columns = [
        pa.array([1, None, 3, 2**62] * n, pa.int64()),
        pa.array([0.1, None, 1e300, -2.5e-7] * n),
        pa.array([0.3, None, 1.5, float("nan")] * n, pa.float32()),
        pa.array(['a,b "c"', None, "", "é\tx\ny\\"] * n),
        pa.array([True, None, False, True] * n),
        pa.array([datetime.datetime(2020, 1, 2, 3, 4, 5), None, datetime.datetime(2021, 6, 1, 0, 0, 0, 10), None] * n,
                 pa.timestamp("us")),
        pa.array([[1.5, -2.0], None, [0.1, 0.2], [3.0, 4.0]] * n, pa.list_(pa.float64(), 2)),
    ]
    return pa.record_batch(columns, names=[f"c{i}" for i in range(len(columns))])


def encode(key: str, batches=None, fields=FIELDS) -> bytes:
    batches = [sample_batch()] if batches is None else batches
    return b"".join(find_format(key).encode(fields, iter(batches), ResultStatus()))


def test_csv_header_line():
    assert encode("csv").split(b"\r\n", 1)[0] == b"object_id,ra,z,name,good,t,pos"


def test_csv_uses_crlf():
    data = encode("csv")
    assert data.count(b"\r\n") == 5
    assert data.endswith(b"\r\n")


def test_csv_pyarrow_round_trip():
    table = pcsv.read_csv(io.BytesIO(encode("csv")))
    assert table.column("object_id").to_pylist() == [1, None, 3, 2**62]
    assert table.column("ra").to_pylist() == [0.1, None, 1e300, -2.5e-7]
    assert table.column("good").to_pylist() == [True, None, False, True]
    assert table.column("pos").to_pylist()[0] == "1.5 -2"


def test_csv_null_string_vs_empty():
    convert = pcsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    names = pcsv.read_csv(io.BytesIO(encode("csv")), convert_options=convert).column("name").to_pylist()
    assert names == ['a,b "c"', None, "", "é\tx\ny\\"]


def test_csv_float32_shortest_text():
    convert = pcsv.ConvertOptions(null_values=[""])
    z = pcsv.read_csv(io.BytesIO(encode("csv")), convert_options=convert).column("z").to_pylist()
    assert np.float32(z[0]) == np.float32(0.3)
    assert str(z[0]) == "0.3"
    assert np.isnan(z[3])
    assert z[1] is None


def test_csv_astropy_round_trip():
    table = Table.read(encode("csv").decode(), format="ascii.csv")
    assert list(table["object_id"].filled(0)) == [1, 0, 3, 2**62]
    assert table["ra"][0] == 0.1 and table["ra"][2] == 1e300
    assert table["ra"].mask[1]
    assert table["name"][0] == 'a,b "c"'
    assert table["name"][3] == "é\tx\ny\\"
    assert table["t"][0] == "2020-01-02T03:04:05"
    assert table["t"][2] == "2021-06-01T00:00:00.00001"


def test_csv_header_quoting():
    fields = [Column('a,"b"', "int"), Column("x", "int")]
    batch = pa.record_batch([pa.array([1], pa.int32()), pa.array([2], pa.int32())], names=["p", "q"])
    assert encode("csv", [batch], fields).split(b"\r\n")[0] == b'"a,""b""",x'


def test_csv_duplicate_names():
    fields = [Column("x", "int"), Column("x", "int")]
    batch = pa.record_batch([pa.array([1], pa.int32()), pa.array([2], pa.int32())], names=["p", "q"])
    assert encode("csv", [batch], fields) == b"x,x\r\n1,2\r\n"


def test_csv_zero_rows():
    assert encode("csv", []) == b"object_id,ra,z,name,good,t,pos\r\n"


def test_csv_many_batches():
    batch = sample_batch(25)
    one = encode("csv", [batch])
    many = encode("csv", [batch.slice(i, 9) for i in range(0, 100, 9)])
    assert one == many
    assert pcsv.read_csv(io.BytesIO(many)).num_rows == 100


def test_tsv_header_and_lines():
    lines = encode("tsv").split(b"\n")
    assert lines[0] == b"object_id\tra\tz\tname\tgood\tt\tpos"
    assert len(lines) == 6 and lines[-1] == b""
    assert all(line.count(b"\t") == 6 for line in lines[:-1])


def test_tsv_escapes():
    lines = encode("tsv").decode().split("\n")
    assert lines[4].split("\t")[3] == "é\\tx\\ny\\\\"


def test_tsv_nulls_empty():
    assert encode("tsv").decode().split("\n")[2] == "\t" * 6


def test_tsv_pyarrow_round_trip():
    parse = pcsv.ParseOptions(delimiter="\t", quote_char=False)
    table = pcsv.read_csv(io.BytesIO(encode("tsv")), parse_options=parse)
    assert table.column("object_id").to_pylist() == [1, None, 3, 2**62]
    assert table.column("ra").to_pylist() == [0.1, None, 1e300, -2.5e-7]
    assert table.column("name").to_pylist()[0] == 'a,b "c"'
    assert table.column("pos").to_pylist()[3] == "3 4"


def test_tsv_astropy_round_trip():
    batch = sample_batch()
    table = Table.read(encode("tsv", [batch.filter(pa.array([True, False, True, True]))]).decode(), format="ascii.tab")
    assert list(table["object_id"]) == [1, 3, 2**62]
    assert table["ra"][2] == -2.5e-7
    assert table["t"].mask[2]


def test_tsv_all_null_row_is_a_line_of_tabs():
    parse = pcsv.ParseOptions(delimiter="\t", quote_char=False)
    table = pcsv.read_csv(io.BytesIO(encode("tsv")), parse_options=parse)
    assert table.num_rows == 4
    assert table.slice(1, 1).to_pylist()[0]["object_id"] is None


def test_tsv_zero_rows():
    assert encode("tsv", []) == b"object_id\tra\tz\tname\tgood\tt\tpos\n"


@pytest.mark.parametrize("key", ["csv", "tsv"])
def test_variable_arrays_space_separated(key):
    fields = [Column("poly", "double", "*", xtype="polygon")]
    batch = pa.record_batch([pa.array([[1.0, 2.0, 3.5], [], None], pa.list_(pa.float64()))], names=["p"])
    lines = encode(key, [batch], fields).decode().splitlines()
    assert lines[1].strip('"') == "1 2 3.5"
    assert lines[3] == ('""' if key == "csv" else "N/A")
