"""REST API of the PZ Validation Cooperative, ``/api/challenges`` (flask-smorest, beside the
products API; docs/coop.md).

Challenges are created by administrators and listed for everyone; each names its official
training and validation set products by version.  Errors are RFC 7807 problem documents.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from flask import Blueprint as FlaskBlueprint
from flask import Response, abort, current_app, render_template, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from pipeline.coop import SubmissionError
from pipeline.coop.challenges import (
    DEFAULT_METRIC_SET,
    PDF_FORMS,
    Challenge,
    ChallengeNotFoundError,
    Cooperative,
    CoopError,
    CoopPermissionError,
    ProductRef,
    SubmissionRecord,
)
from pipeline.coop.job import KIND as VALIDATION_KIND
from pipeline.coop.job import PARAMETER as SUBMISSION_PARAMETER
from pipeline.coop.submit import submit
from vo_service.auth import AuthError, AuthService
from vo_service.auth.web import current_reader, current_user
from vo_service.products import ProblemSchema, auth_problem, problem
from vo_service.services import Services

PROBLEM_MIME = "application/problem+json"

blp = Blueprint("coop", __name__, url_prefix="/api",
                description="PZ Validation Cooperative: challenges, submissions, metrics.")


class ProductRefSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True, validate=validate.Range(min=1))


class ChallengeCreateSchema(Schema):
    name = fields.String(required=True, metadata={"description": "lower-case slug, at most 30 characters"})
    title = fields.String(required=True)
    description = fields.String(load_default="", metadata={"description": "Markdown"})
    training = fields.Nested(ProductRefSchema, required=True, metadata={"description": "a trainingset product"})
    validation = fields.Nested(ProductRefSchema, required=True,
                               metadata={"description": "a validationset product (the truth of the metrics)"})
    deadline = fields.String(required=True,
                             metadata={"description": "ISO 8601 with its zone, e.g. 2027-03-01T00:00:00Z"})
    pdf_forms = fields.List(fields.String(validate=validate.OneOf(PDF_FORMS)), load_default=["quantiles"])
    metric_set = fields.List(fields.String(validate=validate.OneOf(DEFAULT_METRIC_SET)),
                             load_default=list(DEFAULT_METRIC_SET))
    histogram_grid = fields.List(fields.Float(allow_nan=False), load_default=None, allow_none=True,
                                 metadata={"description": "the bin edges (or points) every histogram PDF must use; "
                                                          "without it, histograms bring their grid in their metadata"})


class SubmissionSummarySchema(Schema):
    id = fields.Integer(required=True)
    participant = fields.String(required=True)
    algorithm = fields.String(required=True)
    description = fields.String(allow_none=True)
    product = fields.Nested(ProductRefSchema, required=True)
    status = fields.String(required=True)
    metrics = fields.Dict(allow_none=True)
    metrics_version = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    submitted_at = fields.DateTime(required=True)
    validated_at = fields.DateTime(allow_none=True)


class ChallengeSchema(Schema):
    name = fields.String(required=True)
    url = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    training = fields.Nested(ProductRefSchema, required=True)
    validation = fields.Nested(ProductRefSchema, required=True)
    deadline = fields.DateTime(required=True)
    open = fields.Boolean(required=True, metadata={"description": "submissions accepted (before the deadline)"})
    pdf_forms = fields.List(fields.String(), required=True)
    metric_set = fields.List(fields.String(), required=True)
    metric_set_version = fields.Integer(required=True)
    histogram_grid = fields.List(fields.Float(), allow_none=True)
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    submissions = fields.List(fields.Nested(SubmissionSummarySchema))


class ChallengeListSchema(Schema):
    items = fields.List(fields.Nested(ChallengeSchema), required=True)


def cooperative() -> Cooperative:
    services: Services = current_app.extensions["pzvo.services"]
    return Cooperative(services.products)


def _ref(ref: ProductRef) -> dict[str, Any]:
    return {"name": ref.name, "version": ref.version}


def _submission(s: SubmissionRecord) -> dict[str, Any]:
    return {"id": s.id, "participant": s.participant, "algorithm": s.algorithm, "description": s.description,
            "product": _ref(s.product), "status": s.status, "metrics": s.metrics,
            "metrics_version": s.metrics_version, "error": s.error, "submitted_at": s.submitted_at,
            "validated_at": s.validated_at}


def _document(c: Challenge, submissions: list[SubmissionRecord] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": c.name, "url": f"{request.host_url.rstrip('/')}/api/challenges/{c.name}", "title": c.title,
        "description": c.description, "training": _ref(c.training), "validation": _ref(c.validation),
        "deadline": c.deadline, "open": c.open(), "pdf_forms": list(c.pdf_forms), "metric_set": list(c.metric_set),
        "metric_set_version": c.metric_set_version, "created_by": c.created_by, "created_at": c.created_at,
        "histogram_grid": list(c.histogram_grid) if c.histogram_grid else None}
    if submissions is not None:
        doc["submissions"] = [_submission(s) for s in submissions]
    return doc


blp.errorhandler(AuthError)(auth_problem)


@blp.errorhandler(SubmissionError)
def _submission_error(exc: SubmissionError) -> Response:
    problems = list(getattr(exc, "problems", []) or [str(exc)])
    return problem(422, "Unprocessable Entity", f"the submission was refused ({len(problems)} problem(s)); "
                   "nothing was kept", problems=problems)


@blp.errorhandler(CoopError)
def _coop_error(exc: CoopError) -> Response:
    titles = {403: "Forbidden", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}
    return problem(exc.status, titles.get(exc.status, "Bad Request"), str(exc))


@blp.route("/challenges")
class Challenges(MethodView):
    @blp.response(200, ChallengeListSchema)
    def get(self) -> dict[str, Any]:
        """Every challenge, newest first."""
        current_reader()
        return {"items": [_document(c) for c in cooperative().list_challenges()]}

    @blp.arguments(ChallengeCreateSchema)
    @blp.response(201, ChallengeSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="not an administrator")
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="a bad name, deadline or product (the detail says which)")
    def post(self, args: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Create a challenge (administrators: the PZ Coordination Group)."""
        user = AuthService.require_user(current_user())
        challenge = cooperative().create_challenge(
            user, name=args["name"], title=args["title"], description=args["description"],
            training=ProductRef(**args["training"]), validation=ProductRef(**args["validation"]),
            deadline=args["deadline"], pdf_forms=args["pdf_forms"], metric_set=args["metric_set"],
            histogram_grid=args["histogram_grid"])
        document = _document(challenge, [])
        return document, 201, {"Location": document["url"]}


class ChallengeChangeSchema(Schema):
    metric_set = fields.List(fields.String(validate=validate.OneOf(DEFAULT_METRIC_SET)), required=True,
                             validate=validate.Length(min=1),
                             metadata={"description": "the metrics to compute; a change validates every "
                                                      "submission again"})


def _queue_validations(services: Services, coop: Cooperative, user: Any, submission_ids: list[int]) -> None:
    """One validation job per submission (the worker runs them in turn)."""
    for submission_id in submission_ids:
        job = services.uws.create_task(user, VALIDATION_KIND, [(SUBMISSION_PARAMETER, str(submission_id))])
        coop.set_status(submission_id, "accepted", job_id=job.job_id)


@blp.route("/challenges/<string:name>")
class ChallengeResource(MethodView):
    @blp.response(200, ChallengeSchema)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such challenge")
    def get(self, name: str) -> dict[str, Any]:
        """One challenge with its submissions and their metrics."""
        current_reader()
        coop = cooperative()
        challenge = coop.get_challenge(name)
        return _document(challenge, coop.submissions(name))

    @blp.arguments(ChallengeChangeSchema)
    @blp.response(200, ChallengeSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="not an administrator")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such challenge")
    def patch(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Change a challenge's metric set (administrators); every submission is validated again
        by a job of its own, and ``metric_set_version`` goes up by one."""
        user = AuthService.require_user(current_user())
        services: Services = current_app.extensions["pzvo.services"]
        coop = Cooperative(services.products)
        challenge, again = coop.change_metric_set(user, name, args["metric_set"])
        _queue_validations(services, coop, user, again)
        return _document(challenge, coop.submissions(challenge.name))


@blp.route("/challenges/<string:name>/revalidate")
class ChallengeRevalidation(MethodView):
    @blp.response(202, ChallengeSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="not an administrator")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such challenge")
    def post(self, name: str) -> tuple[dict[str, Any], int]:
        """Validate every submission of a challenge again (administrators), e.g. after a new
        version of the metrics code; one job per submission."""
        user = AuthService.require_user(current_user())
        if not user.is_admin:
            raise CoopPermissionError("revalidating a challenge is for administrators")
        services: Services = current_app.extensions["pzvo.services"]
        coop = Cooperative(services.products)
        challenge = coop.get_challenge(name)
        _queue_validations(services, coop, user, [s.id for s in coop.submissions(challenge.name)])
        return _document(challenge, coop.submissions(challenge.name)), 202


class SubmissionFormSchema(Schema):
    algorithm = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, metadata={"description": "the algorithm's description (Markdown)"})


class SubmissionFileSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "Parquet, CSV, FITS or qp HDF5 (docs/coop.md)"})


class SubmissionCreatedSchema(SubmissionSummarySchema):
    job = fields.String(allow_none=True, metadata={"description": "the validation job (GET /api/challenges/<name>"
                                                                  "/submissions/<id> shows its metrics when done)"})


@blp.route("/challenges/<string:name>/submissions")
class Submissions(MethodView):
    @blp.arguments(SubmissionFormSchema, location="form")
    @blp.arguments(SubmissionFileSchema, location="files")
    @blp.response(201, SubmissionCreatedSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="past the deadline")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such challenge")
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the file was refused; ``problems`` lists everything wrong with it")
    def post(self, form: dict[str, Any], files: dict[str, Any], name: str) -> tuple[dict[str, Any], int]:
        """Submit a photo-z result to a challenge; it is validated by an async job."""
        user = AuthService.require_user(current_user())
        services: Services = current_app.extensions["pzvo.services"]
        coop = Cooperative(services.products)
        upload = files["file"]
        suffix = Path(upload.filename or "submission").suffix.lower()[:10]
        with tempfile.TemporaryDirectory(prefix="pzvo-submission-") as work:
            path = Path(work) / f"submission{suffix}"
            upload.save(path)
            submission_id = submit(coop, user, name, path, algorithm=form["algorithm"],
                                   description=form.get("description"))
        _queue_validations(services, coop, user, [submission_id])
        record = coop.submission(submission_id)
        return {**_submission(record), "job": record.job_id}, 201


@blp.route("/challenges/<string:name>/submissions/<int:submission_id>")
class SubmissionResource(MethodView):
    @blp.response(200, SubmissionSummarySchema)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such submission")
    def get(self, name: str, submission_id: int) -> dict[str, Any]:
        """One submission: its status, and its metrics once validated."""
        current_reader()
        record = cooperative().submission(submission_id)
        if record.challenge != name:
            raise ChallengeNotFoundError(f"no submission {submission_id} in {name}")
        return _submission(record)


# -- the comparison page, its plots and the report ---------------------------------------------
pages = FlaskBlueprint("coop_pages", __name__)
#: The comparison plots: file name and caption.
PLOTS = (("density", "z_phot against z_true, one panel per submission"),
         ("pit", "PIT histograms (flat for calibrated PDFs)"),
         ("by_z", "sigma_MAD and bias in bins of true redshift"),
         ("by_mag", "sigma_MAD and bias in bins of i magnitude"))


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _page_data(name: str) -> tuple[Challenge, list[SubmissionRecord]]:
    coop = cooperative()
    try:
        challenge = coop.get_challenge(name)
    except CoopError:
        abort(404)
    return challenge, coop.submissions(name)


@pages.get("/challenges/<name>")
def challenge_page(name: str) -> str:
    """The comparison page: a sortable table of metrics per submission, plots side by side."""
    current_reader()
    challenge, submissions = _page_data(name)
    return render_template("coop/challenge.html", c=challenge, submissions=submissions, fmt=_fmt, plots=PLOTS)


@pages.get("/challenges/<name>/plots/<kind>.png")
def challenge_plot(name: str, kind: str) -> Response:
    current_reader()
    if kind not in dict(PLOTS):
        abort(404)
    _, submissions = _page_data(name)
    return Response(comparison_png(kind, [s for s in submissions if s.status == "validated" and s.metrics]),
                    mimetype="image/png")


def comparison_png(kind: str, submissions: list[SubmissionRecord]) -> bytes:
    """One comparison figure from the stored metrics (no submission file is read)."""
    import matplotlib  # noqa: PLC0415 - matplotlib: only for the plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.colors import LogNorm  # noqa: PLC0415

    labels = [f"#{s.id} {s.algorithm} ({s.participant})" for s in submissions]
    panels = max(1, len(submissions)) if kind in ("density", "pit") else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), squeeze=False)
    row = axes[0]
    if not submissions:
        row[0].text(0.5, 0.5, "no validated submission yet", ha="center", va="center")
    elif kind == "density":
        for ax, s, label in zip(row, submissions, labels, strict=True):
            grid = s.metrics["density"] if s.metrics and "density" in s.metrics else None
            if grid:
                counts = np.asarray(grid["counts"], dtype=float)
                counts[counts == 0] = np.nan  # empty cells stay blank on the log scale
                ax.pcolormesh(grid["z_true_edges"], grid["z_phot_edges"], counts.T, cmap="viridis",
                              norm=LogNorm(vmin=1))
            ax.plot([0, 3], [0, 3], color="white", lw=0.6)
            ax.set(title=label, xlabel="z_true", ylabel="z_phot")
    elif kind == "pit":
        for ax, s, label in zip(row, submissions, labels, strict=True):
            pit = (s.metrics or {}).get("pit_histogram")
            if pit:
                bins = np.linspace(0, 1, len(pit) + 1)
                ax.stairs(pit, bins, fill=True)
                ax.axhline(sum(pit) / len(pit), color="k", lw=0.8)
                p = (s.metrics or {}).get("pit_chi2_p")
                ax.set(title=f"{label}\nchi2 p = {_fmt(p)}", xlabel="PIT", ylabel="objects")
            else:
                ax.set(title=f"{label}\n(no PDFs)")
    else:
        axis = "z_true" if kind == "by_z" else "mag_i"
        for s, label in zip(submissions, labels, strict=True):
            binned = ((s.metrics or {}).get("bins") or {}).get(axis) or {}
            rows = [b for b in binned.get("bins", []) if b.get("n")]
            centres = [(b["lo"] + b["hi"]) / 2 for b in rows]
            row[0].plot(centres, [b.get("sigma_mad") for b in rows], marker="o", label=label)
            row[1].plot(centres, [b.get("bias") for b in rows], marker="o", label=label)
        row[0].set(xlabel=axis, ylabel="sigma_MAD")
        row[1].set(xlabel=axis, ylabel="bias")
        row[1].axhline(0, color="k", lw=0.6)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out.getvalue()


#: The report is one self-contained document (inline style, images as data: URIs), no script.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@pages.get("/challenges/<name>/report")
def challenge_report(name: str) -> Response:
    """The report for the validation paper: tables, plots (embedded), the validation set's
    provenance, each submission's algorithm description."""
    current_reader()
    return Response(_report_html(name), mimetype="text/html", headers={"Content-Security-Policy": REPORT_CSP})


def _report_html(name: str) -> str:
    challenge, submissions = _page_data(name)
    validated = [s for s in submissions if s.status == "validated" and s.metrics]
    images = {kind: base64.b64encode(comparison_png(kind, validated)).decode() for kind, _ in PLOTS}
    validation = cooperative().registry.get(challenge.validation.name, challenge.validation.version, user=None)
    return render_template("coop/report.html", c=challenge, submissions=submissions, fmt=_fmt, plots=PLOTS,
                           images=images, validation=validation, base=request.host_url.rstrip("/"),
                           now=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


@pages.get("/challenges/<name>/report.pdf")
def challenge_report_pdf(name: str) -> Response:
    """The report as PDF, printed by headless Chromium (Debian ``chromium``) from the HTML."""
    current_reader()
    html_text = _report_html(name)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return problem(503, "Service Unavailable", "PDF reports need chromium on the server; the HTML report "
                       f"is at /challenges/{name}/report")
    with tempfile.TemporaryDirectory(prefix="pzvo-report-") as work:
        page, pdf = Path(work) / "report.html", Path(work) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", f"--user-data-dir={work}/profile",
                        "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
                       capture_output=True, timeout=120, check=False)
        if not pdf.is_file():
            return problem(500, "Internal Server Error", "chromium did not print the report")
        data = pdf.read_bytes()
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}-report.pdf"'})
