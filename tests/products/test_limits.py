"""Product uploads with bounded memory and disk, through the REST API against the real database.

Declared sizes are refused before they are allocated; a product's rows, columns and table size
are limited, and so is what one user stores; every refusal is an RFC 7807 document naming the
limit and the value, and leaves nothing behind (no table, registry row, provenance or folder).
Also: no 500 for odd files, file names or versions; CSV downloads neutralise formula cells; a
deleted product leaves no folder.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from astropy.io import fits
from sqlalchemy import text

from tests.products.conftest import SPECZ_COLUMNS, unique_name, upload
from tests.test_upload_limits import GROWTH_BOUND, HUGE_CELL, peak_rss_growth

PROBLEM = "application/problem+json"


@contextlib.contextmanager
def limited_api(database, **settings: object) -> Iterator[str]:
    """The REST API of a service with other limits (same database and storage)."""
    from tests._services import app_for
    from tests.conftest import LiveServer

    with LiveServer(app_for(dataclasses.replace(database, **settings))) as live:
        yield live.url + "/api"


def traces(database, name: str) -> dict[str, int]:
    """What exists of a product anywhere: rows, tables, TAP_SCHEMA, provenance, its folder."""
    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        counts = {
            "products": conn.execute(text("SELECT count(*) FROM registry.products WHERE name = :n"),
                                     {"n": name}).scalar(),
            "tables": conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'pz' "
                                        "AND tablename LIKE :n"), {"n": f"{name}_v%"}).scalar(),
            "tap_schema": conn.execute(text("SELECT count(*) FROM tap_schema.tables WHERE table_name "
                                            "LIKE :n"), {"n": f"pz.{name}_v%"}).scalar(),
            "provenance": conn.execute(text(
                "SELECT (SELECT count(*) FROM provenance.activity WHERE name LIKE :a) + (SELECT count(*) "
                "FROM provenance.entity WHERE location LIKE :loc OR name LIKE :t)"),
                {"a": f"register {name} v%", "loc": f"products/{name}/%", "t": f"pz.{name}_v%"}).scalar(),
        }
    counts["folder"] = int((database.products_dir / name).exists())
    return counts


NOTHING = {"products": 0, "tables": 0, "tap_schema": 0, "provenance": 0, "folder": 0}


def refused(resp: requests.Response, status: int, limit: str) -> dict:
    assert resp.status_code == status, resp.text[:1000]
    assert resp.headers["Content-Type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status and body["limit"] == limit
    assert limit in body["detail"] and str(body["value"]) in body["detail"]
    return body


def stored_bytes(database, owner: str) -> int:
    from vo_service.core.database import owner_engine
    from vo_service.products import ProductStore

    with owner_engine(database).connect() as conn:
        return ProductStore().stored_bytes(conn, owner)


# -- declared sizes, checked before allocation ----------------------------------------------------
def test_votable_with_a_huge_declared_cell_is_422_before_parsing(api, user, tmp_path, database) -> None:
    path = tmp_path / "cell.xml"
    path.write_bytes(HUGE_CELL)
    name = unique_name("vcell")
    growth, resp = peak_rss_growth(lambda: upload(api, user[1], path, name=name,
                                                  product_type="validationresults"))
    body = refused(resp, 422, "upload_max_cell_bytes")
    assert body["value"] == 100_000_000 and body["maximum"] == 1024 * 1024
    assert growth < GROWTH_BOUND, f"the server grew by {growth >> 20} MiB (2.6 GB before)"
    assert traces(database, name) == NOTHING


def test_hdf5_declaring_more_rows_than_allowed_is_413_before_reading(api, user, tmp_path, database) -> None:
    """A 1.4 kB file declaring a 60M-row gzip dataset (chunks never written)."""
    path = tmp_path / "bomb.hdf5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", shape=(60_000_000,), dtype=[("id", "i8"), ("z", "f8")],
                          compression="gzip", chunks=(65_536,))
    assert path.stat().st_size < 10_000
    name = unique_name("h5rows")
    growth, resp = peak_rss_growth(lambda: upload(api, user[1], path, name=name, product_type="trainingset",
                                                  columns={"z": {"role": "redshift"}}))
    body = refused(resp, 413, "product_max_rows")
    assert body["value"] == 60_000_000 and body["maximum"] == 50_000_000
    assert growth < GROWTH_BOUND, f"the server grew by {growth >> 20} MiB"
    assert traces(database, name) == NOTHING


def test_hdf5_is_read_in_slices(tmp_path) -> None:
    """Through the reader API: a declared (unwritten) 3M-row dataset streams in batches of at
    most BATCH_BYTES; the reader before read it whole into one array."""
    from ingest.readers import BATCH_BYTES, open_table

    path = tmp_path / "fill.hdf5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", shape=(3_000_000,), dtype=[("id", "i8"), ("z", "f8")],
                          compression="gzip", chunks=(65_536,))
    source = open_table(path)
    sizes = [b.nbytes for b in source.batches()]
    assert sum(b // 16 for b in sizes) == 3_000_000
    assert max(sizes) <= BATCH_BYTES and len(sizes) > 1


def _hdf5_strings(path: Path, strings: list[str]) -> None:
    """A table whose text column holds variable-length strings (8 bytes each in the dtype)."""
    data = np.empty(len(strings), dtype=[("id", "i8"), ("label", h5py.string_dtype())])
    data["id"] = np.arange(len(strings))
    data["label"] = np.array(strings, dtype=object)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=data)


def test_hdf5_variable_length_strings_are_checked_against_the_cell_limit(api, user, tmp_path,
                                                                         database) -> None:
    """Their field is 8 bytes (a pointer), which was all that was checked: 2 MB cells loaded."""
    path = tmp_path / "long.hdf5"
    _hdf5_strings(path, ["short"] * 100 + ["x" * (2 << 20)] * 3)
    name = unique_name("h5vlen")
    body = refused(upload(api, user[1], path, name=name, product_type="validationresults"), 422,
                   "upload_max_cell_bytes")
    assert body["value"] == 2 << 20 and "'label'" in body["detail"]
    assert traces(database, name) == NOTHING


def test_hdf5_variable_length_strings_are_batched_by_bytes(tmp_path, monkeypatch) -> None:
    """Through the reader API, with batches of 4 MiB: 300 strings of 60 kB (18 MB) came in one
    batch, sized by the 16-byte dtype only; they must come in batches of at most 4 MiB."""
    from ingest import readers
    from ingest.limits import Limit, ReadLimits

    monkeypatch.setattr(readers, "BATCH_BYTES", 4 << 20)
    monkeypatch.setattr(readers, "HDF5_VLEN_READ_BYTES", 4 << 20, raising=False)
    path = tmp_path / "many.hdf5"
    _hdf5_strings(path, [f"{i:05d}" + "y" * 60_000 for i in range(300)])
    source = readers.open_table(path, limits=ReadLimits(cell_bytes=Limit("upload_max_cell_bytes", 1 << 20)))
    batches = list(source.batches())
    assert sum(b.num_rows for b in batches) == 300
    assert [v[:5] for b in batches for v in b.column("label").to_pylist()] == [f"{i:05d}" for i in range(300)]
    assert len(batches) >= 5 and max(b.nbytes for b in batches) <= 4 << 20


def test_hdf5_variable_length_strings_in_large_chunks_are_refused(tmp_path) -> None:
    """Each small read goes through a whole chunk (57 ms per 63-row read of a 24 MB chunk)."""
    from ingest.readers import LimitExceeded, open_table

    path = tmp_path / "wide_chunks.hdf5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", shape=(10,), maxshape=(None,), chunks=(500_000,),
                          dtype=[("id", "i8"), ("label", h5py.string_dtype())])
    with pytest.raises(LimitExceeded, match="variable-length strings in chunks of 8000000 bytes"):
        open_table(path)


def test_parquet_text_is_decoded_in_bounded_slices(tmp_path) -> None:
    """A dictionary page holding one 100 kB value that 3,000 rows repeat: 300 MB once decoded,
    from a file of a few kB (a 500 kB value made the reader before allocate 3 GB)."""
    from ingest.readers import BATCH_BYTES, open_table

    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(3000, dtype=np.int32)),
                                            pa.array(["a" * 100_000]))
    path = tmp_path / "repeat.parquet"
    pq.write_table(pa.table({"s": column}), path, compression="zstd", store_schema=False)
    assert path.stat().st_size < 50_000
    source = open_table(path)
    assert source.columns[0].type == pa.string()
    sizes = []
    rows = 0
    for batch in source.batches():
        sizes.append(batch.nbytes)
        rows += batch.num_rows
    assert rows == 3000 and len(sizes) >= 4
    assert max(sizes) <= BATCH_BYTES + 200_000


def test_parquet_with_2000_columns_is_422_naming_the_limit(api, user, tmp_path, database) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [0.5] for i in range(2000)}), path)
    name = unique_name("wide")
    body = refused(upload(api, user[1], path, name=name, product_type="validationresults"), 422,
                   "product_max_columns")
    assert body["value"] == 2000 and body["maximum"] == 500
    assert traces(database, name) == NOTHING


# -- the table's expanded size, and the rows of formats without a count --------------------------
def test_a_small_file_that_expands_past_the_table_limit_is_413_before_loading(database, user, tmp_path) -> None:
    """5,000,000 zero rows in a 40 kB Parquet file: a table of about 200 MB."""
    path = tmp_path / "zeros.parquet"
    pq.write_table(pa.table({"z": np.zeros(5_000_000)}), path)
    assert path.stat().st_size < 100_000
    name = unique_name("zeros")
    with limited_api(database, product_max_table_bytes=50 * 2**20) as api:
        body = refused(upload(api, user[1], path, name=name, product_type="trainingset",
                              columns={"z": {"role": "redshift"}}), 413, "product_max_table_bytes")
    assert "at least" in body["detail"] and body["value"] >= 5_000_000 * 32
    assert traces(database, name) == NOTHING


def test_csv_rows_and_size_are_counted_while_streaming(database, user, tmp_path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,z\n" + "".join(f"{i},0.5\n" for i in range(20_000)))
    name = unique_name("csvrows")
    with limited_api(database, product_max_rows=1000) as api:
        body = refused(upload(api, user[1], path, name=name, product_type="trainingset",
                              columns={"z": {"role": "redshift"}}), 413, "product_max_rows")
    assert "at least" in body["detail"] and body["value"] > 1000
    assert traces(database, name) == NOTHING
    with limited_api(database, product_max_table_bytes=200_000) as api:
        body = refused(upload(api, user[1], path, name=name, product_type="trainingset",
                              columns={"z": {"role": "redshift"}}), 413, "product_max_table_bytes")
    assert "at least" in body["detail"]
    assert traces(database, name) == NOTHING


def test_the_real_table_size_is_checked_before_the_commit(database, api, user, specz_parquet) -> None:
    """Indexes are not in the estimate: a limit just over the rows' own pages passes the
    estimate and the meter, and the measurement with the primary key and the position index
    catches it."""
    from vo_service.core.database import owner_engine

    first = unique_name("real")
    assert upload(api, user[1], specz_parquet, name=first, columns=SPECZ_COLUMNS).status_code == 201
    with owner_engine(database).connect() as conn:
        heap = conn.execute(text("SELECT pg_relation_size(:t)"), {"t": f"pz.{first}_v1"}).scalar()
    name = unique_name("real")
    with limited_api(database, product_max_table_bytes=heap + 1) as limited:
        body = refused(upload(limited, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS), 413,
                       "product_max_table_bytes")
    assert "at least" not in body["detail"] and body["value"] > heap + 1
    assert traces(database, name) == NOTHING


# -- the per-user quota -------------------------------------------------------------------------------
def test_quota_of_stored_bytes_names_the_use_and_spares_administrators(
        database, api, auth, specz_parquet, user, admin) -> None:
    from tests.products.conftest import _user

    probe_owner, probe_headers = _user(auth)
    assert upload(api, probe_headers, specz_parquet, name=unique_name("probe"),
                  columns=SPECZ_COLUMNS).status_code == 201
    one = stored_bytes(database, probe_owner)  # the file and the table of one such upload
    with limited_api(database, quota_product_bytes=one * 3 // 2) as limited:
        first = unique_name("quota")
        assert upload(limited, user[1], specz_parquet, name=first, columns=SPECZ_COLUMNS).status_code == 201
        used = stored_bytes(database, user[0])
        name = unique_name("quota")
        body = refused(upload(limited, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS), 413,
                       "quota_product_bytes")
        assert body["used"] == used and str(used) in body["detail"]
        assert body["maximum"] == one * 3 // 2 and body["value"] > body["maximum"]
        assert traces(database, name) == NOTHING
        for product in (unique_name("adm"), unique_name("adm")):
            assert upload(limited, admin[1], specz_parquet, name=product,
                          columns=SPECZ_COLUMNS).status_code == 201
        # Deleting frees the quota.
        assert requests.delete(f"{limited}/products/{first}", headers=user[1], timeout=30).status_code == 200
        assert upload(limited, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 201


def test_file_products_count_against_the_quota(database, user, tmp_path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"w" * 30_000)
    with limited_api(database, quota_product_bytes=50_000) as api:
        assert upload(api, user[1], model, name=unique_name("m"), product_type="trainingresults").status_code == 201
        name = unique_name("m")
        body = refused(upload(api, user[1], model, name=name, product_type="trainingresults"), 413,
                       "quota_product_bytes")
    assert body["used"] == 30_000 and body["value"] == 60_000
    assert traces(database, name) == NOTHING


# -- no 500s ----------------------------------------------------------------------------------------
def _fits_bytes(header_changes: dict, rows: int = 3) -> bytes:
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="z", format="D", array=np.full(rows, 0.5))])
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out)
    data = bytearray(out.getvalue())
    header = hdu.header.copy()
    for key, value in header_changes.items():
        header[key] = value
    raw = header.tostring().encode()
    start = 2880
    return bytes(data[:start]) + raw + bytes(data[start + len(raw):])


def _hdf5_external(path: Path) -> None:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", shape=(20,), dtype=[("line", "S64")],
                          external=[("/etc/passwd", 0, 64 * 20)])


def _hdf5_2d(path: Path) -> None:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", shape=(3, 3), dtype=[("z", "f8")])


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


BROKEN = [
    ("junk.parquet", _bytes(b"PAR1 this is no parquet file PAR1"), "parquet"),
    ("nul.csv", _bytes(b"id,z,label\n1,0.5,a\x00b\n"), "0x00"),
    ("header.csv", _bytes(b"id,z\n"), "type null"),
    ("ragged.csv", _bytes(b"id,z\n1,0.5\n2\n"), "expected 2 columns"),
    ("junk.fits", _bytes(b"SIMPLE  = this is not FITS" + b" " * 3000), "truncated"),
    ("short.fits", lambda p: p.write_bytes(_fits_bytes({"NAXIS2": 1_000_000})), "truncated"),
    ("varlen.fits", lambda p: p.write_bytes(_fits_bytes({"TFORM1": "1PD(3)"})), "variable-length"),
    ("bz.fits", lambda p: p.write_bytes(__import__("bz2").compress(_fits_bytes({}))), "not a FITS"),
    ("junk.xml", _bytes(b"id,z\n1,0.5\n"), "well-formed"),
    ("href.xml", _bytes(b'<?xml version="1.0"?><VOTABLE><RESOURCE><TABLE><FIELD name="z" datatype="char" '
                        b'arraysize="32"/><DATA><BINARY><STREAM href="file:///etc/passwd"/></BINARY></DATA>'
                        b'</TABLE></RESOURCE></VOTABLE>'), "nothing is fetched"),
    ("array.xml", _bytes(b'<?xml version="1.0"?><VOTABLE><RESOURCE><TABLE><FIELD name="z" datatype="double" '
                         b'arraysize="*"/><DATA><TABLEDATA>' + b"<TR><TD/></TR>" * 1000
                         + b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"), "only scalar columns"),
    ("utf16.xml", _bytes('<?xml version="1.0" encoding="UTF-16"?><VOTABLE><RESOURCE><TABLE><FIELD name="z" '
                         'datatype="double"/><DATA><TABLEDATA><TR><TD>0.5</TD></TR></TABLEDATA></DATA></TABLE>'
                         '</RESOURCE></VOTABLE>'.encode("utf-16")), "UTF-16"),
    ("junk.hdf5", _bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100), "hdf5"),
    ("external.hdf5", _hdf5_external, "other files"),
    ("square.hdf5", _hdf5_2d, "one-dimensional"),
    ("gz.fits.gz", lambda p: p.write_bytes(gzip.compress(b"not fits at all" * 100)), "truncated"),
]


@pytest.mark.parametrize("file_name,write,fragment", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_or_hostile_files_are_422_in_every_reader(api, user, tmp_path, database,
                                                         file_name, write, fragment) -> None:
    path = tmp_path / file_name
    write(path)
    name = unique_name("bad")
    resp = upload(api, user[1], path, name=name, product_type="validationresults")
    assert resp.status_code == 422, resp.text[:1000]
    assert resp.headers["Content-Type"] == PROBLEM
    assert fragment.lower() in resp.json()["detail"].lower()
    assert "root:" not in resp.text
    assert traces(database, name) == NOTHING


def test_nul_in_a_multipart_file_name_is_422(api, user, database) -> None:
    name = unique_name("nul")
    boundary = "pzvonul"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"product_type\"\r\n\r\nother\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\x00b.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\nweights\r\n--{boundary}--\r\n").encode()
    resp = requests.post(f"{api}/products", data=body, timeout=30, headers={
        **user[1], "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.status_code in (400, 422), resp.text[:500]
    assert resp.headers["Content-Type"] == PROBLEM
    assert traces(database, name) == NOTHING


def test_long_and_dotted_file_names_are_stored_safely(api, user, tmp_path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    for file_name in ("x" * 400 + ".bin", ".."):
        name = unique_name("fn")
        with model.open("rb") as fh:
            resp = requests.post(f"{api}/products", data={"name": name, "product_type": "other"},
                                 files={"file": (file_name, fh)}, headers=user[1], timeout=30)
        assert resp.status_code == 201, resp.text[:500]
        stored = resp.json()["files"][0]["file_name"]
        assert len(stored) <= 200 and not stored.startswith(".")
        assert requests.get(f"{api}/products/{name}/file", timeout=30).content == b"weights"


@pytest.mark.parametrize("version", ["99999999999", "99999999999999999999999", "0", "-3"])
def test_absurd_versions_are_404_never_500(server, api, user, tmp_path, version) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    name = unique_name("ver")
    assert upload(api, user[1], model, name=name, product_type="other").status_code == 201
    for product in (name, "x"):
        assert requests.get(f"{server.url}/products/{product}?version={version}", timeout=30).status_code == 404
        for suffix in ("", "/file", "/table"):
            resp = requests.get(f"{api}/products/{product}{suffix}?version={version}", timeout=30)
            assert resp.status_code == 404, (suffix, resp.text[:300])
            assert resp.headers["Content-Type"] == PROBLEM
        for method in ("PATCH", "DELETE"):
            resp = requests.request(method, f"{api}/products/{product}?version={version}", json={},
                                    headers=user[1], timeout=30)
            assert resp.status_code == 404, (method, resp.text[:300])


def test_odd_list_filters_are_not_500(server) -> None:
    assert requests.get(f"{server.url}/?q=a%00b", timeout=30).status_code == 400
    assert requests.get(f"{server.url}/?page=99999999999999999999999", timeout=30).status_code == 200
    assert requests.get(f"{server.url}/pipeline-runs?page=99999999999999999999999", timeout=30).status_code == 200


# -- downloads and deletion ---------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://example.org/x","click")', "+1", "-x", "@SUM(A1:A2)", "\tt", "\rr",
            "plain", "a=b", "'quoted"]


def test_csv_download_neutralises_formula_cells_but_not_numbers(api, user, tmp_path) -> None:
    path = tmp_path / "cells.parquet"
    n = len(FORMULAS)
    pq.write_table(pa.table({"label": FORMULAS, "x": np.full(n, -1.5), "k": np.arange(-n, 0)}), path)
    name = unique_name("cells")
    assert upload(api, user[1], path, name=name, product_type="validationresults").status_code == 201
    resp = requests.get(f"{api}/products/{name}/table?format=csv", timeout=30)
    assert resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"), newline="")))
    labels = [r["label"] for r in rows]
    assert sorted(labels) == sorted(
        ("'" + v if v[0] in "=+-@\t\r" else v) for v in FORMULAS)
    assert {r["x"] for r in rows} == {"-1.5"}
    assert sorted(int(r["k"]) for r in rows) == list(range(-n, 0))
    assert b"'-1.5" not in resp.content and b'"-1.5"' not in resp.content
    parquet = pq.read_table(io.BytesIO(requests.get(f"{api}/products/{name}/table?format=parquet",
                                                    timeout=30).content))
    assert sorted(parquet.column("label").to_pylist()) == sorted(FORMULAS)


def test_deleting_a_product_leaves_no_folder(api, user, tmp_path, database) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    name = unique_name("gone")
    for _ in range(2):
        assert upload(api, user[1], model, name=name, product_type="other").status_code == 201
    folder = database.products_dir / name
    assert (folder / "v1").is_dir() and (folder / "v2").is_dir()
    assert requests.delete(f"{api}/products/{name}?version=1", headers=user[1], timeout=30).status_code == 200
    assert not (folder / "v1").exists() and (folder / "v2").is_dir()
    assert requests.delete(f"{api}/products/{name}", headers=user[1], timeout=30).status_code == 200
    assert not folder.exists()
    assert json.loads(requests.get(f"{api}/products/{name}", timeout=30).text)["status"] == 404


def test_deeply_nested_json_is_400_not_500(api, user, tmp_path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    name = unique_name("deep")
    with model.open("rb") as fh:
        resp = requests.post(f"{api}/products", data={"name": name, "product_type": "other",
                                                      "columns": "[" * 100_000},
                             files={"file": ("m.bin", fh)}, headers=user[1], timeout=30)
    assert resp.status_code == 400 and resp.headers["Content-Type"] == PROBLEM
    assert upload(api, user[1], model, name=name, product_type="other").status_code == 201
    resp = requests.patch(f"{api}/products/{name}", data="[" * 100_000, timeout=30,
                          headers={**user[1], "Content-Type": "application/json"})
    assert resp.status_code == 400 and "nested" in resp.json()["detail"]
