#!/usr/bin/env python3
"""Make Debian's pgsphere 1.1.1 install script loadable on current PostgreSQL 15 releases.

``pg_sphere--1.2.0.sql`` declares two backward-compatibility operators, ``@(bigint, smoc)`` and
``@(spoint, smoc)``, with ``COMMUTATOR = '@>'`` and ``NEGATOR = '!<@'``.  PostgreSQL 15.8 and later
refuse that ("commutator operator @> is already the commutator of operator <@"), so
``CREATE EXTENSION pg_sphere`` fails.  Upstream pgsphere dropped those two clauses; this script
does the same to the installed file, only inside ``CREATE OPERATOR @ (...)`` blocks whose right
argument is ``smoc``.  It is idempotent: a patched file is left alone, and the original is kept
once as ``pg_sphere--1.2.0.sql.orig``.

Usage: patch_pgsphere.py [--check] [PATH]   (default: the file under `pg_config --sharedir`/extension)
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

_BLOCK = re.compile(r"CREATE OPERATOR @ \((?P<body>[^;]*?)\);", re.S)


def patch_text(sql: str) -> tuple[str, int]:
    """Return the patched script and how many operator blocks changed."""
    changed = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal changed
        body = match.group("body")
        if not re.search(r"RIGHTARG\s*=\s*smoc", body):
            return match.group(0)
        lines = [ln for ln in body.splitlines(keepends=True)
                 if not re.match(r"\s*(COMMUTATOR|NEGATOR)\s*=", ln)]
        if len(lines) == len(body.splitlines(keepends=True)):
            return match.group(0)
        changed += 1
        return "CREATE OPERATOR @ (" + "".join(lines) + ");"

    return _BLOCK.sub(fix, sql), changed


def default_path() -> Path:
    for pg_config in ("/usr/lib/postgresql/15/bin/pg_config", "pg_config"):
        try:
            share = subprocess.run([pg_config, "--sharedir"], check=True, capture_output=True,
                                   text=True).stdout.strip()
            return Path(share) / "extension" / "pg_sphere--1.2.0.sql"
        except (OSError, subprocess.CalledProcessError):
            continue
    return Path("/usr/share/postgresql/15/extension/pg_sphere--1.2.0.sql")


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    path = Path(argv[1]) if len(argv) > 1 else default_path()
    if not path.exists():
        print(f"patch_pgsphere: {path} not found (pgsphere not installed?)", file=sys.stderr)
        return 1
    text = path.read_text()
    patched, changed = patch_text(text)
    if not changed:
        print(f"patch_pgsphere: {path} needs no change")
        return 0
    if check_only:
        print(f"patch_pgsphere: {path} still has the smoc COMMUTATOR/NEGATOR clauses; "
              "run scripts/patch_pgsphere.py as root", file=sys.stderr)
        return 1
    backup = path.with_name(path.name + ".orig")
    if not backup.exists():
        shutil.copy2(path, backup)
    path.write_text(patched)
    print(f"patch_pgsphere: removed COMMUTATOR/NEGATOR from {changed} smoc operator(s) in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
