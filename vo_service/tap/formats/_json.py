"""JSON encoder: ``{"columns": [...], "data": [[...], ...], "overflow": bool, "rows": n}``.

When the database fails after the first rows, the document ends with an ``"error"`` member
(the message), as a VOTable ends with QUERY_STATUS=ERROR: ``data`` is then incomplete.

Cells are turned into JSON text column-wise (see ``_textcells``) and rows joined with Arrow
compute, so the data streams batch by batch without building Python objects per value.
NULL, NaN and infinities are ``null``; arrays are JSON arrays; timestamps ISO 8601 strings.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa

from vo_service.core.columns import Column
from vo_service.tap.formats._columns import normalize, peek, resolve_specs
from vo_service.tap.formats._textcells import cell_text, join_rows
from vo_service.tap.formats._votable import NO_INFOS
from vo_service.tap.results import ResultStatus

_COLUMN_KEYS = ("name", "datatype", "arraysize", "xtype", "unit", "ucd", "description")


def encode_json(
    fields: Sequence[Column],
    batches: Iterable[pa.RecordBatch],
    status: ResultStatus,
    *,
    infos: Mapping[str, str] = NO_INFOS,
) -> Iterator[bytes]:
    """Stream the JSON document; ``overflow`` and ``rows`` follow the data as they are final only then."""
    first, batches = peek(batches)
    specs = resolve_specs(fields, first)
    columns = [{key: getattr(s.field, key) for key in _COLUMN_KEYS} for s in specs]
    head = '{"columns": ' + json.dumps(columns, ensure_ascii=False)
    if infos:
        head += ', "infos": ' + json.dumps(dict(infos), ensure_ascii=False)
    yield (head + ', "data": [\n').encode("utf-8")
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        cells = [cell_text(normalize(batch.column(i), s), s, "json") for i, s in enumerate(specs)]
        chunk = join_rows(cells, ",", "[", "],\n") if cells else b"[],\n" * batch.num_rows
        yield (b",\n" if rows else b"") + chunk[:-2]
        rows += batch.num_rows
    tail: dict[str, object] = {"overflow": bool(status.overflow), "rows": rows}
    if status.error:
        tail["error"] = status.error
    if status.infos:
        tail["infos"] = dict(status.infos)
    yield ("\n], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n").encode("utf-8")
