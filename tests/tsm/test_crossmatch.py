"""Spec-z x Object crossmatch (pipeline/tsm/crossmatch.py): known answers on synthetic catalogs."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.tsm.crossmatch import QUIET_SCHEDULER, CrossmatchError, angular_separation_deg, crossmatch

ARCSEC = 1.0 / 3600.0


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER) as cluster, Client(cluster) as c:
        yield c


def write_objects(path, ids, ra, dec, row_group_size=None, statistics=True, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"objectId": np.asarray(ids, np.int64), "coord_ra": np.asarray(ra, float),
                      "coord_dec": np.asarray(dec, float), **{k: np.asarray(v) for k, v in extra.items()}})
    pq.write_table(table, path, row_group_size=row_group_size, write_statistics=statistics)
    return path


def specz(ra, dec, **extra):
    n = len(ra)
    return pa.table({"id": np.arange(n), "ra": np.asarray(ra, float), "dec": np.asarray(dec, float), **extra})


def pairs(result):
    m = result.matched
    return dict(zip(m["id"].to_pylist(), m["objectId"].to_pylist(), strict=True))


def test_counts_nearest_of_several_and_unmatched(tmp_path, client):
    # Spec-z 0: three objects within 1" (0.9", 0.2", 0.5"), the 0.2" one wins; spec-z 1: the
    # nearest object is 1.5" away; spec-z 2: one object at 0.7"; spec-z 3 nothing near.
    write_objects(tmp_path / "a.parquet", [10, 11, 12], [20.0, 20.0, 20.0],
                  [0.9 * ARCSEC, 0.2 * ARCSEC, -0.5 * ARCSEC])
    write_objects(tmp_path / "b.parquet", [20, 30], [21.0, 22.0], [1.5 * ARCSEC, 0.7 * ARCSEC])
    result = crossmatch(specz([20.0, 21.0, 22.0, 23.0], [0.0, 0.0, 0.0, 0.0]), tmp_path, client=client)
    assert pairs(result) == {0: 11, 2: 30}
    assert result.unmatched["id"].to_pylist() == [1, 3]
    assert result.counts == {"specz": 4, "matched": 2, "unmatched": 2, "partitions": 2, "objects_read": 5,
                             "shared_objects": 0}
    assert result.matched["separation_arcsec"].to_numpy() == pytest.approx([0.2, 0.7], abs=1e-9)
    assert result.matched.column_names[:3] == ["id", "ra", "dec"]


def test_equal_separations_go_to_the_smaller_object_id(tmp_path, client):
    d = 0.4 * ARCSEC  # mirror images about the equator: bit-identical separations
    write_objects(tmp_path / "one.parquet", [9, 4], [30.0, 30.0], [d, -d])
    write_objects(tmp_path / "x" / "two.parquet", [8], [40.0], [d])
    write_objects(tmp_path / "y" / "three.parquet", [5], [40.0], [-d])
    result = crossmatch(specz([30.0, 40.0], [0.0, 0.0]), tmp_path, client=client)
    assert pairs(result) == {0: 4, 1: 5}


def test_several_spec_z_rows_may_match_one_object(tmp_path, client):
    write_objects(tmp_path / "o.parquet", [1, 2], [50.0, 60.0], [10.0, 10.0])
    result = crossmatch(specz([50.0, 50.0 + 0.3 * ARCSEC, 60.0], [10.0, 10.0, 10.0]), tmp_path, client=client)
    assert pairs(result) == {0: 1, 1: 1, 2: 2}
    assert result.counts["shared_objects"] == 1


def test_pairs_across_file_edges_are_found_and_the_nearest_kept(tmp_path, client):
    # File A: RA up to exactly 11.0; file B: RA from 11.0 + 0.8".  Spec-z rows outside A's box
    # whose nearest object is A's edge object, and rows with candidates in both files.
    edge = 11.0
    write_objects(tmp_path / "A.parquet", [1, 2, 3], [10.5, edge, edge], [0.5, 0.5, 0.6])
    write_objects(tmp_path / "B.parquet", [4, 5, 6], [edge + 0.8 * ARCSEC, 11.5, edge + 0.5 * ARCSEC],
                  [0.5, 0.5, 0.6])
    # And a third file above in Dec, with its bottom edge at 0.7: a spec-z row 0.3" below it.
    write_objects(tmp_path / "C.parquet", [7, 8], [10.8, 10.9], [0.7, 0.8])
    sz = specz([edge + 0.3 * ARCSEC, edge + 0.5 * ARCSEC, edge + 0.35 * ARCSEC, 10.8, edge - 0.99 * ARCSEC],
               [0.5, 0.5, 0.6, 0.7 - 0.3 * ARCSEC, 0.5])
    result = crossmatch(sz, tmp_path, client=client)
    # row 0: A's 0.3" beats B's 0.5"; row 1: B's 0.3" beats A's 0.5"; row 2: B's 0.15" beats A's
    # 0.35"; row 3: C across the Dec edge; row 4: A at 0.99", just inside.
    assert pairs(result) == {0: 2, 1: 4, 2: 6, 3: 7, 4: 2}
    assert result.counts["unmatched"] == 0


def test_ra_wrap_at_0_and_360(tmp_path, client):
    dec0 = -20.0
    east = ARCSEC / math.cos(math.radians(dec0))  # RA step of 1" on the sky at dec0
    write_objects(tmp_path / "high.parquet", [1, 2], [360.0 - 0.2 * east, 359.5], [dec0, dec0])
    write_objects(tmp_path / "low.parquet", [3, 5, 4], [0.3 * east, 0.1 * east, 0.5], [dec0, dec0 + 0.01, dec0])
    # row 0 at RA 0: object 1 (0.2" west, RA 359.99994) beats object 3 (0.3" east); row 1 at
    # RA 359.99997 matches object 5 at RA 0.00003 (0.2" east across the wrap); RA 360 is RA 0.
    sz = specz([0.0, 360.0 - 0.1 * east, 360.0], [dec0, dec0 + 0.01, dec0])
    result = crossmatch(sz, tmp_path, client=client)
    assert pairs(result) == {0: 1, 1: 5, 2: 1}
    assert result.matched["separation_arcsec"].to_numpy() == pytest.approx([0.2, 0.2, 0.2], rel=1e-4)


def test_near_the_poles(tmp_path, client):
    # Objects 0.5" from the north pole at RA 0 and 0.6" at RA 180; a spec-z row at RA 90 Dec
    # 90 - 0.1" is 0.51" from the first but 0.61" ... both within 1", the first wins.
    # Spec-z at the south pole itself matches an object at RA 123.
    write_objects(tmp_path / "north.parquet", [1, 2], [0.0, 180.0], [90.0 - 0.5 * ARCSEC, 90.0 - 0.6 * ARCSEC])
    write_objects(tmp_path / "south.parquet", [3], [123.0], [-90.0 + 0.4 * ARCSEC])
    sz = specz([90.0, 270.0, 0.0, 200.0], [90.0 - 0.1 * ARCSEC, 90.0 - 0.45 * ARCSEC, -90.0, 90.0])
    result = crossmatch(sz, tmp_path, client=client)
    # row 1 at RA 270, 0.45" from the pole: 0.67" from object 1, 0.75" from object 2.
    assert pairs(result) == {0: 1, 1: 1, 2: 3, 3: 1}
    assert result.matched["separation_arcsec"].to_numpy()[2] == pytest.approx(0.4, rel=1e-6)


def test_just_inside_and_just_outside_the_radius(tmp_path, client):
    r = 1.0
    write_objects(tmp_path / "o.parquet", [1, 2], [100.0, 101.0],
                  [30.0 + r * (1 - 1e-6) * ARCSEC, 30.0 + r * (1 + 1e-6) * ARCSEC])
    result = crossmatch(specz([100.0, 101.0], [30.0, 30.0]), tmp_path, radius_arcsec=r, client=client)
    assert pairs(result) == {0: 1}
    assert result.unmatched["id"].to_pylist() == [1]


def test_same_pairs_as_astropy_on_random_data(tmp_path, client):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(16)
    n, m, radius = 40_000, 8_000, 4.0
    ra = rng.uniform(-0.5, 0.5, n) % 360.0  # across RA 0
    dec = rng.uniform(-0.5, 0.5, n)
    ids = rng.permutation(n) + 100
    order = np.argsort(dec)  # four Dec strips, one per file, row groups of 2,500
    for k, part in enumerate(np.array_split(order, 4)):
        write_objects(tmp_path / f"Norder=0/Dir=0/Npix={k}.parquet", ids[part], ra[part], dec[part],
                      row_group_size=2_500)
    sra = rng.uniform(-0.5, 0.5, m) % 360.0
    sdec = rng.uniform(-0.5, 0.5, m)
    result = crossmatch(specz(sra, sdec), tmp_path, radius_arcsec=radius, client=client)

    idx, sep, _ = SkyCoord(sra * u.deg, sdec * u.deg).match_to_catalog_sky(SkyCoord(ra * u.deg, dec * u.deg))
    ok = sep <= radius * u.arcsec
    assert result.counts["matched"] == int(ok.sum()) > 1000
    assert result.counts["unmatched"] == m - int(ok.sum())
    assert result.matched["id"].to_pylist() == np.flatnonzero(ok).tolist()
    assert result.matched["objectId"].to_pylist() == ids[idx[ok]].tolist()
    assert np.abs(result.matched["separation_arcsec"].to_numpy() - sep[ok].arcsec).max() < 1e-6
    assert result.unmatched["id"].to_pylist() == np.flatnonzero(~ok).tolist()


def test_hats_collection_reads_its_primary_catalog_only(tmp_path, client):
    root = tmp_path / "objects_collection"
    root.mkdir()
    (root / "collection.properties").write_text("obs_collection=objects\nhats_primary_table_url=objects\n"
                                                "all_margins=objects_10arcs\n")
    (root / "objects").mkdir()
    (root / "objects" / "hats.properties").write_text("obs_collection=objects\n")
    write_objects(root / "objects" / "dataset" / "Norder=1" / "Dir=0" / "Npix=33.parquet", [1], [1.0], [0.5 * ARCSEC])
    # a margin cache with an object that is not in the catalog proper: must not be read
    write_objects(root / "objects_10arcs" / "dataset" / "Norder=1" / "Dir=0" / "Npix=33.parquet", [2], [1.0], [0.0])
    result = crossmatch(specz([1.0], [0.0]), root, client=client)
    assert pairs(result) == {0: 1}
    assert result.counts["partitions"] == 1


def test_files_without_statistics_and_a_list_of_files(tmp_path, client):
    a = write_objects(tmp_path / "a.parquet", [1], [10.0], [0.0], statistics=False)
    b = write_objects(tmp_path / "b.parquet", [2], [10.0 + 0.5 * ARCSEC], [0.0])
    result = crossmatch(specz([10.0 + 0.3 * ARCSEC], [0.0]), [a, b], client=client)
    assert pairs(result) == {0: 2}


def test_magnitudes_from_fluxes_and_columns(tmp_path, client):
    zero = 10 ** (0.4 * 31.4)  # nJy of AB 0 with Rubin's rounded zero point (3631 Jy gives 31.40007)
    flux = [zero, 1.0, 0.0, -5.0]
    err = [zero / 10, 0.1, 1.0, 1.0]
    write_objects(tmp_path / "o.parquet", [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], [0.0] * 4,
                  g_cModelFlux=flux, g_cModelFluxErr=err, r_cModelFlux=[10.0] * 4, shape=[7, 8, 9, 10])
    sz = specz([1.0, 2.0, 3.0, 4.0], [0.0] * 4)
    result = crossmatch(sz, tmp_path, magnitudes=True, client=client)
    m = result.matched
    assert m.column_names == ["id", "ra", "dec", "objectId", "separation_arcsec", "g_cModelFlux", "g_cModelFluxErr",
                              "r_cModelFlux", "mag_g", "magerr_g", "mag_r"]
    assert m["mag_g"].to_pylist()[:2] == pytest.approx([0.0, 31.4], abs=1e-9)
    assert m["mag_g"].to_pylist()[2:] == [None, None]
    assert m["magerr_g"].to_pylist()[:2] == pytest.approx([0.10857362, 0.10857362], rel=1e-6)
    assert m["magerr_g"].null_count == 2
    assert m["mag_r"].to_numpy() == pytest.approx(31.4 - 2.5)

    only = crossmatch(sz, tmp_path, columns=["shape", "coord_ra"], magnitudes=True, client=client).matched
    assert only.column_names == ["id", "ra", "dec", "objectId", "separation_arcsec", "shape", "coord_ra", "mag_g",
                                 "magerr_g", "mag_r"]
    assert only["shape"].to_pylist() == [7, 8, 9, 10]


def test_object_names_that_a_spec_z_column_has_are_prefixed(tmp_path, client):
    write_objects(tmp_path / "o.parquet", [1], [1.0], [0.0], g_cModelFlux=[5.0])
    sz = specz([1.0], [0.0], objectId=np.array([77]), separation_arcsec=np.array([-1.0]))
    result = crossmatch(sz, tmp_path, client=client)
    assert result.matched["objectId"].to_pylist() == [77]
    assert result.matched["object_objectId"].to_pylist() == [1]
    assert result.matched["object_separation_arcsec"].to_pylist() == [0.0]
    assert result.object_columns["objectId"] == "object_objectId"


def test_null_positions_are_unmatched_and_progress_is_reported(tmp_path, client):
    write_objects(tmp_path / "a.parquet", [1], [1.0], [0.0])
    write_objects(tmp_path / "b.parquet", [2], [50.0], [0.0])
    sz = pa.table({"id": [0, 1], "ra": pa.array([1.0, None], pa.float64()), "dec": [0.0, 0.0]})
    calls = []
    result = crossmatch(sz, tmp_path, client=client, progress=lambda d, t: calls.append((d, t)))
    assert pairs(result) == {0: 1}
    assert result.unmatched["id"].to_pylist() == [1]
    assert calls[0] == (1, 2) and calls[-1] == (2, 2)  # b's footprint holds no spec-z row: not read
    assert result.counts["objects_read"] == 1


def test_own_local_cluster_when_no_client_is_given(tmp_path):
    write_objects(tmp_path / "a.parquet", [1], [1.0], [0.0])
    assert pairs(crossmatch(specz([1.0], [0.0]), tmp_path, workers=1)) == {0: 1}


def test_a_scheduler_given_by_its_address(tmp_path, client):
    write_objects(tmp_path / "a.parquet", [1], [1.0], [0.0])
    result = crossmatch(specz([1.0], [0.0]), tmp_path, scheduler=client.scheduler.address)
    assert pairs(result) == {0: 1}


@pytest.mark.parametrize("radius", [0, -1.0, float("nan"), "x"])
def test_radius_must_be_positive(tmp_path, radius):
    write_objects(tmp_path / "a.parquet", [1], [1.0], [0.0])
    with pytest.raises(CrossmatchError, match="radius_arcsec"):
        crossmatch(specz([1.0], [0.0]), tmp_path, radius_arcsec=radius)


def test_bad_spec_z_columns(tmp_path):
    write_objects(tmp_path / "a.parquet", [1], [1.0], [0.0])
    with pytest.raises(CrossmatchError, match="no column 'RA'"):
        crossmatch(specz([1.0], [0.0]), tmp_path, ra="RA")
    with pytest.raises(CrossmatchError, match="no column 'dec'"):
        crossmatch(pa.table({"ra": [1.0]}), tmp_path)
    with pytest.raises(CrossmatchError, match="not a number"):
        crossmatch(pa.table({"ra": ["a"], "dec": [0.0]}), tmp_path)
    with pytest.raises(CrossmatchError, match=r"outside \[-90, 90\]"):
        crossmatch(specz([1.0], [91.0]), tmp_path)


def test_no_object_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrossmatchError, match="no object files"):
        crossmatch(specz([1.0], [0.0]), tmp_path / "empty")
    with pytest.raises(CrossmatchError, match="no object files"):
        crossmatch(specz([1.0], [0.0]), tmp_path / "missing")
    with pytest.raises(CrossmatchError, match="no object files"):
        crossmatch(specz([1.0], [0.0]), [])


def test_object_files_lacking_columns(tmp_path):
    pq.write_table(pa.table({"objectId": [1], "coord_ra": [1.0]}), tmp_path / "a.parquet")
    with pytest.raises(CrossmatchError, match="a.parquet: object file lacks coord_dec"):
        crossmatch(specz([1.0], [0.0]), tmp_path)
    (tmp_path / "a.parquet").unlink()
    write_objects(tmp_path / "b.parquet", [1], [1.0], [0.0], g_cModelFlux=[1.0])
    write_objects(tmp_path / "c.parquet", [2], [2.0], [0.0])
    with pytest.raises(CrossmatchError, match="'g_cModelFlux' is not in every object file"):
        crossmatch(specz([1.0], [0.0]), tmp_path, columns=["g_cModelFlux"])
    (tmp_path / "d.parquet").write_bytes(b"not parquet")
    with pytest.raises(CrossmatchError, match="d.parquet: not a readable Parquet file"):
        crossmatch(specz([1.0], [0.0]), tmp_path)


def test_vincenty_separation_matches_the_chord_formula():
    rng = np.random.default_rng(3)
    ra1, dec1 = rng.uniform(0, 360, 100), rng.uniform(-90, 90, 100)
    ra2, dec2 = ra1 + rng.normal(0, 1e-3, 100), np.clip(dec1 + rng.normal(0, 1e-3, 100), -90, 90)

    def xyz(a, d):
        a, d = np.radians(a), np.radians(d)
        return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])

    chord = np.linalg.norm(xyz(ra1, dec1) - xyz(ra2, dec2), axis=0)
    expected = np.degrees(2 * np.arcsin(chord / 2))
    assert angular_separation_deg(ra1, dec1, ra2, dec2) == pytest.approx(expected, abs=1e-12)
