"""ProvSAP-style request parameters: ID (repeatable), DEPTH, DIRECTION, MEMBERS, AGENT,
RESPONSEFORMAT.  Names are case-insensitive (DALI); values are checked here, before any query."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from vo_service.provenance._exceptions import InvalidParameterError
from vo_service.provenance._models import GraphRequest, check_id
from vo_service.provenance._serialize import FORMATS

MAX_IDS = 100
DEFAULTS = {"DEPTH": "1", "DIRECTION": "BACK", "MEMBERS": "false", "AGENT": "false",
            "RESPONSEFORMAT": "PROV-JSON"}
_TRUE = {"true", "1", "yes", "t", "on"}
_FALSE = {"false", "0", "no", "f", "off", ""}


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidParameterError(f"{name} must be true or false, not {value!r}")


def parse_depth(value: str) -> int | None:
    """An integer >= 0, or None for ALL."""
    v = value.strip()
    if v.upper() == "ALL":
        return None
    try:
        depth = int(v)
    except ValueError:
        raise InvalidParameterError(f"DEPTH must be a non-negative integer or ALL, not {value!r}") from None
    if depth < 0:
        raise InvalidParameterError(f"DEPTH must be a non-negative integer or ALL, not {value!r}")
    return depth


def parse_direction(value: str) -> str:
    v = value.strip().upper()
    if v not in ("BACK", "FORTH"):
        raise InvalidParameterError(f"DIRECTION must be BACK or FORTH, not {value!r}")
    return v


def parse_format(value: str) -> str:
    try:
        return FORMATS[value.strip().upper()][0]
    except KeyError:
        known = sorted({canonical for canonical, _ in FORMATS.values()})
        raise InvalidParameterError(
            f"unknown RESPONSEFORMAT {value!r}; use one of {', '.join(known)}") from None


def mime_type(fmt: str) -> str:
    return next(mime for canonical, mime in FORMATS.values() if canonical == fmt)


def parse_provsap(params: Mapping[str, Sequence[str]]) -> tuple[GraphRequest, str]:
    """Read a request's parameters (name -> values) into a graph request and a format."""
    upper: dict[str, list[str]] = {}
    for name, values in params.items():
        upper.setdefault(name.upper(), []).extend(values)
    ids = [i for v in upper.get("ID", []) for i in [v.strip()] if i]
    if not ids:
        raise InvalidParameterError("ID is required (one or more, e.g. ID=pzvo:table/pz.photoz_demo)")
    if len(ids) > MAX_IDS:
        raise InvalidParameterError(f"at most {MAX_IDS} ID values per request")
    for value in ids:
        check_id(value)

    def one(name: str) -> str:
        values = upper.get(name) or [DEFAULTS[name]]
        if len(values) > 1:
            raise InvalidParameterError(f"{name} given more than once")
        return values[0]

    req = GraphRequest(ids=list(dict.fromkeys(ids)), depth=parse_depth(one("DEPTH")),
                       direction=parse_direction(one("DIRECTION")),
                       members=_flag("MEMBERS", one("MEMBERS")), agents=_flag("AGENT", one("AGENT")))
    return req, parse_format(one("RESPONSEFORMAT"))
