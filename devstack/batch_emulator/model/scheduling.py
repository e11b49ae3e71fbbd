"""Placing tasks on node slots and applying their outcomes: the task state machine.

active -> running (claimed by a node; resource files, image pull and the command all happen in ``running``, as
Batch reports it) -> completed, or back to active for a retry (non-zero exit with retries left) or a requeue
(node lost/removed, job disabled with requeue). Every outcome is tagged with the attempt number it belongs to,
so a late report from a killed attempt cannot overwrite what terminate/requeue already decided.

A task's outcome can end its job (exitConditions' jobAction, onAllTasksComplete): those rules are the Jobs
group's (jobs.py), which itself ends and requeues tasks through this one; :class:`Scheduling` is therefore given
the Jobs group after both exist (``scheduling.jobs = jobs``, in facade.py), the one dependency that runs back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devstack.batch_emulator import timeutil
from devstack.batch_emulator.model.job_prep import JobPrep
from devstack.batch_emulator.model.nodes import Nodes
from devstack.batch_emulator.model.state import State, pool_key_of, run_kills, set_state, touch, wire

USABLE_NODE_STATES = ("idle", "running")


@dataclass
class Assignment:
    """Everything the agent needs to run one attempt of a task (snapshots, not live state)."""

    job_key: str
    task_key: str
    attempt: int
    pool_key: str
    node_id: str
    task: dict
    job: dict
    pool: dict
    node: dict
    prep: str | None = None  # job preparation step: None, 'run', 'run-async', 'wait' (job_prep.py)


@dataclass
class Outcome:
    """What happened to one attempt; exactly one of the failure kinds applies, or a plain exit code."""

    exit_code: int | None = None
    pre_processing_failure: dict | None = None   # failureInfo: resource files, image pull, launch error
    upload_failure: dict | None = None           # failureInfo from output file upload
    timed_out: bool = False                      # maxWallClockTime exceeded (process was killed)
    container_id: str | None = None
    extra: dict = field(default_factory=dict)
    uploaded: list = field(default_factory=list)  # output files stored: {url, container, name, etag, size}


def _exit_options(task: dict, code: int | None, kind: str) -> dict:
    """The exitConditions entry that applies to an outcome (kind: exit|preprocessing|upload)."""
    ec = task.get("exitConditions") or {}
    if kind == "exit" and code is not None:
        for item in ec.get("exitCodes") or []:
            if item.get("code") == code:
                return item.get("exitOptions") or {}
        for item in ec.get("exitCodeRanges") or []:
            if item.get("start", 0) <= code <= item.get("end", -1):
                return item.get("exitOptions") or {}
        if code == 0:
            return {"jobAction": "none", "dependencyAction": "satisfy"}
    if kind == "preprocessing" and ec.get("preProcessingError"):
        return ec["preProcessingError"]
    if kind == "upload" and ec.get("fileUploadError"):
        return ec["fileUploadError"]
    return ec.get("default") or {}


_RETRY_KEPT = ("retryCount", "requeueCount", "lastRetryTime", "lastRequeueTime")


def _failure_exit() -> dict:
    message = "The task exited with an exit code representing a failure"
    return {"category": "usererror", "code": "FailureExitCode", "message": message,
            "details": [{"name": "Message", "value": message}]}


def _timed_out() -> dict:
    return {"category": "servererror", "code": "TaskEnded", "message": "The task exceeded its maxWallClockTime "
            "and was terminated.", "details": [{"name": "Message", "value": "Max wall clock time exceeded"}]}


def dependency_ids(task: dict):
    deps = task.get("dependsOn") or {}
    yield from deps.get("taskIds") or []
    for rng in deps.get("taskIdRanges") or []:
        for n in range(rng["start"], rng["end"] + 1):
            yield str(n)


class Scheduling:
    """Assignments, agent callbacks and outcomes; requeue and end for the other groups (lock held by callers
    of the methods without their own ``with lock``)."""

    def __init__(self, state: State, nodes: Nodes, job_prep: JobPrep):
        self.state = state
        self.nodes = nodes
        self.job_prep = job_prep
        self.jobs = None  # the Jobs group (jobs.py): check_complete, terminate_locked; bound by the facade

    # ---- dependencies --------------------------------------------------------------------------------------
    def _dependencies_met(self, job_key: str, task: dict) -> bool:
        if not task.get("dependsOn"):
            return True
        tasks = self.state.tasks[job_key]
        for dep_id in dependency_ids(task):
            dep = tasks.get(dep_id.lower())
            if dep is None or dep["state"] != "completed":
                return False
            if dep.get("_dependencyAction", "satisfy") != "satisfy":
                return False
        return True

    # ---- placement -----------------------------------------------------------------------------------------
    def claim_assignments(self) -> list[Assignment]:
        """Assign runnable active tasks to free node slots (spread or pack); returns what to launch."""
        s = self.state
        out: list[Assignment] = []
        with s.lock:
            s.schedule_needed = False
            for pool_key, pool in s.pools.items():
                if pool.get("state") != "active":
                    continue
                nodes = [n for n in s.nodes.get(pool_key, {}).values()
                         if n["state"] in USABLE_NODE_STATES and n.get("schedulingState") == "enabled"
                         and not n.get("_leaving")]
                if not nodes:
                    continue
                slots = pool.get("taskSlotsPerNode", 1)
                jobs = [(k, j) for k, j in s.jobs.items() if j["state"] == "active"
                        and pool_key_of(j) == pool_key and s.active.get(k)]
                if not jobs:
                    continue
                jobs.sort(key=lambda kj: (-kj[1].get("priority", 0), kj[1]["creationTime"]))
                pack = (pool.get("taskSchedulingPolicy") or {}).get("nodeFillType", "spread").lower() == "pack"
                out += self._fill_pool(pool_key, pool, nodes, slots, jobs, pack)
        return out

    def _fill_pool(self, pool_key, pool, nodes, slots, jobs, pack) -> list[Assignment]:
        out = []
        while True:
            free_nodes = [n for n in nodes if slots - n["_used"] > 0]
            if not free_nodes:
                return out
            free_nodes.sort(key=lambda n: (slots - n["_used"]) * (1 if pack else -1))
            placed = False
            for node in free_nodes:
                runnable = [j for j in jobs if not self.job_prep.prep_blocks(j[1], pool_key, node["id"])]
                found = self._next_task_for(runnable, slots - node["_used"])
                if found is None:
                    continue
                job_key, task = found
                out.append(self._assign(pool_key, pool, node, job_key, task))
                placed = True
                break
            if not placed:
                return out

    def _next_task_for(self, jobs, free: int):
        s = self.state
        for job_key, job in jobs:
            limit = job.get("maxParallelTasks", -1)
            if limit not in (None, -1) and s.counts[job_key]["running"] >= limit:
                continue
            tasks = s.tasks[job_key]
            for task_key in s.active[job_key]:
                task = tasks[task_key]
                if task.get("requiredSlots", 1) <= free and self._dependencies_met(job_key, task):
                    return job_key, task
        return None

    def _assign(self, pool_key, pool, node, job_key, task) -> Assignment:
        s = self.state
        now = timeutil.now_iso()
        job_id = s.jobs[job_key]["id"]
        task["_attempt"] = task.get("_attempt", 0) + 1
        task["_node"] = [pool_key, node["id"]]
        task["_dir"] = str(s.layout(pool_key, node["id"]).task_dir(job_id, task["id"]))
        self.nodes.take_slot(node, job_key, task, now)
        info = {k: v for k, v in (task.get("executionInfo") or {}).items() if k in _RETRY_KEPT}
        info["startTime"] = now
        task["executionInfo"] = info
        node_url = f"{s.account_url}/pools/{pool['id']}/nodes/{node['id']}"
        root = f"workitems/{job_id}/job-1/{task['id']}"
        task["nodeInfo"] = {"affinityId": node["affinityId"], "nodeUrl": node_url, "poolId": pool["id"],
                            "nodeId": node["id"], "taskRootDirectory": root,
                            "taskRootDirectoryUrl": f"{node_url}/files/{root}"}
        prep = self.job_prep.prep_on_assign(job_key, pool, node, task)  # job preparation first on this node?
        s.set_task_state(job_key, task, "preparing" if prep in ("run", "wait") else "running", now)
        touch(task)
        s.save_task(job_key, task)
        s.save_node(pool_key, node)
        return Assignment(job_key, task["id"].lower(), task["_attempt"], pool_key, node["id"], wire(task),
                          wire(s.jobs[job_key]), wire(pool), dict(node), prep)

    # ---- agent callbacks -----------------------------------------------------------------------------------
    def attempt_current(self, job_key: str, task_key: str, attempt: int) -> bool:
        with self.state.lock:
            task = self.state.tasks.get(job_key, {}).get(task_key)
            return bool(task and task.get("_attempt") == attempt and task["state"] == "running")

    def register_kill(self, job_key: str, task_key: str, attempt: int, kill, container: str | None) -> bool:
        """Remember how to stop a running attempt; False when it was already terminated/requeued."""
        s = self.state
        with s.lock:
            task = s.tasks.get(job_key, {}).get(task_key)
            if not task or task.get("_attempt") != attempt or task["state"] != "running":
                return False
            s.kill_callbacks[(job_key, task_key)] = (attempt, kill)
            if container:
                task["_container"] = container
            return True

    def record_container(self, job_key: str, task_key: str, attempt: int, container_id: str | None) -> None:
        s = self.state
        with s.lock:
            task = s.tasks.get(job_key, {}).get(task_key)
            if task and task.get("_attempt") == attempt and container_id:
                task["executionInfo"] = {**task["executionInfo"], "containerInfo": {"containerId": container_id,
                                                                                     "state": "running"}}
                s.save_task(job_key, task)

    def task_finished(self, job_key: str, task_key: str, attempt: int, outcome: Outcome) -> None:
        """Apply an attempt's outcome: success, retry, or completed with failureInfo; exit options."""
        s = self.state
        with s.lock:
            task = s.tasks.get(job_key, {}).get(task_key)
            s.kill_callbacks.pop((job_key, task_key), None)
            if task is None or task.get("_attempt") != attempt:
                return
            if task["state"] != "running":
                # terminated while running: keep the verdict, fill in the exit code the process gave
                if task["state"] == "completed" and outcome.exit_code is not None and (
                        "exitCode" not in task["executionInfo"]):
                    task["executionInfo"] = {**task["executionInfo"], "exitCode": outcome.exit_code}
                    s.save_task(job_key, task)
                return
            kills = self._apply_outcome(job_key, task, outcome)
        run_kills(kills)

    # ---- outcomes ------------------------------------------------------------------------------------------
    def _apply_outcome(self, job_key: str, task: dict, outcome: Outcome) -> list:
        now = timeutil.now_iso()
        info = dict(task["executionInfo"])
        info.pop("containerInfo", None)
        if outcome.container_id:
            info["containerInfo"] = {"containerId": outcome.container_id, "state": "exited"}
        node_ref = task.get("_node")
        self.nodes.release_slot(task, job_key)
        task.pop("_container", None)
        failure, kind = None, "exit"
        if outcome.pre_processing_failure:
            failure, kind = outcome.pre_processing_failure, "preprocessing"
        elif outcome.timed_out:
            info["exitCode"] = outcome.exit_code if outcome.exit_code is not None else 137
            failure = _timed_out()
        else:
            info["exitCode"] = outcome.exit_code
            if outcome.exit_code != 0:
                if self._retry(job_key, task, info, now):
                    return []
                failure = _failure_exit()
            if outcome.upload_failure:
                if failure is None:
                    kind = "upload"
                failure = failure or outcome.upload_failure
        options = self._complete(job_key, task, info, failure, kind, now)
        if not failure:
            self.nodes.succeeded_on(node_ref)
        kills = self._job_action(job_key, options, now) if failure else []
        kills += self.jobs.check_complete(job_key)
        self.state.wake()
        return kills

    def _retry(self, job_key: str, task: dict, info: dict, now: str) -> bool:
        """A non-zero exit with retries left (constraints.maxTaskRetryCount): back to active, retryCount + 1."""
        max_retry = (task.get("constraints") or {}).get("maxTaskRetryCount", 0)
        if not (max_retry == -1 or info.get("retryCount", 0) < max_retry):
            return False
        s = self.state
        info["retryCount"] = info.get("retryCount", 0) + 1
        info["lastRetryTime"] = now
        info.pop("startTime", None)
        info.pop("exitCode", None)
        task["executionInfo"] = info
        s.set_task_state(job_key, task, "active", now)
        s.active[job_key].pop(task["id"].lower(), None)
        s.active[job_key][task["id"].lower()] = None
        touch(task)
        s.save_task(job_key, task)
        s.wake()
        return True

    def _complete(self, job_key: str, task: dict, info: dict, failure: dict | None, kind: str, now: str) -> dict:
        """The task shows completed with its result; returns the exitConditions entry that applies."""
        info["endTime"] = now
        info["result"] = "failure" if failure else "success"
        if failure:
            info["failureInfo"] = failure
        else:
            info.pop("failureInfo", None)
        task["executionInfo"] = info
        options = _exit_options(task, info.get("exitCode"), kind)
        default_dep = "satisfy" if not failure else "block"
        task["_dependencyAction"] = (options.get("dependencyAction") or default_dep).lower()
        self.state.set_task_state(job_key, task, "completed", now)
        touch(task)
        self.state.save_task(job_key, task)
        return options

    def _job_action(self, job_key: str, options: dict, now: str) -> list:
        """onTaskFailure=performexitoptionsjobaction: the failed task's jobAction (terminate, the default, or
        disable) applies to its active job."""
        job = self.state.jobs[job_key]
        if (job.get("onTaskFailure") or "").lower() != "performexitoptionsjobaction" or job["state"] != "active":
            return []
        action = (options.get("jobAction") or "terminate").lower()
        if action == "terminate":
            return self.jobs.terminate_locked(job_key, "TaskFailed")
        if action == "disable":
            set_state(job, "disabled", now)
            touch(job)
            self.state.save_job(job)
        return []

    # ---- forced transitions (lock held) --------------------------------------------------------------------
    def _take_kill(self, job_key: str, task: dict) -> list:
        entry = self.state.kill_callbacks.pop((job_key, task["id"].lower()), None)
        return [entry[1]] if entry else []

    def requeue_task(self, job_key: str, task: dict) -> list:
        """Put a running task back to active (node lost/removed, job disabled): requeueCount + 1."""
        s = self.state
        kills = self._take_kill(job_key, task)
        now = timeutil.now_iso()
        self.nodes.release_slot(task, job_key)
        task.pop("_container", None)
        info = {k: v for k, v in task["executionInfo"].items() if k in ("retryCount", "lastRetryTime",
                                                                         "requeueCount")}
        info["requeueCount"] = info.get("requeueCount", 0) + 1
        info["lastRequeueTime"] = now
        task["executionInfo"] = info
        task["_attempt"] = task.get("_attempt", 0) + 1
        s.set_task_state(job_key, task, "active", now)
        touch(task)
        s.save_task(job_key, task)
        s.wake()
        return kills

    def end_task(self, job_key: str, task: dict, code: str, message: str, check_job: bool = True) -> list:
        """Complete a task now (terminate, job terminated/deleted): result failure with failureInfo."""
        s = self.state
        kills = self._take_kill(job_key, task)
        now = timeutil.now_iso()
        self.nodes.release_slot(task, job_key)
        task.pop("_container", None)
        info = dict(task["executionInfo"])
        info.update({"endTime": now, "result": "failure",
                     "failureInfo": {"category": "usererror", "code": code, "message": message}})
        task["executionInfo"] = info
        task["_dependencyAction"] = "block"
        s.set_task_state(job_key, task, "completed", now)
        touch(task)
        s.save_task(job_key, task)
        if check_job:
            kills += self.jobs.check_complete(job_key)
        s.wake()
        return kills
