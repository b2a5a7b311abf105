"""The Validation Cooperative's demo: one challenge with two validated submissions.

From the shared Buzzard galaxies (fixed seed): 8,000 of the gold sample (i < 25.3) with their
LSST Object fluxes (``demo_objects``), split 6,000 / 2,000 into the official products
``demo_coop_training`` and ``demo_coop_validation`` (release ``demo-coop``); the challenge
``demo_challenge`` on them; and two submissions made by two estimators of the pipeline with
fast settings, ``knn`` (participant ``alice``) and ``mlp`` (``bob``), each checked, registered and
validated as any submission is, so that a newcomer sees a filled comparison page at
``/challenges/demo_challenge``.  A second load finds them and does nothing.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.catalog import DEMO_SEED, ID_COLUMN, photometry_from_objects
from pipeline.coop.challenges import ChallengeNotFoundError, Cooperative, ProductRef
from pipeline.coop.job import validate_submission
from pipeline.coop.submit import QUANTILE_COLUMNS, submit
from pipeline.estimators import make_estimator
from pipeline.photometry import BANDS, flux_column, flux_err_column
from vo_service.auth import User
from vo_service.demo._tsm import OBJECTS, objects_dir
from vo_service.products import ProductNotFoundError, RegistrationRequest
from vo_service.services import Services

log = logging.getLogger(__name__)

CHALLENGE = "demo_challenge"
RELEASE = "demo-coop"
TRAINING, VALIDATION = "demo_coop_training", "demo_coop_validation"
TRAINING_ROWS, VALIDATION_ROWS = 6_000, 2_000
#: The two demo submissions: participant, algorithm, estimator parameters (fast settings).
ENTRIES = (("alice", "knn", {"k": 20}),
           ("bob", "mlp", {"members": 1, "hidden": [64, 64], "max_iter": 40, "refit": False}))
DESCRIPTION = """Demo challenge of the PZ Validation Cooperative on the shared Buzzard simulation:
6,000 gold galaxies (i < 25.3) to train on, 2,000 to estimate. Submit a file with `id`, `z_phot`
and, optionally, the PDF (docs/coop.md, "Result format")."""


def _sets(source: Path, var_dir: Path) -> tuple[pa.Table, pa.Table]:
    """Training and validation tables: the objectId (the Object catalog's key), the true
    redshift, i, and the fluxes."""
    objects = pq.ParquetDataset(objects_dir(var_dir)).read().sort_by(ID_COLUMN)
    truth = pq.read_table(source, columns=["redshift", "i"])
    rng = np.random.default_rng(DEMO_SEED + 17)
    gold = np.flatnonzero(truth.column("i").to_numpy() < 25.3)
    pick = rng.choice(gold, TRAINING_ROWS + VALIDATION_ROWS, replace=False)

    def table(rows: np.ndarray) -> pa.Table:
        columns = {ID_COLUMN: objects.column(ID_COLUMN).take(rows), "redshift": truth.column("redshift").take(rows),
                   "mag_i": truth.column("i").take(rows)}
        for band in BANDS:
            columns[flux_column(band)] = objects.column(flux_column(band)).take(rows)
            columns[flux_err_column(band)] = objects.column(flux_err_column(band)).take(rows)
        return pa.table(columns)

    return table(pick[:TRAINING_ROWS]), table(pick[TRAINING_ROWS:])


def _roles() -> dict[str, dict[str, str]]:
    roles = {ID_COLUMN: {"role": "object_id"}, "redshift": {"role": "redshift"}, "mag_i": {"role": "mag_i"}}
    for band in BANDS:
        roles[flux_column(band)] = {"role": f"flux_{band}"}
        roles[flux_err_column(band)] = {"role": f"fluxerr_{band}"}
    return roles


def _estimate(training: pa.Table, validation: pa.Table, algorithm: str, params: dict) -> pa.Table:
    estimator = make_estimator(algorithm, params)
    estimator.fit(photometry_from_objects(training), training.column("redshift").to_numpy())
    out = estimator.estimate(photometry_from_objects(validation))
    columns = {"id": validation.column(ID_COLUMN), "z_phot": pa.array(np.asarray(out["z_phot"], np.float64))}
    locs = np.asarray(out["z_pdf"], np.float64)
    columns.update({name: pa.array(locs[:, i]) for i, name in enumerate(QUANTILE_COLUMNS)})
    return pa.table(columns)


def load_coop_demo(services: Services, source: Path) -> dict[str, int]:
    """Register the sets, the challenge and its two validated submissions unless they are there."""
    coop = Cooperative(services.products)
    try:
        existing = coop.submissions(coop.get_challenge(CHALLENGE).name)
        if sum(s.status == "validated" for s in existing) >= len(ENTRIES):
            return {CHALLENGE: len(existing)}
    except ChallengeNotFoundError:
        pass
    operator = services.operator()
    training, validation = _sets(source, services.settings.var_dir)
    with tempfile.TemporaryDirectory(prefix="pzvo-coop-demo-") as work:
        for name, kind, table in ((TRAINING, "trainingset", training), (VALIDATION, "validationset", validation)):
            try:
                services.products.get(name, 1, user=None)
                continue
            except ProductNotFoundError:
                pass
            path = Path(work) / f"{name}.parquet"
            pq.write_table(table, path)
            services.products.register(RegistrationRequest(
                name=name, product_type=kind, main_file=path, main_file_name=path.name, release=RELEASE,
                official=True, display_name=name.replace("_", " "), columns=_roles(),
                description=f"Demo {kind} of the Validation Cooperative: Buzzard gold galaxies with "
                            f"{OBJECTS}' LSST fluxes and their true redshifts (vo_service/demo/_coop.py)."), operator)
        try:
            coop.get_challenge(CHALLENGE)
        except ChallengeNotFoundError:
            coop.create_challenge(operator, name=CHALLENGE, title="Demo photo-z challenge", description=DESCRIPTION,
                                  training=ProductRef(TRAINING, 1), validation=ProductRef(VALIDATION, 1),
                                  deadline="2030-12-31T23:59:59Z", pdf_forms=("none", "quantiles", "histogram"))
        done = {s.algorithm for s in coop.submissions(CHALLENGE) if s.status == "validated"}
        for participant, algorithm, params in ENTRIES:
            if algorithm in done:
                continue
            try:
                user = services.operator(participant)
            except LookupError:
                services.auth.add_user(participant)
                services.auth.revoke_user_tokens(participant)  # a demo participant, not an account to use
                user = User(participant)
            path = Path(work) / f"{algorithm}.parquet"
            pq.write_table(_estimate(training, validation, algorithm, params), path)
            number = submit(coop, user, CHALLENGE, path, algorithm=algorithm,
                            description=f"The pipeline's `{algorithm}` estimator with fast settings {params}.")
            validate_submission(coop, number)
    log.info("Validation Cooperative demo loaded", extra={"challenge": CHALLENGE})
    return {CHALLENGE: len(ENTRIES)}
