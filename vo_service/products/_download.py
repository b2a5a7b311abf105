"""Product table downloads: text cells a spreadsheet would run as formulas are neutralised in CSV.

A product's text comes from its uploader; opened in a spreadsheet, a CSV cell such as
``=HYPERLINK("http://...")`` or ``@SUM(...)`` becomes a live formula on the reader's machine
(OWASP, "CSV Injection").  The product download is meant for people, so a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, which
spreadsheets show as text.  Only text columns are touched: numbers such as -1.5 stay numbers.
TAP's CSV output stays faithful to the data (clients parse it as data, not as a sheet).
"""
from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

#: What a spreadsheet reads as the start of a formula (OWASP's list).
FORMULA_START = r"^[=+\-@\t\r]"


class NeutralisedBatches:
    """The batches with formula-like text cells prefixed by ``'``.

    An iterator with ``close`` (not a generator, whose ``close`` does nothing before its first
    item), so that closing it early, as ``response_body`` does on an error, closes the query's
    batches and returns their connection.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches

    def __iter__(self) -> NeutralisedBatches:
        return self

    def __next__(self) -> pa.RecordBatch:
        return neutralise_batch(next(self._batches))

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


def neutralise_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            quoted = pc.binary_join_element_wise("'", column, "")
            column = pc.if_else(pc.match_substring_regex(column, FORMULA_START), quoted, column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)
