"""The PZ Validation Cooperative (docs/coop.md): challenges on standard training and validation
sets (:mod:`pipeline.coop.challenges`), participants' result files read in any of qp's PDF forms
and checked (:mod:`pipeline.coop.formats`, :mod:`pipeline.coop.checks`), stored in one standard
form and registered (:mod:`pipeline.coop.submit`), validated by one metrics pipeline
(:mod:`pipeline.coop.metrics`) in an async job (:mod:`pipeline.coop.job`)."""
from pipeline.coop._models import Submission, SubmissionError

__all__ = ["Submission", "SubmissionError"]
