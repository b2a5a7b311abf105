"""Domain types of provenance capture: descriptions, agents, entities, and the identifier rules.

Identifiers are PROV qualified names in the ``pzvo`` namespace, stable and documented in
``docs/provenance.md``:

- ``pzvo:table/<schema>.<table>`` a published table; a table loaded again under the same name
  gets ``pzvo:table/<schema>.<table>@<n>`` (n = 2, 3, ...) and the previous one is invalidated;
- ``pzvo:file/<sha256 hex>`` a file, by content;
- ``pzvo:collection/<name>`` a collection (``prov:Collection``) of entities;
- ``pzvo:activity/<uuid>`` an activity;
- ``pzvo:user/<name>`` a person, ``pzvo:software/<name>`` a program, ``pzvo:org/<name>`` an
  organization;
- ``pzvo:activitydescription/<name>/<version>`` (and ``.../usage/<role>``,
  ``.../generation/<role>``, ``.../parameter/<name>`` below it), ``pzvo:entitydescription/<name>``.

The local part is restricted to characters that PROV-N, PROV-XML and URLs take unescaped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from vo_service.provenance._exceptions import InvalidIdentifierError

NAMESPACE_PREFIX = "pzvo"
_ID = re.compile(r"^pzvo:[A-Za-z0-9_][A-Za-z0-9_.\-/@~+]*$")
_SLUG = re.compile(r"[^A-Za-z0-9_.\-]+")

AGENT_TYPES = ("Individual", "Organization", "Software")
TABLE_TYPE = "pzvo:Table"
FILE_TYPE = "pzvo:File"
PRODUCT_TYPE = "pzvo:Product"
COLLECTION_TYPE = "prov:Collection"


def check_id(value: str) -> str:
    """Return ``value`` if it is a valid pzvo identifier, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not _ID.match(value) or value.endswith("."):
        raise InvalidIdentifierError(
            f"invalid provenance identifier {value!r}: expected pzvo:<local part> with letters, "
            "digits and _ . - / @ ~ + (see docs/provenance.md)")
    return value


def slug(text: str) -> str:
    """A name made safe for the local part of an identifier."""
    cleaned = _SLUG.sub("-", text.strip()).strip("-.")
    return cleaned or "unnamed"


def table_entity_id(qualified_name: str, version: int = 1) -> str:
    """``pzvo:table/pz.photoz_demo`` (version 1) or ``pzvo:table/pz.photoz_demo@3``."""
    base = f"pzvo:table/{slug(qualified_name)}"
    return check_id(base if version <= 1 else f"{base}@{version}")


def file_entity_id(sha256_hex: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256_hex):
        raise InvalidIdentifierError(f"not a lower-case sha256 hex digest: {sha256_hex!r}")
    return f"pzvo:file/{sha256_hex}"


def product_entity_id(name: str, version: int) -> str:
    """``pzvo:product/<name>@<version>``: a file product's own entity.  Files are identified by
    content, so two products may share one file entity; deleting one must not invalidate the
    other's."""
    return check_id(f"pzvo:product/{slug(name)}@{version}")


def collection_entity_id(name: str) -> str:
    return check_id(f"pzvo:collection/{slug(name)}")


def user_agent_id(name: str) -> str:
    return check_id(f"pzvo:user/{slug(name)}")


@dataclass(frozen=True)
class EntityDescription:
    """ProvenanceDM EntityDescription: what a kind of entity is."""

    id: str
    name: str
    description: str | None = None
    doculink: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class ParameterDescription:
    """ProvenanceDM ParameterDescription: a parameter of a method, with its unit and UCD."""

    name: str
    value_type: str = "char"
    description: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    min_value: str | None = None
    max_value: str | None = None
    default_value: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageDescription:
    """ProvenanceDM UsageDescription: a role in which a method uses entities."""

    role: str
    description: str | None = None
    type: str | None = None
    multiplicity: str | None = "1"
    entity_description: EntityDescription | None = None


@dataclass(frozen=True)
class GenerationDescription:
    """ProvenanceDM GenerationDescription: a role in which a method generates entities."""

    role: str
    description: str | None = None
    type: str | None = None
    multiplicity: str | None = "1"
    entity_description: EntityDescription | None = None


@dataclass(frozen=True)
class ActivityDescription:
    """ProvenanceDM ActivityDescription: a method, shared by every activity that applies it.

    Stored once (its id is immutable: change ``version`` when the method changes).
    """

    id: str
    name: str
    version: str | None = None
    description: str | None = None
    type: str | None = None
    subtype: str | None = None
    doculink: str | None = None
    parameters: tuple[ParameterDescription, ...] = ()
    usages: tuple[UsageDescription, ...] = ()
    generations: tuple[GenerationDescription, ...] = ()

    def __post_init__(self) -> None:
        check_id(self.id)

    def parameter(self, name: str) -> ParameterDescription | None:
        return next((p for p in self.parameters if p.name == name), None)

    def usage(self, role: str | None) -> UsageDescription | None:
        return next((u for u in self.usages if u.role == role), None)

    def generation(self, role: str | None) -> GenerationDescription | None:
        return next((g for g in self.generations if g.role == role), None)

    def parameter_id(self, name: str) -> str:
        return f"{self.id}/parameter/{slug(name)}"

    def usage_id(self, role: str) -> str:
        return f"{self.id}/usage/{slug(role)}"

    def generation_id(self, role: str) -> str:
        return f"{self.id}/generation/{slug(role)}"


@dataclass(frozen=True)
class Agent:
    """ProvenanceDM Agent: a person (Individual), an Organization or Software."""

    id: str
    name: str
    type: str = "Individual"
    email: str | None = None
    affiliation: str | None = None
    url: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        check_id(self.id)
        if self.type not in AGENT_TYPES:
            raise InvalidIdentifierError(f"agent type must be one of {AGENT_TYPES}, not {self.type!r}")


@dataclass(frozen=True)
class Entity:
    """ProvenanceDM Entity as the capture API takes it (for inputs that may not be recorded yet)."""

    id: str
    name: str
    type: str | None = None
    location: str | None = None
    checksum: str | None = None
    content_type: str | None = None
    comment: str | None = None
    description: EntityDescription | None = None

    def __post_init__(self) -> None:
        check_id(self.id)


@dataclass
class GraphRequest:
    """What to traverse: seeds, depth (None = ALL), direction, and what to include."""

    ids: list[str]
    depth: int | None = 1
    direction: str = "BACK"
    members: bool = False
    agents: bool = False


@dataclass
class ProvGraph:
    """A traversal's answer: the records of each ProvenanceDM class, as dicts of column values."""

    request: GraphRequest
    entity: list[dict] = field(default_factory=list)
    activity: list[dict] = field(default_factory=list)
    agent: list[dict] = field(default_factory=list)
    used: list[dict] = field(default_factory=list)
    wasgeneratedby: list[dict] = field(default_factory=list)
    wasderivedfrom: list[dict] = field(default_factory=list)
    wasinformedby: list[dict] = field(default_factory=list)
    wasassociatedwith: list[dict] = field(default_factory=list)
    wasattributedto: list[dict] = field(default_factory=list)
    hadmember: list[dict] = field(default_factory=list)
    wasinvalidatedby: list[dict] = field(default_factory=list)
    parameter: list[dict] = field(default_factory=list)

    NODE_CLASSES = ("entity", "activity", "agent")
    RELATION_CLASSES = ("used", "wasgeneratedby", "wasderivedfrom", "wasinformedby",
                        "wasassociatedwith", "wasattributedto", "hadmember", "wasinvalidatedby")

    @property
    def node_count(self) -> int:
        return len(self.entity) + len(self.activity) + len(self.agent)

    def node_ids(self) -> dict[str, list[str]]:
        return {cls: [r["id"] for r in getattr(self, cls)] for cls in self.NODE_CLASSES}
