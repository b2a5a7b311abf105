"""HTTP layer of async TAP (UWS 1.1 at ``/tap/async``): parse, call the service, render.

Job documents come from templates (``templates/uws_*.xml``); errors are DALI error documents
(VOTable, QUERY_STATUS=ERROR) like everywhere under ``/tap``.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, send_file

from vo_service.auth.web import current_reader
from vo_service.tap import TapError, dali_error, install_dali_errors, request_files, request_params
from vo_service.uws._exceptions import JobNotFoundError, UwsError
from vo_service.uws._models import Job
from vo_service.uws._service import UwsService, format_time, shown

log = logging.getLogger(__name__)

uws = Blueprint("uws", __name__, url_prefix="/tap/async")
XML = "text/xml"
TEXT = "text/plain"


def uws_service() -> UwsService:
    return current_app.extensions["pzvo.uws"]


def _params() -> dict[str, list[str]]:
    return request_params()


def _last(params: dict[str, list[str]], name: str) -> str | None:
    """A parameter's last value; None when it is absent."""
    values = params.get(name)
    return values[-1] if values else None


def _list_url() -> str:
    return request.host_url.rstrip("/") + "/tap/async"


def _job_url(job_id: str) -> str:
    return f"{_list_url()}/{job_id}"


def _see_other(url: str) -> Response:
    return redirect(url, code=303)  # type: ignore[return-value]


def _text(value: object) -> Response:
    return Response("" if value is None else str(value), mimetype=TEXT)


def _job_document(job: Job) -> Response:
    return Response(render_template("uws_job.xml", job=job, job_url=_job_url(job.job_id),
                                    time=format_time), mimetype=XML)


install_dali_errors(uws, UwsError, TapError)


# -- the job list ----------------------------------------------------------------------------
@uws.route("", methods=["GET"], strict_slashes=False)
def job_list() -> Response:
    user = current_reader()
    params = _params()
    jobs = uws_service().list_jobs(user, phases=params.get("phase", []),
                                   after=_last(params, "after"), last=_last(params, "last"))
    return Response(render_template("uws_jobs.xml", jobs=jobs, base=_list_url(),
                                    time=format_time), mimetype=XML)


@uws.route("", methods=["POST"], strict_slashes=False)
def create_job() -> Response:
    """Create a job from TAP parameters (and multipart uploads); 303 to the new job."""
    user = current_reader()
    job = uws_service().create_job(user, _params(), request_files())
    g.log_extra = {"job_id": job.job_id, "phase": job.phase.value}
    return _see_other(_job_url(job.job_id))


# -- one job ---------------------------------------------------------------------------------
@uws.route("/<job_id>", methods=["GET"])
def job(job_id: str) -> Response:
    """The job document; ``WAIT=<s>`` (and optionally ``PHASE``) blocks until it changes."""
    user = current_reader()
    params = _params()
    wait = _last(params, "wait")
    if wait is not None:
        found = uws_service().wait(user, job_id, wait, _last(params, "phase"),
                                   address=request.remote_addr)
    else:
        found = uws_service().get_job(user, job_id)
    return _job_document(found)


@uws.route("/<job_id>", methods=["POST"])
def job_post(job_id: str) -> Response:
    """ACTION=DELETE deletes (303 to the list); other parameters go to /parameters."""
    user = current_reader()
    params = _params()
    action = _last(params, "action")
    if action is not None:
        if action.upper() != "DELETE":
            raise UwsError(f"ACTION={shown(action)} is not supported; the only action is DELETE.")
        uws_service().delete(user, job_id)
        return _see_other(_list_url())
    uws_service().set_parameters(user, job_id, params)
    return _see_other(_job_url(job_id))


@uws.route("/<job_id>", methods=["DELETE"])
def job_delete(job_id: str) -> Response:
    uws_service().delete(current_reader(), job_id)
    return _see_other(_list_url())


@uws.route("/<job_id>/phase", methods=["GET"])
def phase(job_id: str) -> Response:
    return _text(uws_service().get_job(current_reader(), job_id).phase.value)


@uws.route("/<job_id>/phase", methods=["POST"])
def phase_post(job_id: str) -> Response:
    value = (_params().get("phase") or [""])[-1]
    uws_service().change_phase(current_reader(), job_id, value)
    return _see_other(_job_url(job_id))


@uws.route("/<job_id>/executionduration", methods=["GET"])
def execution_duration(job_id: str) -> Response:
    return _text(uws_service().get_job(current_reader(), job_id).execution_duration)


@uws.route("/<job_id>/executionduration", methods=["POST"])
def execution_duration_post(job_id: str) -> Response:
    value = (_params().get("executionduration") or [""])[-1]
    uws_service().set_execution_duration(current_reader(), job_id, value)
    return _see_other(_job_url(job_id))


@uws.route("/<job_id>/destruction", methods=["GET"])
def destruction(job_id: str) -> Response:
    return _text(format_time(uws_service().get_job(current_reader(), job_id).destruction))


@uws.route("/<job_id>/destruction", methods=["POST"])
def destruction_post(job_id: str) -> Response:
    value = (_params().get("destruction") or [""])[-1]
    uws_service().set_destruction(current_reader(), job_id, value)
    return _see_other(_job_url(job_id))


@uws.route("/<job_id>/quote", methods=["GET"])
def quote(job_id: str) -> Response:
    """No prediction of the end time: an empty quote, as UWS 1.1 allows."""
    uws_service().get_job(current_reader(), job_id)
    return _text("")


@uws.route("/<job_id>/owner", methods=["GET"])
def owner(job_id: str) -> Response:
    return _text(uws_service().get_job(current_reader(), job_id).owner)


@uws.route("/<job_id>/runId", methods=["GET"])
def run_id(job_id: str) -> Response:
    return _text(uws_service().get_job(current_reader(), job_id).run_id)


@uws.route("/<job_id>/error", methods=["GET"])
def error(job_id: str) -> Response:
    """The job's error as a DALI error document (TAP 1.1 section 2.2.2); 404 when it has none,
    like a result that does not exist."""
    found = uws_service().get_job(current_reader(), job_id)
    if not found.error_message:
        raise JobNotFoundError(f"Job {job_id} has no error (phase {found.phase.value}).")
    return dali_error(found.error_message, 200)


@uws.route("/<job_id>/parameters", methods=["GET"])
def parameters(job_id: str) -> Response:
    found = uws_service().get_job(current_reader(), job_id)
    return Response(render_template("uws_parameters.xml", job=found), mimetype=XML)


@uws.route("/<job_id>/parameters", methods=["POST"])
def parameters_post(job_id: str) -> Response:
    uws_service().set_parameters(current_reader(), job_id, _params())
    return _see_other(_job_url(job_id))


@uws.route("/<job_id>/results", methods=["GET"])
def results(job_id: str) -> Response:
    found = uws_service().get_job(current_reader(), job_id)
    return Response(render_template("uws_results.xml", job=found, job_url=_job_url(job_id)),
                    mimetype=XML)


@uws.route("/<job_id>/results/<result_id>", methods=["GET"])
def result(job_id: str, result_id: str) -> Response:
    """Stream the result file (``send_file`` reads it in blocks, never whole)."""
    path, mime = uws_service().result_file(current_reader(), job_id, result_id)
    response = send_file(path, mimetype=mime, conditional=True, etag=True, max_age=0)
    response.headers["Content-Disposition"] = f'inline; filename="{job_id}.{path.suffix[1:]}"'
    return response
