"""Job schedule operations (``/jobschedules``...): add, list, get, update, disable/enable, terminate, delete, jobs."""

from __future__ import annotations

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol.messages import (
    Request,
    Response,
    accepted,
    check_conditions,
    created,
    entity_headers,
    get_response,
    list_response,
    without_secrets,
)


def _schedules(req: Request):
    return req.model.job_schedules


def _path(item: dict) -> str:
    return f"/jobschedules/{item['id']}"


def create_job_schedule(req: Request) -> Response:
    item = _schedules(req).add(req.json())
    return created(req, item, _path(item))


def list_job_schedules(req: Request) -> Response:
    return list_response(req, [without_secrets(i) for i in _schedules(req).list()], _path, "jobschedules")


def get_job_schedule(req: Request) -> Response:
    item = _schedules(req).get(req.params["schedule"])
    return get_response(req, without_secrets(item), _path(item), "jobschedules/@Element")


def job_schedule_exists(req: Request) -> Response:
    try:
        item = _schedules(req).get(req.params["schedule"])
    except errors.BatchError:
        return Response(404)
    return check_conditions(req, item) or Response(200, b"", entity_headers(item))


def update_job_schedule(req: Request) -> Response:
    check_conditions(req, _schedules(req).get(req.params["schedule"]))
    item = _schedules(req).update(req.params["schedule"], req.json(), replace=req.method == "PUT")
    return accepted(200, item, _path(item), req)


def _action(req: Request, operation, status: int) -> Response:
    """disable (204), enable (204), terminate (202), delete (202): conditions checked, then the operation."""
    check_conditions(req, _schedules(req).get(req.params["schedule"]))
    operation(req.params["schedule"])
    return accepted(status)


def disable_job_schedule(req: Request) -> Response:
    return _action(req, _schedules(req).disable, 204)


def enable_job_schedule(req: Request) -> Response:
    return _action(req, _schedules(req).enable, 204)


def terminate_job_schedule(req: Request) -> Response:
    return _action(req, _schedules(req).terminate, 202)


def delete_job_schedule(req: Request) -> Response:
    return _action(req, _schedules(req).delete, 202)


def list_jobs_of_schedule(req: Request) -> Response:
    jobs = _schedules(req).jobs(req.params["schedule"])
    return list_response(req, [without_secrets(j) for j in jobs], lambda j: f"/jobs/{j['id']}", "jobs")

