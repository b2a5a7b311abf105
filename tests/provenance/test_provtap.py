"""ProvTAP: the provenance tables are published in TAP_SCHEMA with keys and answer ADQL."""
from __future__ import annotations

import io

import requests
from astropy.io.votable import parse_single_table

from vo_service.provenance import Entity, record_activity, user_agent

TABLES = {"entity", "activity", "agent", "used", "wasgeneratedby", "wasderivedfrom",
          "wasinformedby", "wasassociatedwith", "wasattributedto", "hadmember",
          "activitydescription", "entitydescription", "usagedescription",
          "generationdescription", "parameter", "parameterdescription", "wasinvalidatedby"}


def adql(prov_url: str, query: str):
    r = requests.post(prov_url + "/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL",
                                                    "QUERY": query}, timeout=60)
    assert r.status_code == 200, r.text
    return parse_single_table(io.BytesIO(r.content)).to_table()


def test_every_provenance_table_is_published_with_keys(prov_url) -> None:
    t = adql(prov_url, "SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'provenance'")
    assert {n.split(".", 1)[1] for n in t["table_name"]} == TABLES
    keys = adql(prov_url, "SELECT k.from_table, k.target_table, c.from_column, c.target_column "
                          "FROM TAP_SCHEMA.keys AS k JOIN TAP_SCHEMA.key_columns AS c "
                          "ON c.key_id = k.key_id WHERE k.from_table = 'provenance.used'")
    assert ("provenance.activity", "activity_id", "id") in {
        (r["target_table"], r["from_column"], r["target_column"]) for r in keys}


def test_adql_finds_every_activity_that_used_an_entity(prov_url, owner, uid) -> None:
    src = Entity(id=f"pzvo:test/tap-src-{uid}", name="tap source")
    ids = []
    for n in range(3):
        with record_activity(owner, name=f"use {n}", agent=user_agent(f"carol{uid}"),
                             used=[(src, f"role{n}")]) as act:
            pass
        ids.append(act.id)
    t = adql(prov_url, "SELECT a.id, a.name, u.role, w.agent_id FROM provenance.used AS u "
                       "JOIN provenance.activity AS a ON a.id = u.activity_id "
                       "JOIN provenance.wasassociatedwith AS w ON w.activity_id = a.id "
                       f"WHERE u.entity_id = '{src.id}' ORDER BY u.role")
    assert list(t["id"]) == ids and list(t["role"]) == ["role0", "role1", "role2"]
    assert set(t["agent_id"]) == {f"pzvo:user/carol{uid}"}


def test_adql_reads_times_units_and_ucds(prov_url) -> None:
    t = adql(prov_url, "SELECT p.name, p.param_value, d.unit, d.ucd, a.start_time "
                       "FROM provenance.parameter AS p "
                       "JOIN provenance.parameterdescription AS d ON d.id = p.parameterdescription_id "
                       "JOIN provenance.activity AS a ON a.id = p.activity_id "
                       "WHERE a.name = 'demo spec-z compilation' AND p.name = 'ra_min'")
    assert len(t) >= 1 and t["unit"][0] == "deg" and t["ucd"][0] == "pos.eq.ra;stat.min"
    assert str(t["start_time"][0]).startswith("20")
