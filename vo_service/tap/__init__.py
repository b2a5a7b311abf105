"""The TAP 1.1 protocol: sync queries, ADQL translation, output formats."""
from vo_service.tap._handlers import tap

__all__ = ["tap"]
