#!/usr/bin/env python3
"""Run every benchmark (`make bench`), print their tables and keep them in benchmarks/results/.

The figures in docs/performance.md come from these outputs; each script's docstring says what
it measures.  `make bench` first loads bench.photoz with 1,000,000 rows.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_adql.py", "bench_encoders.py", "bench_fetch.py", "bench_tap.py", "bench_front.py", "bench_ingest.py",
           "bench_provenance.py", "run_corpus.py", "bench_pipeline.py", "bench_pit_seeds.py", "bench_zphot_rule.py",
           "bench_tsm_combine.py", "bench_tsm_crossmatch.py", "bench_federate.py", "bench_crossmatch.py",
           "bench_coop_validate.py"]


def main() -> int:
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "machine.json").write_text(json.dumps(machine(), indent=1))
    print("machine:", machine())
    failed = []
    for script in SCRIPTS:
        print(f"\n== {script}", flush=True)
        extra = ["--json", str(out_dir / "tap.json")] if script == "bench_tap.py" else []
        proc = subprocess.run([sys.executable, str(HERE / script), *extra], capture_output=True,
                              text=True, cwd=HERE.parent)
        print(proc.stdout, end="")
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            failed.append(script)
        (out_dir / f"{Path(script).stem}.txt").write_text(proc.stdout)
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
