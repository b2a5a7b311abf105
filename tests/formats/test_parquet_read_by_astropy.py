"""Parquet results as astropy reads them: NULL strings and string widths across batches."""
from __future__ import annotations

import io

import pyarrow.parquet as pq
from astropy.table import Table

from tests._tap import sync

# ---- Parquet read by astropy -----------------------------------------------------------------


def test_astropy_reads_parquet_with_null_strings(tap_url: str) -> None:
    query = ("SELECT TOP 6 id, CASE WHEN MOD(id, 2) = 0 THEN NULL ELSE survey END AS s, survey, "
             "COALESCE(survey, NULL) AS copy FROM pz.specz_demo ORDER BY id")
    resp = sync(tap_url, query, "parquet")
    assert resp.status_code == 200
    arrow = pq.read_table(io.BytesIO(resp.content)).to_pydict()
    assert None in arrow["s"] and any(v is not None for v in arrow["s"])
    table = Table.read(io.BytesIO(resp.content), format="parquet")
    assert list(table["id"]) == arrow["id"]
    assert list(table["survey"]) == arrow["survey"]
    for got, want in zip(table["s"], arrow["s"], strict=True):
        assert got == ("None" if want is None else want)  # astropy has no NULL strings here


def test_astropy_parquet_string_width_covers_every_batch(tap_url: str) -> None:
    """The longest string is in a late batch; astropy must not cut it to the first batch's."""
    long = "a string longer than all others"
    query = (f"SELECT objectId, ra, dec, mag_u, mag_g, mag_r, mag_i, mag_z, mag_y, "
             f"CASE WHEN objectId = 79999 THEN '{long}' ELSE 'x' END AS label, "
             f"CASE WHEN objectId = 99 THEN NULL ELSE 'y' END AS other FROM pz.photoz_demo")
    resp = sync(tap_url, query, "parquet")
    assert resp.status_code == 200
    assert pq.ParquetFile(io.BytesIO(resp.content)).num_row_groups > 1
    table = Table.read(io.BytesIO(resp.content), format="parquet")
    assert len(table) == 80_000
    assert list(table["label"][table["objectId"] == 79999]) == [long]
    assert set(table["other"]) == {"y", "None"}
    fields = pq.read_schema(io.BytesIO(resp.content))
    assert fields.field("ra").metadata[b"unit"] == b"deg"
