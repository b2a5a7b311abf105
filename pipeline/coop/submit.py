"""A participant's submission to a challenge: read, checked, stored in the standard form, registered.

Everything that can be wrong with a file is found before anything is kept
(:func:`pipeline.coop.checks.check_submission` lists every problem at once); an accepted file
is converted to one standard form, whatever its PDF form was (qp's quantile parameterization at
:data:`pipeline.pdf.LEVELS`, float32, the pipeline's own), and registered as the participant's
validation-results product in the transaction that records the submission: a version per
resubmission of the same algorithm.
"""
from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pipeline.coop._models import Submission, SubmissionError, id_role_of
from pipeline.coop.challenges import Challenge, Cooperative, CoopError, CoopPermissionError, ProductRef
from pipeline.coop.checks import check_submission
from pipeline.coop.formats import read_submission
from pipeline.pdf import LEVELS
from pipeline.product_tables import read_product_table
from vo_service.auth import User
from vo_service.products import RegistrationRequest

#: Column names of the standard form's quantiles: q_<level x 1000, 4 digits>.
QUANTILE_COLUMNS = tuple(f"q_{round(level * 1000):04d}" for level in LEVELS)
_SLUG = re.compile(r"[^a-z0-9]+")


class ClosedError(CoopPermissionError):
    """The challenge's deadline has passed."""


@dataclass(frozen=True)
class ValidationSet:
    """The truth a challenge's submissions are validated against."""

    ids: np.ndarray
    z_true: np.ndarray
    mag_i: np.ndarray | None
    id_role: str = "id"
    """``object_id`` when the set is keyed by the Object catalog (its submissions then are too)."""


def validation_set(coop: Cooperative, challenge: Challenge) -> ValidationSet:
    """The challenge's validation set product (its version), by column roles."""
    product = coop.registry.get(challenge.validation.name, challenge.validation.version, user=None)
    table = read_product_table(coop.registry, product)
    roles = {c.role: c.original_name or c.name for c in product.columns if c.role}
    id_role = id_role_of(roles)
    if id_role is None or "redshift" not in roles:
        raise CoopError(f"validation set {challenge.validation.spec()} lacks the id (or object_id) or redshift role")
    mag = roles.get("mag_i") or next((n for n in table.column_names if n.lower() == "mag_i"), None)
    return ValidationSet(id_role=id_role,
                         ids=np.asarray(table.column(roles[id_role]).to_numpy(zero_copy_only=False), np.int64),
                         z_true=np.asarray(table.column(roles["redshift"]).to_numpy(zero_copy_only=False), float),
                         mag_i=None if mag is None else
                         np.asarray(table.column(mag).to_numpy(zero_copy_only=False), float))


def standard_table(sub: Submission) -> pa.Table:
    """The standard form: id, z_phot as given (float64: a point estimate's metrics must not move
    with storage) and the PDF's quantiles (when given) as float32 columns, as the pipeline stores them."""
    columns: dict[str, pa.Array] = {"id": pa.array(np.asarray(sub.ids, np.int64)),
                                    "z_phot": pa.array(np.asarray(sub.z_phot, np.float64))}
    if sub.locs is not None:
        locs = np.asarray(sub.locs, np.float32)
        for i, name in enumerate(QUANTILE_COLUMNS):
            columns[name] = pa.array(locs[:, i])
    return pa.table(columns)


def product_name(challenge: str, participant: str, algorithm: str) -> str:
    """One product per challenge, participant and algorithm (resubmissions are its versions)."""
    def slug(value: str, width: int) -> str:
        return (_SLUG.sub("_", value.lower()).strip("_") or "x")[:width]

    return f"{slug(challenge, 18)}_{slug(participant, 10)}_{slug(algorithm, 10)}"


def submit(coop: Cooperative, user: User, challenge_name: str, path: Path, *, algorithm: str,
           description: str | None = None, now: dt.datetime | None = None) -> int:
    """Check and register a submission; returns its number.  Raises :class:`SubmissionError`
    (every problem of the file), :class:`ClosedError` after the deadline, :class:`CoopError`."""
    if user.anonymous:
        raise CoopPermissionError("submitting needs a token")
    if not algorithm or not algorithm.strip() or "\x00" in algorithm or len(algorithm) > 100:
        raise CoopError("algorithm: a name of at most 100 characters is required")
    challenge = coop.get_challenge(challenge_name)
    if not challenge.open(now):
        raise ClosedError(f"the deadline of {challenge.name} was {challenge.deadline.isoformat()}: "
                          "submissions are closed")
    truth = validation_set(coop, challenge)
    sub = read_submission(path, grid=challenge.histogram_grid)
    if sub.locs is not None and "none" in challenge.pdf_forms and len(challenge.pdf_forms) == 1:
        raise SubmissionError([f"challenge {challenge.name} takes point estimates only, not PDFs"])
    if sub.locs is not None and sub.form not in challenge.pdf_forms:
        raise SubmissionError([f"challenge {challenge.name} takes PDFs as {', '.join(challenge.pdf_forms)}; "
                               f"this file gives them as {sub.form}"])
    check_submission(sub, truth.ids)
    name = product_name(challenge.name, user.name, algorithm)
    submission_id: list[int] = []

    def record(conn: Connection) -> None:
        version = int(conn.execute(text("SELECT coalesce(max(version), 0) + 1 FROM registry.products "
                                        "WHERE name = :n"), {"n": name}).scalar_one())
        submission_id.append(coop.insert_submission(
            conn, challenge=challenge.name, participant=user.name, algorithm=algorithm.strip(),
            description=description, product=ProductRef(name, version)))

    with tempfile.TemporaryDirectory(prefix="pzvo-coop-") as work:
        standard = Path(work) / f"{name}.parquet"
        pq.write_table(standard_table(sub), standard, compression="zstd")
        coop.registry.register_many([RegistrationRequest(
            name=name, product_type="validationresults", main_file=standard, main_file_name=standard.name,
            display_name=f"{algorithm.strip()} for {challenge.name}",
            description=(description or f"{algorithm.strip()}'s photo-z for the challenge {challenge.name}"),
            columns={"id": {"role": truth.id_role}, "z_phot": {"role": "photoz"}})], user, lineage=record)
    return submission_id[0]
