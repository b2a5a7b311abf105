"""``pzvo validation``: the Validation Cooperative from the command line (docs/coop.md).

Built by every ``pzvo`` command, so it imports nothing heavy; the work is imported when a
command runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vo_service.core.settings import Settings
    from vo_service.services import Services


def add_subcommands(sub: argparse._SubParsersAction, services_for: Callable[[Settings], Services]) -> None:
    """Add the ``validation`` command group to the ``pzvo`` parser."""
    group = sub.add_parser("validation", help="the PZ Validation Cooperative: challenges and submissions")
    actions = group.add_subparsers(dest="validation_command", required=True)
    actions.add_parser("list", help="the challenges")
    show = actions.add_parser("show", help="a challenge with its submissions and metrics (JSON)")
    show.add_argument("challenge")
    create = actions.add_parser("create", help="create a challenge (administrators)")
    create.add_argument("name")
    create.add_argument("--title", required=True)
    create.add_argument("--training", required=True, help="trainingset product NAME@VERSION")
    create.add_argument("--validation", required=True, help="validationset product NAME@VERSION")
    create.add_argument("--deadline", required=True, help="ISO 8601 with its zone, e.g. 2027-03-01T00:00:00Z")
    create.add_argument("--description", type=Path, help="a Markdown file")
    create.add_argument("--pdf-forms", default="quantiles", help="comma-separated: none, quantiles, histogram, ...")
    create.add_argument("--histogram-grid", help="the grid histograms must use: comma-separated values, or "
                                                 "START:STOP:STEP (bin edges from START to STOP inclusive)")
    submit = actions.add_parser("submit", help="submit a photo-z result file and validate it")
    submit.add_argument("challenge")
    submit.add_argument("file", type=Path)
    submit.add_argument("--algorithm", required=True)
    submit.add_argument("--description", type=Path, help="the algorithm's description (Markdown file)")
    revalidate = actions.add_parser("revalidate", help="validate every submission of a challenge again")
    revalidate.add_argument("challenge")
    metrics = actions.add_parser("metrics", help="change a challenge's metric set and validate every submission "
                                                 "again (administrators)")
    metrics.add_argument("challenge")
    metrics.add_argument("metric_set", help="comma-separated metric names (docs/coop.md, \"Metrics\")")
    sets = actions.add_parser("sets", help="official training and validation sets from a spec-z catalog or "
                                           "Training Set Maker output (administrators)")
    sets.add_argument("source", help="product NAME[@VERSION] (speczcat, trainingset or validationset)")
    sets.add_argument("prefix", help="the products are <prefix>_training and <prefix>_validation")
    sets.add_argument("--fraction", type=float, default=0.7, help="training fraction (default 0.7)")
    sets.add_argument("--seed", type=int, default=0)
    sets.add_argument("--stratify", type=int, help="redshift bins with the same fraction")
    sets.add_argument("--release")
    for parser in (create, submit, revalidate, metrics, sets):
        parser.add_argument("--user", help="who acts: an existing user (default $PZVO_USER, else 'pzvo')")
    group.set_defaults(func=partial(cmd_validation, services_for=services_for))


def _grid(value: str) -> list[float]:
    """``0,0.1,0.2`` or ``0:3:0.05`` (edges from 0 to 3 inclusive, in steps of 0.05)."""
    try:
        if ":" in value:
            start, stop, step = (float(v) for v in value.split(":"))
            count = round((stop - start) / step)
            if count < 1 or count > 100_000 or abs(start + count * step - stop) > 1e-9 * max(1.0, abs(stop)):
                raise ValueError
            return [round(start + i * step, 12) for i in range(count + 1)]
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--histogram-grid {value!r}: comma-separated numbers, or START:STOP:STEP with STOP "
                         "a whole number of steps from START") from None


def _ref(value: str, what: str) -> tuple[str, int]:
    name, _, version = value.partition("@")
    if not name or not version.isdigit():
        raise ValueError(f"{what} {value!r}: write NAME@VERSION")
    return name, int(version)


def cmd_validation(args: argparse.Namespace, settings: Settings, *,
                   services_for: Callable[[Settings], Services]) -> int:
    from pipeline.coop import SubmissionError  # noqa: PLC0415 - deferred: the command's own stack
    from pipeline.coop.challenges import Cooperative, CoopError, ProductRef  # noqa: PLC0415
    from pipeline.coop.job import validate_submission  # noqa: PLC0415
    from pipeline.coop.submit import submit  # noqa: PLC0415

    services = services_for(settings)
    coop = Cooperative(services.products)
    try:
        if args.validation_command == "list":
            for c in coop.list_challenges():
                state = "open" if c.open() else "closed"
                print(f"{c.name:30} {state:6} deadline {c.deadline:%Y-%m-%d %H:%M} UTC  "
                      f"validation {c.validation.spec():30} {c.title}")
            return 0
        if args.validation_command == "show":
            challenge = coop.get_challenge(args.challenge)
            print(json.dumps({"name": challenge.name, "title": challenge.title, "deadline": challenge.deadline,
                              "training": challenge.training.spec(), "validation": challenge.validation.spec(),
                              "metric_set": challenge.metric_set, "metric_set_version": challenge.metric_set_version,
                              "submissions": [{"id": s.id, "participant": s.participant, "algorithm": s.algorithm,
                                               "status": s.status, "metrics": s.metrics, "error": s.error}
                                              for s in coop.submissions(challenge.name)]}, indent=1, default=str))
            return 0
        user = services.operator(args.user or os.environ.get("PZVO_USER"))
        if args.validation_command == "create":
            created = coop.create_challenge(
                user, name=args.name, title=args.title,
                description=args.description.read_text(encoding="utf-8") if args.description else "",
                training=ProductRef(*_ref(args.training, "--training")),
                validation=ProductRef(*_ref(args.validation, "--validation")), deadline=args.deadline,
                pdf_forms=[f.strip() for f in args.pdf_forms.split(",") if f.strip()],
                histogram_grid=_grid(args.histogram_grid) if args.histogram_grid else None)
            print(f"challenge {created.name} created, open until {created.deadline.isoformat()}")
        elif args.validation_command == "submit":
            description = args.description.read_text(encoding="utf-8") if args.description else None
            number = submit(coop, user, args.challenge, args.file, algorithm=args.algorithm, description=description)
            metrics = validate_submission(coop, number)
            shown = {k: metrics.get(k) for k in ("sigma_mad", "bias", "outlier_fraction")}
            print(f"submission {number} validated: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
        elif args.validation_command == "sets":
            from pipeline.coop.sets import make_standard_sets  # noqa: PLC0415

            made = make_standard_sets(services.products, user, args.source, args.prefix, fraction=args.fraction,
                                      seed=args.seed, stratify=args.stratify, release=args.release)
            for product in (made.training, made.validation):
                print(f"{product.name} v{product.version}: {product.row_count} rows ({product.product_type})")
        elif args.validation_command == "metrics":
            chosen = [m.strip() for m in args.metric_set.split(",") if m.strip()]
            challenge, again = coop.change_metric_set(user, args.challenge, chosen)
            if not again:
                print(f"challenge {challenge.name} already computes {', '.join(challenge.metric_set)}")
            else:
                print(f"challenge {challenge.name}: metric set version {challenge.metric_set_version} "
                      f"({', '.join(challenge.metric_set)})")
            for number in again:
                validate_submission(coop, number)
                print(f"submission {number} validated")
        elif args.validation_command == "revalidate":
            if not user.is_admin:
                raise CoopError("revalidating a challenge is for administrators")
            for record in coop.submissions(coop.get_challenge(args.challenge).name):
                validate_submission(coop, record.id)
                print(f"submission {record.id} ({record.algorithm}) validated")
    except SubmissionError as exc:
        print("pzvo validation: the submission was refused; nothing was kept:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except (ValueError, LookupError, OSError) as exc:
        print(f"pzvo validation: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0
