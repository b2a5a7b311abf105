"""Validation Cooperative challenges and their submissions, as ``coop.challenges`` and
``coop.submissions`` keep them (migration 0010).

A challenge names the official training and validation set products it uses, by version, so
that every submission is validated against exactly the same galaxies however the products
move on.  Only administrators (the PZ Coordination Group) create challenges; everyone lists
them.  A submission is a validation-results product of its participant, linked here to the
challenge, with the algorithm's name and description; its metrics are written by the
validation job.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from pipeline.coop.metrics import ALL_METRICS
from vo_service.auth import User
from vo_service.products import Product, ProductNotFoundError, ProductRegistry

NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
#: PDF forms a challenge may accept (qp's parameterizations; docs/coop.md, "Result format").
PDF_FORMS = ("none", "quantiles", "histogram", "mixture", "samples", "qp")
#: The metrics every challenge computes unless it says otherwise.
DEFAULT_METRIC_SET = ALL_METRICS
STATUSES = ("accepted", "validating", "validated", "failed")
#: The most values a challenge's histogram grid may have.
MAX_GRID = 1001


class CoopError(ValueError):
    """A request the Cooperative refuses; ``status`` is the HTTP status it maps to."""

    status = 422


class ChallengeNotFoundError(CoopError):
    status = 404


class CoopPermissionError(CoopError):
    status = 403


@dataclass(frozen=True)
class ProductRef:
    name: str
    version: int

    def spec(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Challenge:
    name: str
    title: str
    description: str
    training: ProductRef
    validation: ProductRef
    deadline: dt.datetime
    pdf_forms: tuple[str, ...]
    metric_set: tuple[str, ...]
    metric_set_version: int
    created_by: str
    created_at: dt.datetime
    histogram_grid: tuple[float, ...] | None = None

    def open(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) <= self.deadline


@dataclass(frozen=True)
class SubmissionRecord:
    id: int
    challenge: str
    participant: str
    algorithm: str
    description: str | None
    product: ProductRef
    status: str
    job_id: str | None
    metrics: dict[str, Any] | None
    metrics_version: str | None
    error: str | None
    submitted_at: dt.datetime
    validated_at: dt.datetime | None
    extra: dict[str, Any] = field(default_factory=dict)


def _challenge(row: RowMapping) -> Challenge:
    metric_set = row["metric_set"]
    if isinstance(metric_set, str):
        metric_set = json.loads(metric_set)
    return Challenge(name=row["name"], title=row["title"], description=row["description"],
                     training=ProductRef(row["training_product"], row["training_version"]),
                     validation=ProductRef(row["validation_product"], row["validation_version"]),
                     deadline=row["deadline"], pdf_forms=tuple(row["pdf_forms"]), metric_set=tuple(metric_set),
                     metric_set_version=row["metric_set_version"], created_by=row["created_by"],
                     histogram_grid=tuple(row["histogram_grid"]) if row.get("histogram_grid") else None,
                     created_at=row["created_at"])


def _submission(row: RowMapping) -> SubmissionRecord:
    metrics = row["metrics"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return SubmissionRecord(id=row["id"], challenge=row["challenge"], participant=row["participant"],
                            algorithm=row["algorithm"], description=row["description"],
                            product=ProductRef(row["product_name"], row["product_version"]), status=row["status"],
                            job_id=row["job_id"], metrics=metrics, metrics_version=row["metrics_version"],
                            error=row["error"], submitted_at=row["submitted_at"], validated_at=row["validated_at"])


def parse_deadline(value: Any) -> dt.datetime:
    """An ISO 8601 time with its zone (a deadline without one would depend on the server's)."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise CoopError(f"deadline {value!r} is not an ISO 8601 time (e.g. 2027-03-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        raise CoopError(f"deadline {value!r} has no time zone; write it in UTC with a Z")
    return moment.astimezone(dt.UTC)


class Cooperative:
    """Challenges and submissions on the product registry's database."""

    def __init__(self, registry: ProductRegistry) -> None:
        self.registry = registry
        self.engine = registry.engine

    # -- challenges --------------------------------------------------------------------------
    def _product(self, ref: ProductRef, product_type: str, what: str) -> Product:
        try:
            product = self.registry.get(ref.name, ref.version, user=None)
        except ProductNotFoundError as exc:
            raise CoopError(f"{what}: {exc}") from exc
        if product.product_type != product_type:
            raise CoopError(f"{what}: {ref.name} v{ref.version} is a {product.product_type}, not a {product_type}")
        if not product.table_name:
            raise CoopError(f"{what}: {ref.name} v{ref.version} has no table")
        return product

    def create_challenge(self, user: User, *, name: str, title: str, training: ProductRef, validation: ProductRef,
                         deadline: Any, description: str = "", pdf_forms: Sequence[str] = ("quantiles",),
                         metric_set: Sequence[str] = DEFAULT_METRIC_SET,
                         histogram_grid: Sequence[float] | None = None) -> Challenge:
        """A new challenge; administrators only (the PZ Coordination Group).  ``histogram_grid``
        (bin edges, or the points densities are given at) binds every histogram submitted."""
        if user.anonymous or not user.is_admin:
            raise CoopPermissionError("only administrators (the PZ Coordination Group) create challenges")
        problems = []
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"name {name!r}: lower-case letters, digits and _, starting with a letter, at most 30")
        if not isinstance(title, str) or not title.strip():
            problems.append("title: required")
        if any("\x00" in str(v) for v in (title, description)):
            problems.append("title and description cannot hold the NUL character")
        unknown_forms = sorted(set(pdf_forms) - set(PDF_FORMS))
        if unknown_forms or not pdf_forms:
            problems.append(f"pdf_forms {list(pdf_forms)!r}: some of {', '.join(PDF_FORMS)}")
        unknown_metrics = sorted(set(metric_set) - set(DEFAULT_METRIC_SET))
        if unknown_metrics or not metric_set:
            problems.append(f"metric_set {list(metric_set)!r}: some of {', '.join(DEFAULT_METRIC_SET)}")
        grid = None
        if histogram_grid is not None:
            try:
                grid = [float(v) for v in histogram_grid]
            except (TypeError, ValueError):
                grid = []
            if not 2 <= len(grid) <= MAX_GRID or not all(math.isfinite(v) for v in grid) or any(
                    b <= a for a, b in itertools.pairwise(grid)):
                problems.append(f"histogram_grid: 2 to {MAX_GRID} finite, strictly increasing redshifts")
        if problems:
            raise CoopError("; ".join(problems))
        when = parse_deadline(deadline)
        self._product(training, "trainingset", "training")
        self._product(validation, "validationset", "validation")
        with self.engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM coop.challenges WHERE name = :n"), {"n": name}).first():
                raise CoopError(f"a challenge named {name} exists")
            conn.execute(text("INSERT INTO registry.users (name) VALUES (:u) ON CONFLICT (name) DO NOTHING"),
                         {"u": user.name})
            row = conn.execute(text(
                "INSERT INTO coop.challenges (name, title, description, training_product, training_version, "
                "validation_product, validation_version, deadline, pdf_forms, metric_set, created_by, "
                "histogram_grid) VALUES (:name, :title, :description, :tp, :tv, :vp, :vv, :deadline, :forms, "
                "CAST(:metrics AS jsonb), :by, :grid) RETURNING *"),
                {"name": name, "title": title.strip(), "description": description or "", "tp": training.name,
                 "tv": training.version, "vp": validation.name, "vv": validation.version, "deadline": when,
                 "forms": list(pdf_forms), "metrics": json.dumps(list(metric_set)), "by": user.name,
                 "grid": grid}
            ).mappings().one()
        return _challenge(row)

    def change_metric_set(self, user: User, name: str, metric_set: Sequence[str]) -> tuple[Challenge, list[int]]:
        """Give a challenge a new metric set (administrators).  When it differs, its
        ``metric_set_version`` goes up by one and every submission goes back to ``accepted``,
        in one transaction; the ids returned are the submissions to validate again (all of
        them, so that one comparison never mixes metric sets)."""
        if user.anonymous or not user.is_admin:
            raise CoopPermissionError("only administrators (the PZ Coordination Group) change a challenge's metrics")
        chosen = list(dict.fromkeys(metric_set))
        unknown = sorted(set(chosen) - set(DEFAULT_METRIC_SET))
        if unknown or not chosen:
            raise CoopError(f"metric_set {list(metric_set)!r}: some of {', '.join(DEFAULT_METRIC_SET)}")
        challenge = self.get_challenge(name)
        if tuple(chosen) == challenge.metric_set:
            return challenge, []
        with self.engine.begin() as conn:
            row = conn.execute(text(
                "UPDATE coop.challenges SET metric_set = CAST(:m AS jsonb), "
                "metric_set_version = metric_set_version + 1 WHERE name = :n RETURNING *"),
                {"m": json.dumps(chosen), "n": challenge.name}).mappings().one()
            ids = [int(i) for i in conn.execute(text(
                "UPDATE coop.submissions SET status = 'accepted', error = NULL WHERE challenge = :n RETURNING id"),
                {"n": challenge.name}).scalars()]
        return _challenge(row), sorted(ids)

    def list_challenges(self) -> list[Challenge]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM coop.challenges ORDER BY created_at DESC, name")).mappings()
            return [_challenge(r) for r in rows]

    def get_challenge(self, name: str) -> Challenge:
        if not isinstance(name, str) or not NAME.match(name):
            raise ChallengeNotFoundError(f"no challenge {name!r}")
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM coop.challenges WHERE name = :n"), {"n": name}).mappings().first()
        if row is None:
            raise ChallengeNotFoundError(f"no challenge {name!r}")
        return _challenge(row)

    # -- submissions -------------------------------------------------------------------------
    @staticmethod
    def insert_submission(conn: Connection, *, challenge: str, participant: str, algorithm: str,
                          description: str | None, product: ProductRef) -> int:
        """Record an accepted submission, in the transaction that registers its product."""
        return int(conn.execute(text(
            "INSERT INTO coop.submissions (challenge, participant, algorithm, description, product_name, "
            "product_version, status) VALUES (:c, :p, :a, :d, :pn, :pv, 'accepted') RETURNING id"),
            {"c": challenge, "p": participant, "a": algorithm, "d": description, "pn": product.name,
             "pv": product.version}).scalar_one())

    def submissions(self, challenge: str) -> list[SubmissionRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM coop.submissions WHERE challenge = :c ORDER BY id"),
                                {"c": challenge}).mappings()
            return [_submission(r) for r in rows]

    def submission(self, submission_id: int) -> SubmissionRecord:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM coop.submissions WHERE id = :i"),
                               {"i": submission_id}).mappings().first()
        if row is None:
            raise ChallengeNotFoundError(f"no submission {submission_id}")
        return _submission(row)

    def set_status(self, submission_id: int, status: str, *, job_id: str | None = None,
                   metrics: Mapping[str, Any] | None = None, metrics_version: str | None = None,
                   error: str | None = None, conn: Connection | None = None) -> None:
        """Move a submission on (validating, validated with its metrics, failed with the reason);
        in ``conn``'s transaction when given."""
        if status not in STATUSES:
            raise ValueError(status)
        statement = text(
            "UPDATE coop.submissions SET status = :s, job_id = coalesce(:j, job_id), "
            "metrics = coalesce(CAST(:m AS jsonb), metrics), metrics_version = coalesce(:v, metrics_version), "
            "error = :e, validated_at = CASE WHEN :s = 'validated' THEN now() ELSE validated_at END "
            "WHERE id = :i")
        values = {"s": status, "j": job_id, "m": json.dumps(metrics) if metrics is not None else None,
                  "v": metrics_version, "e": error, "i": submission_id}
        if conn is not None:
            conn.execute(statement, values)
            return
        with self.engine.begin() as own:
            own.execute(statement, values)
