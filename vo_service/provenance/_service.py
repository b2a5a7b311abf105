"""Provenance access: answer a graph request from the database (one recursive query)."""
from __future__ import annotations

import logging
import time

from sqlalchemy.engine import Engine

from vo_service.provenance import _storage as storage
from vo_service.provenance._exceptions import UnknownRecordError
from vo_service.provenance._models import GraphRequest, ProvGraph, check_id

log = logging.getLogger(__name__)


class ProvenanceService:
    """Reads provenance graphs.

    Parameters
    ----------
    engine
        Where to read; the web service passes an engine of the read-only ``pzvo_reader`` role
        (the provenance schema is published, so that role may read it).
    """

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine

    def graph(self, req: GraphRequest) -> ProvGraph:
        """The records reachable from ``req.ids``.

        Raises
        ------
        InvalidIdentifierError
            An id is not of the ``pzvo:...`` form.
        UnknownRecordError
            An id names no entity, activity or agent.
        """
        for value in req.ids:
            check_id(value)
        started = time.perf_counter()
        with self.engine.connect() as conn:
            graph, missing = storage.fetch_graph(conn, req)
            conn.rollback()
        if missing:
            raise UnknownRecordError(f"no entity, activity or agent with id {', '.join(missing)}",
                                     missing)
        log.debug("provenance graph", extra={"ids": req.ids, "depth": req.depth,
                                             "direction": req.direction, "nodes": graph.node_count,
                                             "ms": round((time.perf_counter() - started) * 1e3, 2)})
        return graph

    def exists(self, record_id: str) -> bool:
        """Whether ``record_id`` names a recorded entity, activity or agent."""
        check_id(record_id)
        with self.engine.connect() as conn:
            found = any(storage.existing_ids(conn, t, [record_id])
                        for t in ("entity", "activity", "agent"))
            conn.rollback()
        return found

    def recent_entities(self, *, entity_type: str | None = None, limit: int = 200) -> list[dict]:
        """The latest recorded entities, newest first (for the provenance index page)."""
        with self.engine.connect() as conn:
            rows = storage.list_entities(conn, entity_type=entity_type, limit=limit)
            conn.rollback()
        return rows
