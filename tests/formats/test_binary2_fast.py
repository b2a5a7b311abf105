"""The numpy BINARY2 reader and writer (vo_service/tap/_binary2.py) agree with astropy value by
value and null by null, and leave everything else to astropy."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import votable
from astropy.table import MaskedColumn, Table

from vo_service.tap._binary2 import decode, encode, to_arrow


def random_table(rng: np.random.Generator, n: int) -> Table:
    def masked(values: np.ndarray) -> MaskedColumn:
        return MaskedColumn(values, mask=rng.uniform(size=n) < 0.2)

    floats = rng.normal(size=n)
    floats[rng.uniform(size=n) < 0.05] = np.nan
    return Table({
        "id": masked(rng.integers(-2**62, 2**62, n, dtype=np.int64)),
        "i4": masked(rng.integers(-2**31, 2**31 - 1, n, dtype=np.int32)),
        "i2": masked(rng.integers(-2**15, 2**15 - 1, n, dtype=np.int16)),
        "u1": masked(rng.integers(0, 255, n, dtype=np.uint8)),
        "f8": masked(floats), "f4": masked(floats.astype(np.float32)),
    })


def astropy_binary2(table: Table) -> bytes:
    out = io.BytesIO()
    votable.from_table(table).to_xml(out, tabledata_format="binary2")
    return out.getvalue()


def astropy_read(data: bytes) -> Table:
    return votable.parse(io.BytesIO(data), verify="ignore").get_first_table().to_table(use_names_over_ids=True)


@pytest.mark.parametrize(("seed", "rows"), [(1, 0), (2, 1), (3, 17), (4, 5_000)])
def test_decode_agrees_with_astropy(seed: int, rows: int) -> None:
    data = astropy_binary2(random_table(np.random.default_rng(seed), rows))
    ours, theirs = decode(data), astropy_read(data)
    assert ours is not None and ours.rows == rows
    for info, values, mask in zip(ours.fields, ours.values, ours.masks, strict=True):
        column = theirs[info.name]
        expected_mask = np.ma.getmaskarray(column)
        if values.dtype.kind == "f":
            expected_mask = expected_mask | np.isnan(np.ma.getdata(column))
        assert mask.tolist() == expected_mask.tolist(), info.name
        assert values[~mask].tolist() == np.ma.getdata(column)[~mask].tolist(), info.name


@pytest.mark.parametrize("rows", [0, 3, 4_000])
def test_encode_reads_back_in_astropy(rows: int) -> None:
    rng = np.random.default_rng(rows)
    source = pa.table({
        "objectId": pa.array(rng.integers(0, 2**62, rows, dtype=np.int64), mask=rng.uniform(size=rows) < 0.1),
        "ra": pa.array(rng.uniform(0, 360, rows)), "small": pa.array(rng.integers(-5, 5, rows, dtype=np.int8)),
        "flag": pa.array(rng.uniform(size=rows) < 0.5, mask=rng.uniform(size=rows) < 0.3),
        "flux": pa.array(rng.normal(size=rows).astype(np.float32), mask=rng.uniform(size=rows) < 0.2)})
    data = encode(source)
    assert data is not None
    back = astropy_read(data)
    for name in source.column_names:
        want = source.column(name).to_pylist()
        got = [None if m else v for v, m in zip(np.ma.getdata(back[name]).tolist(),
                                                np.ma.getmaskarray(back[name]).tolist(), strict=True)]
        assert got == want, name
    decoded = decode(data)
    assert decoded is not None and to_arrow(decoded).to_pylist() == source.cast(pa.schema(
        [f.with_type(pa.int16()) if f.type == pa.int8() else f for f in source.schema])).to_pylist()


def test_what_it_does_not_handle_goes_to_astropy() -> None:
    strings = Table({"id": [1, 2], "name": ["a", "bb"]})
    assert decode(astropy_binary2(strings)) is None
    out = io.BytesIO()
    votable.from_table(Table({"id": [1, 2]})).to_xml(out, tabledata_format="tabledata")
    assert decode(out.getvalue()) is None
    assert decode(astropy_binary2(Table({"v": np.zeros((2, 3))}))) is None
    assert decode(astropy_binary2(Table({"b": [True, False]}))) is None  # astropy writes bool as bit
    assert decode(b"not xml") is None
    assert encode(pa.table({"s": ["x"]})) is None
    assert encode(pa.table({"a": pa.array([[1, 2]])})) is None


def test_the_stream_text_is_read_however_the_document_spells_it() -> None:
    """The base64 is cut out of the document before the XML parse: a namespace prefix, a
    character reference inside the stream or another element named STREAM elsewhere must
    give the same values as astropy, or leave the document to it."""
    table = random_table(np.random.default_rng(7), 50)
    data = astropy_binary2(table)
    expected = decode(data)
    assert expected is not None
    prefixed = (data.replace(b"<VOTABLE", b"<v:VOTABLE xmlns:v=\"http://www.ivoa.net/xml/VOTable/v1.3\"", 1)
                .replace(b"</VOTABLE>", b"</v:VOTABLE>").replace(b"<STREAM", b"<v:STREAM")
                .replace(b"</STREAM>", b"</v:STREAM>"))
    start = data.index(b'encoding="base64">') + len(b'encoding="base64">')
    referenced = data[:start] + b"&#10;" + data[start:]
    for variant in (prefixed, referenced):
        got = decode(variant)
        assert got is not None
        for a, b, ma, mb in zip(got.values, expected.values, got.masks, expected.masks, strict=True):
            assert ma.tolist() == mb.tolist() and a[~ma].tolist() == b[~mb].tolist()


def test_a_stream_with_other_characters_than_base64_is_not_read() -> None:
    data = astropy_binary2(random_table(np.random.default_rng(8), 5))
    start = data.index(b'encoding="base64">') + len(b'encoding="base64">')
    assert decode(data[:start] + b"*" + data[start:]) is None
