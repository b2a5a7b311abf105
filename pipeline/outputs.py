"""What a pipeline run leaves behind: its result manifest, its progress events, and the
identity of each output file (the run's fingerprint and the input it was made from, in the
Parquet metadata), which both resuming a run and publishing it check."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.catalog import INPUT_KEY, input_identity

#: Parquet metadata key of the run fingerprint an output file was made with.
FINGERPRINT_KEY = b"pzvo.fingerprint"


@dataclass(frozen=True)
class Progress:
    """One step of a run: ``done`` of ``total`` partitions finished (skipped ones included)."""

    done: int
    total: int
    rows: int
    partition: str | None = None
    skipped: bool = False


ProgressHook = Callable[[Progress], None]


@dataclass
class RunResult:
    """What a run produced: the manifest a product registration and provenance record need."""

    release: str
    output_dir: Path
    data_dir: Path
    estimator: dict[str, Any]
    fingerprint: str
    inputs: dict[str, Any]
    partitions: int
    computed: int
    skipped: int
    rows: int
    seconds: float
    table_yaml: Path | None = None
    felis_yaml: Path | None = None
    quality: dict[str, Any] | None = None
    published: dict[str, Any] | None = None
    hats: dict[str, Any] | None = None  # the output as a HATS catalog, when the input is one
    run_id: str | None = None  # the job record's id (run.json, registry.pipeline_runs)
    partition_seconds: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}



def is_finished(path: Path, fingerprint: str, source: Path | None = None) -> bool:
    """True when ``path`` is a complete output of a run with this fingerprint (and, given
    ``source``, made from that input file as it is now: a replaced input is estimated again)."""
    if not path.exists():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    if meta.get(FINGERPRINT_KEY, b"").decode() != fingerprint:
        return False
    return source is None or meta.get(INPUT_KEY, b"").decode() == input_identity(source)
