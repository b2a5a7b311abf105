"""pzvo: photometric-redshift products for Rubin/LSST users, served through IVOA protocols."""
from __future__ import annotations

__version__ = "0.1.0"


def create_app(settings=None):  # noqa: ANN001, ANN201 - re-exported factory
    """Build the Flask application (see :func:`vo_service.app.create_app`)."""
    from vo_service.app import create_app as _create_app

    return _create_app(settings)
