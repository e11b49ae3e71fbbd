"""Running job preparation and release tasks on a node (the model's side is model/job_prep.py).

Both run in a container when they have containerSettings, on the node (host process) otherwise, with the
agent's runtimes, image pulls and run specs; every result goes back to the model through ``prep_update`` and
``prep_task_go``.
"""

from __future__ import annotations

import threading
import time

from devstack.batch_emulator import timeutil
from devstack.batch_emulator.agent.run_specs import failure, fresh_attempt_dir, normalize_image
from devstack.batch_emulator.model.job_prep import PREP, RELEASE, task_env, wait_for_success
from devstack.batch_emulator.staging import StagingError, download_resource_files


def _run_once(agent, spec_task: dict, kind: str, job: dict, pool: dict, node: dict, layout, timeout):
    """(exit code or None, failureInfo or None) of one run of a preparation/release task."""
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
    name = agent.container_name(node["id"], job["id"], kind)
    try:
        if cs:
            agent.ensure_image(runtime, normalize_image(cs["imageName"]), cs.get("registry"), pool)
        if spec_task.get("resourceFiles"):
            try:
                download_resource_files(spec_task["resourceFiles"], wd, agent.resolver)
            except StagingError as exc:
                return None, exc.failure_info
        handle = runtime.start(agent.run_spec(runtime, name, spec_task.get("commandLine"), env, wd, layout, cs,
                                           task_dir, pool))
        code = handle.wait(timeout)
        if code is None:
            handle.kill()
            handle.wait(30)
            return None, failure("TaskEnded", "The task exceeded its maxWallClockTime and was terminated.")
        return code, None
    except Exception as exc:  # noqa: BLE001 - PullError / StartError from the runtime
        return None, failure(getattr(exc, "code", "CommandLaunchFailed"), getattr(exc, "message", str(exc)))
    finally:
        agent.cleanup(runtime, name)


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
        code, fail = _run_once(agent, prep, PREP, job, a.pool, a.node, layout,
                                  _timeout(constraints.get("maxWallClockTime")))
        if fail is None and code != 0 and (retries == -1 or retry < retries):
            retry += 1
            agent.model.prep_update(a.job_key, a.pool_key, a.node_id, PREP,
                                    {"retryCount": retry, "lastRetryTime": timeutil.now_iso()})
            continue
        break
    agent.model.prep_update(a.job_key, a.pool_key, a.node_id, PREP, {**_completed(code, fail), "retryCount": retry})


def _completed(code: int | None, fail: dict | None) -> dict:
    """The execution info of a finished preparation or release run: exit code, result and failureInfo."""
    info = {"state": "completed", "endTime": timeutil.now_iso()}
    if code is not None:
        info["exitCode"] = code
    if fail is None and code != 0:
        fail = failure("FailureExitCode", "The task exited with an exit code representing a failure")
    info["result"] = "failure" if fail else "success"
    if fail:
        info["failureInfo"] = fail
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
    ok = info.get("result") == "success" or not wait_for_success(a.job)
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
        code, fail = _run_once(agent, rel, RELEASE, job, snap["pool"], snap["node"], layout,
                                  _timeout(rel.get("maxWallClockTime") or "PT15M"))
        agent.model.prep_update(job["id"].lower(), pool_key, node_id, RELEASE, _completed(code, fail))

    for pool_key, node_id in nodes:
        threading.Thread(target=work, args=(pool_key, node_id), daemon=True, name=f"release-{node_id}").start()
