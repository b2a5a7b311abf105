"""The capture API on the real database: transactions, failures, append-only, invalidation."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from vo_service.core import __version__
from vo_service.provenance import (
    TABLE_TYPE,
    ActivityDescription,
    Entity,
    EntityExistsError,
    GraphRequest,
    InvalidIdentifierError,
    ParameterDescription,
    ProvenanceService,
    UnknownRecordError,
    UsageDescription,
    next_entity_version,
    record_activity,
    record_invalidation,
    user_agent,
)

METHOD = ActivityDescription(
    id="pzvo:activitydescription/test-method/1", name="test method", version="1", type="test",
    parameters=(ParameterDescription("radius", "double", "Match radius", "arcsec", "pos.angDistance"),),
    usages=(UsageDescription("input", "What goes in"),))


def _one(owner, sql: str, **params):
    with owner.connect() as conn:
        return conn.execute(text(sql), params).mappings().first()


def _source(uid: str) -> Entity:
    return Entity(id=f"pzvo:test/source-{uid}", name=f"source {uid}", type="pzvo:File",
                  location=f"/data/{uid}.parquet", checksum="sha256:" + "0" * 64)


def test_standalone_activity_records_everything(owner, uid) -> None:
    out = f"pzvo:table/test.out_{uid}"
    with record_activity(owner, name="estimate", description=METHOD, parameters={"radius": 1.5},
                         agent=user_agent(f"alice{uid}"), used=[(_source(uid), "input")]) as act:
        act.generate(out, name=f"test.out_{uid}", type=TABLE_TYPE, location=f"test.out_{uid}",
                     checksum="sha256:" + "1" * 64, derived_from=[f"pzvo:test/source-{uid}"])
    a = _one(owner, "SELECT * FROM provenance.activity WHERE id = :i", i=act.id)
    assert a["status"] == "completed" and a["software_name"] == "pzvo"
    assert a["software_version"] == __version__ and a["host"]
    assert a["start_time"] <= a["end_time"]
    assert a["activitydescription_id"] == METHOD.id
    e = _one(owner, "SELECT * FROM provenance.entity WHERE id = :i", i=out)
    assert e["checksum"] == "sha256:" + "1" * 64 and e["location"] == f"test.out_{uid}"
    assert _one(owner, "SELECT activity_id FROM provenance.wasgeneratedby WHERE entity_id = :i",
                i=out)["activity_id"] == act.id
    assert _one(owner, "SELECT used_entity_id FROM provenance.wasderivedfrom "
                "WHERE generated_entity_id = :i", i=out)["used_entity_id"] == f"pzvo:test/source-{uid}"
    used = _one(owner, "SELECT * FROM provenance.used WHERE activity_id = :i", i=act.id)
    assert used["role"] == "input" and used["usagedescription_id"] == METHOD.usage_id("input")
    p = _one(owner, "SELECT p.param_value, d.unit, d.ucd FROM provenance.parameter p JOIN "
             "provenance.parameterdescription d ON d.id = p.parameterdescription_id "
             "WHERE p.activity_id = :i", i=act.id)
    assert (p["param_value"], p["unit"], p["ucd"]) == ("1.5", "arcsec", "pos.angDistance")
    assert _one(owner, "SELECT agent_id FROM provenance.wasassociatedwith WHERE activity_id = :i",
                i=act.id)["agent_id"] == f"pzvo:user/alice{uid}"


def test_standalone_failure_is_recorded_then_reraised(owner, uid) -> None:
    with pytest.raises(ZeroDivisionError):
        with record_activity(owner, name="doomed", used=[(_source(uid), "input")]) as act:
            act.generate(f"pzvo:table/test.never_{uid}", name="never")
            1 / 0  # noqa: B018
    a = _one(owner, "SELECT status, comment FROM provenance.activity WHERE id = :i", i=act.id)
    assert a["status"] == "failed" and "ZeroDivisionError" in a["comment"]
    assert _one(owner, "SELECT 1 FROM provenance.entity WHERE id = :i",
                i=f"pzvo:table/test.never_{uid}") is None
    assert _one(owner, "SELECT 1 FROM provenance.used WHERE activity_id = :i", i=act.id)


def test_records_join_the_callers_transaction(owner, uid) -> None:
    with owner.connect() as conn:
        with record_activity(conn, name="rolled back", used=[(_source(uid), "input")]) as act:
            act.generate(f"pzvo:table/test.rb_{uid}", name="rb")
        conn.rollback()
    assert _one(owner, "SELECT 1 FROM provenance.activity WHERE id = :i", i=act.id) is None
    with owner.begin() as conn:
        conn.execute(text(f'CREATE TABLE public."t_{uid}" (x int)'))
        with record_activity(conn, name="committed", used=[(_source(uid), "input")]) as act2:
            act2.generate(f"pzvo:table/public.t_{uid}", name=f"public.t_{uid}")
    assert _one(owner, "SELECT 1 FROM provenance.activity WHERE id = :i", i=act2.id)
    with owner.begin() as conn:
        conn.execute(text(f'DROP TABLE public."t_{uid}"'))


def test_failure_inside_callers_transaction_rolls_back_the_work_only(owner, uid) -> None:
    with owner.begin() as conn:
        with pytest.raises(Exception, match="does_not_exist"):
            with record_activity(conn, name="bad sql", used=[(_source(uid), "input")]) as act:
                conn.execute(text(f'CREATE TABLE public."w_{uid}" (x int)'))
                conn.execute(text("SELECT * FROM does_not_exist"))
        # the caller decides to commit: the failed activity persists, the work does not
    assert _one(owner, "SELECT status FROM provenance.activity WHERE id = :i",
                i=act.id)["status"] == "failed"
    assert _one(owner, "SELECT to_regclass(:t) AS t", t=f'public."w_{uid}"')["t"] is None


def test_history_cannot_be_updated_or_deleted(owner, uid) -> None:
    with record_activity(owner, name="keep", used=[(_source(uid), "input")]):
        pass
    for sql in (f"UPDATE provenance.entity SET name = 'x' WHERE id = 'pzvo:test/source-{uid}'",
                f"DELETE FROM provenance.entity WHERE id = 'pzvo:test/source-{uid}'",
                "DELETE FROM provenance.used", "TRUNCATE provenance.parameter CASCADE"):
        with pytest.raises(Exception, match="append-only"):
            with owner.begin() as conn:
                conn.execute(text(sql))


def test_entity_ids_are_never_reused(owner, uid) -> None:
    with record_activity(owner, name="first") as act:
        act.generate(f"pzvo:table/test.once_{uid}", name="once")
    with pytest.raises(EntityExistsError):
        with record_activity(owner, name="second") as act2:
            act2.generate(f"pzvo:table/test.once_{uid}", name="once")
    assert _one(owner, "SELECT status FROM provenance.activity WHERE id = :i",
                i=act2.id)["status"] == "failed"


def test_unknown_inputs_are_refused_before_the_work(owner, uid) -> None:
    ran = []
    with pytest.raises(UnknownRecordError):
        with record_activity(owner, name="x", used=[(f"pzvo:test/missing-{uid}", "input")]):
            ran.append(1)
    assert not ran
    with pytest.raises(InvalidIdentifierError):
        with record_activity(owner, name="x", used=[("not an id", "input")]):
            pass


def test_removal_adds_an_invalidation_and_keeps_history(owner, uid) -> None:
    table = f"pzvo:table/test.gone_{uid}"
    with record_activity(owner, name="make", used=[(_source(uid), "input")]) as act:
        act.generate(table, name="gone", derived_from=[f"pzvo:test/source-{uid}"])
    removal = record_invalidation(owner, table, agent=user_agent("admin"), reason="superseded")
    v = _one(owner, "SELECT * FROM provenance.wasinvalidatedby WHERE entity_id = :i", i=table)
    assert v["activity_id"] == removal
    graph = ProvenanceService(engine=owner).graph(
        GraphRequest(ids=[table], depth=None, direction="BACK"))
    assert {e["id"] for e in graph.entity} == {table, f"pzvo:test/source-{uid}"}
    assert graph.entity[[e["id"] for e in graph.entity].index(table)]["invalidated_at_time"]
    forth = ProvenanceService(engine=owner).graph(
        GraphRequest(ids=[table], depth=1, direction="FORTH"))
    assert removal in {a["id"] for a in forth.activity}
    with owner.connect() as conn:
        new_id, older = next_entity_version(conn, table)
    assert new_id == table + "@2" and older == []


def test_demo_load_recorded_its_provenance(owner) -> None:
    graph = ProvenanceService(engine=owner).graph(GraphRequest(
        ids=["pzvo:table/pz.photoz_demo"], depth=None, direction="BACK", agents=True))
    ids = {e["id"] for e in graph.entity}
    assert "pzvo:table/pz.specz_demo" in ids
    files = [e for e in graph.entity if e["id"].startswith("pzvo:file/")]
    assert len(files) == 1 and files[0]["checksum"] == "sha256:" + files[0]["id"][10:]
    assert {a["name"] for a in graph.activity} >= {"demo spec-z compilation",
                                                    "demo kNN photo-z estimation"}
    assert graph.agent and graph.wasinformedby
    params = {p["name"]: p for p in graph.parameter}
    assert params["k"]["param_value"] == "20" and params["ra_min"]["unit"] == "deg"
