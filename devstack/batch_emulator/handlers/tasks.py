"""Task operations (``/jobs/{job}/tasks``...): add one or a collection, list, get, update, terminate,
reactivate, delete, and subtask information."""

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


def create_task(req: Request) -> Response:
    task = req.model.create_task(req.params["job"], req.json())
    job = req.model.get_job(req.params["job"])
    return created(req, task, f"/jobs/{job['id']}/tasks/{task['id']}")


def add_task_collection(req: Request) -> Response:
    results = req.model.add_task_collection(req.params["job"], req.json(), len(req.body))
    for r in results:
        path = r.pop("_path", None)
        if path:
            r["location"] = req.base_url + path
    return json_response(200, {"odata.metadata": f"{req.base_url}/$metadata#taskaddresult", "value": results})


def list_tasks(req: Request) -> Response:
    job = req.model.get_job(req.params["job"])
    return list_response(req, [without_secrets(t) for t in req.model.list_tasks(job["id"])],
                         lambda t: f"/jobs/{job['id']}/tasks/{t['id']}", "tasks")


def get_task(req: Request) -> Response:
    task = req.model.get_task(req.params["job"], req.params["task"])
    job_id = req.model.get_job(req.params["job"])["id"]  # the id as created, whatever case the URL used
    return get_response(req, without_secrets(task), f"/jobs/{job_id}/tasks/{task['id']}", "tasks/@Element")


def update_task(req: Request) -> Response:
    task = req.model.update_task(req.params["job"], req.params["task"], req.json())
    return accepted(200, task, f"/jobs/{req.params['job']}/tasks/{task['id']}", req)


def terminate_task(req: Request) -> Response:
    check_conditions(req, req.model.get_task(req.params["job"], req.params["task"]))
    req.model.terminate_task(req.params["job"], req.params["task"])
    return accepted(204)


def reactivate_task(req: Request) -> Response:
    req.model.reactivate_task(req.params["job"], req.params["task"])
    return accepted(204)


def delete_task(req: Request) -> Response:
    check_conditions(req, req.model.get_task(req.params["job"], req.params["task"]))
    req.model.delete_task(req.params["job"], req.params["task"])
    return Response(200)


def subtasks(req: Request) -> Response:
    req.model.get_task(req.params["job"], req.params["task"])
    return json_response(200, {"odata.metadata": f"{req.base_url}/$metadata#subtaskinformation", "value": []})
