"""VOSI (capabilities, availability, tables) and DALI examples for the TAP service."""
from vo_service.vosi._handlers import vosi

__all__ = ["vosi"]
