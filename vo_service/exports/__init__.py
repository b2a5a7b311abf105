"""Published tables in the forms a federating site (the Rubin Science Platform) loads.

``pzvo export felis TABLE`` writes the table's description as a Rubin felis schema (validated
with lsst-felis), ``pzvo export parquet TABLE DIR`` its rows as Parquet files with the TAP
column names and types, and ``pzvo export hats TABLE DIR`` a HATS catalog made from those files
by hats-import.  Any table TAP_SCHEMA lists can be exported, not only the pipeline's outputs.

The package sits above ``vo_service.services`` and ``pipeline``: it reads TAP_SCHEMA and streams
rows through the services the CLI gives it, and shares the pipeline's Object-key felis form.
:mod:`vo_service.exports.cli` imports nothing heavy, because every ``pzvo`` command builds its
parser.
"""
from __future__ import annotations

__all__: list[str] = []
