"""URL table: (method, path pattern) -> handler, in the style of moto's urls.py.

Patterns are lists of literal segments and ``{name}`` captures; ``{path*}`` captures the rest (task file
paths). Unknown paths answer 404 ``InvalidUri``... as Batch does for an operation it does not have.
"""

from __future__ import annotations

from devstack.batch_emulator import admin_handlers, job_prep_handlers
from devstack.batch_emulator import handlers as h
from devstack.batch_emulator import job_schedule_handlers as js

ROUTES = [
    ("GET", "supportedimages", h.supported_images),
    ("GET", "nodecounts", h.node_counts),
    ("POST", "pools", h.create_pool),
    ("GET", "pools", h.list_pools),
    ("GET", "pools/{pool}", h.get_pool),
    ("HEAD", "pools/{pool}", h.pool_exists),
    ("DELETE", "pools/{pool}", h.delete_pool),
    ("PATCH", "pools/{pool}", h.update_pool),
    ("POST", "pools/{pool}/updateproperties", h.update_pool),
    ("POST", "pools/{pool}/resize", h.resize_pool),
    ("POST", "pools/{pool}/stopresize", h.stop_resize),
    ("POST", "pools/{pool}/enableautoscale", h.enable_autoscale),
    ("POST", "pools/{pool}/disableautoscale", h.disable_autoscale),
    ("POST", "pools/{pool}/evaluateautoscale", h.evaluate_autoscale),
    ("POST", "pools/{pool}/removenodes", h.remove_nodes),
    ("GET", "pools/{pool}/nodes", h.list_nodes),
    ("GET", "pools/{pool}/nodes/{node}", h.get_node),
    ("POST", "pools/{pool}/nodes/{node}/enablescheduling", h.node_scheduling),
    ("POST", "pools/{pool}/nodes/{node}/disablescheduling", h.node_scheduling),
    ("POST", "jobs", h.create_job),
    ("GET", "jobs", h.list_jobs),
    ("GET", "jobs/{job}", h.get_job),
    ("PATCH", "jobs/{job}", h.update_job),
    ("PUT", "jobs/{job}", h.update_job),
    ("DELETE", "jobs/{job}", h.delete_job),
    ("POST", "jobs/{job}/terminate", h.terminate_job),
    ("POST", "jobs/{job}/disable", h.disable_job),
    ("POST", "jobs/{job}/enable", h.enable_job),
    ("GET", "jobs/{job}/taskcounts", h.task_counts),
    ("GET", "jobs/{job}/jobpreparationandreleasetaskstatus", job_prep_handlers.prep_release_status),
    ("POST", "jobs/{job}/tasks", h.create_task),
    ("GET", "jobs/{job}/tasks", h.list_tasks),
    ("POST", "jobs/{job}/addtaskcollection", h.add_task_collection),
    ("GET", "jobs/{job}/tasks/{task}", h.get_task),
    ("PUT", "jobs/{job}/tasks/{task}", h.update_task),
    ("DELETE", "jobs/{job}/tasks/{task}", h.delete_task),
    ("POST", "jobs/{job}/tasks/{task}/terminate", h.terminate_task),
    ("POST", "jobs/{job}/tasks/{task}/reactivate", h.reactivate_task),
    ("GET", "jobs/{job}/tasks/{task}/subtasksinfo", h.subtasks),
    ("GET", "jobs/{job}/tasks/{task}/files", h.list_task_files),
    ("GET", "jobs/{job}/tasks/{task}/files/{path*}", h.get_task_file),
    ("HEAD", "jobs/{job}/tasks/{task}/files/{path*}", h.get_task_file),
    ("DELETE", "jobs/{job}/tasks/{task}/files/{path*}", h.delete_task_file),
    ("POST", "jobschedules", js.create_job_schedule),
    ("GET", "jobschedules", js.list_job_schedules),
    ("GET", "jobschedules/{schedule}", js.get_job_schedule),
    ("HEAD", "jobschedules/{schedule}", js.job_schedule_exists),
    ("PATCH", "jobschedules/{schedule}", js.update_job_schedule),
    ("PUT", "jobschedules/{schedule}", js.update_job_schedule),
    ("DELETE", "jobschedules/{schedule}", js.delete_job_schedule),
    ("POST", "jobschedules/{schedule}/disable", js.disable_job_schedule),
    ("POST", "jobschedules/{schedule}/enable", js.enable_job_schedule),
    ("POST", "jobschedules/{schedule}/terminate", js.terminate_job_schedule),
    ("GET", "jobschedules/{schedule}/jobs", js.list_jobs_of_schedule),
    ("POST", "_emulator/pools/{pool}/nodes/{node}/preempt", admin_handlers.preempt_node),  # emulator-only
]

_COMPILED = [(m, p.split("/"), fn) for m, p, fn in ROUTES]


def match(method: str, segments: list[str]):
    """(handler, params) for a request, (None, None) for an unknown path, (False, None) for a wrong method."""
    path_known = False
    for m, pattern, fn in _COMPILED:
        params = _match(pattern, segments)
        if params is None:
            continue
        path_known = True
        if m == method:
            return fn, params
    return (False, None) if path_known else (None, None)


def _match(pattern: list[str], segments: list[str]) -> dict | None:
    params = {}
    for i, part in enumerate(pattern):
        if part.endswith("*}"):
            if i >= len(segments):
                return None
            params[part[1:-2]] = "/".join(segments[i:])
            return params
        if i >= len(segments):
            return None
        if part.startswith("{"):
            params[part[1:-1]] = segments[i]
        elif part != segments[i].lower():
            return None
    return params if len(pattern) == len(segments) else None
