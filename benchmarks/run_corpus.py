#!/usr/bin/env python3
"""The public ADQL corpus against pzvo as `make run` serves it (`make corpus`).

Starts the service under gunicorn on a loopback port, runs ../shared/adql_corpus/run_corpus.py on
the adapted subset against bench.photoz (loaded with 1,000,000 rows by `make corpus`), with
--skip-heavy as the DaCHS reference figure was taken, and leaves the per-query results in
benchmarks/results/adql_corpus.json.

Usage: .venv/bin/python benchmarks/run_corpus.py [--all]   (--all: include the heavy queries)
"""
from __future__ import annotations

import subprocess
import sys

from _common import ROOT, service

CORPUS = ROOT.parent / "shared" / "adql_corpus"


def main() -> int:
    heavy = [] if "--all" in sys.argv else ["--skip-heavy"]
    out = ROOT / "benchmarks" / "results" / "adql_corpus.json"
    out.parent.mkdir(exist_ok=True)
    with service() as url:
        proc = subprocess.run([sys.executable, str(CORPUS / "run_corpus.py"), url + "/tap",
                               "--corpus", str(CORPUS / "photoz_adapted.json"),
                               "--table-map", "photoz=bench.photoz", *heavy, "--out", str(out)],
                              capture_output=True, text=True)
    summary = proc.stdout[proc.stdout.find("ADQL corpus"):]
    print(summary)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
