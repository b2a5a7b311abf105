"""What the service's VOResource record says about itself, apart from capabilities and tables.

The identifier, curation and dates come from settings (an operator registers the service under
an authority of their own); the prose is fixed here, once, so that every deployment describes
the same service the same way.  No Flask: the HTTP layer only renders the record.
"""
from __future__ import annotations

from dataclasses import dataclass

from vo_service.core.settings import Settings

TITLE = "pzvo: Rubin/LSST photometric-redshift products (TAP)"
SHORT_NAME = "pzvo TAP"
DESCRIPTION = (
    "Photometric-redshift (photo-z) products for Rubin Observatory LSST data: per-object "
    "photo-z tables from the photo-z pipeline's estimators, with their training and validation "
    "sets and spectroscopic-redshift reference catalogs, served through TAP 1.1 with ADQL 2.1. "
    "Tables keyed by the LSST Object catalog's objectId can be joined with the Rubin Science "
    "Platform's catalogs, e.g. by uploading a result of one service as TAP_UPLOAD to the other.")
#: Unified Astronomy Thesaurus terms (VOResource 1.1 recommends UAT for content/subject).
SUBJECTS = ("Photometric redshift", "Redshift surveys", "Galaxies", "Sky surveys")
PUBLIC_RIGHTS = "public: anonymous users may query every published table"
TOKEN_RIGHTS = "proprietary: queries need a bearer token (an RSP or pzvo account)"


@dataclass(frozen=True)
class ResourceRecord:
    """The header of the record: everything but the capabilities and the tableset."""

    identifier: str
    title: str
    short_name: str
    publisher: str
    contact_email: str
    created: str
    updated: str
    subjects: tuple[str, ...]
    description: str
    reference_url: str
    rights: str


def resource_record(settings: Settings, reference_url: str) -> ResourceRecord:
    """The record's header for this deployment; ``reference_url`` is the human-readable page of
    the service (its address depends on the request, behind a proxy too).

    ``updated`` is never before ``created``: a registry refuses such a record."""
    created = settings.registry_created
    updated = max(created, settings.registry_updated or created)
    return ResourceRecord(
        identifier=settings.registry_identifier, title=TITLE, short_name=SHORT_NAME,
        publisher=settings.registry_publisher, contact_email=settings.registry_contact_email,
        created=created, updated=updated, subjects=SUBJECTS, description=DESCRIPTION,
        reference_url=reference_url,
        rights=PUBLIC_RIGHTS if settings.public_read else TOKEN_RIGHTS)
