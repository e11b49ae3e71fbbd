"""Tasks: create, addTaskCollection (per-task results), get/list, update, terminate, reactivate, delete."""

from __future__ import annotations

import json

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model import validation
from devstack.batch_emulator.model.fields import check_duration, check_int, check_object
from devstack.batch_emulator.model.scheduling import Scheduling
from devstack.batch_emulator.model.state import State, pool_key_of, run_kills, touch, wire

MAX_TASKS_PER_COLLECTION = 100
MAX_COLLECTION_BYTES = 1024 * 1024


class Tasks:
    def __init__(self, state: State, scheduling: Scheduling):
        self.state = state
        self.scheduling = scheduling

    def _job_for_tasks(self, job_id: str) -> dict:
        job = self.state.job(job_id)
        if job["state"] != "active" and job["state"] != "disabled":
            raise errors.conflict("JobCompleted" if job["state"] == "completed" else "InvalidJobState",
                                  f"The specified job is {job['state']}: tasks cannot be added.")
        return job

    def _check_container_rule(self, job: dict, body: dict) -> None:
        pool = self.state.pools.get(pool_key_of(job))
        if pool is None:
            return
        container_pool = bool((pool.get("virtualMachineConfiguration") or {}).get("containerConfiguration"))
        has = body.get("containerSettings") is not None
        if container_pool and not has:
            raise errors.invalid_property("containerSettings", "null", "The task must specify containerSettings "
                                          "because the pool it runs on has a containerConfiguration")
        if has and not container_pool:
            raise errors.invalid_property("containerSettings", json.dumps(body["containerSettings"])[:200],
                                          "The task must not specify containerSettings because the pool it runs "
                                          "on has no containerConfiguration")

    def _new_task(self, job: dict, body: dict) -> dict:
        now = timeutil.now_iso()
        task = {k: v for k, v in body.items() if k[0] != "_"}
        constraints = dict(task.get("constraints") or {})
        constraints.setdefault("maxWallClockTime", timeutil.UNLIMITED)
        constraints.setdefault("retentionTime", "P7D")
        constraints.setdefault("maxTaskRetryCount", (job.get("constraints") or {}).get("maxTaskRetryCount", 0))
        task["constraints"] = constraints
        task.setdefault("requiredSlots", 1)
        task.setdefault("userIdentity", {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}})
        task.update({"creationTime": now, "state": "active", "stateTransitionTime": now,
                     "executionInfo": {"retryCount": 0, "requeueCount": 0}, "_seq": self.state.next_seq(),
                     "_attempt": 0})
        touch(task)
        task["lastModified"] = now
        return task

    def _insert_task(self, job_key: str, task: dict) -> None:
        self.state.tasks[job_key][task["id"].lower()] = task
        self.state.count_move(job_key, task, None, "active")
        self.state.active[job_key][task["id"].lower()] = None
        self.state.save_task(job_key, task)

    def create_task(self, job_id: str, body: dict) -> dict:
        with self.state.lock:
            job = self._job_for_tasks(job_id)
            validation.check_task(body, job, self.state.allow_host_access)
            self._check_container_rule(job, body)
            key = job["id"].lower()
            if body["id"].lower() in self.state.tasks[key]:
                raise errors.exists("task")
            task = self._new_task(job, body)
            self._insert_task(key, task)
            self.state.wake()
            result = wire(task)
        self.state.store.flush()
        return result

    def add_task_collection(self, job_id: str, body: dict, raw_size: int) -> list[dict]:
        """Add up to 100 tasks; each gets its own result (success, or clienterror with a BatchError)."""
        check_object(body, "taskCollection")
        values = body.get("value")
        if values is None:
            raise errors.missing_property("value")
        if not isinstance(values, list):
            raise errors.invalid_property("value", "...", "Expected a JSON array")
        if len(values) > MAX_TASKS_PER_COLLECTION or raw_size > MAX_COLLECTION_BYTES:
            raise errors.body_too_large(f"The collection has {len(values)} tasks and {raw_size} bytes; the "
                                        f"limits are {MAX_TASKS_PER_COLLECTION} tasks and 1 MB")
        results = []
        with self.state.lock:
            job = self._job_for_tasks(job_id)
            key = job["id"].lower()
            seen = set()
            for item in values:
                task_id = item.get("id") if isinstance(item, dict) else None
                try:
                    validation.check_task(item, job, self.state.allow_host_access)
                    self._check_container_rule(job, item)
                    if task_id.lower() in self.state.tasks[key] or task_id.lower() in seen:
                        raise errors.exists("task")
                except errors.BatchError as exc:
                    results.append({"status": "clienterror", "taskId": task_id or "", "error": exc.to_detail()})
                    continue
                seen.add(task_id.lower())
                task = self._new_task(job, item)
                self._insert_task(key, task)
                results.append({"status": "success", "taskId": task["id"], "eTag": task["eTag"],
                                "lastModified": task["lastModified"], "_path": f"/jobs/{job['id']}/tasks/"
                                f"{task['id']}"})
            self.state.wake()
        self.state.store.flush()
        return results

    def get_task(self, job_id: str, task_id: str) -> dict:
        with self.state.lock:
            return wire(self.state.task(job_id, task_id)[1])

    def list_tasks(self, job_id: str) -> list[dict]:
        with self.state.lock:
            job = self.state.job(job_id)
            return [wire(t) for t in self.state.tasks[job["id"].lower()].values()]

    def task_paths(self, job_id: str, task_id: str) -> dict | None:
        """Where the task ran last (task dir on its node) or None when it has not been scheduled yet."""
        with self.state.lock:
            _, task = self.state.task(job_id, task_id)
            return task.get("_dir")

    def update_task(self, job_id: str, task_id: str, body: dict) -> dict:
        check_object(body, "task")
        constraints = body.get("constraints")
        if constraints is not None:
            check_duration(constraints, "maxWallClockTime", "constraints.")
            check_duration(constraints, "retentionTime", "constraints.")
            check_int(constraints, "maxTaskRetryCount", "constraints.", -1)
        with self.state.lock:
            key, task = self.state.task(job_id, task_id)
            if constraints is not None:
                task["constraints"] = {**task.get("constraints", {}), **constraints}
            touch(task)
            self.state.save_task(key, task)
            result = wire(task)
        self.state.store.flush()
        return result

    def terminate_task(self, job_id: str, task_id: str) -> None:
        with self.state.lock:
            key, task = self.state.task(job_id, task_id)
            kills = []
            if task["state"] != "completed":
                kills = self.scheduling.end_task(key, task, "TaskEnded", "The task was terminated by a user request.")
        run_kills(kills)
        self.state.store.flush()

    def reactivate_task(self, job_id: str, task_id: str) -> None:
        with self.state.lock:
            key, task = self.state.task(job_id, task_id)
            if task["state"] != "completed" or (task.get("executionInfo") or {}).get("result") != "failure":
                raise errors.conflict("TaskCompleted" if task["state"] == "completed" else "InvalidTaskState",
                                      "Only a task that completed with a failure can be reactivated.")
            info = {k: v for k, v in task["executionInfo"].items() if k in ("requeueCount", "lastRequeueTime")}
            info["retryCount"] = 0
            self.state.set_task_state(key, task, "active")
            task["executionInfo"] = info
            touch(task)
            self.state.save_task(key, task)
            self.state.wake()
        self.state.store.flush()

    def delete_task(self, job_id: str, task_id: str) -> None:
        with self.state.lock:
            key, task = self.state.task(job_id, task_id)
            kills = []
            if task["state"] in ("running", "preparing"):
                kills = self.scheduling.end_task(key, task, "TaskEnded", "The task was deleted.")
            self.state.count_move(key, task, task["state"], None)
            self.state.active[key].pop(task["id"].lower(), None)
            del self.state.tasks[key][task["id"].lower()]
            self.state.store.stage("task", f"{key}/{task['id'].lower()}", None)
            self.state.wake()
        run_kills(kills)
        self.state.store.flush()
        if task.get("_dir"):
            self.state.remove_dirs_later([task["_dir"]])
