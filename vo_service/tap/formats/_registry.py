"""The RESPONSEFORMAT values the service accepts and the encoder each selects."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import pyarrow as pa

from vo_service.core.columns import Column
from vo_service.tap.formats._fits import encode_fits
from vo_service.tap.formats._json import encode_json
from vo_service.tap.formats._parquet import encode_parquet
from vo_service.tap.formats._text import encode_csv, encode_tsv
from vo_service.tap.formats._votable import NO_INFOS, encode_votable
from vo_service.tap.results import ResultStatus

Encoder = Callable[..., Iterator[bytes]]


class UnknownFormatError(ValueError):
    """RESPONSEFORMAT names no format this service writes."""


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its names, HTTP metadata and encoder."""

    key: str
    mime_type: str
    aliases: tuple[str, ...]
    extension: str
    description: str
    encoder: Encoder = field(repr=False, compare=False)

    def encode(
        self,
        fields: Sequence[Column],
        batches: Iterable[pa.RecordBatch],
        status: ResultStatus,
        *,
        infos: Mapping[str, str] = NO_INFOS,
    ) -> Iterator[bytes]:
        """Yield the response body in chunks, consuming ``batches`` one at a time."""
        return self.encoder(fields, batches, status, infos=infos)


_VOT = "application/x-votable+xml"

OUTPUT_FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat(
        "votable",
        _VOT,
        ("votable", _VOT, "text/xml", "vot"),
        "vot",
        "VOTable 1.4, BINARY2 serialization (NULLs in a per-row bitmask)",
        partial(encode_votable, serialization="binary2"),
    ),
    OutputFormat(
        "votable/b2",
        f"{_VOT};serialization=binary2",
        ("votable/b2", f"{_VOT};serialization=binary2", "binary2", "votableb2", "votable/binary2"),
        "vot",
        "VOTable 1.4, BINARY2 serialization",
        partial(encode_votable, serialization="binary2"),
    ),
    OutputFormat(
        "votable/b",
        f"{_VOT};serialization=binary",
        ("votable/b", f"{_VOT};serialization=binary", "binary", "votableb", "votable/binary"),
        "vot",
        "VOTable 1.4, BINARY serialization (integer NULLs as declared VALUES null)",
        partial(encode_votable, serialization="binary"),
    ),
    OutputFormat(
        "votable/td",
        f"{_VOT};serialization=tabledata",
        ("votable/td", f"{_VOT};serialization=tabledata", "tabledata", "votabletd", "votable/tabledata"),
        "vot",
        "VOTable 1.4, TABLEDATA (XML) serialization",
        partial(encode_votable, serialization="tabledata"),
    ),
    OutputFormat(
        "csv",
        "text/csv;header=present",
        ("csv", "text/csv", "text/csv;header=present"),
        "csv",
        "Comma-separated values (RFC 4180) with a header line",
        encode_csv,
    ),
    OutputFormat(
        "tsv",
        "text/tab-separated-values",
        ("tsv", "text/tab-separated-values", "text/tsv"),
        "tsv",
        "Tab-separated values with a header line",
        encode_tsv,
    ),
    OutputFormat(
        "fits",
        "application/fits",
        ("fits", "application/fits", "image/fits", "application/x-fits"),
        "fits",
        "FITS binary table",
        encode_fits,
    ),
    OutputFormat(
        "parquet",
        "application/vnd.apache.parquet",
        ("parquet", "application/vnd.apache.parquet", "application/x-parquet"),
        "parquet",
        "Apache Parquet with VOTable metadata in the Arrow field metadata",
        encode_parquet,
    ),
    OutputFormat(
        "json",
        "application/json",
        ("json", "application/json"),
        "json",
        "JSON: column descriptions, rows as arrays, overflow flag",
        encode_json,
    ),
)


def _normalize(value: str) -> str:
    parts = [p.strip() for p in value.strip().lower().split(";")]
    params = []
    for p in parts[1:]:
        if not p:
            continue
        key, sep, val = p.partition("=")
        params.append(f"{key.strip()}{sep}{val.strip().strip(chr(34))}")
    return ";".join([re.sub(r"\s+", "", parts[0])] + params)


_BY_ALIAS: dict[str, OutputFormat] = {}
for _fmt in OUTPUT_FORMATS:
    for _alias in (_fmt.key, _fmt.mime_type, *_fmt.aliases):
        _BY_ALIAS.setdefault(_normalize(_alias), _fmt)


def find_format(value: str | None) -> OutputFormat:
    """The format a RESPONSEFORMAT value names; the default (VOTable BINARY2) when empty."""
    if value is None or not value.strip():
        return OUTPUT_FORMATS[0]
    found = _BY_ALIAS.get(_normalize(value))
    if found is None:
        accepted = ", ".join(sorted({a for f in OUTPUT_FORMATS for a in (f.key, *f.aliases)}))
        raise UnknownFormatError(f"unsupported RESPONSEFORMAT {value!r}; accepted values: {accepted}")
    return found
