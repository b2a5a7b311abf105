#!/usr/bin/env python3
"""Provenance traversal: the backward graph (DEPTH=ALL) of a deep entity as PROV-JSON.

Builds a synthetic provenance graph of 100,000 entities and 20,000 activities in its own
database (``pzvo_bench_prov`` in the private cluster, dropped and re-created, migrated like any
pzvo database, filled with COPY): 120 independent pipelines ("lineages") of 167 chained
activities; each activity uses the 5 entities its predecessor generated, generates 5, each
derived from one input, and is informed by its predecessor.  The last output of a lineage is
334 steps deep and its backward graph has 998 nodes (167 activities, 831 entities) and 2,653
relations.

Measured (median of --repeat runs, after a warm-up):
- ``traversal``: the one recursive SQL statement (``ProvenanceService.graph``), rows to dicts;
- ``prov document``: building the ``prov.model.ProvDocument``;
- ``prov serialize``: ``ProvDocument.serialize(format="json")``;
- ``direct writer``: ``graph_to_prov_json``, which ``/prov`` uses for PROV-JSON (same document,
  tested; see its docstring);
- ``in-process``: traversal + direct writer;
- ``http``: ``GET /prov?ID=...&DEPTH=ALL&RESPONSEFORMAT=PROV-JSON`` on the service under
  gunicorn, new connection per request, whole body read.

Goal: under 200 ms for the 1,000-node answer.  Usage:
``.venv/bin/python benchmarks/bench_provenance.py [--repeat 21] [--json out.json]``
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median_ms
from vo_service.core.settings import load_settings

DB_NAME = "pzvo_bench_prov"
N_ENTITIES = 100_000
N_ACTIVITIES = 20_000
PER_ACTIVITY = N_ENTITIES // N_ACTIVITIES  # 5
LINEAGE = 167
N_AGENTS = 10


def _copy(cur, table: str, columns: list[str], rows) -> int:
    buf = io.StringIO()
    n = 0
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
        n += 1
    buf.seek(0)
    cur.copy_expert(f"COPY provenance.{table} ({', '.join(columns)}) FROM STDIN", buf)
    return n


def build(settings) -> dict[str, float]:
    """Create, migrate and fill the benchmark database; return the seconds each step took."""
    from vo_service.cluster import PrivateCluster
    from vo_service.core.database import migrate, owner_engine

    timings = {}
    t0 = time.perf_counter()
    base = load_settings()
    if not base.uses_private_cluster:
        raise SystemExit("bench_provenance builds its own database in the private cluster; "
                         "unset PZVO_DATABASE_URL")
    cluster = PrivateCluster(settings=base)
    cluster.drop_database(DB_NAME)
    cluster.create_database(DB_NAME)
    migrate(settings)
    timings["create+migrate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    t_start = "2026-01-01 00:00:00+00"
    t_end = "2026-01-01 00:01:00+00"

    def eid(n: int) -> str:
        return f"pzvo:bench/e{n}"

    def aid(n: int) -> str:
        return f"pzvo:activity/bench-{n}"

    def first(a: int) -> bool:
        return a % LINEAGE == 0

    engine = owner_engine(settings)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        _copy(cur, "agent", ["id", "name", "type"],
              ((f"pzvo:user/bench{i}", f"bench{i}", "Individual") for i in range(N_AGENTS)))
        _copy(cur, "activitydescription", ["id", "name", "version", "type"],
              [("pzvo:activitydescription/bench-step/1", "bench step", "1", "estimation")])
        _copy(cur, "activity", ["id", "name", "start_time", "end_time", "status",
                                "activitydescription_id", "software_name", "software_version", "host"],
              ((aid(a), f"step {a % LINEAGE} of lineage {a // LINEAGE}", t_start, t_end, "completed",
                "pzvo:activitydescription/bench-step/1", "pzvo", "0.1.0", "bench")
               for a in range(N_ACTIVITIES)))
        _copy(cur, "entity", ["id", "name", "type", "location", "checksum", "generated_at_time"],
              ((eid(e), f"product {e}", "pzvo:Table", f"bench.t{e}", f"sha256:{e:064x}", t_end)
               for e in range(N_ENTITIES)))
        _copy(cur, "wasgeneratedby", ["entity_id", "activity_id", "generation_time", "role"],
              ((eid(e), aid(e // PER_ACTIVITY), t_end, "output") for e in range(N_ENTITIES)))
        _copy(cur, "used", ["activity_id", "entity_id", "usage_time", "role"],
              ((aid(a), eid((a - 1) * PER_ACTIVITY + j), t_start, "input")
               for a in range(N_ACTIVITIES) if not first(a) for j in range(PER_ACTIVITY)))
        _copy(cur, "wasderivedfrom", ["generated_entity_id", "used_entity_id", "activity_id"],
              ((eid(e), eid(e - PER_ACTIVITY), aid(e // PER_ACTIVITY))
               for e in range(N_ENTITIES) if not first(e // PER_ACTIVITY)))
        _copy(cur, "wasinformedby", ["informed_activity_id", "informant_activity_id"],
              ((aid(a), aid(a - 1)) for a in range(N_ACTIVITIES) if not first(a)))
        _copy(cur, "wasassociatedwith", ["activity_id", "agent_id"],
              ((aid(a), f"pzvo:user/bench{(a // LINEAGE) % N_AGENTS}") for a in range(N_ACTIVITIES)))
        raw.commit()
    finally:
        raw.close()
    timings["copy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    timings["vacuum analyze"] = time.perf_counter() - t0
    return timings


def deep_entity() -> str:
    """The first output of the last activity of lineage 0."""
    return f"pzvo:bench/e{(LINEAGE - 1) * PER_ACTIVITY}"


def measure(settings, repeat: int) -> dict[str, object]:
    from vo_service.core.database import owner_engine
    from vo_service.provenance import GraphRequest, ProvenanceService
    from vo_service.provenance._serialize import graph_to_prov_json, to_document, to_prov_json

    service = ProvenanceService(engine=owner_engine(settings))
    req = GraphRequest(ids=[deep_entity()], depth=None, direction="BACK")
    ns = "http://127.0.0.1/provenance/pzvo:"
    keys = ("traversal", "prov document", "prov serialize", "direct writer", "in-process")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    graph = body = None
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        graph = service.graph(req)
        t1 = time.perf_counter()
        body = graph_to_prov_json(graph, ns)
        t2 = time.perf_counter()
        doc = to_document(graph, ns)
        t3 = time.perf_counter()
        to_prov_json(doc)
        t4 = time.perf_counter()
        if i:
            samples["traversal"].append(t1 - t0)
            samples["direct writer"].append(t2 - t1)
            samples["in-process"].append(t2 - t0)
            samples["prov document"].append(t3 - t2)
            samples["prov serialize"].append(t4 - t3)
    relations = sum(len(getattr(graph, c)) for c in graph.RELATION_CLASSES)
    result: dict[str, object] = {
        "entity": deep_entity(), "nodes": graph.node_count, "relations": relations,
        "prov_json_bytes": len(body), **{k: median_ms(v) for k, v in samples.items()}}

    with service(port=8767, env={"PZVO_DB_NAME": DB_NAME}, start_timeout=120) as url:
        params = {"ID": deep_entity(), "DEPTH": "ALL", "DIRECTION": "BACK",
                  "RESPONSEFORMAT": "PROV-JSON"}
        http = []
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            r = requests.get(url + "/prov", params=params, timeout=60)
            r.raise_for_status()
            _ = r.content
            if i:
                http.append(time.perf_counter() - t0)
        result["http"] = median_ms(http)
        result["http_bytes"] = len(r.content)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it is there")
    args = parser.parse_args()
    settings = replace(load_settings(), db_name=DB_NAME, database_url=None)
    timings = {}
    if not args.keep:
        timings = build(settings)
        print(f"built {N_ENTITIES:,} entities, {N_ACTIVITIES:,} activities: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    result = measure(settings, args.repeat)
    print(f"backward graph of {result['entity']} (DEPTH=ALL): {result['nodes']} nodes, "
          f"{result['relations']} relations, PROV-JSON {result['prov_json_bytes']:,} bytes")
    print("| step | median ms |\n|---|---:|")
    for key in ("traversal", "prov document", "prov serialize", "direct writer", "in-process", "http"):
        print(f"| {key} | {result[key]} |")
    goal = "met" if result["http"] < 200 else "NOT met"
    print(f"goal < 200 ms over HTTP: {goal}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "build_s": timings, **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
