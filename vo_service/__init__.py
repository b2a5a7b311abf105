"""pzvo: photometric-redshift products for Rubin/LSST users, served through IVOA protocols.

The Flask application is built by :func:`vo_service.app.create_app` from the services of
:mod:`vo_service.services`; docs/architecture.md describes the packages and their layers.
"""
from __future__ import annotations

from vo_service.core import __version__

__all__ = ["__version__"]
