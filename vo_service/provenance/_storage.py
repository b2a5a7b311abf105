"""Database side of provenance: inserts (append-only) and the one-query graph traversal.

Nothing here updates or deletes: the tables refuse it anyway (triggers of migration 0002).
Shared records (agents, descriptions, external entities) are inserted with ``ON CONFLICT DO
NOTHING``: their ids are immutable, so the first record of an id is the record.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from vo_service.provenance._models import (
    ActivityDescription,
    Agent,
    Entity,
    EntityDescription,
    GraphRequest,
    ProvGraph,
)

S = "provenance"


def _insert(conn: Connection, table: str, rows: Sequence[Mapping[str, object]], *,
            ignore_existing: bool = False) -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = (f"INSERT INTO {S}.{table} ({', '.join(cols)}) VALUES "
           f"({', '.join(':' + c for c in cols)})")
    if ignore_existing:
        sql += " ON CONFLICT DO NOTHING"
    conn.execute(text(sql), [dict(r) for r in rows])


def ensure_entity_description(conn: Connection, desc: EntityDescription | None) -> None:
    if desc is None:
        return
    _insert(conn, "entitydescription", [{
        "id": desc.id, "name": desc.name, "description": desc.description,
        "doculink": desc.doculink, "category": desc.category}], ignore_existing=True)


def ensure_activity_description(conn: Connection, desc: ActivityDescription | None) -> None:
    """Store a method description with its roles and parameters (first version wins)."""
    if desc is None:
        return
    _insert(conn, "activitydescription", [{
        "id": desc.id, "name": desc.name, "version": desc.version, "description": desc.description,
        "type": desc.type, "subtype": desc.subtype, "doculink": desc.doculink}],
        ignore_existing=True)
    for kind, roles, make_id in (("usagedescription", desc.usages, desc.usage_id),
                                 ("generationdescription", desc.generations, desc.generation_id)):
        for role in roles:
            ensure_entity_description(conn, role.entity_description)
        _insert(conn, kind, [{
            "id": make_id(r.role), "activitydescription_id": desc.id, "role": r.role,
            "description": r.description, "type": r.type, "multiplicity": r.multiplicity,
            "entitydescription_id": r.entity_description.id if r.entity_description else None}
            for r in roles], ignore_existing=True)
    _insert(conn, "parameterdescription", [{
        "id": desc.parameter_id(p.name), "activitydescription_id": desc.id, "name": p.name,
        "value_type": p.value_type, "description": p.description, "unit": p.unit, "ucd": p.ucd,
        "utype": p.utype, "min_value": p.min_value, "max_value": p.max_value,
        "default_value": p.default_value, "options": "|".join(p.options) or None}
        for p in desc.parameters], ignore_existing=True)


def ensure_agent(conn: Connection, agent: Agent | None) -> None:
    if agent is None:
        return
    _insert(conn, "agent", [{
        "id": agent.id, "name": agent.name, "type": agent.type, "email": agent.email,
        "affiliation": agent.affiliation, "url": agent.url, "comment": agent.comment}],
        ignore_existing=True)


def entity_row(entity: Entity, generated_at: dt.datetime | None) -> dict[str, object]:
    return {"id": entity.id, "name": entity.name, "type": entity.type,
            "location": entity.location, "checksum": entity.checksum,
            "content_type": entity.content_type, "generated_at_time": generated_at,
            "comment": entity.comment,
            "entitydescription_id": entity.description.id if entity.description else None}


def ensure_entities(conn: Connection, entities: Iterable[Entity]) -> None:
    """Record entities that come from outside (source files): first record of an id wins."""
    entities = list(entities)
    for entity in entities:
        ensure_entity_description(conn, entity.description)
    _insert(conn, "entity", [entity_row(e, None) for e in entities], ignore_existing=True)


def insert(conn: Connection, table: str, rows: Sequence[Mapping[str, object]]) -> None:
    """Plain append of relation rows (``used``, ``wasgeneratedby``, ...)."""
    _insert(conn, table, rows)


def existing_ids(conn: Connection, table: str, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    if not ids:
        return set()
    rows = conn.execute(text(f"SELECT id FROM {S}.{table} WHERE id = ANY(:ids)"), {"ids": ids})
    return {r[0] for r in rows}


def entity_versions(conn: Connection, base_id: str) -> list[tuple[str, bool]]:
    """(id, invalidated) of ``base_id`` and its ``base_id@<n>`` versions, oldest first."""
    rows = conn.execute(text(
        f"SELECT e.id, v.entity_id IS NOT NULL FROM {S}.entity e "
        f"LEFT JOIN {S}.wasinvalidatedby v ON v.entity_id = e.id "
        "WHERE e.id = :b OR e.id LIKE :pattern ORDER BY e.recorded_at, e.id"),
        {"b": base_id, "pattern": base_id.replace("\\", "\\\\").replace("%", "\\%")
         .replace("_", "\\_") + "@%"})
    return [(r[0], bool(r[1])) for r in rows]


# --- traversal ---------------------------------------------------------------------------------

#: One step of the walk, per direction: (kind of the node we stand on, SQL giving the neighbours
#: as (kind, id) for that node, whose id is ``r.id``).  Agents are never walked through (every
#: product of a user would be one step away); they only start a walk or are attached after it.
_STEPS = {
    "BACK": [
        ("entity", "SELECT 'activity', g.activity_id FROM provenance.wasgeneratedby g WHERE g.entity_id = r.id"),
        ("entity", "SELECT 'entity', d.used_entity_id FROM provenance.wasderivedfrom d"
                   " WHERE d.generated_entity_id = r.id"),
        ("activity", "SELECT 'entity', u.entity_id FROM provenance.used u WHERE u.activity_id = r.id"),
        ("activity", "SELECT 'activity', i.informant_activity_id FROM provenance.wasinformedby i"
                     " WHERE i.informed_activity_id = r.id"),
        ("activity", "SELECT 'entity', v.entity_id FROM provenance.wasinvalidatedby v WHERE v.activity_id = r.id"),
    ],
    "FORTH": [
        ("entity", "SELECT 'activity', u.activity_id FROM provenance.used u WHERE u.entity_id = r.id"),
        ("entity", "SELECT 'entity', d.generated_entity_id FROM provenance.wasderivedfrom d"
                   " WHERE d.used_entity_id = r.id"),
        ("entity", "SELECT 'activity', v.activity_id FROM provenance.wasinvalidatedby v WHERE v.entity_id = r.id"),
        ("activity", "SELECT 'entity', g.entity_id FROM provenance.wasgeneratedby g WHERE g.activity_id = r.id"),
        ("activity", "SELECT 'activity', i.informed_activity_id FROM provenance.wasinformedby i"
                     " WHERE i.informant_activity_id = r.id"),
    ],
}
_MEMBER_STEP = ("entity", "SELECT 'entity', h.entity_id FROM provenance.hadmember h WHERE h.collection_id = r.id")
_AGENT_STEPS = [
    ("agent", "SELECT 'activity', w.activity_id FROM provenance.wasassociatedwith w WHERE w.agent_id = r.id"),
    ("agent", "SELECT 'entity', t.entity_id FROM provenance.wasattributedto t WHERE t.agent_id = r.id"),
]

#: Records of each class among the reached nodes, as one JSON document.  Relations are those
#: whose two ends were both reached.
_COLLECT = """
, nodes AS MATERIALIZED (SELECT DISTINCT kind, id FROM reach {agents})
, ent AS MATERIALIZED (SELECT id FROM nodes WHERE kind = 'entity')
, act AS MATERIALIZED (SELECT id FROM nodes WHERE kind = 'activity')
, agt AS MATERIALIZED (SELECT id FROM nodes WHERE kind = 'agent')
SELECT json_build_object(
  'missing', (SELECT coalesce(json_agg(x), '[]') FROM unnest(CAST(:ids AS text[])) AS x
              WHERE x NOT IN (SELECT id FROM seeds)),
  'entity', (SELECT coalesce(json_agg(json_build_object(
        'id', e.id, 'name', e.name, 'type', e.type, 'location', e.location,
        'checksum', e.checksum, 'content_type', e.content_type,
        'generated_at_time', e.generated_at_time, 'comment', e.comment,
        'entitydescription_id', e.entitydescription_id, 'description_name', ed.name,
        'invalidated_at_time', v.invalidation_time) ORDER BY e.id), '[]')
      FROM provenance.entity e JOIN ent ON ent.id = e.id
      LEFT JOIN provenance.entitydescription ed ON ed.id = e.entitydescription_id
      LEFT JOIN provenance.wasinvalidatedby v ON v.entity_id = e.id),
  'activity', (SELECT coalesce(json_agg(json_build_object(
        'id', a.id, 'name', a.name, 'start_time', a.start_time, 'end_time', a.end_time,
        'status', a.status, 'comment', a.comment, 'activitydescription_id', a.activitydescription_id,
        'description_name', ad.name, 'description_version', ad.version, 'description_type', ad.type,
        'software_name', a.software_name, 'software_version', a.software_version,
        'host', a.host) ORDER BY a.id), '[]')
      FROM provenance.activity a JOIN act ON act.id = a.id
      LEFT JOIN provenance.activitydescription ad ON ad.id = a.activitydescription_id),
  'agent', (SELECT coalesce(json_agg(to_json(g) ORDER BY g.id), '[]')
      FROM provenance.agent g JOIN agt ON agt.id = g.id),
  'used', (SELECT coalesce(json_agg(to_json(u) ORDER BY u.id), '[]')
      FROM provenance.used u JOIN act ON act.id = u.activity_id JOIN ent ON ent.id = u.entity_id),
  'wasgeneratedby', (SELECT coalesce(json_agg(to_json(g) ORDER BY g.id), '[]')
      FROM provenance.wasgeneratedby g JOIN ent ON ent.id = g.entity_id
      JOIN act ON act.id = g.activity_id),
  'wasderivedfrom', (SELECT coalesce(json_agg(to_json(d) ORDER BY d.id), '[]')
      FROM provenance.wasderivedfrom d JOIN ent e1 ON e1.id = d.generated_entity_id
      JOIN ent e2 ON e2.id = d.used_entity_id),
  'wasinformedby', (SELECT coalesce(json_agg(to_json(i) ORDER BY i.id), '[]')
      FROM provenance.wasinformedby i JOIN act a1 ON a1.id = i.informed_activity_id
      JOIN act a2 ON a2.id = i.informant_activity_id),
  'wasassociatedwith', (SELECT coalesce(json_agg(to_json(w) ORDER BY w.id), '[]')
      FROM provenance.wasassociatedwith w JOIN act ON act.id = w.activity_id
      JOIN agt ON agt.id = w.agent_id),
  'wasattributedto', (SELECT coalesce(json_agg(to_json(t) ORDER BY t.id), '[]')
      FROM provenance.wasattributedto t JOIN ent ON ent.id = t.entity_id
      JOIN agt ON agt.id = t.agent_id),
  'hadmember', (SELECT coalesce(json_agg(to_json(h) ORDER BY h.id), '[]')
      FROM provenance.hadmember h JOIN ent e1 ON e1.id = h.collection_id
      JOIN ent e2 ON e2.id = h.entity_id),
  'wasinvalidatedby', (SELECT coalesce(json_agg(to_json(v) ORDER BY v.id), '[]')
      FROM provenance.wasinvalidatedby v JOIN ent ON ent.id = v.entity_id
      JOIN act ON act.id = v.activity_id),
  'parameter', (SELECT coalesce(json_agg(json_build_object(
        'id', p.id, 'activity_id', p.activity_id, 'name', p.name, 'param_value', p.param_value,
        'parameterdescription_id', p.parameterdescription_id, 'value_type', pd.value_type,
        'unit', pd.unit, 'ucd', pd.ucd, 'description', pd.description) ORDER BY p.id), '[]')
      FROM provenance.parameter p JOIN act ON act.id = p.activity_id
      LEFT JOIN provenance.parameterdescription pd ON pd.id = p.parameterdescription_id)
)
"""

_SEEDS = """
seeds(kind, id) AS (
  SELECT 'entity', id FROM provenance.entity WHERE id = ANY(CAST(:ids AS text[]))
  UNION ALL SELECT 'activity', id FROM provenance.activity WHERE id = ANY(CAST(:ids AS text[]))
  UNION ALL SELECT 'agent', id FROM provenance.agent WHERE id = ANY(CAST(:ids AS text[])))
"""

_ATTACH_AGENTS = """
  UNION SELECT 'agent', w.agent_id FROM provenance.wasassociatedwith w
        JOIN reach r ON r.kind = 'activity' AND r.id = w.activity_id
  UNION SELECT 'agent', t.agent_id FROM provenance.wasattributedto t
        JOIN reach r ON r.kind = 'entity' AND r.id = t.entity_id
"""


def traversal_sql(req: GraphRequest) -> str:
    """The single recursive statement that answers ``req``.

    With a finite DEPTH each row carries its distance from the seeds and the walk stops there;
    with DEPTH=ALL the rows are just (kind, id), so ``UNION`` (which discards rows already
    produced) visits every node once however many paths lead to it.
    """
    steps = list(_STEPS[req.direction]) + _AGENT_STEPS
    if req.members:
        steps.append(_MEMBER_STEP)
    branches = "\n      UNION ALL ".join(
        f"(SELECT * FROM ({sql}) s WHERE r.kind = '{kind}')" for kind, sql in steps)
    if req.depth is None:
        reach = f"""reach(kind, id) AS (
    SELECT kind, id FROM seeds
    UNION
    SELECT n.kind, n.id FROM reach r CROSS JOIN LATERAL (
      {branches}) AS n(kind, id))"""
    else:
        reach = f"""reach(kind, id, depth) AS (
    SELECT kind, id, 0 FROM seeds
    UNION
    SELECT n.kind, n.id, r.depth + 1 FROM reach r CROSS JOIN LATERAL (
      {branches}) AS n(kind, id)
    WHERE r.depth < :depth)"""
    collect = _COLLECT.format(agents=_ATTACH_AGENTS if req.agents else "")
    return f"WITH RECURSIVE {_SEEDS}, {reach}\n{collect}"


def fetch_graph(conn: Connection, req: GraphRequest) -> tuple[ProvGraph, list[str]]:
    """Run the traversal; return the graph and the requested ids that name nothing."""
    params: dict[str, object] = {"ids": list(req.ids)}
    if req.depth is not None:
        params["depth"] = req.depth
    doc = conn.execute(text(traversal_sql(req)), params).scalar_one()
    missing = doc.pop("missing")
    return ProvGraph(request=req, **doc), missing


def list_entities(conn: Connection, *, entity_type: str | None, limit: int) -> list[dict]:
    """Most recently recorded entities (optionally of one type), with their invalidation time."""
    rows = conn.execute(text(
        f"SELECT e.id, e.name, e.type, e.location, e.generated_at_time, v.invalidation_time "
        f"FROM {S}.entity e LEFT JOIN {S}.wasinvalidatedby v ON v.entity_id = e.id "
        "WHERE CAST(:t AS text) IS NULL OR e.type = :t "
        "ORDER BY e.recorded_at DESC, e.id LIMIT :n"), {"t": entity_type, "n": limit})
    return [dict(r._mapping) for r in rows]
