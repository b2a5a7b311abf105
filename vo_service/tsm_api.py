"""REST API of Training Set Maker jobs, ``/api/tsm`` (flask-smorest, beside the products API).

``POST /api/tsm`` checks the configuration (:func:`pipeline.tsm.job.job_config`: the same
checks as ``pzvo tsm run`` plus what a remote user may not ask for) and queues a job of kind
``tsm`` in the async job pool (:meth:`UwsService.create_task`); a ``pzvo worker`` runs it.
``GET /api/tsm/<id>`` shows its phase and progress while it runs, its error when it failed
(nothing registered then) and its products when it is done.  Errors are RFC 7807 problem
documents, as everywhere under ``/api``.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from pipeline.tsm.job import KIND, PARAMETER, JobConfigError, job_config, job_parameters
from vo_service.auth import AuthError, AuthService, User
from vo_service.auth.web import current_user
from vo_service.products import ProblemSchema, auth_problem, problem
from vo_service.services import Services
from vo_service.uws import ExecutionPhase, Job, UwsError

PROBLEM_MIME = "application/problem+json"

blp = Blueprint("tsm", __name__, url_prefix="/api",
                description="Training Set Maker jobs: combine spec-z catalogs, crossmatch, split, publish.")


class TsmSubmitSchema(Schema):
    config = fields.Dict(required=True, metadata={
        "description": "the TSM configuration as in docs/examples/tsm_demo.yaml, as JSON; inputs are "
                       "products (product:NAME[@V]); no output.dir, dask or own flag file (docs/tsm.md)"})
    run_id = fields.String(load_default=None, validate=validate.Length(max=64),
                           metadata={"description": "a label of your own for the job"})


class TsmProductSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    product_type = fields.String(required=True)
    rows = fields.Integer(allow_none=True)
    table = fields.String(allow_none=True, metadata={"description": "schema.table, queryable by ADQL"})
    url = fields.String(required=True)


class TsmJobSchema(Schema):
    """One Training Set Maker job: the async job record and, once done, what it made."""

    job_id = fields.String(required=True)
    url = fields.String(required=True)
    owner = fields.String(required=True)
    run_id = fields.String(allow_none=True)
    phase = fields.String(required=True, validate=validate.OneOf([p.value for p in ExecutionPhase]))
    progress = fields.String(allow_none=True, metadata={"description": "step number/steps and name while it runs"})
    created = fields.DateTime(required=True)
    started = fields.DateTime(allow_none=True)
    ended = fields.DateTime(allow_none=True)
    destruction = fields.DateTime(required=True)
    error = fields.String(allow_none=True)
    config = fields.Dict(required=True)
    summary = fields.Dict(allow_none=True, metadata={"description": "counts: in, cut, duplicates, matched, ..."})
    products = fields.List(fields.Nested(TsmProductSchema), required=True)
    report = fields.Dict(allow_none=True, metadata={"description": "the run's whole report (parameters, "
                                                                   "per-rule counts, timings)"})


class TsmJobListSchema(Schema):
    items = fields.List(fields.Nested(TsmJobSchema), required=True)


def _services() -> Services:
    return current_app.extensions["pzvo.services"]


def _user() -> User:
    return AuthService.require_user(current_user())


def _document(job: Job, *, full: bool = True) -> dict[str, Any]:
    base = request.host_url.rstrip("/")
    values = job.parameter_map().get(PARAMETER) or ["{}"]
    outcome: dict[str, Any] = dict(job.outcome or {})
    products = [{**p, "url": f"{base}/api/products/{p['name']}?version={p['version']}"}
                for p in outcome.get("products") or []]
    try:
        config = json.loads(values[0])
    except ValueError:
        config = {}
    return {"job_id": job.job_id, "url": f"{base}/api/tsm/{job.job_id}", "owner": job.owner, "run_id": job.run_id,
            "phase": job.phase.value, "progress": job.progress, "created": job.creation_time,
            "started": job.start_time, "ended": job.end_time, "destruction": job.destruction,
            "error": job.error_message, "config": config, "summary": outcome.get("summary"),
            "products": products, "report": outcome.get("report") if full else None}


blp.errorhandler(AuthError)(auth_problem)


@blp.errorhandler(UwsError)
def _job_error(exc: UwsError) -> Response:
    titles = {404: "Not Found", 403: "Forbidden", 429: "Too Many Requests"}
    return problem(exc.http_status, titles.get(exc.http_status, "Bad Request"), exc.message)


@blp.errorhandler(JobConfigError)
def _config_error(exc: JobConfigError) -> Response:
    return problem(422, "Unprocessable Entity", " ".join(str(exc).split()))


@blp.route("/tsm")
class TsmJobs(MethodView):
    @blp.response(200, TsmJobListSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    def get(self) -> dict[str, Any]:
        """Your Training Set Maker jobs, oldest first (without their whole reports)."""
        jobs = _services().uws.list_jobs(_user(), kind=KIND)
        return {"items": [_document(job, full=False) for job in jobs]}

    @blp.arguments(TsmSubmitSchema)
    @blp.response(201, TsmJobSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="your quota of stored jobs is full")
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="the configuration cannot run (the detail names the key)")
    @blp.alt_response(429, schema=ProblemSchema, content_type=PROBLEM_MIME,
                      description="you already have as many jobs queued or running as allowed")
    def post(self, args: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Queue a Training Set Maker run; it registers <name>_combined, _training and _validation
        as your products when it ends."""
        user = _user()
        services = _services()
        job_config(args["config"], user=user, registry=services.products)
        job = services.uws.create_task(user, KIND, job_parameters(args["config"]), run_id=args.get("run_id"))
        document = _document(job)
        return document, 201, {"Location": document["url"]}


@blp.route("/tsm/<string:job_id>")
class TsmJob(MethodView):
    @blp.response(200, TsmJobSchema)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="another user's job")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such job")
    def get(self, job_id: str) -> dict[str, Any]:
        """One job: phase and progress while it runs, its error, or its products and report."""
        return _document(_services().uws.get_job(_user(), job_id, kind=KIND))

    @blp.response(204)
    @blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no token")
    @blp.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_MIME, description="another user's job")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_MIME, description="no such job")
    def delete(self, job_id: str) -> None:
        """Delete a job; a running one stops before its next step and registers nothing."""
        _services().uws.delete(_user(), job_id, kind=KIND)
