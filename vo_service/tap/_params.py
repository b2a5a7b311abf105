"""TAP/DALI request parameters: case-insensitive names, validated into one typed object."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vo_service.tap._exceptions import UsageError
from vo_service.tap._uploads import UploadSpec, parse_upload_param
from vo_service.tap.formats import OutputFormat, UnknownFormatError, find_format

LANGUAGES = {"adql": "2.1", "adql-2.0": "2.0", "adql-2.1": "2.1"}


@dataclass(frozen=True)
class QueryParams:
    query: str
    lang: str
    adql_version: str
    maxrec: int
    format: OutputFormat
    uploads: tuple[UploadSpec, ...] = ()
    """UPLOAD items; the tables themselves come with the request (or from allowed URLs)."""

    @classmethod
    def adql(cls, query: str, *, maxrec: int,
             format: OutputFormat | str | None = None) -> QueryParams:  # TAP's name
        """A query the service builds itself (product downloads and pages): ADQL 2.1, no uploads,
        ``format`` an :class:`OutputFormat` or a RESPONSEFORMAT value (VOTable when None)."""
        fmt = format if isinstance(format, OutputFormat) else find_format(format)
        return cls(query=query, lang="ADQL", adql_version=LANGUAGES["adql"], maxrec=maxrec,
                   format=fmt)


def merge_params(*sources: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Combine query-string and form parameters with names folded to lower case (DALI 1.1)."""
    merged: dict[str, list[str]] = {}
    for source in sources:
        for key, values in source.items():
            merged.setdefault(key.lower(), []).extend(values)
    return merged


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = [v for v in params.get(name, []) if v is not None]
    if not values:
        return None
    if len(set(values)) > 1:
        raise UsageError(f"Parameter {name.upper()} was given {len(values)} different values; "
                         "give it once.")
    return values[0]


def parse_query_params(params: Mapping[str, list[str]], *, maxrec_default: int,
                       maxrec_limit: int) -> QueryParams:
    """Validate a TAP query request; raise :class:`UsageError` with an actionable message."""
    request = _single(params, "request")
    if request is not None and request.lower() != "doquery":
        raise UsageError(f"REQUEST={request} is not supported; use REQUEST=doQuery (or omit it).")
    lang = _single(params, "lang")
    if lang is None:
        raise UsageError("LANG is missing; this service speaks LANG=ADQL (ADQL-2.0, ADQL-2.1).")
    version = LANGUAGES.get(lang.strip().lower())
    if version is None:
        raise UsageError(f"LANG={lang} is not supported; use ADQL, ADQL-2.0 or ADQL-2.1.")
    query = _single(params, "query")
    if query is None or not query.strip():
        raise UsageError("QUERY is missing or empty; send an ADQL query in QUERY.")
    raw_maxrec = _single(params, "maxrec")
    if raw_maxrec is None or raw_maxrec.strip() == "":
        maxrec = maxrec_default
    else:
        try:
            maxrec = int(raw_maxrec.strip())
        except ValueError:
            raise UsageError(f"MAXREC={raw_maxrec!r} is not an integer; give a number of rows "
                             f"from 0 to {maxrec_limit}.") from None
        if maxrec < 0:
            raise UsageError(f"MAXREC={maxrec} is negative; give a number of rows from 0 to "
                             f"{maxrec_limit}.")
        maxrec = min(maxrec, maxrec_limit)
    fmt_value = _single(params, "responseformat") or _single(params, "format")
    try:
        fmt = find_format(fmt_value)
    except UnknownFormatError as exc:
        raise UsageError(str(exc)) from None
    uploads = parse_upload_param(v for v in params.get("upload", []) if v)
    return QueryParams(query=query, lang=lang, adql_version=version, maxrec=maxrec, format=fmt,
                       uploads=uploads)
