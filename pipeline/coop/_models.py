"""The domain types of a submission, shared by the reader, the checks and the metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class SubmissionError(ValueError):
    """A refused submission: ``problems`` lists everything wrong with it, each for a user to read."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("the submission is refused: " + "; ".join(self.problems))


@dataclass
class Submission:
    """A participant's result in the standard form, whatever form the file gave.

    ``locs`` are the PDFs as quantile locations at :data:`pipeline.pdf.LEVELS` (float32, one
    row per object), or None for point estimates only; ``form`` is the PDF form the file used
    (``none``, ``quantiles``, ``histogram``, ``mixture``, ``samples`` or ``qp``).  ``problems``
    are what reading found wrong in the file's own form (a histogram that does not normalize
    cannot be seen once converted); :func:`pipeline.coop.checks.check_submission` reports them
    with everything else.  ``source`` records how the file was read (format, columns, levels,
    grid), for provenance and messages.
    """

    ids: np.ndarray
    z_phot: np.ndarray
    locs: np.ndarray | None
    form: str
    rows: int
    problems: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


def id_role_of(roles: dict[str, str]) -> str | None:
    """The role that identifies a set's rows: ``id``, or ``object_id`` for a set keyed by the
    Object catalog (a TSM output, the demo challenge's sets)."""
    return next((r for r in ("id", "object_id") if r in roles), None)
