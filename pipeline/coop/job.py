"""Validating a submission as an async job (kind ``coop``), in the service's job pool.

The job reads the submission's standard form and the challenge's validation set (its fixed
version), aligns them by id, computes the challenge's metric set with the one validation
pipeline (:func:`pipeline.coop.metrics.validate`, built on the photo-z pipeline's quality
report) and records the metrics with their provenance: one activity using the validation set
and the submission products, with the metric code's version as a parameter.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pyarrow.parquet as pq

from pipeline.coop._models import Submission
from pipeline.coop.challenges import Cooperative
from pipeline.coop.metrics import METRICS_VERSION, validate
from pipeline.coop.submit import QUANTILE_COLUMNS, validation_set
from pipeline.quality import json_safe
from vo_service.products import ProductRegistry
from vo_service.provenance import ActivityDescription, ParameterDescription, record_activity, user_agent
from vo_service.uws import JobRunner, TaskContext, TaskFailed

log = logging.getLogger(__name__)

KIND = "coop"
PARAMETER = "submission"

VALIDATION = ActivityDescription(
    id="pzvo:activitydescription/coop-validation/1", name="Validation Cooperative validation", version="1",
    type="validation", subtype="photo-z metrics",
    description="One submission's photo-zs against the challenge's validation set: sigma_MAD, bias, "
                "outliers, PIT and its chi-square test, CDE loss, CRPS, in bins of true redshift and "
                "i magnitude (pipeline/coop/metrics.py).",
    parameters=(ParameterDescription("challenge", "char", "The challenge", None, "meta.id"),
                ParameterDescription("submission", "long", "The submission's number", None, "meta.id"),
                ParameterDescription("metrics_version", "char", "Version of the metric code", None, "meta.version"),
                ParameterDescription("metric_set", "char", "The metrics computed", None, "meta.code")))


def stored_submission(coop: Cooperative, name: str, version: int) -> Submission:
    """A registered submission's standard form, as the pipeline's Submission."""
    product = coop.registry.get(name, version, user=None)
    path, _ = coop.registry.file_path(product)
    table = pq.read_table(path)
    locs = (np.column_stack([table.column(c).to_numpy() for c in QUANTILE_COLUMNS]).astype(np.float64)
            if QUANTILE_COLUMNS[0] in table.column_names else None)
    return Submission(ids=table.column("id").to_numpy(), z_phot=table.column("z_phot").to_numpy().astype(np.float64),
                      locs=locs, form="quantiles" if locs is not None else "none", rows=table.num_rows)


#: The z_phot against z_true density of the comparison page: bins per axis and the range.
DENSITY_BINS, DENSITY_RANGE = 60, (0.0, 3.0)


def density(z_true: np.ndarray, z_phot: np.ndarray) -> dict[str, object]:
    """A 2-D histogram of z_phot against z_true, small enough to keep with the metrics (the page
    plots it without reading the submission again)."""
    counts, x_edges, y_edges = np.histogram2d(z_true, z_phot, bins=DENSITY_BINS, range=(DENSITY_RANGE, DENSITY_RANGE))
    return {"z_true_edges": x_edges.tolist(), "z_phot_edges": y_edges.tolist(), "counts": counts.astype(int).tolist()}


def validate_submission(coop: Cooperative, submission_id: int) -> dict[str, object]:
    """Compute and record one submission's metrics (see the module docstring)."""
    record = coop.submission(submission_id)
    challenge = coop.get_challenge(record.challenge)
    truth = validation_set(coop, challenge)
    sub = stored_submission(coop, record.product.name, record.product.version)
    order = np.argsort(truth.ids)
    where = order[np.searchsorted(truth.ids[order], sub.ids)]
    metrics = json_safe(validate(sub, truth.z_true[where],
                                 None if truth.mag_i is None else truth.mag_i[where],
                                 metric_set=challenge.metric_set))
    metrics["density"] = density(truth.z_true[where], sub.z_phot)
    validation = coop.registry.get(challenge.validation.name, challenge.validation.version, user=None)
    submitted = coop.registry.get(record.product.name, record.product.version, user=None)
    with coop.engine.begin() as conn:
        with record_activity(conn, name=f"validate {challenge.name} submission {submission_id}",
                             description=VALIDATION, agent=user_agent(),
                             parameters={"challenge": challenge.name, "submission": submission_id,
                                         "metrics_version": METRICS_VERSION,
                                         "metric_set": ",".join(challenge.metric_set),
                                         "metric_set_version": challenge.metric_set_version},
                             used=[(validation.entity_id, "validation set"), (submitted.entity_id, "submission")]):
            coop.set_status(submission_id, "validated", metrics=metrics, metrics_version=METRICS_VERSION,
                            conn=conn)
    return metrics


def make_runner(registry: ProductRegistry) -> JobRunner:
    """The worker's runner of ``coop`` jobs."""
    coop = Cooperative(registry)

    def run_job(ctx: TaskContext) -> Mapping[str, object]:
        values = ctx.job.parameter_map().get(PARAMETER) or []
        try:
            submission_id = int(values[0])
        except (IndexError, ValueError):
            raise TaskFailed("the job names no submission") from None
        coop.set_status(submission_id, "validating", job_id=ctx.job.job_id)
        ctx.report("validating")
        try:
            metrics = validate_submission(coop, submission_id)
        except (ValueError, OSError) as exc:
            coop.set_status(submission_id, "failed", error=str(exc))
            raise TaskFailed(f"submission {submission_id}: {exc}") from exc
        log.info("submission validated", extra={"submission": submission_id, "job_id": ctx.job.job_id})
        return {"submission": submission_id, "metrics": metrics}

    return run_job
