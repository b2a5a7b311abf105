"""FITS encoder read back by astropy.io.fits."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits
from astropy.table import Table

from vo_service.core.columns import Column
from vo_service.tap.formats import find_format
from vo_service.tap.results import ResultStatus

FIELDS = [
    Column("object_id", "long", ucd="meta.id;meta.main", description="Identifier"),
    Column("n", "int"),
    Column("s16", "short"),
    Column("u8", "unsignedByte"),
    Column("good", "boolean"),
    Column("z", "float"),
    Column("ra", "double", unit="deg", ucd="pos.eq.ra"),
    Column("name", "char", "*"),
    Column("pos", "double", "2", xtype="point"),
    Column("poly", "double", "*", xtype="polygon"),
    Column("name", "int"),
]


def sample_batch() -> pa.RecordBatch:
    columns = [
        pa.array([1, None, 2**62, -7], pa.int64()),
        pa.array([5, None, -(2**31) + 1, 0], pa.int32()),
        pa.array([1, None, -5, 32767], pa.int16()),
        pa.array([0, None, 254, 17], pa.uint8()),
        pa.array([True, None, False, True]),
        pa.array([0.5, None, float("nan"), -1e-20], pa.float32()),
        pa.array([10.125, None, 1e300, -0.1]),
        pa.array(["alpha", None, "", "a longer name"]),
        pa.array([[1.0, 2.0], None, [3.0, 4.0], [5.0, 6.0]], pa.list_(pa.float64(), 2)),
        pa.array([[1.0, 2.0, 3.0], [], None, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]], pa.list_(pa.float64())),
        pa.array([1, 2, 3, 4], pa.int32()),
    ]
    return pa.record_batch(columns, names=[f"c{i}" for i in range(len(columns))])


def encode(batches=None, status=None, fields=FIELDS, infos=None) -> bytes:
    batches = [sample_batch()] if batches is None else batches
    status = status or ResultStatus()
    return b"".join(find_format("fits").encode(fields, iter(batches), status, infos=infos or {}))


def read_table(data: bytes) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(io.BytesIO(data), format="fits", hdu=1)


def test_size_multiple_of_block():
    assert len(encode()) % 2880 == 0


def test_verifies():
    with fits.open(io.BytesIO(encode())) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 2
        assert hdul[1].header["NAXIS2"] == 4


def test_integers_with_tnull():
    table = read_table(encode())
    assert list(table["object_id"].filled(0)) == [1, 0, 2**62, -7]
    assert table["object_id"].mask[1]
    assert list(table["n"].filled(0)) == [5, 0, -(2**31) + 1, 0]
    assert table["s16"].mask[1] and table["s16"][3] == 32767
    assert table["u8"].mask[1] and table["u8"][2] == 254


def test_integer_types():
    with fits.open(io.BytesIO(encode())) as hdul:
        forms = [hdul[1].header[f"TFORM{i}"] for i in range(1, 12)]
    assert forms == ["K", "J", "I", "B", "L", "E", "D", "13A", "2D", "PD(6)", "J"]


def test_floats_nan_for_null():
    table = read_table(encode())
    assert table["ra"][0] == 10.125 and table["ra"][2] == 1e300 and table["ra"][3] == -0.1
    assert table["z"][0] == np.float32(0.5)
    with fits.open(io.BytesIO(encode())) as hdul:
        assert np.isnan(hdul[1].data["ra"][1])
        assert np.isnan(hdul[1].data["z"][1])


def test_boolean():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(encode())) as hdul:
            good = list(hdul[1].data["good"])
    assert good == [True, False, False, True]


def test_null_boolean_byte_is_zero():
    data = encode(fields=[Column("g", "boolean")],
                  batches=[pa.record_batch([pa.array([True, None, False])], names=["a"])])
    body = data[5760:5763]
    assert body == b"T\x00F"


def test_strings():
    table = read_table(encode())
    assert table["name"][0] == "alpha"
    assert table["name"][3] == "a longer name"
    with fits.open(io.BytesIO(encode())) as hdul:
        assert list(hdul[1].data["name"]) == ["alpha", "", "", "a longer name"]


def test_arrays():
    table = read_table(encode())
    assert list(table["pos"][0]) == [1.0, 2.0]
    assert np.all(np.ma.getmaskarray(table["pos"][1]))
    assert list(table["poly"][0]) == [1.0, 2.0, 3.0]
    assert len(table["poly"][1]) == 0
    assert list(table["poly"][3]) == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


def test_metadata_keywords():
    with fits.open(io.BytesIO(encode())) as hdul:
        header = hdul[1].header
    assert header["TUNIT7"] == "deg"
    assert header["TUCD1"] == "meta.id;meta.main"
    assert header["TCOMM1"] == "Identifier"
    assert header["TNULL1"] == -(2**63)


def test_duplicate_names_made_unique():
    with fits.open(io.BytesIO(encode())) as hdul:
        names = hdul[1].columns.names
    assert names[7] == "name" and names[10] == "name_2"


@pytest.mark.parametrize("overflow", [True, False])
def test_overflow_keyword(overflow):
    with fits.open(io.BytesIO(encode(status=ResultStatus(overflow=overflow)))) as hdul:
        assert hdul[1].header["OVERFLOW"] is overflow


def test_infos_as_comments():
    with fits.open(io.BytesIO(encode(infos={"QUERY": "SELECT * FROM x"}))) as hdul:
        assert "QUERY: SELECT * FROM x" in str(hdul[1].header["COMMENT"])


def test_zero_rows():
    with fits.open(io.BytesIO(encode([]))) as hdul:
        assert hdul[1].header["NAXIS2"] == 0
        assert len(hdul[1].data) == 0
        assert hdul[1].columns.names[0] == "object_id"


def test_many_batches_identical():
    batch = sample_batch()
    big = pa.Table.from_batches([batch] * 30).combine_chunks().to_batches()[0]
    one = encode([big])
    many = encode([big.slice(i, 7) for i in range(0, 120, 7)])
    assert one == many
    assert len(read_table(many)) == 120


def test_non_ascii_string_written_as_utf8():
    fields = [Column("s", "char", "*")]
    data = encode([pa.record_batch([pa.array(["Ångström", "x"])], names=["a"])], fields=fields)
    with fits.open(io.BytesIO(data)) as hdul:
        assert hdul[1].header["TFORM1"] == "10A"
    assert "Ångström".encode() in data


def test_spool_to_disk(monkeypatch):
    from vo_service.tap.formats import _fits

    monkeypatch.setattr(_fits, "SPOOL_MEMORY", 1024)
    batch = sample_batch()
    data = encode([batch] * 50)
    assert len(read_table(data)) == 200
