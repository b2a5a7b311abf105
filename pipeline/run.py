"""Run a photo-z estimator over a whole object catalog with Dask.

One Dask task per input Parquet file, each writing one output Parquet file with the same
relative path, so the work scales from this machine's ``LocalCluster`` (one single-threaded
worker process per core) to any cluster given by its scheduler address, without code changes.
The trained estimator is scattered once to every worker (``broadcast=True``) and tasks take the
future, so a model is not pickled into every task.

Resuming: an output file is written under a temporary name and renamed when complete, and it
carries the run's fingerprint (estimator name, version, parameters, training set digest,
release) in its Parquet metadata.  A rerun skips every partition whose output exists with the
same fingerprint, so a killed run loses at most the partitions in flight, and a changed
estimator or training set recomputes everything.

Progress goes to hooks (:data:`ProgressHook`): the CLI's progress bar and the job record
(``run.json`` in the output directory, rewritten after every partition), which is where the
registry's job/product record will read it from.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dask.distributed import Client, LocalCluster, as_completed
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from pipeline.catalog import (
    Partition,
    list_partitions,
    read_training_set,
    write_demo_catalog,
)
from pipeline.config import PipelineConfig
from pipeline.estimators import Estimator, make_estimator
from pipeline.hats_catalog import (
    is_hats_catalog,
    remove_hats_metadata,
    write_hats_metadata,
)
from pipeline.outputs import (
    FINGERPRINT_KEY,
    Progress,
    ProgressHook,
    RunResult,
    is_finished,
)
from pipeline.publish import publish_run, register_quality_report
from pipeline.quality import evaluate_columns, json_safe, write_quality_report
from pipeline.schema import arrow_schema, table_description, write_descriptions
from pipeline.task import estimate_partition
from pipeline.training import resolve_training_product
from vo_service.auth import User
from vo_service.core.columns import OBJECT_KEY
from vo_service.products import PipelineRunStore, ProductRegistry

log = logging.getLogger(__name__)

JOB_RECORD = "run.json"


# --- the task ----------------------------------------------------------------------------------

# --- the run -----------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_fingerprint(estimator: Estimator, training_digest: str, release: str,
                    redshift_column: str = "redshift", object_key: str = OBJECT_KEY) -> str:
    """What decides a run's outputs: outputs of another fingerprint are estimated again."""
    fields = {"estimator": estimator.describe(), "training": training_digest, "release": release,
              "redshift_column": redshift_column}
    if object_key != OBJECT_KEY:  # the outputs' key column name; the default keeps earlier fingerprints
        fields["object_key"] = object_key
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def output_path(data_dir: Path, part: Partition) -> Path:
    return data_dir / part.relative


def remove_partial_outputs(data_dir: Path) -> int:
    """Delete the temporary files of tasks that were killed while writing (a task removes its
    own when it fails): Parquet readers of the output directory would choke on them."""
    removed = 0
    if data_dir.is_dir():
        for leftover in data_dir.rglob("*.tmp-*"):
            if leftover.is_file():
                leftover.unlink()
                removed += 1
    if removed:
        log.info("removed partial outputs of an earlier run", extra={"files": removed})
    return removed


class PartitionError(RuntimeError):
    """One input file could not be estimated; the message names it."""


class OutputBusyError(RuntimeError):
    """Another run is writing the same output directory."""


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold ``OUTPUT/.lock`` for a whole run: two runs in one directory would delete each other's
    partial files and mix their outputs.  (An advisory ``flock``: it holds between processes of
    this machine and on file systems that pass locks on, such as NFSv4 and Lustre.)"""
    output.mkdir(parents=True, exist_ok=True)
    with (output / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(f"another pipeline run is writing {output}") from None
        yield  # closing the file releases the lock


def check_validation_set(config: PipelineConfig) -> None:
    """Before any work: a configured validation set must exist and hold galaxies with a redshift
    (the quality report of an empty one would be all NaN, after hours of estimation)."""
    if config.validation is None:
        return
    if not config.validation.exists():
        raise FileNotFoundError(str(config.validation))
    _, z = read_training_set(config.validation, config.redshift_column)
    if len(z) == 0:
        raise ValueError(f"{config.validation}: no galaxies with a redshift to validate on")


def check_database(engine: Any) -> None:
    """Before any work: publishing needs the database, so a wrong URL or password fails now."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class JobRecord:
    """The run's job record, updated as partitions finish (a ProgressHook): a JSON file in the
    output directory, and with ``runs`` (or ``engine``, for a store on it) also the registry's
    record of the run (:class:`vo_service.products.PipelineRunStore`, ``registry.pipeline_runs``),
    where the REST API (``/api/pipeline-runs``) shows every run's phase and progress.

    The database copy is best effort: a run does not fail because its record cannot be written
    there (an older database without the table, a connection lost); the file stays complete.
    """

    def __init__(self, path: Path, base: dict[str, Any], engine: Any = None, *,
                 runs: PipelineRunStore | None = None) -> None:
        self.path = path
        self.record = {"run_id": str(uuid.uuid4()), **base, "phase": "EXECUTING", "done": 0, "total": None,
                       "rows": 0, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._last_write = 0.0
        if runs is None and engine is not None:
            runs = PipelineRunStore(engine)
        self._runs = runs
        self._db_insert()
        self._write()

    def __call__(self, progress: Progress) -> None:
        self.record.update(done=progress.done, total=progress.total, rows=progress.rows)
        now = time.monotonic()
        if progress.done == progress.total or now - self._last_write > 0.5:
            self._write()
            self._last_write = now

    def finish(self, phase: str, **extra: Any) -> None:
        self.record.update(phase=phase, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra)
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(json_safe(self.record), indent=1, default=str))
        os.replace(tmp, self.path)
        self._db_update()

    #: Keys of the record stored in their own columns; the rest goes to ``summary``.
    _COLUMNS = frozenset({"run_id", "release", "table", "estimator", "fingerprint", "inputs", "started", "phase",
                          "done", "total", "rows", "finished", "error"})

    def _db(self, write: Callable[[PipelineRunStore], object]) -> None:
        if self._runs is None:
            return
        try:
            write(self._runs)
        except SQLAlchemyError as exc:
            log.warning("job record not written to the registry; run.json still is",
                        extra={"run_id": self.record["run_id"], "error": str(exc).splitlines()[0]})
            self._runs = None

    def _db_insert(self) -> None:
        r = self.record
        self._db(lambda runs: runs.start(
            run_id=r["run_id"], release=r.get("release", ""), table_name=r.get("table", ""),
            estimator=json_safe(r.get("estimator", {})), fingerprint=r.get("fingerprint", ""),
            inputs=json_safe(r.get("inputs", {})), output_dir=self.path.parent))

    def _db_update(self) -> None:
        r = self.record
        summary = json_safe({k: v for k, v in r.items() if k not in self._COLUMNS}) or None
        counts = {"done": r["done"], "total": r["total"], "rows": r["rows"], "summary": summary}
        if "finished" not in r:
            self._db(lambda runs: runs.progress(r["run_id"], **counts))
        elif r["phase"] == "ERROR":
            self._db(lambda runs: runs.fail(r["run_id"], error=r.get("error"), **counts))
        else:
            self._db(lambda runs: runs.finish(r["run_id"], phase=r["phase"], **counts))


def prepare_demo_inputs(config: PipelineConfig) -> None:
    """Build the demo catalog when the configuration asks for it and the inputs are missing."""
    demo = config.demo
    if demo is None:
        return
    have_objects = config.objects.exists() and any(config.objects.rglob("*.parquet"))
    have_sets = config.training.exists() and (config.validation is None or config.validation.exists())
    if have_objects and have_sets:
        return
    validation = config.validation or config.training.with_name("validation.parquet")
    write_demo_catalog(demo.source, config.objects, config.training, validation, partitions=demo.partitions,
                       seed=demo.seed, train_fraction=demo.train_fraction, copies=demo.copies)


def _resolve_training(config: PipelineConfig, registry: ProductRegistry) -> tuple[PipelineConfig, str]:
    """Export a training-set product to Parquet; return the updated config and its entity."""
    if config.training_product is None:
        raise ValueError("the configuration names no training-set product")
    found = resolve_training_product(registry, config.training_product, config.output / "training")
    log.info("training set from a product", extra={"product": found.label, "file": str(found.path)})
    return replace(config, training=found.path, redshift_column=found.redshift_column), found.entity_id


def train(config: PipelineConfig) -> tuple[Estimator, str]:
    """The fitted estimator and the training set's digest."""
    phot, z = read_training_set(config.training, config.redshift_column)
    estimator = make_estimator(config.estimator, config.estimator_params)
    estimator.fit(phot, z)
    return estimator, file_digest(config.training)


def _open_client(config: PipelineConfig, scheduler: str | None):  # noqa: ANN202 - (Client, closer)
    address = scheduler or config.scheduler
    if address:
        client = Client(address)
        return client, client.close
    n = config.workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=config.processes,
                           dashboard_address=None, silence_logs=logging.WARNING)
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def estimate_catalog(estimator: Estimator, partitions: Sequence[Partition], data_dir: Path,
                     fingerprint: str, *, client: Any,
                     hooks: Sequence[ProgressHook] = (),
                     object_key: str = OBJECT_KEY) -> tuple[int, int, list[dict[str, Any]]]:
    """Run the unfinished partitions on ``client``; returns (computed, rows, per-task results:
    rows, wall seconds and CPU seconds of each task)."""
    schema = arrow_schema(estimator, metadata={FINGERPRINT_KEY.decode(): fingerprint}, object_key=object_key)
    todo = [p for p in partitions if not is_finished(output_path(data_dir, p), fingerprint, p.source)]
    done, rows = len(partitions) - len(todo), 0
    for hook in hooks:
        hook(Progress(done, len(partitions), 0, skipped=True))
    if done:
        log.info("resuming: partitions already done", extra={"skipped": done, "todo": len(todo)})
    if not todo:
        return 0, 0, []
    model = client.scatter(estimator, broadcast=True)
    token = uuid.uuid4().hex[:8]  # task keys unique per call: a reused key would return old results
    futures = {client.submit(estimate_partition, model, str(p.source), str(output_path(data_dir, p)), schema,
                             key=f"pz-estimate-{p.key}-{token}", pure=False): p for p in todo}
    results = []
    for future in as_completed(futures):
        part = futures[future]
        try:
            result = future.result()
        except Exception as exc:
            client.cancel(list(futures))
            raise PartitionError(f"partition {part.source} failed: {type(exc).__name__}: {exc}") from exc
        done += 1
        rows += result["rows"]
        results.append(result)
        log.debug("partition done", extra={"partition": part.relative, **result})
        for hook in hooks:
            hook(Progress(done, len(partitions), rows, part.relative))
    return len(todo), rows, results


def run_pipeline(config: PipelineConfig, *, scheduler: str | None = None,
                 progress: Sequence[ProgressHook] = (), client: Any = None,
                 registry: ProductRegistry | None = None, owner: User | None = None,
                 runs: PipelineRunStore | None = None) -> RunResult:
    """Train, estimate every partition, describe the table, report quality, publish if asked.

    ``client`` reuses a Dask client (tests, notebooks); otherwise one is opened from
    ``scheduler`` (or the configuration's) or a new ``LocalCluster``, and closed at the end.
    ``registry`` is the product registry of the composition root (``Services.products``): its
    database is where ``publish`` loads the table and a ``product:`` training set is read, and
    the published table and quality report become its products, owned by ``owner`` (the
    operator account, ``Services.operator()``).  Publishing needs both; training on a product
    needs ``registry``.  The run's record goes to ``runs`` (by default a
    :class:`~vo_service.products.PipelineRunStore` on the registry's database, when there is one).
    """
    with output_lock(config.output):
        return _locked_run(config, scheduler=scheduler, progress=progress, client=client, registry=registry,
                           owner=owner, runs=runs)


def require_registry(config: PipelineConfig, registry: ProductRegistry | None, owner: User | None) -> None:
    """Before any work: publishing needs the product registry and the owner of what it
    registers, a ``product:`` training set the registry, from the caller."""
    missing = []
    if (config.publish or config.training_product) and registry is None:
        missing.append("registry")
    if config.publish and owner is None:
        missing.append("owner")
    if missing:
        needs = [what for what, needed in (("publishing", config.publish),
                                           (f"the training set {config.training_product}", config.training_product))
                 if needed]
        raise ValueError(f"{' and '.join(needs)} need(s) the product registry: no {' and no '.join(missing)} "
                         "given to run_pipeline")


def _locked_run(config: PipelineConfig, *, scheduler: str | None, progress: Sequence[ProgressHook],
                client: Any, registry: ProductRegistry | None, owner: User | None,
                runs: PipelineRunStore | None) -> RunResult:
    started = time.perf_counter()
    require_registry(config, registry, owner)
    engine = registry.engine if registry is not None else None
    prepare_demo_inputs(config)
    if config.publish:
        check_database(engine)
    training_entity = None
    if config.training_product:
        config, training_entity = _resolve_training(config, registry)  # type: ignore[arg-type]
    check_validation_set(config)
    estimator, training_digest = train(config)
    fingerprint = run_fingerprint(estimator, training_digest, config.release, config.redshift_column,
                                  config.key)
    partitions = list_partitions(config.objects)
    data_dir = config.output / "data"
    inputs = {"objects": str(config.objects), "training": str(config.training),
              "training_sha256": training_digest, "redshift_column": config.redshift_column,
              "training_product": config.training_product,
              "training_entity": training_entity,
              "validation": str(config.validation) if config.validation else None}
    record = JobRecord(config.output / JOB_RECORD, {"release": config.release, "estimator": estimator.describe(),
                                                    "fingerprint": fingerprint, "inputs": inputs,
                                                    "table": config.qualified_table}, engine=engine, runs=runs)
    log.info("pipeline run", extra={"release": config.release, "estimator": estimator.name,
                                    "partitions": len(partitions), "fingerprint": fingerprint})
    try:
        result = _run_and_publish(config, estimator, partitions, data_dir, fingerprint, inputs, record,
                                  scheduler=scheduler, progress=progress, client=client, registry=registry,
                                  owner=owner)
    except BaseException as exc:
        record.finish("ERROR", error=repr(exc))
        raise
    result.seconds = round(time.perf_counter() - started, 3)
    record.finish("COMPLETED", rows=result.rows, computed=result.computed, skipped=result.skipped,
                  seconds=result.seconds, quality=result.quality, published=result.published)
    (config.output / "manifest.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
    log.info("pipeline finished", extra={"rows": result.rows, "computed": result.computed,
                                         "skipped": result.skipped, "seconds": result.seconds})
    return result


def _run_and_publish(config: PipelineConfig, estimator: Estimator, partitions: list[Partition], data_dir: Path,
                     fingerprint: str, inputs: dict[str, Any], record: JobRecord, *, scheduler: str | None,
                     progress: Sequence[ProgressHook], client: Any, registry: ProductRegistry | None,
                     owner: User | None) -> RunResult:
    """Everything after training that can fail; the caller records the failure in the job record."""
    hats_input = is_hats_catalog(config.objects)
    if hats_input:
        remove_hats_metadata(data_dir)
    remove_partial_outputs(data_dir)
    closer = None
    try:
        if client is None:
            client, closer = _open_client(config, scheduler)
        computed, _, tasks = estimate_catalog(estimator, partitions, data_dir, fingerprint, client=client,
                                              hooks=[record, *progress], object_key=config.key)
    finally:
        if closer is not None:
            closer()
    total_rows = sum(pq.read_metadata(output_path(data_dir, p)).num_rows for p in partitions)
    result = RunResult(release=config.release, output_dir=config.output, data_dir=data_dir,
                       estimator=estimator.describe(), fingerprint=fingerprint, inputs=inputs,
                       partitions=len(partitions), computed=computed, skipped=len(partitions) - computed,
                       rows=total_rows, seconds=0.0,
                       partition_seconds=[round(t["seconds"], 4) for t in tasks], run_id=record.record["run_id"])
    raw = table_description(estimator, schema=config.table_schema, name=config.table_name,
                            release=config.release, description=config.table_description, rows=total_rows,
                            object_key=config.key)
    result.table_yaml, result.felis_yaml = write_descriptions(config.output, raw)
    if hats_input:
        result.hats = write_hats_metadata(
            config.objects, data_dir, name=config.table_name, rows=total_rows,
            outputs=[output_path(data_dir, p) for p in partitions],
            extra={"pzvo_release": config.release, "pzvo_estimator": estimator.name,
                   "pzvo_estimator_version": estimator.version})
    if config.validation is not None:
        result.quality = validate(estimator, config)
    if config.publish:

        result.published = publish_run(registry, result, owner=owner,
                                       partitions=config.publish_partitions, workers=config.publish_workers)
        if result.quality and result.quality.get("per_object"):

            result.quality["product"] = register_quality_report(registry, result, config.table_name,
                                                                owner=owner)
    return result


def validate(estimator: Estimator, config: PipelineConfig) -> dict[str, Any]:
    """The quality report on the held-out validation set, written under ``quality/``."""
    if config.validation is None:
        raise ValueError("the configuration names no validation set")
    phot, z = read_training_set(config.validation, config.redshift_column)
    columns = estimator.estimate(phot)
    report = evaluate_columns(columns, z)
    report["estimator"] = estimator.describe()
    report["validation"] = str(config.validation)
    paths = write_quality_report(config.output / "quality", report, columns, z)
    per_object = config.output / "quality" / "validation_results.parquet"
    data: dict[str, np.ndarray] = {"z_true": np.asarray(z, float)}
    data.update({k: np.asarray(columns[k]) for k in ("z_phot", "z_err", "odds") if k in columns})
    pq.write_table(pa.table(data), per_object)
    report["files"] = [str(p) for p in paths]
    report["per_object"] = str(per_object)
    return report
