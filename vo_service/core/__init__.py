"""The bottom layer every package shares: settings, the column model and datatype map,
identifier rules, database engines and pools, database-error codes, logging.

Nothing here imports Flask or any other pzvo package (enforced by import-linter in
``make test``).
"""
from __future__ import annotations

__version__ = "0.1.0"
