"""URL table: (method, path pattern) -> handler, in the style of moto's urls.py; server.py hands it to the HTTP
server, whose Router (protocol/routing.py) matches it.

Patterns are lists of literal segments and ``{name}`` captures; ``{path*}`` captures the rest (task file
paths). Unknown paths answer 400 ``InvalidUri``, as Batch does for an operation it does not have.
"""

from __future__ import annotations

from devstack.batch_emulator.handlers import (
    account,
    admin,
    job_prep,
    job_schedules,
    jobs,
    nodes,
    pools,
    task_files,
    tasks,
)

ROUTES = [
    ("GET", "supportedimages", account.supported_images),
    ("GET", "nodecounts", account.node_counts),
    ("POST", "pools", pools.create_pool),
    ("GET", "pools", pools.list_pools),
    ("GET", "pools/{pool}", pools.get_pool),
    ("HEAD", "pools/{pool}", pools.pool_exists),
    ("DELETE", "pools/{pool}", pools.delete_pool),
    ("PATCH", "pools/{pool}", pools.update_pool),
    ("POST", "pools/{pool}/updateproperties", pools.update_pool),
    ("POST", "pools/{pool}/resize", pools.resize_pool),
    ("POST", "pools/{pool}/stopresize", pools.stop_resize),
    ("POST", "pools/{pool}/enableautoscale", pools.enable_autoscale),
    ("POST", "pools/{pool}/disableautoscale", pools.disable_autoscale),
    ("POST", "pools/{pool}/evaluateautoscale", pools.evaluate_autoscale),
    ("POST", "pools/{pool}/removenodes", pools.remove_nodes),
    ("GET", "pools/{pool}/nodes", nodes.list_nodes),
    ("GET", "pools/{pool}/nodes/{node}", nodes.get_node),
    ("POST", "pools/{pool}/nodes/{node}/enablescheduling", nodes.node_scheduling),
    ("POST", "pools/{pool}/nodes/{node}/disablescheduling", nodes.node_scheduling),
    ("POST", "jobs", jobs.create_job),
    ("GET", "jobs", jobs.list_jobs),
    ("GET", "jobs/{job}", jobs.get_job),
    ("PATCH", "jobs/{job}", jobs.update_job),
    ("PUT", "jobs/{job}", jobs.update_job),
    ("DELETE", "jobs/{job}", jobs.delete_job),
    ("POST", "jobs/{job}/terminate", jobs.terminate_job),
    ("POST", "jobs/{job}/disable", jobs.disable_job),
    ("POST", "jobs/{job}/enable", jobs.enable_job),
    ("GET", "jobs/{job}/taskcounts", jobs.task_counts),
    ("GET", "jobs/{job}/jobpreparationandreleasetaskstatus", job_prep.prep_release_status),
    ("POST", "jobs/{job}/tasks", tasks.create_task),
    ("GET", "jobs/{job}/tasks", tasks.list_tasks),
    ("POST", "jobs/{job}/addtaskcollection", tasks.add_task_collection),
    ("GET", "jobs/{job}/tasks/{task}", tasks.get_task),
    ("PUT", "jobs/{job}/tasks/{task}", tasks.update_task),
    ("DELETE", "jobs/{job}/tasks/{task}", tasks.delete_task),
    ("POST", "jobs/{job}/tasks/{task}/terminate", tasks.terminate_task),
    ("POST", "jobs/{job}/tasks/{task}/reactivate", tasks.reactivate_task),
    ("GET", "jobs/{job}/tasks/{task}/subtasksinfo", tasks.subtasks),
    ("GET", "jobs/{job}/tasks/{task}/files", task_files.list_task_files),
    ("GET", "jobs/{job}/tasks/{task}/files/{path*}", task_files.get_task_file),
    ("HEAD", "jobs/{job}/tasks/{task}/files/{path*}", task_files.get_task_file),
    ("DELETE", "jobs/{job}/tasks/{task}/files/{path*}", task_files.delete_task_file),
    ("POST", "jobschedules", job_schedules.create_job_schedule),
    ("GET", "jobschedules", job_schedules.list_job_schedules),
    ("GET", "jobschedules/{schedule}", job_schedules.get_job_schedule),
    ("HEAD", "jobschedules/{schedule}", job_schedules.job_schedule_exists),
    ("PATCH", "jobschedules/{schedule}", job_schedules.update_job_schedule),
    ("PUT", "jobschedules/{schedule}", job_schedules.update_job_schedule),
    ("DELETE", "jobschedules/{schedule}", job_schedules.delete_job_schedule),
    ("POST", "jobschedules/{schedule}/disable", job_schedules.disable_job_schedule),
    ("POST", "jobschedules/{schedule}/enable", job_schedules.enable_job_schedule),
    ("POST", "jobschedules/{schedule}/terminate", job_schedules.terminate_job_schedule),
    ("GET", "jobschedules/{schedule}/jobs", job_schedules.list_jobs_of_schedule),
    ("POST", "_emulator/pools/{pool}/nodes/{node}/preempt", admin.preempt_node),  # emulator-only
]
