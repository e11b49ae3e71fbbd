"""Jobs: create/get/list/update/replace/disable/enable/terminate/delete, task counts, completion rules."""

from __future__ import annotations

from pathlib import Path

from devstack.batch_emulator import errors, timeutil, validation
from devstack.batch_emulator.model_base import set_state, touch, wire

_UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo",
              "onAllTasksComplete", "metadata", "onTaskFailure")


class JobOps:
    def create_job(self, body: dict, id_checked: bool = False, schedule_pool: str | None = None) -> dict:
        """`id_checked`: the caller named the job (a job schedule's `<id>:job-<n>`, which POST /jobs refuses)."""
        validation.check_job({**body, "id": "scheduled", "_schedule": True} if id_checked else body)
        now = timeutil.now_iso()
        job = {k: v for k, v in body.items() if k[0] != "_"}
        key = job["id"].lower()
        with self.lock:
            if key in self.jobs:
                raise errors.exists("job")
            job.setdefault("priority", 0)
            job.setdefault("usesTaskDependencies", False)
            job.setdefault("allowTaskPreemption", False)
            job.setdefault("maxParallelTasks", -1)
            job.setdefault("onAllTasksComplete", "noaction")
            job.setdefault("onTaskFailure", "noaction")
            job.setdefault("constraints", {"maxWallClockTime": timeutil.UNLIMITED, "maxTaskRetryCount": 0})
            job.update({"creationTime": now, "state": "active", "stateTransitionTime": now,
                        "executionInfo": {"startTime": now, "poolId": job["poolInfo"].get("poolId")}})
            self.job_pool_ready(job, schedule_pool)  # auto_pools.py
            touch(job)
            job["lastModified"] = now
            self.jobs[key] = job
            self.tasks[key] = {}
            self.active[key] = {}
            self.counts[key] = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
            self.save_job(job)
            result = wire(job)
        self.store.flush()
        return result

    def _job(self, job_id: str) -> dict:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise errors.not_found("job")
        return job

    def get_job(self, job_id: str) -> dict:
        with self.lock:
            return wire(self._job(job_id))

    def list_jobs(self) -> list[dict]:
        with self.lock:
            return [wire(j) for j in self.jobs.values()]

    def update_job(self, job_id: str, body: dict, replace: bool) -> dict:
        validation.check_object(body, "job")
        validation.check_job_common(body)
        with self.lock:
            job = self._job(job_id)
            if job["state"] in ("completed", "terminating", "deleting"):
                raise errors.conflict("JobCompleted" if job["state"] == "completed" else "JobBeingTerminated",
                                      f"The specified job is {job['state']}.")
            if replace and not body.get("poolInfo"):
                raise errors.missing_property("poolInfo")
            if body.get("poolInfo") is not None and not body["poolInfo"].get("poolId"):
                raise errors.missing_property("poolInfo.poolId")
            for key in _UPDATABLE:
                if key in body and body[key] is not None:
                    job[key] = body[key]
                elif replace and key in ("priority", "constraints", "metadata", "onAllTasksComplete",
                                         "maxParallelTasks", "allowTaskPreemption"):
                    job[key] = {"priority": 0, "maxParallelTasks": -1, "allowTaskPreemption": False,
                                "onAllTasksComplete": "noaction",
                                "constraints": {"maxWallClockTime": timeutil.UNLIMITED, "maxTaskRetryCount": 0},
                                }.get(key)
                    if job[key] is None:
                        job.pop(key)
            job["executionInfo"] = {**job.get("executionInfo", {}),
                                    "poolId": job["poolInfo"].get("poolId") or job["executionInfo"].get("poolId")}
            touch(job)
            self.save_job(job)
            kills = self._check_job_complete(job["id"].lower())
            self.wake()
            result = wire(job)
        self._run_kills(kills)
        self.store.flush()
        return result

    def disable_job(self, job_id: str, disable_tasks: str) -> None:
        if (disable_tasks or "").lower() not in ("requeue", "terminate", "wait"):
            raise errors.invalid_property("disableTasks", disable_tasks, "Allowed values: requeue, terminate, wait")
        with self.lock:
            job = self._job(job_id)
            if job["state"] != "active":
                raise errors.conflict("InvalidJobState", f"The job is {job['state']}, not active.")
            key = job["id"].lower()
            kills = []
            if disable_tasks.lower() != "wait":
                for task in list(self.tasks[key].values()):
                    if task["state"] in ("running", "preparing"):
                        if disable_tasks.lower() == "requeue":
                            kills += self._requeue_task(key, task)
                        else:
                            kills += self._end_task(key, task, "TaskEnded", "The task was terminated because its "
                                                    "job was disabled.")
            set_state(job, "disabled")
            touch(job)
            self.save_job(job)
        self._run_kills(kills)
        self.store.flush()

    def enable_job(self, job_id: str) -> None:
        with self.lock:
            job = self._job(job_id)
            if job["state"] not in ("disabled", "disabling", "enabling"):
                raise errors.conflict("InvalidJobState", f"The job is {job['state']}, not disabled.")
            set_state(job, "active")
            touch(job)
            self.save_job(job)
            self.wake()
        self.store.flush()

    def terminate_job(self, job_id: str, reason: str | None) -> None:
        with self.lock:
            job = self._job(job_id)
            if job["state"] in ("completed", "deleting"):
                raise errors.conflict("JobCompleted" if job["state"] == "completed" else "JobBeingDeleted",
                                      f"The specified job is already {job['state']}.")
            kills = self._terminate_job_locked(job["id"].lower(), reason or "UserTerminate")
        self._run_kills(kills)
        self.store.flush()

    def _terminate_job_locked(self, job_key: str, reason: str) -> list:
        job = self.jobs[job_key]
        set_state(job, "terminating")
        kills = []
        for task in list(self.tasks[job_key].values()):
            if task["state"] in ("running", "preparing"):
                kills += self._end_task(job_key, task, "TaskEnded", "The task was terminated because its job "
                                        "was terminated.", check_job=False)
        now = timeutil.now_iso()
        set_state(job, "completed", now)
        job["executionInfo"] = {**job.get("executionInfo", {}), "endTime": now, "terminateReason": reason}
        self.job_ended(job)
        touch(job)
        self._job_release(job_key)
        self.save_job(job)
        self.wake()
        return kills

    def delete_job(self, job_id: str) -> None:
        with self.lock:
            job = self._job(job_id)
            key = job["id"].lower()
            set_state(job, "deleting")
            self._job_release(key)
            kills, dirs = [], set()
            for task in list(self.tasks[key].values()):
                if task["state"] in ("running", "preparing"):
                    kills += self._end_task(key, task, "TaskEnded", "The job was deleted.", check_job=False)
                if task.get("_dir"):
                    dirs.add(Path(task["_dir"]).parents[1])  # workitems/<job>
                self.store.stage("task", f"{key}/{task['id'].lower()}", None)
            self.job_ended(job)
            del self.jobs[key]
            self.tasks.pop(key, None)
            self.active.pop(key, None)
            self.counts.pop(key, None)
            self.store.stage("job", key, None)
            self.wake()
        self._run_kills(kills)
        self.store.flush()
        self.remove_dirs_later(dirs)

    def task_counts(self, job_id: str) -> dict:
        with self.lock:
            job = self._job(job_id)
            key = job["id"].lower()
            c = dict(self.counts.get(key, {}))
            slots = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
            for task in self.tasks[key].values():
                n = task.get("requiredSlots", 1)
                state = "running" if task["state"] == "preparing" else task["state"]
                slots[state] += n
                if state == "completed":
                    ok = (task.get("executionInfo") or {}).get("result") == "success"
                    slots["succeeded" if ok else "failed"] += n
        return {"taskCounts": c, "taskSlotCounts": slots}

    def _check_job_complete(self, job_key: str) -> list:
        """onAllTasksComplete=terminatejob: end the job once it has tasks and all of them completed."""
        job = self.jobs.get(job_key)
        if job is None or job["state"] != "active" or job.get("onAllTasksComplete", "").lower() != "terminatejob":
            return []
        c = self.counts.get(job_key, {})
        if c.get("completed", 0) and not c.get("active", 0) and not c.get("running", 0):
            return self._terminate_job_locked(job_key, "AllTasksComplete")
        return []

    def check_job_deadlines(self) -> None:
        """Terminate jobs past constraints.maxWallClockTime (MaxWallClockTimeExpiry)."""
        kills = []
        with self.lock:
            now = timeutil.now()
            for key, job in list(self.jobs.items()):
                if job["state"] not in ("active", "disabled"):
                    continue
                limit = timeutil.parse_duration((job.get("constraints") or {}).get("maxWallClockTime") or "")
                if limit is None or limit >= timeutil.UNLIMITED_SECONDS:
                    continue
                if (now - timeutil.parse_iso(job["creationTime"])).total_seconds() > limit:
                    kills += self._terminate_job_locked(key, "MaxWallClockTimeExpiry")
        self._run_kills(kills)
