"""Job preparation and release tasks: validation, per-node state, and how the agent runs them.

The preparation task runs once per node, before the first task of its job on that node (that task shows
``preparing`` meanwhile; later tasks on the node wait for the same run). With waitForSuccess (the default) a
preparation that failed after its retries keeps the job's tasks off that node; without it tasks start at once.
The release task runs on every node where the preparation ran when the job is terminated or deleted. Both run
in a container when they have containerSettings, on the node (host process) otherwise; their folders are the
node's ``workitems/<job>/job-1/jobpreparation`` and ``jobrelease``. The per-node state lives in the job's
``_prep`` (persisted with the job); a run cut short by a restart is run again.
"""

from __future__ import annotations

import threading
import time

from devstack.batch_emulator import errors, timeutil, validation
from devstack.batch_emulator.model_base import touch

PREP, RELEASE = "jobpreparation", "jobrelease"


def check_job_tasks(body: dict, allow_host_access: bool = False) -> None:
    """400 naming the property for a bad jobPreparationTask / jobReleaseTask."""
    if body.get("jobManagerTask") is not None:
        raise errors.unsupported("jobManagerTask")
    prep, rel = body.get("jobPreparationTask"), body.get("jobReleaseTask")
    for name, spec in (("jobPreparationTask", prep), ("jobReleaseTask", rel)):
        if spec is None:
            continue
        validation.check_object(spec, name)
        validation.check_str(spec, "id", name + ".", max_len=64)
        validation.require(spec, "commandLine", name + ".")
        validation.check_str(spec, "commandLine", name + ".")
        if spec.get("containerSettings") is not None:
            validation.check_task_container_settings(spec["containerSettings"], name + ".containerSettings",
                                                     allow_host_access)
        validation.check_resource_files(spec.get("resourceFiles"), name + ".resourceFiles")
        validation.check_env(spec.get("environmentSettings"), name + ".environmentSettings")
        validation.check_user_identity(spec.get("userIdentity"), name + ".userIdentity")
    if prep is not None:
        validation.check_bool(prep, "waitForSuccess", "jobPreparationTask.")
        validation.check_bool(prep, "rerunOnNodeRebootAfterSuccess", "jobPreparationTask.")
        c = prep.get("constraints")
        if c is not None:
            validation.check_object(c, "jobPreparationTask.constraints")
            validation.check_duration(c, "maxWallClockTime", "jobPreparationTask.constraints.")
            validation.check_duration(c, "retentionTime", "jobPreparationTask.constraints.")
            validation.check_int(c, "maxTaskRetryCount", "jobPreparationTask.constraints.", -1)
    if rel is not None:
        if prep is None:
            raise errors.invalid_property("jobReleaseTask", "set", "A job release task requires a job "
                                          "preparation task (jobPreparationTask)")
        validation.check_duration(rel, "maxWallClockTime", "jobReleaseTask.")
        validation.check_duration(rel, "retentionTime", "jobReleaseTask.")


def task_env(layout, job: dict) -> dict:
    """AZ_BATCH_JOB_PREP_* for the job's tasks (only when the job has a preparation task)."""
    if not job.get("jobPreparationTask"):
        return {}
    d = layout.task_dir(job["id"], PREP)
    return {"AZ_BATCH_JOB_PREP_DIR": str(d), "AZ_BATCH_JOB_PREP_WORKING_DIR": str(d / "wd")}


def _wait_for_success(job: dict) -> bool:
    return bool((job.get("jobPreparationTask") or {}).get("waitForSuccess", True))


class JobPrepOps:
    """Model side (mixin of BatchModel); the caller of the ``_``-methods holds the lock."""

    _prep_live: set | None = None
    on_job_release = None  # set by the agent: (job wire dict, [(pool_key, node_id)]) -> None

    def _live(self) -> set:
        if self._prep_live is None:
            self._prep_live = set()
        return self._prep_live

    def _prep_entry(self, job: dict, pool_key: str, node_id: str) -> dict | None:
        return (job.get("_prep") or {}).get(f"{pool_key}/{node_id}")

    def prep_blocks(self, job: dict, pool_key: str, node_id: str) -> bool:
        """True when a failed preparation (waitForSuccess) keeps the job's tasks off this node."""
        if not job.get("jobPreparationTask") or not _wait_for_success(job):
            return False
        info = (self._prep_entry(job, pool_key, node_id) or {}).get("jobPreparationTaskExecutionInfo") or {}
        return info.get("state") == "completed" and info.get("result") == "failure"

    def prep_on_assign(self, job_key: str, pool: dict, node: dict, task: dict) -> str | None:
        """Called in _assign: None (nothing to do), 'run' / 'run-async' (start it), 'wait' (another run);
        the task shows ``preparing`` for 'run' and 'wait'."""
        job = self.jobs[job_key]
        if not job.get("jobPreparationTask"):
            return None
        pool_key, node_id = pool["id"].lower(), node["id"]
        key = (job_key, pool_key, node_id)
        entry = self._prep_entry(job, pool_key, node_id)
        info = (entry or {}).get("jobPreparationTaskExecutionInfo") or {}
        wait = _wait_for_success(job)
        if info.get("state") == "completed" or (info.get("state") == "running" and key in self._live()):
            return "wait" if info.get("state") == "running" and wait else None
        self._live().add(key)
        now = timeutil.now_iso()
        url = f"{self.account_url}/pools/{pool['id']}/nodes/{node_id}"
        root = f"workitems/{job['id']}/job-1/{PREP}"
        job.setdefault("_prep", {})[f"{pool_key}/{node_id}"] = {
            "poolId": pool["id"], "nodeId": node_id, "nodeUrl": url,
            "jobPreparationTaskExecutionInfo": {"state": "running", "startTime": now, "retryCount": 0,
                                                "taskRootDirectory": root,
                                                "taskRootDirectoryUrl": f"{url}/files/{root}"}}
        self.save_job(job)
        return "run" if wait else "run-async"

    def prep_update(self, job_key: str, pool_key: str, node_id: str, kind: str, info: dict) -> None:
        with self.lock:
            job = self.jobs.get(job_key)
            entry = job and self._prep_entry(job, pool_key, node_id)
            if not entry:
                return
            name = "jobPreparationTaskExecutionInfo" if kind == PREP else "jobReleaseTaskExecutionInfo"
            entry[name] = {**(entry.get(name) or {}), **info}
            if kind == PREP and info.get("state") == "completed":
                self._live().discard((job_key, pool_key, node_id))
            self.save_job(job)
            self.wake()

    def prep_info(self, job_key: str, pool_key: str, node_id: str) -> dict | None:
        with self.lock:
            job = self.jobs.get(job_key)
            entry = job and self._prep_entry(job, pool_key, node_id)
            return dict((entry or {}).get("jobPreparationTaskExecutionInfo") or {}) if entry else None

    def prep_task_go(self, job_key: str, task_key: str, attempt: int, ok: bool) -> None:
        """After the preparation: the waiting task runs, or goes back to active (kept off the node)."""
        with self.lock:
            task = self.tasks.get(job_key, {}).get(task_key)
            if not task or task.get("_attempt") != attempt or task["state"] != "preparing":
                return
            if ok:
                self.set_task_state(job_key, task, "running")
            else:
                self._release_slot(task, job_key)
                task["_attempt"] = attempt + 1
                task["executionInfo"] = {k: v for k, v in task["executionInfo"].items() if k != "startTime"}
                task.pop("nodeInfo", None)
                self.set_task_state(job_key, task, "active")
            touch(task)
            self.save_task(job_key, task)
            self.wake()

    def _job_release(self, job_key: str) -> None:
        """At terminate/delete: hand the nodes where the preparation ran to the agent's release runs."""
        job = self.jobs.get(job_key)
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
        self.save_job(job)
        if self.on_job_release is not None:
            self.on_job_release({k: v for k, v in job.items() if k != "_prep"}, nodes)

    def job_prep_status(self, job_id: str) -> list[dict]:
        with self.lock:
            job = self._job(job_id)
            if not job.get("jobPreparationTask") and not job.get("jobReleaseTask"):
                raise errors.conflict("JobPreparationTaskOrReleaseTaskNotSpecified", "The specified job does not "
                                      "have a job preparation or release task.")
            return [dict(e) for e in (job.get("_prep") or {}).values()]


# ---- agent side ------------------------------------------------------------------------------------------
def _failure(code: str, message: str) -> dict:
    return {"category": "usererror", "code": code, "message": message,
            "details": [{"name": "Message", "value": message}]}


def _run_once(agent, spec_task: dict, kind: str, job: dict, pool: dict, node: dict, layout, timeout):
    """(exit code or None, failureInfo or None) of one run of a preparation/release task."""
    from devstack.batch_emulator.agent import fresh_attempt_dir, normalize_image
    task_dir = layout.task_dir(job["id"], kind)
    wd = task_dir / "wd"
    fresh_attempt_dir(layout.root, task_dir)
    env = layout.task_env(layout.node_env(agent.model.account, agent.model.account_url, pool["id"], node["id"],
                                          node.get("isDedicated", True)), job["id"], spec_task.get("id") or kind)
    env.update(task_env(layout, job))
    for item in (job.get("commonEnvironmentSettings") or []) + (spec_task.get("environmentSettings") or []):
        env[item["name"]] = item.get("value") or ""
    cs = spec_task.get("containerSettings")
    runtime = agent.container_runtime if cs else agent.process_runtime
    name = agent._name(node["id"], job["id"], kind)
    try:
        if cs:
            agent._ensure_image(runtime, normalize_image(cs["imageName"]), cs.get("registry"), pool)
        if spec_task.get("resourceFiles"):
            from devstack.batch_emulator.staging import StagingError, download_resource_files
            try:
                download_resource_files(spec_task["resourceFiles"], wd, agent.resolver)
            except StagingError as exc:
                return None, exc.failure_info
        handle = runtime.start(agent._spec(runtime, name, spec_task.get("commandLine"), env, wd, layout, cs,
                                           task_dir, pool))
        code = handle.wait(timeout)
        if code is None:
            handle.kill()
            handle.wait(30)
            return None, _failure("TaskEnded", "The task exceeded its maxWallClockTime and was terminated.")
        return code, None
    except Exception as exc:  # noqa: BLE001 - PullError / StartError from the runtime
        return None, _failure(getattr(exc, "code", "CommandLaunchFailed"), getattr(exc, "message", str(exc)))
    finally:
        agent._cleanup(runtime, name)


def _timeout(value) -> float | None:
    limit = timeutil.parse_duration(value or "")
    return None if limit is None or limit >= timeutil.UNLIMITED_SECONDS else limit


def run_preparation(agent, a) -> None:
    """Run the job's preparation task on the assignment's node (with retries) and record the result."""
    job, prep = a.job, a.job["jobPreparationTask"]
    layout = agent.model.layout(a.pool_key, a.node_id)
    constraints = prep.get("constraints") or {}
    retries, retry = constraints.get("maxTaskRetryCount", 0), 0
    while True:
        code, failure = _run_once(agent, prep, PREP, job, a.pool, a.node, layout,
                                  _timeout(constraints.get("maxWallClockTime")))
        if failure is None and code != 0 and (retries == -1 or retry < retries):
            retry += 1
            agent.model.prep_update(a.job_key, a.pool_key, a.node_id, PREP,
                                    {"retryCount": retry, "lastRetryTime": timeutil.now_iso()})
            continue
        break
    agent.model.prep_update(a.job_key, a.pool_key, a.node_id, PREP, {**_completed(code, failure), "retryCount": retry})


def _completed(code: int | None, failure: dict | None) -> dict:
    """The execution info of a finished preparation or release run: exit code, result and failureInfo."""
    info = {"state": "completed", "endTime": timeutil.now_iso()}
    if code is not None:
        info["exitCode"] = code
    if failure is None and code != 0:
        failure = _failure("FailureExitCode", "The task exited with an exit code representing a failure")
    info["result"] = "failure" if failure else "success"
    if failure:
        info["failureInfo"] = failure
    return info


def before_task(agent, a) -> bool:
    """The preparation step of an attempt (a.prep from the model); False when the task must not run here."""
    if a.prep == "run-async":
        threading.Thread(target=run_preparation, args=(agent, a), daemon=True, name=f"prep-{a.node_id}").start()
        return True
    if a.prep == "run":
        run_preparation(agent, a)
    elif a.prep == "wait":
        while True:
            info = agent.model.prep_info(a.job_key, a.pool_key, a.node_id)
            if info is None or info.get("state") == "completed":
                break
            time.sleep(0.1)
    else:
        return True
    info = agent.model.prep_info(a.job_key, a.pool_key, a.node_id) or {}
    ok = info.get("result") == "success" or not _wait_for_success(a.job)
    agent.model.prep_task_go(a.job_key, a.task_key, a.attempt, ok)
    return ok and agent.model.attempt_current(a.job_key, a.task_key, a.attempt)


def start_release(agent, job: dict, nodes: list) -> None:
    """Run the release task on each node in the background, recording into the job while it still exists."""
    rel = job["jobReleaseTask"]

    def work(pool_key: str, node_id: str) -> None:
        snap = agent.model.node_internal(pool_key, node_id)
        if snap is None:
            return
        layout = agent.model.layout(pool_key, node_id)
        code, failure = _run_once(agent, rel, RELEASE, job, snap["pool"], snap["node"], layout,
                                  _timeout(rel.get("maxWallClockTime") or "PT15M"))
        agent.model.prep_update(job["id"].lower(), pool_key, node_id, RELEASE, _completed(code, failure))

    for pool_key, node_id in nodes:
        threading.Thread(target=work, args=(pool_key, node_id), daemon=True, name=f"release-{node_id}").start()
