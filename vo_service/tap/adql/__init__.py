"""ADQL 2.0/2.1 to PostgreSQL + pg_sphere.

Why sqlglot
    ADQL is SQL-92 plus TOP, geometry and a few 2.1 additions, so a mature SQL parser does most
    of the work: sqlglot parses into a typed syntax tree with token positions, is pure Python
    with no runtime code generation, and translates a simple query in about 0.3 ms (an ANTLR
    grammar in Python, as in queryparser, takes 20-80 ms; see ``docs/adql.md``).

How it is made strict
    A generic parser accepts far more than ADQL (measured: the stock T-SQL reader accepts 42 of
    the corpus' 72 invalid queries).  pzvo narrows it in three places, each able to say where
    the problem is: ``_dialect`` defines ADQL's tokens (only ``'...'`` strings, ``"..."``
    identifiers, ``--`` comments, ADQL's operators) and token-order rules; the parser builds
    typed nodes only for aggregates, CAST, COALESCE and CASE; and ``_translate`` walks the tree
    with an allow-list of node types and of functions (:data:`SUPPORTED_FEATURES`), checking
    every table and column against the :class:`~vo_service.tap.catalog.Catalog` and typing
    every expression (number, string, geometry, condition) as it builds the PostgreSQL tree.
"""
from __future__ import annotations

from vo_service.tap.adql._errors import AdqlError, AdqlSemanticError, AdqlSyntaxError
from vo_service.tap.adql._features import (
    FUNCTIONS,
    SUPPORTED_FEATURES,
    FunctionSpec,
    LanguageFeature,
)
from vo_service.tap.adql._translate import TranslatedQuery, translate_adql

__all__ = [
    "AdqlError", "AdqlSemanticError", "AdqlSyntaxError", "FUNCTIONS", "FunctionSpec",
    "LanguageFeature", "SUPPORTED_FEATURES", "TranslatedQuery", "translate_adql",
]
