"""Provenance of pzvo products: IVOA ProvenanceDM 1.0 records in the ``provenance`` schema.

The domain layer (no web imports): capture (:func:`record_activity`), identifiers and
description types, graph traversal (:class:`ProvenanceService`) and serialization (W3C PROV via
the ``prov`` package, PROV-VOTABLE, Graphviz).  The HTTP side (``/prov``, the graph page) is
``vo_service.provenance._handlers``.  The model as applied to PZ products: docs/provenance.md.
"""
from __future__ import annotations

from vo_service.provenance._capture import (
    PRODUCT_REMOVAL,
    ActivityRecorder,
    collection_entity,
    file_entity,
    next_entity_version,
    record_activity,
    record_invalidation,
    sha256_file,
    user_agent,
)
from vo_service.provenance._exceptions import (
    EntityExistsError,
    GraphTooLargeError,
    InvalidIdentifierError,
    InvalidParameterError,
    ProvenanceError,
    UnknownRecordError,
)
from vo_service.provenance._handlers import provenance
from vo_service.provenance._models import (
    COLLECTION_TYPE,
    FILE_TYPE,
    PRODUCT_TYPE,
    TABLE_TYPE,
    ActivityDescription,
    Agent,
    Entity,
    EntityDescription,
    GenerationDescription,
    GraphRequest,
    ParameterDescription,
    ProvGraph,
    UsageDescription,
    check_id,
    collection_entity_id,
    file_entity_id,
    product_entity_id,
    table_entity_id,
    user_agent_id,
)
from vo_service.provenance._serialize import serialize, to_document
from vo_service.provenance._service import ProvenanceService

__all__ = [
    "provenance",
    "COLLECTION_TYPE", "FILE_TYPE", "PRODUCT_REMOVAL", "PRODUCT_TYPE", "TABLE_TYPE", "ActivityDescription",
    "ActivityRecorder", "Agent", "Entity", "EntityDescription", "EntityExistsError",
    "GenerationDescription", "GraphRequest", "GraphTooLargeError", "InvalidIdentifierError",
    "InvalidParameterError", "ParameterDescription", "ProvGraph", "ProvenanceError",
    "ProvenanceService", "UnknownRecordError", "UsageDescription", "check_id",
    "collection_entity", "collection_entity_id", "file_entity", "file_entity_id",
    "next_entity_version", "product_entity_id", "record_activity", "record_invalidation", "serialize", "sha256_file",
    "table_entity_id", "to_document", "user_agent", "user_agent_id",
]
