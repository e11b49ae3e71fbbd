"""Jobs: create/get/list/update/replace/disable/enable/terminate/delete, task counts, the rules that end a job."""

from __future__ import annotations

from pathlib import Path

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model import validation
from devstack.batch_emulator.model.auto_pools import AutoPools
from devstack.batch_emulator.model.fields import check_object
from devstack.batch_emulator.model.job_prep import JobPrep
from devstack.batch_emulator.model.scheduling import Scheduling
from devstack.batch_emulator.model.state import State, run_kills, set_state, touch, wire

_UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo",
              "onAllTasksComplete", "metadata", "onTaskFailure")


class Jobs:
    """Job operations and the rules that end a job; terminate_locked and check_complete are called with the lock
    held (also by the Scheduling group, when a task's outcome ends its job)."""

    def __init__(self, state: State, scheduling: Scheduling, job_prep: JobPrep, auto_pools: AutoPools):
        self.state = state
        self.scheduling = scheduling
        self.job_prep = job_prep
        self.auto_pools = auto_pools

    def create_job(self, body: dict, id_checked: bool = False, schedule_pool: str | None = None) -> dict:
        """`id_checked`: the caller named the job (a job schedule's `<id>:job-<n>`, which POST /jobs refuses)."""
        validation.check_job({**body, "id": "scheduled", "_schedule": True} if id_checked else body)
        now = timeutil.now_iso()
        job = {k: v for k, v in body.items() if k[0] != "_"}
        key = job["id"].lower()
        with self.state.lock:
            if key in self.state.jobs:
                raise errors.exists("job")
            self._check_quota()
            job.setdefault("priority", 0)
            job.setdefault("usesTaskDependencies", False)
            job.setdefault("allowTaskPreemption", False)
            job.setdefault("maxParallelTasks", -1)
            job.setdefault("onAllTasksComplete", "noaction")
            job.setdefault("onTaskFailure", "noaction")
            job.setdefault("constraints", {"maxWallClockTime": timeutil.UNLIMITED, "maxTaskRetryCount": 0})
            job.update({"creationTime": now, "state": "active", "stateTransitionTime": now,
                        "executionInfo": {"startTime": now, "poolId": job["poolInfo"].get("poolId")}})
            self.auto_pools.job_pool_ready(job, schedule_pool)
            touch(job)
            job["lastModified"] = now
            self.state.jobs[key] = job
            self.state.tasks[key] = {}
            self.state.active[key] = {}
            self.state.counts[key] = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
            self.state.save_job(job)
            result = wire(job)
        self.state.store.flush()
        return result

    def _check_quota(self) -> None:
        """--active-job-quota: like Batch, refuse a new job while that many jobs are not completed. Jobs made by a
        job schedule count like any other; the schedules themselves are not counted (Batch counts both)."""
        quota = self.state.active_job_quota
        if quota is None:
            return
        active = sum(1 for j in self.state.jobs.values() if j["state"] not in ("completed", "deleting"))
        if active >= quota:
            raise errors.job_quota_reached(quota)

    def get_job(self, job_id: str) -> dict:
        with self.state.lock:
            return wire(self.state.job(job_id))

    def list_jobs(self) -> list[dict]:
        with self.state.lock:
            return [wire(j) for j in self.state.jobs.values()]

    def update_job(self, job_id: str, body: dict, replace: bool) -> dict:
        check_object(body, "job")
        validation.check_job_common(body)
        with self.state.lock:
            job = self.state.job(job_id)
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
            self.state.save_job(job)
            kills = self.check_complete(job["id"].lower())
            self.state.wake()
            result = wire(job)
        run_kills(kills)
        self.state.store.flush()
        return result

    def disable_job(self, job_id: str, disable_tasks: str) -> None:
        if (disable_tasks or "").lower() not in ("requeue", "terminate", "wait"):
            raise errors.invalid_property("disableTasks", disable_tasks, "Allowed values: requeue, terminate, wait")
        with self.state.lock:
            job = self.state.job(job_id)
            if job["state"] != "active":
                raise errors.conflict("InvalidJobState", f"The job is {job['state']}, not active.")
            key = job["id"].lower()
            kills = []
            if disable_tasks.lower() != "wait":
                for task in list(self.state.tasks[key].values()):
                    if task["state"] in ("running", "preparing"):
                        if disable_tasks.lower() == "requeue":
                            kills += self.scheduling.requeue_task(key, task)
                        else:
                            kills += self.scheduling.end_task(key, task, "TaskEnded", "The task was terminated "
                                                              "because its job was disabled.")
            set_state(job, "disabled")
            touch(job)
            self.state.save_job(job)
        run_kills(kills)
        self.state.store.flush()

    def enable_job(self, job_id: str) -> None:
        with self.state.lock:
            job = self.state.job(job_id)
            if job["state"] not in ("disabled", "disabling", "enabling"):
                raise errors.conflict("InvalidJobState", f"The job is {job['state']}, not disabled.")
            set_state(job, "active")
            touch(job)
            self.state.save_job(job)
            self.state.wake()
        self.state.store.flush()

    def terminate_job(self, job_id: str, reason: str | None) -> None:
        with self.state.lock:
            job = self.state.job(job_id)
            if job["state"] in ("completed", "deleting"):
                raise errors.conflict("JobCompleted" if job["state"] == "completed" else "JobBeingDeleted",
                                      f"The specified job is already {job['state']}.")
            kills = self.terminate_locked(job["id"].lower(), reason or "UserTerminate")
        run_kills(kills)
        self.state.store.flush()

    def terminate_locked(self, job_key: str, reason: str) -> list:
        job = self.state.jobs[job_key]
        set_state(job, "terminating")
        kills = []
        for task in list(self.state.tasks[job_key].values()):
            if task["state"] in ("running", "preparing"):
                kills += self.scheduling.end_task(job_key, task, "TaskEnded", "The task was terminated because its "
                                                  "job was terminated.", check_job=False)
        now = timeutil.now_iso()
        set_state(job, "completed", now)
        job["executionInfo"] = {**job.get("executionInfo", {}), "endTime": now, "terminateReason": reason}
        self.auto_pools.job_ended(job)
        touch(job)
        self.job_prep.job_release(job_key)
        self.state.save_job(job)
        self.state.wake()
        return kills

    def delete_job(self, job_id: str) -> None:
        with self.state.lock:
            job = self.state.job(job_id)
            key = job["id"].lower()
            set_state(job, "deleting")
            self.job_prep.job_release(key)
            kills, dirs = [], set()
            for task in list(self.state.tasks[key].values()):
                if task["state"] in ("running", "preparing"):
                    kills += self.scheduling.end_task(key, task, "TaskEnded", "The job was deleted.", check_job=False)
                if task.get("_dir"):
                    dirs.add(Path(task["_dir"]).parents[1])  # workitems/<job>
                self.state.store.stage("task", f"{key}/{task['id'].lower()}", None)
            self.auto_pools.job_ended(job)
            del self.state.jobs[key]
            self.state.tasks.pop(key, None)
            self.state.active.pop(key, None)
            self.state.counts.pop(key, None)
            self.state.store.stage("job", key, None)
            self.state.wake()
        run_kills(kills)
        self.state.store.flush()
        self.state.remove_dirs_later(dirs)

    def task_counts(self, job_id: str) -> dict:
        with self.state.lock:
            job = self.state.job(job_id)
            key = job["id"].lower()
            c = dict(self.state.counts.get(key, {}))
            slots = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
            for task in self.state.tasks[key].values():
                n = task.get("requiredSlots", 1)
                state = "running" if task["state"] == "preparing" else task["state"]
                slots[state] += n
                if state == "completed":
                    ok = (task.get("executionInfo") or {}).get("result") == "success"
                    slots["succeeded" if ok else "failed"] += n
        return {"taskCounts": c, "taskSlotCounts": slots}

    def check_complete(self, job_key: str) -> list:
        """onAllTasksComplete=terminatejob: end the job once it has tasks and all of them completed."""
        job = self.state.jobs.get(job_key)
        if job is None or job["state"] != "active" or job.get("onAllTasksComplete", "").lower() != "terminatejob":
            return []
        c = self.state.counts.get(job_key, {})
        if c.get("completed", 0) and not c.get("active", 0) and not c.get("running", 0):
            return self.terminate_locked(job_key, "AllTasksComplete")
        return []

    def check_job_deadlines(self) -> None:
        """Terminate jobs past constraints.maxWallClockTime (MaxWallClockTimeExpiry)."""
        kills = []
        with self.state.lock:
            now = timeutil.now()
            for key, job in list(self.state.jobs.items()):
                if job["state"] not in ("active", "disabled"):
                    continue
                limit = timeutil.parse_duration((job.get("constraints") or {}).get("maxWallClockTime") or "")
                if limit is None or limit >= timeutil.UNLIMITED_SECONDS:
                    continue
                if (now - timeutil.parse_iso(job["creationTime"])).total_seconds() > limit:
                    kills += self.terminate_locked(key, "MaxWallClockTimeExpiry")
        run_kills(kills)
