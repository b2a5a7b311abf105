"""Federated queries between this service and a second pzvo instance, both over HTTP on 127.0.0.1:
joins compared row by row with the same join done in pandas."""
from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from tests._cli import run_pzvo
from vo_service.federation import ChunkProgress, FederationError, TapEndpoint, chunk_query, federate

JOIN = ("SELECT o.objectId, o.coord_ra, o.i_cmodelflux, p.z_phot, p.z_err FROM TAP_UPLOAD.obj AS o "
        "JOIN pz.photoz_demo AS p ON p.objectId = o.objectId")


@pytest.fixture
def objects(objects_frame: pd.DataFrame) -> pd.DataFrame:
    return objects_frame


@pytest.fixture
def photoz(photoz_frame: pd.DataFrame) -> pd.DataFrame:
    return photoz_frame


@pytest.fixture
def sides(remote, server) -> tuple[TapEndpoint, TapEndpoint]:
    return TapEndpoint(remote.url, label="remote"), TapEndpoint(server.url + "/tap", label="local")


def expected_join(objects: pd.DataFrame, photoz: pd.DataFrame, selected: pd.Series) -> pd.DataFrame:
    chosen = objects[selected][["objectId", "coord_ra", "i_cModelFlux"]]
    merged = chosen.merge(photoz, on="objectId")
    return merged.sort_values("objectId").reset_index(drop=True)


def as_frame(table: Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.columns = [c.lower() for c in frame.columns]
    return frame.sort_values("objectid").reset_index(drop=True)


def assert_same(got: Table, want: pd.DataFrame) -> None:
    frame = as_frame(got)
    assert len(frame) == len(want) > 0
    assert np.array_equal(frame["objectid"].to_numpy(), want["objectId"].to_numpy())
    assert frame["objectid"].dtype == np.int64
    for ours, theirs in (("coord_ra", "coord_ra"), ("i_cmodelflux", "i_cModelFlux"), ("z_phot", "z_phot"),
                         ("z_err", "z_err")):
        assert np.allclose(frame[ours].to_numpy(float), want[theirs].to_numpy(float), rtol=1e-6, equal_nan=True)


def test_remote_objects_joined_with_local_photoz(remote, sides, objects, photoz) -> None:
    source, target = sides
    query = f"SELECT objectId, coord_ra, coord_dec, i_cmodelflux FROM {remote.objects} WHERE coord_dec < -37.5"
    joined = federate(source, query, name="obj", query=JOIN, target=target)
    assert_same(joined, expected_join(objects, photoz, objects["coord_dec"] < -37.5))


def test_chunks_give_the_same_rows(remote, sides, objects, photoz) -> None:
    source, target = sides
    query = f"SELECT objectId, coord_ra, coord_dec, i_cmodelflux FROM {remote.objects} WHERE coord_dec < -38"
    seen: list[ChunkProgress] = []
    joined = federate(source, query, name="obj", query=JOIN, target=target, chunk_by="objectId",
                      chunk_rows=1_500, progress=seen.append)
    want = expected_join(objects, photoz, objects["coord_dec"] < -38)
    assert_same(joined, want)
    assert len(seen) == -(-len(want) // 1_500) and seen[-1].source_rows == len(want)
    placeholder = (f"SELECT objectId, coord_ra, coord_dec, i_cmodelflux FROM {remote.objects} "
                   "WHERE coord_dec < -38 AND {chunk}")
    assert_same(federate(source, placeholder, name="obj", query=JOIN, target=target, chunk_by="objectId",
                         chunk_rows=2_000), want)


def test_the_reverse_direction_joins_on_the_remote_service(remote, sides, objects, photoz) -> None:
    source, target = sides[1], sides[0]
    joined = federate(source, "SELECT objectId, z_phot, z_err FROM pz.photoz_demo WHERE z_phot > 1.6",
                      name="pz", target=target,
                      query=f"SELECT o.objectId, o.coord_ra, o.i_cmodelflux, p.z_phot, p.z_err "
                            f"FROM {remote.objects} AS o JOIN TAP_UPLOAD.pz AS p ON p.objectId = o.objectId")
    high = photoz[photoz["z_phot"] > 1.6]
    want = (objects[["objectId", "coord_ra", "i_cModelFlux"]].merge(high, on="objectId")
            .sort_values("objectId").reset_index(drop=True))
    assert_same(joined, want)


def test_types_and_nulls_survive_the_upload(remote, sides) -> None:
    source, target = sides
    query = (f"SELECT TOP 50 objectId, coord_ra, CAST(objectId AS SMALLINT) AS small, "
             f"CASE WHEN objectId < 10 THEN NULL ELSE i_cmodelflux END AS flux, "
             f"CASE WHEN objectId < 5 THEN NULL ELSE 'obj-' || CAST(objectId AS VARCHAR(12)) END AS label "
             f"FROM {remote.objects} ORDER BY objectId")
    back = federate(source, query, name="t", target=target, query="SELECT * FROM TAP_UPLOAD.t ORDER BY objectId")
    direct = TapEndpoint(remote.url).service().run_sync(query).to_table()
    assert len(back) == len(direct) == 50
    for name in direct.colnames:
        theirs, ours = direct[name], back[name]
        assert np.ma.getmaskarray(ours).tolist() == np.ma.getmaskarray(theirs).tolist(), name
        assert [v for v in ours.tolist()] == [v for v in theirs.tolist()], name
    assert back["objectId"].dtype == np.int64 and int(np.ma.getmaskarray(back["flux"]).sum()) == 10


def test_arrays_of_the_remote_result_survive_the_upload(remote, sides) -> None:
    """A remote result with array columns (here DALI points, double[2] with xtype point) is
    uploaded and joined like any other column."""
    source, target = sides
    query = f"SELECT TOP 20 objectId, POINT(coord_ra, coord_dec) AS pos FROM {remote.objects} ORDER BY objectId"
    back = federate(source, query, name="t", target=target, query="SELECT * FROM TAP_UPLOAD.t ORDER BY objectId")
    direct = TapEndpoint(remote.url).service().run_sync(query).to_table()
    assert len(back) == len(direct) == 20 and back["pos"].shape == (20, 2)
    assert np.allclose(np.asarray(back["pos"]), np.asarray(direct["pos"]))


def test_errors_say_which_side_failed(remote, sides) -> None:
    source, target = sides
    with pytest.raises(FederationError, match=r"the remote TAP service \(.*\) failed to run the query: .*"
                                              r"no_such_table"):
        federate(source, "SELECT * FROM pz.no_such_table", name="obj", query=JOIN, target=target)
    with pytest.raises(FederationError, match=r"the local TAP service .* with the upload: .*nonexistent"):
        federate(source, f"SELECT TOP 3 objectId FROM {remote.objects}", name="obj", target=target,
                 query="SELECT nonexistent FROM TAP_UPLOAD.obj")
    with pytest.raises(FederationError, match="chunk_by"):
        federate(source, f"SELECT objectId FROM {remote.objects}", name="obj", query=JOIN, target=target,
                 chunk_rows=10)
    assert chunk_query("SELECT a FROM t WHERE {chunk}", "a", 5, 7) == "SELECT TOP 5 a FROM t WHERE a > 7 ORDER BY a"


def test_a_later_chunk_failing_on_either_side_stops_the_prefetch(remote, sides, objects) -> None:
    """Chunks are fetched one ahead in a thread: an error of the source in a later chunk, or of
    the target while the next chunk is being fetched, is raised by federate and leaves no thread."""
    source, target = sides
    ids = np.sort(objects.loc[objects["coord_dec"] < -38, "objectId"].to_numpy())
    poisoned = (f"SELECT objectId, 1 / (objectId - {int(ids[2_000])}) AS x FROM {remote.objects} "
                "WHERE coord_dec < -38")
    with pytest.raises(FederationError, match=r"the remote TAP service .* failed to run the query: .*"):
        federate(source, poisoned, name="obj", target=target, query="SELECT * FROM TAP_UPLOAD.obj",
                 chunk_by="objectId", chunk_rows=1_500)
    with pytest.raises(FederationError, match=r"the local TAP service .* with the upload: .*nonexistent"):
        federate(source, f"SELECT objectId FROM {remote.objects}", name="obj", target=target,
                 query="SELECT nonexistent FROM TAP_UPLOAD.obj", chunk_by="objectId", chunk_rows=500)
    assert not [t for t in threading.enumerate() if t.name == "federate-prefetch"]


def test_the_command_line(remote, server, database, tmp_path, objects, photoz) -> None:
    token = remote.services.auth.add_user(f"fed{os.getpid()}_{len(str(tmp_path)) % 1000}")
    env = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir), REMOTE_TOKEN=token)
    out = tmp_path / "joined.parquet"
    query = f"SELECT objectId, coord_ra, coord_dec, i_cmodelflux FROM {remote.objects} WHERE coord_dec < -38"
    proc = run_pzvo(env, "federate", "--remote", remote.url, "--remote-query", query, "--as", "obj",
                    "--query", JOIN, "--local", server.url + "/tap", "--chunk-by", "objectId", "--chunk-rows", "2000",
                    "--remote-token-env", "REMOTE_TOKEN", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same(Table.read(out), expected_join(objects, photoz, objects["coord_dec"] < -38))
    bad = run_pzvo(env, "federate", "--remote", remote.url, "--remote-query", "SELECT FROM", "--as", "obj",
                   "--query", JOIN, "--local", server.url + "/tap", "--no-progress")
    assert bad.returncode == 1 and "remote TAP service" in bad.stderr
    wrong = run_pzvo({**env, "REMOTE_TOKEN": "pzvo_wrong"}, "federate", "--remote", remote.url, "--remote-query",
                     query, "--as", "obj", "--query", JOIN, "--local", server.url + "/tap", "--no-progress",
                     "--remote-token-env", "REMOTE_TOKEN")
    assert wrong.returncode == 1 and "remote TAP service" in wrong.stderr and "token is not valid" in wrong.stderr
    unset = run_pzvo(env, "federate", "--remote", remote.url, "--remote-query", query, "--as", "obj", "--query", JOIN,
                     "--remote-token-env", "NO_SUCH_TOKEN_VARIABLE", "--no-progress")
    assert unset.returncode == 1 and "NO_SUCH_TOKEN_VARIABLE" in unset.stderr
