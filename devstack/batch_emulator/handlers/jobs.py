"""Job operations (``/jobs``...): add, list, get, update, terminate, delete, disable/enable and task counts."""

from __future__ import annotations

from devstack.batch_emulator.protocol.messages import (
    Request,
    Response,
    accepted,
    check_conditions,
    created,
    get_response,
    json_response,
    list_response,
    without_secrets,
)


def _path(job: dict) -> str:
    return f"/jobs/{job['id']}"


def create_job(req: Request) -> Response:
    job = req.model.create_job(req.json())
    return created(req, job, _path(job))


def list_jobs(req: Request) -> Response:
    return list_response(req, [without_secrets(j) for j in req.model.list_jobs()], _path, "jobs")


def get_job(req: Request) -> Response:
    job = req.model.get_job(req.params["job"])
    return get_response(req, without_secrets(job), _path(job), "jobs/@Element")


def update_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    job = req.model.update_job(req.params["job"], req.json(), replace=req.method == "PUT")
    return accepted(200, job, _path(job), req)


def terminate_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    body = req.json()
    req.model.terminate_job(req.params["job"], body.get("terminateReason"))
    job = req.model.get_job(req.params["job"])
    return accepted(202, job, _path(job), req)


def delete_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    req.model.delete_job(req.params["job"])
    return accepted(202)


def disable_job(req: Request) -> Response:
    body = req.json()
    req.model.disable_job(req.params["job"], body.get("disableTasks") or "")
    return accepted(202)


def enable_job(req: Request) -> Response:
    req.model.enable_job(req.params["job"])
    return accepted(202)


def task_counts(req: Request) -> Response:
    counts = req.model.task_counts(req.params["job"])
    body = {"odata.metadata": f"{req.base_url}/$metadata#taskcountsresult/@Element"}
    body.update(counts)
    return json_response(200, body)
