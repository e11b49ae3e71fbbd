"""Job preparation and release tasks, the model's side: per-node state and how tasks wait for the preparation.

The preparation task runs once per node, before the first task of its job on that node (that task shows
``preparing`` meanwhile; later tasks on the node wait for the same run). With waitForSuccess (the default) a
preparation that failed after its retries keeps the job's tasks off that node; without it tasks start at once.
The release task runs on every node where the preparation ran when the job is terminated or deleted. The agent
runs both (agent/job_prep_runs.py) and reports here; their folders are the node's
``workitems/<job>/job-1/jobpreparation`` and ``jobrelease``. The per-node state lives in the job's ``_prep``
(persisted with the job); a run cut short by a restart is run again.
"""

from __future__ import annotations

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model.nodes import Nodes
from devstack.batch_emulator.model.state import State, touch

PREP, RELEASE = "jobpreparation", "jobrelease"


def task_env(layout, job: dict) -> dict:
    """AZ_BATCH_JOB_PREP_* for the job's tasks (only when the job has a preparation task)."""
    if not job.get("jobPreparationTask"):
        return {}
    d = layout.task_dir(job["id"], PREP)
    return {"AZ_BATCH_JOB_PREP_DIR": str(d), "AZ_BATCH_JOB_PREP_WORKING_DIR": str(d / "wd")}


def wait_for_success(job: dict) -> bool:
    return bool((job.get("jobPreparationTask") or {}).get("waitForSuccess", True))


def _prep_entry(job: dict, pool_key: str, node_id: str) -> dict | None:
    return (job.get("_prep") or {}).get(f"{pool_key}/{node_id}")


class JobPrep:
    """The methods without their own ``with lock`` are called with the lock held."""

    def __init__(self, state: State, nodes: Nodes):
        self.state = state
        self.nodes = nodes
        self._live: set = set()  # (job, pool, node) of the preparations run by this process

    def prep_blocks(self, job: dict, pool_key: str, node_id: str) -> bool:
        """True when a failed preparation (waitForSuccess) keeps the job's tasks off this node."""
        if not job.get("jobPreparationTask") or not wait_for_success(job):
            return False
        info = (_prep_entry(job, pool_key, node_id) or {}).get("jobPreparationTaskExecutionInfo") or {}
        return info.get("state") == "completed" and info.get("result") == "failure"

    def prep_on_assign(self, job_key: str, pool: dict, node: dict, task: dict) -> str | None:
        """At assignment: None (nothing to do), 'run' / 'run-async' (start it), 'wait' (another run);
        the task shows ``preparing`` for 'run' and 'wait'."""
        job = self.state.jobs[job_key]
        if not job.get("jobPreparationTask"):
            return None
        pool_key, node_id = pool["id"].lower(), node["id"]
        key = (job_key, pool_key, node_id)
        entry = _prep_entry(job, pool_key, node_id)
        info = (entry or {}).get("jobPreparationTaskExecutionInfo") or {}
        wait = wait_for_success(job)
        if info.get("state") == "completed" or (info.get("state") == "running" and key in self._live):
            return "wait" if info.get("state") == "running" and wait else None
        self._live.add(key)
        now = timeutil.now_iso()
        url = f"{self.state.account_url}/pools/{pool['id']}/nodes/{node_id}"
        root = f"workitems/{job['id']}/job-1/{PREP}"
        job.setdefault("_prep", {})[f"{pool_key}/{node_id}"] = {
            "poolId": pool["id"], "nodeId": node_id, "nodeUrl": url,
            "jobPreparationTaskExecutionInfo": {"state": "running", "startTime": now, "retryCount": 0,
                                                "taskRootDirectory": root,
                                                "taskRootDirectoryUrl": f"{url}/files/{root}"}}
        self.state.save_job(job)
        return "run" if wait else "run-async"

    def prep_update(self, job_key: str, pool_key: str, node_id: str, kind: str, info: dict) -> None:
        s = self.state
        with s.lock:
            job = s.jobs.get(job_key)
            entry = job and _prep_entry(job, pool_key, node_id)
            if not entry:
                return
            name = "jobPreparationTaskExecutionInfo" if kind == PREP else "jobReleaseTaskExecutionInfo"
            entry[name] = {**(entry.get(name) or {}), **info}
            if kind == PREP and info.get("state") == "completed":
                self._live.discard((job_key, pool_key, node_id))
            s.save_job(job)
            s.wake()

    def prep_info(self, job_key: str, pool_key: str, node_id: str) -> dict | None:
        with self.state.lock:
            job = self.state.jobs.get(job_key)
            entry = job and _prep_entry(job, pool_key, node_id)
            return dict((entry or {}).get("jobPreparationTaskExecutionInfo") or {}) if entry else None

    def prep_task_go(self, job_key: str, task_key: str, attempt: int, ok: bool) -> None:
        """After the preparation: the waiting task runs, or goes back to active (kept off the node)."""
        s = self.state
        with s.lock:
            task = s.tasks.get(job_key, {}).get(task_key)
            if not task or task.get("_attempt") != attempt or task["state"] != "preparing":
                return
            if ok:
                s.set_task_state(job_key, task, "running")
            else:
                self.nodes.release_slot(task, job_key)
                task["_attempt"] = attempt + 1
                task["executionInfo"] = {k: v for k, v in task["executionInfo"].items() if k != "startTime"}
                task.pop("nodeInfo", None)
                s.set_task_state(job_key, task, "active")
            touch(task)
            s.save_task(job_key, task)
            s.wake()

    def job_release(self, job_key: str) -> None:
        """At terminate/delete: hand the nodes where the preparation ran to the agent's release runs."""
        s = self.state
        job = s.jobs.get(job_key)
        if not job or not job.get("jobReleaseTask") or not job.get("_prep") or job.get("_released"):
            return
        job["_released"] = True
        nodes = []
        now = timeutil.now_iso()
        for where, entry in job["_prep"].items():
            url, root = entry["nodeUrl"], f"workitems/{job['id']}/job-1/{RELEASE}"
            entry["jobReleaseTaskExecutionInfo"] = {"state": "running", "startTime": now, "taskRootDirectory": root,
                                                    "taskRootDirectoryUrl": f"{url}/files/{root}"}
            nodes.append(tuple(where.split("/", 1)))
        s.save_job(job)
        if s.on_job_release is not None:
            s.on_job_release({k: v for k, v in job.items() if k != "_prep"}, nodes)

    def job_prep_status(self, job_id: str) -> list[dict]:
        with self.state.lock:
            job = self.state.job(job_id)
            if not job.get("jobPreparationTask") and not job.get("jobReleaseTask"):
                raise errors.conflict("JobPreparationTaskOrReleaseTaskNotSpecified", "The specified job does not "
                                      "have a job preparation or release task.")
            return [dict(e) for e in (job.get("_prep") or {}).values()]
