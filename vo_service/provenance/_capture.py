"""Capture: record an activity around a piece of work, with what it used and generated.

``record_activity`` is the one way the rest of pzvo writes provenance::

    with record_activity(conn, name="photo-z estimation", description=KNN_ESTIMATION,
                         parameters={"k": 20}, agent=user_agent("alice"),
                         used=[("pzvo:table/pz.training_set", "training set")]) as act:
        ...  # the work
        act.generate(table_entity_id("pz.photoz_dr1"), name="pz.photoz_dr1",
                     type=TABLE_TYPE, location="pz.photoz_dr1",
                     derived_from=["pzvo:table/pz.training_set"])

Two ways to run it:

- **Inside the caller's transaction** (a SQLAlchemy ``Connection``): the records are written in
  that transaction, after the work, so a product and its provenance commit or roll back
  together.  The work runs inside a SAVEPOINT; when it raises, the savepoint is rolled back,
  the activity is written as *failed* (with what it used, its parameters and the error), and the
  exception is re-raised: the failed record persists if the caller still commits.
- **Standalone** (an ``Engine``): the records are written and committed in their own transaction
  when the work ends; a failure is committed as a failed activity, then re-raised.

Every record is an INSERT: nothing is ever updated (the tables refuse it), which is why the
activity is written when it ends, with both its start and end time.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import logging
import mimetypes
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from vo_service.core import __version__
from vo_service.provenance import _storage as storage
from vo_service.provenance._exceptions import EntityExistsError, UnknownRecordError
from vo_service.provenance._models import (
    COLLECTION_TYPE,
    FILE_TYPE,
    ActivityDescription,
    Agent,
    Entity,
    EntityDescription,
    check_id,
    file_entity_id,
    user_agent_id,
)

log = logging.getLogger(__name__)

SOFTWARE_NAME = "pzvo"
_CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".fits": "application/fits",
                  ".vot": "application/x-votable+xml", ".hdf5": "application/x-hdf5",
                  ".csv": "text/csv"}

#: The method behind ``record_invalidation``.
PRODUCT_REMOVAL = ActivityDescription(
    id="pzvo:activitydescription/product-removal/1", name="product removal", version="1",
    type="removal",
    description="A product is withdrawn from the service; its entity is invalidated and its "
                "provenance stays.")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def user_agent(name: str | None = None, **attributes: str) -> Agent:
    """The agent of a user, ``pzvo:user/<name>`` (default: the operating-system user)."""
    name = name or getpass.getuser()
    return Agent(id=user_agent_id(name), name=name, type="Individual", **attributes)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entity(path: Path | str, *, location: str | None = None, name: str | None = None,
                description: EntityDescription | None = None) -> Entity:
    """The entity of a file, identified by content: ``pzvo:file/<sha256>``."""
    path = Path(path)
    digest = sha256_file(path)
    return Entity(id=file_entity_id(digest), name=name or path.name, type=FILE_TYPE,
                  location=location or str(path), checksum=f"sha256:{digest}",
                  content_type=_CONTENT_TYPES.get(path.suffix.lower())
                  or mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                  description=description)


def next_entity_version(conn: Connection, base_id: str) -> tuple[str, list[str]]:
    """The id a new version of ``base_id`` should take, and the still-valid older versions.

    ``pzvo:table/pz.x`` when unused, else ``pzvo:table/pz.x@<n+1>``; the caller invalidates the
    returned older versions (``act.invalidate``) when it replaces them.
    """
    check_id(base_id)
    versions = storage.entity_versions(conn, base_id)
    if not versions:
        return base_id, []
    numbers = [int(v.rsplit("@", 1)[1]) if v != base_id else 1 for v, _ in versions]
    valid = [v for v, invalidated in versions if not invalidated]
    return f"{base_id}@{max(numbers) + 1}", valid


class ActivityRecorder:
    """Collects what an activity does; written by ``record_activity`` when the work ends."""

    def __init__(self, *, activity_id: str, name: str, description: ActivityDescription | None,
                 agent: Agent | None, started: dt.datetime, comment: str | None,
                 software: tuple[str, str], lookup: Callable[[str, list[str]], set[str]]) -> None:
        self.id = activity_id
        self.name = name
        self.description = description
        self.agent = agent
        self.started = started
        self.comment = comment
        self.software = software
        self.parameters: dict[str, object] = {}
        self._lookup = lookup  # (table, ids) -> set of existing ids
        self._external: list[Entity] = []
        self._used: list[tuple[str, str | None, dt.datetime]] = []
        self._informed_by: list[str] = []
        self._generated: list[tuple[Entity, str | None, dt.datetime, list[str], list[str]]] = []
        self._members: list[tuple[str, str]] = []
        self._invalidated: list[tuple[str, str | None, dt.datetime]] = []

    # --- what the work calls -------------------------------------------------------------------
    def use(self, entity: str | Entity, role: str | None = None) -> str:
        """Record that the activity used ``entity`` (an id of a recorded entity, or an Entity)."""
        if isinstance(entity, Entity):
            self._external.append(entity)
            entity_id = entity.id
        else:
            entity_id = check_id(entity)
            if not self._lookup("entity", [entity_id]):
                raise UnknownRecordError(f"unknown entity {entity_id!r}", [entity_id])
        self._used.append((entity_id, role, _now()))
        return entity_id

    def parameter(self, name: str, value: object) -> None:
        self.parameters[name] = value

    def generate(self, entity: str | Entity, *, name: str | None = None, type: str | None = None,
                 location: str | None = None, checksum: str | None = None,
                 content_type: str | None = None, comment: str | None = None,
                 description: EntityDescription | None = None, role: str | None = None,
                 derived_from: Iterable[str] = (), members: Iterable[str] = ()) -> str:
        """Register an entity this activity generated (with wasDerivedFrom links and members).

        Raises
        ------
        EntityExistsError
            The id is already recorded: entity ids are never reused (see
            :func:`next_entity_version` for a new version of a product).
        """
        if not isinstance(entity, Entity):
            entity = Entity(id=entity, name=name or entity.rsplit("/", 1)[-1], type=type,
                            location=location, checksum=checksum, content_type=content_type,
                            comment=comment, description=description)
        pending = {e.id for e, *_ in self._generated}
        if entity.id in pending or self._lookup("entity", [entity.id]):
            raise EntityExistsError(f"entity {entity.id!r} is already recorded; ids are never "
                                    "reused (record a new version and invalidate the old one)")
        derived = [check_id(d) for d in derived_from]
        known = self._lookup("entity", derived) | pending | {e.id for e in self._external}
        unknown = [d for d in derived if d not in known]
        if unknown:
            raise UnknownRecordError(f"derived from unknown entities {unknown}", unknown)
        self._generated.append((entity, role, _now(), derived, [check_id(m) for m in members]))
        return entity.id

    def add_members(self, collection_id: str, entity_ids: Iterable[str]) -> None:
        """Add members to a collection (new or existing): hadMember records."""
        self._members.extend((check_id(collection_id), check_id(e)) for e in entity_ids)

    def invalidate(self, entity_id: str, role: str | None = None) -> None:
        """Record that this activity invalidated (removed, replaced) ``entity_id``."""
        check_id(entity_id)
        if not self._lookup("entity", [entity_id]):
            raise UnknownRecordError(f"unknown entity {entity_id!r}", [entity_id])
        self._invalidated.append((entity_id, role, _now()))

    def informed_by(self, activity_id: str) -> None:
        check_id(activity_id)
        if not self._lookup("activity", [activity_id]):
            raise UnknownRecordError(f"unknown activity {activity_id!r}", [activity_id])
        self._informed_by.append(activity_id)

    # --- writing -----------------------------------------------------------------------------
    def write(self, conn: Connection, *, ended: dt.datetime, error: BaseException | None) -> None:
        """Write every record of the activity; on ``error`` only what it used and its settings."""
        desc = self.description
        storage.ensure_activity_description(conn, desc)
        storage.ensure_agent(conn, self.agent)
        storage.ensure_entities(conn, self._external)
        comment = self.comment
        if error is not None:
            comment = f"{type(error).__name__}: {error}" + (f" ({comment})" if comment else "")
        storage.insert(conn, "activity", [{
            "id": self.id, "name": self.name, "start_time": self.started, "end_time": ended,
            "status": "failed" if error is not None else "completed", "comment": comment,
            "activitydescription_id": desc.id if desc else None,
            "software_name": self.software[0], "software_version": self.software[1],
            "host": socket.gethostname()}])
        if self.agent is not None:
            storage.insert(conn, "wasassociatedwith", [
                {"activity_id": self.id, "agent_id": self.agent.id, "role": None}])
        storage.insert(conn, "used", [{
            "activity_id": self.id, "entity_id": eid, "usage_time": at, "role": role,
            "usagedescription_id": (desc.usage_id(role) if desc and role is not None
                                    and desc.usage(role) else None)}
            for eid, role, at in self._used])
        storage.insert(conn, "parameter", [{
            "activity_id": self.id, "name": name, "param_value": _text(value),
            "parameterdescription_id": desc.parameter_id(name) if desc and desc.parameter(name) else None}
            for name, value in self.parameters.items()])
        storage.insert(conn, "wasinformedby", [
            {"informed_activity_id": self.id, "informant_activity_id": a} for a in self._informed_by])
        if error is not None:
            return
        generated = self._generated
        for entity, *_ in generated:
            storage.ensure_entity_description(conn, entity.description)
        storage.insert(conn, "entity", [storage.entity_row(e, at) for e, _, at, _, _ in generated])
        storage.insert(conn, "wasgeneratedby", [{
            "entity_id": e.id, "activity_id": self.id, "generation_time": at, "role": role,
            "generationdescription_id": (desc.generation_id(role) if desc and role is not None
                                         and desc.generation(role) else None)}
            for e, role, at, _, _ in generated])
        storage.insert(conn, "wasderivedfrom", [
            {"generated_entity_id": e.id, "used_entity_id": d, "activity_id": self.id}
            for e, _, _, derived, _ in generated for d in derived])
        members = [(e.id, m) for e, _, _, _, ms in generated for m in ms] + self._members
        storage.insert(conn, "hadmember", [
            {"collection_id": c, "entity_id": m} for c, m in dict.fromkeys(members)])
        storage.insert(conn, "wasinvalidatedby", [
            {"entity_id": eid, "activity_id": self.id, "invalidation_time": at, "role": role}
            for eid, role, at in self._invalidated])

    def counts(self) -> dict[str, int]:
        return {"used": len(self._used), "generated": len(self._generated),
                "invalidated": len(self._invalidated), "parameters": len(self.parameters)}


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


@contextmanager
def record_activity(target: Connection | Engine, *, name: str,
                    description: ActivityDescription | None = None,
                    parameters: Mapping[str, object] | None = None,
                    agent: Agent | None = None,
                    used: Iterable[tuple[str | Entity, str | None]] = (),
                    informed_by: Iterable[str] = (), comment: str | None = None,
                    software: tuple[str, str] | None = None) -> Iterator[ActivityRecorder]:
    """Record an activity around the work in the ``with`` block (see the module docstring).

    Parameters
    ----------
    target
        A ``Connection`` (records join its transaction) or an ``Engine`` (records commit on
        their own).
    name, description, parameters, agent, comment
        The activity's name, its method (ActivityDescription: roles, parameter units/UCDs),
        parameter values by name, who runs it, a free-text annotation.
    used
        ``(entity, role)`` pairs: an id of a recorded entity, or an :class:`Entity` that is
        recorded if new (a source file, say).
    informed_by
        Ids of activities this one depends on (wasInformedBy).
    software
        (name, version) of the software doing the work; default pzvo and its version.

    Raises
    ------
    UnknownRecordError
        A used entity or informing activity is not recorded (raised before the work starts;
        nothing is written).
    """
    started = _now()
    t0 = time.perf_counter()

    def lookup(table: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        if isinstance(target, Connection):
            return storage.existing_ids(target, table, ids)
        with target.connect() as conn:
            return storage.existing_ids(conn, table, ids)

    act = ActivityRecorder(activity_id=f"pzvo:activity/{uuid.uuid4()}", name=name,
                           description=description, agent=agent, started=started,
                           comment=comment, software=software or (SOFTWARE_NAME, __version__),
                           lookup=lookup)
    act.parameters.update(parameters or {})
    for entity, role in used:
        act.use(entity, role)
    for activity_id in informed_by:
        act.informed_by(activity_id)

    savepoint = target.begin_nested() if isinstance(target, Connection) else None
    error: BaseException | None = None
    try:
        yield act
    except BaseException as exc:  # noqa: BLE001 - recorded on the activity, then re-raised below
        error = exc
        if savepoint is not None:
            savepoint.rollback()  # also recovers a transaction the work's SQL error aborted
    else:
        if savepoint is not None and savepoint.is_active:
            savepoint.commit()
    ended = _now()
    try:
        if isinstance(target, Connection):
            act.write(target, ended=ended, error=error)
        else:
            with target.begin() as conn:
                act.write(conn, ended=ended, error=error)
    except Exception:
        if error is None:
            raise
        log.exception("could not record the failed activity",
                      extra={"activity_id": act.id, "activity": name})
    log.info("provenance activity recorded",
             extra={"activity_id": act.id, "activity": name,
                    "status": "failed" if error is not None else "completed",
                    "agent": agent.id if agent else None,
                    "seconds": round(time.perf_counter() - t0, 3), **act.counts(),
                    **({"error": f"{type(error).__name__}: {error}"} if error is not None else {})})
    if error is not None:
        raise error


def record_invalidation(target: Connection | Engine, entity_id: str, *, agent: Agent | None,
                        reason: str | None = None) -> str:
    """Record that a product was removed: an invalidation activity; its provenance stays.

    Returns the id of the invalidation activity.
    """
    with record_activity(target, name=f"remove {entity_id}", description=PRODUCT_REMOVAL,
                         agent=agent, comment=reason) as act:
        act.invalidate(entity_id, role="removed product")
    return act.id


def collection_entity(collection_id: str, name: str, **kw: object) -> Entity:
    return Entity(id=collection_id, name=name, type=COLLECTION_TYPE, **kw)  # type: ignore[arg-type]
