"""Run the ``pzvo`` command line in this process: ``vo_service.cli.main`` with an argv and an
environment, its exit code and output captured as a subprocess would give them.

The console script ``pzvo`` is ``vo_service.cli:main``, so this is the same entry point without
a fresh interpreter per command (about 2 s of imports each); ``tests/test_setup.py`` and
``tests/test_auth.py`` still run the installed script as a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping

from vo_service.cli import main


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_pzvo(env: Mapping[str, str], *argv: str) -> subprocess.CompletedProcess:
    """``pzvo ARGV`` with exactly ``env`` as its environment."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []  # the command's own JSON log lines go to its (captured) stderr
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess(["pzvo", *argv], code, out.getvalue(), err.getvalue())
