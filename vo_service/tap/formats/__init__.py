"""Result encoders for the TAP service: VOTable (BINARY2, BINARY, TABLEDATA), CSV, TSV, FITS,
Parquet and JSON.  Each encoder is a generator consuming Arrow record batches one at a time."""
from __future__ import annotations

from vo_service.tap.formats._binary import Base64Lines
from vo_service.tap.formats._registry import (
    OUTPUT_FORMATS,
    OutputFormat,
    UnknownFormatError,
    find_format,
)
from vo_service.tap.formats._votable import error_document

__all__ = [
    "OUTPUT_FORMATS",
    "Base64Lines",
    "OutputFormat",
    "UnknownFormatError",
    "error_document",
    "find_format",
]
