"""The TAP 1.1 protocol: sync queries, uploads, ADQL translation, output formats.

Async queries (UWS) are in :mod:`vo_service.uws`, which runs them through this package."""
from vo_service.tap._handlers import tap

__all__ = ["tap"]
