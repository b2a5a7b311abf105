"""The code rules of docs/architecture.md, checked with the configuration in pyproject.toml.

ruff: the rule set of ``[tool.ruff]`` over every package, the tests and the benchmarks; every
``noqa`` names a rule that is enabled and violated there (RUF100), and an import inside a
function names the heavy optional dependency it defers (PLC0415, docs/architecture.md).

import-linter: the contracts of ``[tool.importlinter]`` (layers, Flask-free domain, private
modules, no cycles).

mypy: every package type-checks, the core and tap packages with every function annotated
(``[tool.mypy]``).  It runs as ``make test`` runs it, from the project root with its cache in
``.mypy_cache``: about 25 s on a fresh clone, about 1 s once the cache is warm.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The venv's scripts (``lint-imports`` has no ``python -m`` entry point).
BIN = Path(sys.executable).parent


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_ruff() -> None:
    """``ruff check`` (the paths and rules of ``[tool.ruff]``) reports nothing."""
    proc = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise"], 120)
    assert proc.returncode == 0, f"ruff found problems:\n{proc.stdout}{proc.stderr}"


def test_import_contracts() -> None:
    """``lint-imports``: every contract of ``[tool.importlinter]`` is kept."""
    proc = _run([str(BIN / "lint-imports"), "--no-cache"], 120)
    assert proc.returncode == 0, f"import contracts broken:\n{proc.stdout}{proc.stderr}"


def test_mypy() -> None:
    """``mypy`` (the packages listed in ``[tool.mypy]``) reports no error."""
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=540, check=False)
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}{proc.stderr}"
