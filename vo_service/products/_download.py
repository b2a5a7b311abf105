"""Product table downloads: text cells a spreadsheet would run as formulas are neutralised in CSV.

A product's text comes from its uploader; opened in a spreadsheet, a CSV cell such as
``=HYPERLINK("http://...")`` or ``@SUM(...)`` becomes a live formula on the reader's machine
(OWASP, "CSV Injection").  The product download is meant for people, so a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, which
spreadsheets show as text.  Only text columns are touched: numbers such as -1.5 stay numbers.
TAP's CSV output stays faithful to the data (clients parse it as data, not as a sheet).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from vo_service.tap import BatchTransform
from vo_service.tap.formats import OutputFormat

#: What a spreadsheet reads as the start of a formula (OWASP's list).
FORMULA_START = r"^[=+\-@\t\r]"


def download_transform(fmt: OutputFormat) -> BatchTransform | None:
    """The batch transform a product download in ``fmt`` streams through: CSV neutralises
    formula-like text cells, the other formats are written as they are."""
    return neutralise_batch if fmt.extension == "csv" else None


def neutralise_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every text cell that starts like a formula prefixed by ``'``."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            quoted = pc.binary_join_element_wise("'", column, "")
            column = pc.if_else(pc.match_substring_regex(column, FORMULA_START), quoted, column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)
