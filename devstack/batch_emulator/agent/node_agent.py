"""The node agent: boots nodes (folders, image prefetch, start task) and runs task attempts.

It turns an :class:`Assignment` into a RunSpec for a runtime, with Batch's conventions: the command line split
without a shell (empty = the image ENTRYPOINT), AZ_BATCH_* + job + task environment, the node root mounted at
the same path (or only the containerHostBatchBindMounts chosen), the task working directory as the container's
workdir, resource files before and output files after. It reports back to the model and never decides a state
itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import threading
import time
from pathlib import Path

from devstack.batch_emulator import gpu, task_user, timeutil
from devstack.batch_emulator.agent import job_prep_runs
from devstack.batch_emulator.agent.run_specs import (
    failure,
    fresh_attempt_dir,
    normalize_image,
    runtime_failure,
    split_command_line,
)
from devstack.batch_emulator.layout import BIND_SOURCE_VARS, NodeLayout
from devstack.batch_emulator.model import BatchModel
from devstack.batch_emulator.model.job_prep import task_env
from devstack.batch_emulator.model.scheduling import Assignment, Outcome
from devstack.batch_emulator.run_options import host_access_option
from devstack.batch_emulator.runtimes import Mount, RunSpec, StartError
from devstack.batch_emulator.runtimes.images import registry_of
from devstack.batch_emulator.staging import StagingError, download_resource_files, upload_output_files

log = logging.getLogger("batch_emulator.agent")


class Agent:
    def __init__(self, model: BatchModel, container_runtime, process_runtime, resolver, instance: str,
                 on_blobs_created=None):
        self.model = model
        # Told about the output files of an attempt once its task shows completed (the local stand-in for the
        # storage account's BlobCreated events, see server --blob-events); never fails the task.
        self.on_blobs_created = on_blobs_created
        self.container_runtime = container_runtime
        self.process_runtime = process_runtime
        # Whether this machine has a GPU for the container tasks of N-series pools (gpu.py); tests replace it.
        self.gpu_detector = gpu.detector_from_env(os.environ)
        self.resolver = resolver
        self.instance = instance
        self._pull_locks: dict[str, threading.Lock] = {}
        self._pull_guard = threading.Lock()
        # One JSON line per task process/container started (container-starts.jsonl in the account's data dir):
        # what ran, counted by the one who started it, so a test can hold it against the attempts Batch reports.
        self.starts_log: Path | None = None
        model.on_job_release = lambda job, nodes: job_prep_runs.start_release(self, job, nodes)

    # ---- helpers -----------------------------------------------------------------------------------------
    def _runtime_for(self, pool: dict):
        vmc = pool.get("virtualMachineConfiguration") or {}
        return self.container_runtime if vmc.get("containerConfiguration") else self.process_runtime

    def _registry_auth(self, image: str, registry: dict | None, pool: dict):
        server = registry_of(image) or "docker.io"
        candidates = []
        if registry:
            candidates.append(registry)
        cc = (pool.get("virtualMachineConfiguration") or {}).get("containerConfiguration") or {}
        candidates += cc.get("containerRegistries") or []
        for reg in candidates:
            reg_server = (reg.get("registryServer") or "docker.io").lower()
            if registry is reg or reg_server == server.lower():
                return self.resolver.registry_auth(reg.get("registryServer") or server, reg.get("identityReference"),
                                                   reg.get("username"), reg.get("password"))
        return None

    def ensure_image(self, runtime, image: str, registry: dict | None, pool: dict, force: bool = False) -> None:
        """Pull unless present (one pull per image at a time); raises the runtime's PullError."""
        with self._pull_guard:
            lock = self._pull_locks.setdefault(image, threading.Lock())
        with lock:
            if not force and runtime.has_image(image):
                return
            runtime.pull(image, self._registry_auth(image, registry, pool))

    def container_name(self, *parts: str) -> str:
        digest = hashlib.sha1("/".join(parts).encode()).hexdigest()[:10]
        tail = "-".join(parts)[-60:].strip("-_.")
        return f"batchemu-{self.instance}-{digest}-{tail}".lower()

    # ---- nodes -------------------------------------------------------------------------------------------
    def start_node(self, pool_key: str, node_id: str) -> None:
        threading.Thread(target=self._boot_node, args=(pool_key, node_id), name=f"node-{node_id}",
                         daemon=True).start()

    def _boot_node(self, pool_key: str, node_id: str) -> None:
        try:
            self._boot_node_inner(pool_key, node_id)
        except Exception as exc:  # noqa: BLE001 - a node that cannot boot becomes unusable, visibly
            log.exception("node %s failed to start", node_id)
            self.model.node_transition(pool_key, node_id, "unusable", errors=[
                {"code": "NodeStartFailed", "message": str(exc)[:500]}])

    def _boot_node_inner(self, pool_key: str, node_id: str) -> None:
        snap = self.model.node_internal(pool_key, node_id)
        if snap is None:
            return
        pool, node = snap["pool"], snap["node"]
        layout = self.model.layout(pool_key, node_id)
        layout.create()
        if not self._prefetch_images(pool_key, node_id, pool):
            return
        start_task = pool.get("startTask")
        if not start_task:
            self.model.node_transition(pool_key, node_id, "idle")
            return
        wait = bool(start_task.get("waitForSuccess", True))
        info = {"state": "running", "startTime": timeutil.now_iso(), "retryCount": 0}
        self.model.node_transition(pool_key, node_id, "waitingforstarttask" if wait else "idle",
                                   startTaskInfo=info)
        retries = start_task.get("maxTaskRetryCount", 0)
        attempt = 0
        while True:
            code, fail = self._run_start_task(pool, node, layout, start_task, pool_key)
            if code == 0 and not fail:
                break
            if fail is None and (retries == -1 or attempt < retries):
                attempt += 1
                info = {**info, "retryCount": attempt, "lastRetryTime": timeutil.now_iso()}
                self.model.node_transition(pool_key, node_id, "waitingforstarttask" if wait else "idle",
                                           startTaskInfo=info)
                continue
            break
        info = {**info, "state": "completed", "endTime": timeutil.now_iso()}
        if code is not None:
            info["exitCode"] = code
        if fail or code != 0:
            info["result"] = "failure"
            info["failureInfo"] = fail or failure("FailureExitCode", "The start task exited with an exit "
                                                  "code representing a failure")
            state = "starttaskfailed" if wait else "idle"
        else:
            info["result"] = "success"
            state = "idle"
        self.model.node_transition(pool_key, node_id, state, startTaskInfo=info)

    def _prefetch_images(self, pool_key: str, node_id: str, pool: dict) -> bool:
        """Pull the pool's containerImageNames; a failed pull makes the node unusable (False)."""
        cc = (pool.get("virtualMachineConfiguration") or {}).get("containerConfiguration")
        for image in (cc or {}).get("containerImageNames") or []:
            try:
                self.ensure_image(self.container_runtime, normalize_image(image), None, pool, force=False)
            except Exception as exc:  # noqa: BLE001 - PullError or a runtime failure
                code = getattr(exc, "code", "ContainerMiscError")
                message = getattr(exc, "message", str(exc))
                self.model.node_transition(pool_key, node_id, "unusable", errors=[
                    {"code": code, "message": f"Failed to pull container image {image}: {message}",
                     "errorDetails": [{"name": "ImageName", "value": image}]}])
                return False
        return True

    def _run_start_task(self, pool, node, layout: NodeLayout, start_task: dict, pool_key: str):
        env = layout.start_task_env(layout.node_env(self.model.account, self.model.account_url, pool["id"],
                                                    node["id"], node.get("isDedicated", True)))
        for item in start_task.get("environmentSettings") or []:
            env[item["name"]] = item.get("value") or ""
        wd = layout.startup / "wd"
        try:
            if start_task.get("resourceFiles"):
                try:
                    download_resource_files(start_task["resourceFiles"], wd, self.resolver)
                except StagingError as exc:
                    return None, exc.failure_info
            cs = start_task.get("containerSettings")
            runtime = self.container_runtime if cs else self.process_runtime
            spec = self.run_spec(runtime, self.container_name(node["id"], "starttask"), start_task.get("commandLine"),
                                 env, wd, layout, cs, layout.startup, pool, start_task.get("userIdentity"))
            handle = runtime.start(spec)
            code = handle.wait(None)
            return code, None
        except Exception as exc:  # noqa: BLE001 - StartError / PullError from the runtime
            return None, failure(getattr(exc, "code", "CommandLaunchFailed"), getattr(exc, "message", str(exc)))
        finally:
            try:
                runtime.cleanup(self.container_name(node["id"], "starttask"))
            except Exception:  # noqa: BLE001
                pass

    # ---- tasks -------------------------------------------------------------------------------------------
    def run_spec(self, runtime, name, command_line, env, wd: Path, layout: NodeLayout, cs: dict | None,
              task_dir: Path, pool: dict, user_identity: dict | None = None):
        command = split_command_line(command_line)
        image, mounts, workdir, run_options = None, [], str(wd), []
        if cs and runtime is not self.process_runtime:
            image = normalize_image(cs["imageName"])
            run_options = shlex.split(cs.get("containerRunOptions") or "")
            found = None if self.model.allow_host_access else host_access_option(cs.get("containerRunOptions"))
            if found:  # stored before a restart without --allow-host-access: still never run it
                raise StartError("ContainerInvalidSettings", f"The Batch emulator refuses the run option "
                                 f"'{found[0]}': it {found[1]} (start it with --allow-host-access)")
            # Batch's agent gives container tasks of a GPU (N-series) pool the GPU by itself: so does this one.
            run_options = [*gpu.container_gpu_args(pool.get("vmSize"), getattr(runtime, "name", ""),
                                                   self.gpu_detector), *run_options]
            binds = cs.get("containerHostBatchBindMounts")
            if binds is None:
                mounts = [Mount(str(layout.root), str(layout.root))]
            else:
                keep = set()
                for entry in binds:
                    folder, names = BIND_SOURCE_VARS.get(entry.get("source"), ("", ()))
                    path = task_dir if folder is None else (layout.root / folder if folder else None)
                    if path is not None:
                        path.mkdir(parents=True, exist_ok=True)
                        mounts.append(Mount(str(path), str(path), bool(entry.get("isReadOnly"))))
                    keep.update(names)
                for var in [v for source in BIND_SOURCE_VARS.values() for v in source[1]]:
                    if var not in keep:
                        env.pop(var, None)
            if (cs.get("workingDirectory") or "taskWorkingDirectory") == "containerImageDefault":
                workdir = None
            user = task_user.resolve(user_identity, pool)  # as Batch maps the task user into the container
            task_user.give_folders(user, task_dir, wd)
        elif command is None:
            raise StartError("CommandProgramNotFound", "The command line is empty and the pool has no container "
                             "configuration")
        return RunSpec(name=name, command=command, env=env, workdir=workdir, mounts=mounts, image=image,
                       run_options=run_options, stdout_path=str(task_dir / "stdout.txt"),
                       stderr_path=str(task_dir / "stderr.txt"),
                       user=user.user_arg() if image else None)

    def run_task(self, a: Assignment) -> None:
        threading.Thread(target=self._run_task, args=(a,), name=f"task-{a.task_key}", daemon=True).start()

    def _run_task(self, a: Assignment) -> None:
        # The container is removed after the task is reported finished, as Batch reports a task completed once
        # its process exited and its files are uploaded, without waiting for the container's removal.
        leftovers: list[tuple[object, str]] = []
        try:
            try:
                outcome = self._attempt(a, leftovers)
            except Exception as exc:  # noqa: BLE001 - report, never lose a task in "running"
                log.exception("task %s/%s failed in the emulator", a.job_key, a.task_key)
                outcome = Outcome(pre_processing_failure=failure("TaskEmulatorError", str(exc)[:500],
                                                                  "servererror"))
            self.model.task_finished(a.job_key, a.task_key, a.attempt, outcome)
            if outcome.uploaded and self.on_blobs_created is not None:
                try:
                    self.on_blobs_created(outcome.uploaded)
                except Exception:  # noqa: BLE001 - events are a hint; the subscriber's scan finds the blobs
                    log.warning("BlobCreated events for task %s/%s not sent", a.job_key, a.task_key, exc_info=True)
        finally:
            for runtime, name in leftovers:
                self.cleanup(runtime, name)

    def _attempt(self, a: Assignment, leftovers: list) -> Outcome:
        task, job, pool = a.task, a.job, a.pool
        if not job_prep_runs.before_task(self, a):  # preparation failed (waitForSuccess): back to active
            return Outcome()
        layout = self.model.layout(a.pool_key, a.node_id)
        task_dir = layout.task_dir(job["id"], task["id"])
        wd = task_dir / "wd"
        try:
            fresh_attempt_dir(layout.root, task_dir)
        except OSError as exc:
            return Outcome(pre_processing_failure=failure("ResourceDirectoryCreateFailed", str(exc)[:500]))
        env = self._task_env(a, layout)
        cs = task.get("containerSettings")
        runtime = self._runtime_for(pool)
        fail = self._prepare(a, runtime, cs, wd)
        if fail is not None:
            return Outcome(pre_processing_failure=fail)
        if not self.model.attempt_current(a.job_key, a.task_key, a.attempt):
            return Outcome()
        name = self.container_name(a.node_id, job["id"], task["id"], str(a.attempt))
        try:
            spec = self.run_spec(runtime, name, task.get("commandLine"), env, wd, layout, cs, task_dir, pool,
                                 task.get("userIdentity"))
            handle = runtime.start(spec)
        except Exception as exc:  # noqa: BLE001 - StartError
            self.cleanup(runtime, name)
            return Outcome(pre_processing_failure=runtime_failure(exc, "CommandLaunchFailed"))
        self._note_start(a, name)
        try:
            return self._watch(a, handle, name, task_dir, wd, env)
        finally:
            leftovers.append((runtime, name))

    def _task_env(self, a: Assignment, layout: NodeLayout) -> dict:
        """AZ_BATCH_* of the node and task, the job preparation's folders, then the job's and task's settings."""
        task, job, node = a.task, a.job, a.node
        env = layout.task_env(layout.node_env(self.model.account, self.model.account_url, a.pool["id"],
                                              node["id"], node.get("isDedicated", True)), job["id"], task["id"])
        env.update(task_env(layout, job))
        for item in (job.get("commonEnvironmentSettings") or []) + (task.get("environmentSettings") or []):
            env[item["name"]] = item.get("value") or ""
        return env

    def _prepare(self, a: Assignment, runtime, cs: dict | None, wd: Path) -> dict | None:
        """Before the command: the container rule, the GPU, the image and the resource files; a failureInfo
        when one of them fails."""
        task, pool = a.task, a.pool
        container_pool = bool((pool.get("virtualMachineConfiguration") or {}).get("containerConfiguration"))
        if container_pool != bool(cs):
            return failure("ContainerInvalidSettings", "A task on a container pool must specify containerSettings, "
                           "and a task on a pool without containerConfiguration must not")
        if cs and runtime is not self.process_runtime:
            try:
                # No GPU for a GPU pool: fail before pulling anything.
                gpu.container_gpu_args(pool.get("vmSize"), getattr(runtime, "name", ""), self.gpu_detector)
                self.ensure_image(runtime, normalize_image(cs["imageName"]), cs.get("registry"), pool)
            except Exception as exc:  # noqa: BLE001 - PullError
                return runtime_failure(exc, "ContainerMiscError")
        if task.get("resourceFiles"):
            try:
                download_resource_files(task["resourceFiles"], wd, self.resolver)
            except StagingError as exc:
                return exc.failure_info
        return None

    def _watch(self, a: Assignment, handle, name: str, task_dir: Path, wd: Path, env: dict) -> Outcome:
        """Wait for the started attempt (killed past maxWallClockTime), then upload its output files."""
        task = a.task
        if not self.model.register_kill(a.job_key, a.task_key, a.attempt, handle.kill, name):
            handle.kill()
        self.model.record_container(a.job_key, a.task_key, a.attempt, handle.container_id)
        limit = timeutil.parse_duration((task.get("constraints") or {}).get("maxWallClockTime") or "")
        timeout = None if limit is None or limit >= timeutil.UNLIMITED_SECONDS else limit
        started = time.monotonic()
        code = handle.wait(timeout)
        timed_out = False
        if code is None:
            timed_out = True
            handle.kill()
            code = handle.wait(30)
        log.debug("task %s exited %s after %.3fs", task["id"], code, time.monotonic() - started)
        upload_failure = None
        uploaded: list[dict] = []
        if task.get("outputFiles") and self.model.attempt_current(a.job_key, a.task_key, a.attempt):
            upload_failure = upload_output_files(task["outputFiles"], task_dir, wd, code == 0 and not timed_out,
                                                 self.resolver, env=env, uploaded=uploaded)
        return Outcome(exit_code=code, timed_out=timed_out, upload_failure=upload_failure,
                       container_id=handle.container_id, uploaded=uploaded)

    def _note_start(self, a: Assignment, name: str) -> None:
        """Append one line for a started attempt; a single O_APPEND write, so lines of concurrent attempts never
        mix and a kill -9 right after it loses nothing (the kernel holds the data)."""
        if self.starts_log is None:
            return
        line = json.dumps({"job": a.job["id"], "task": a.task["id"], "attempt": a.attempt, "node": a.node_id,
                           "name": name, "time": timeutil.now_iso()}) + "\n"
        try:
            fd = os.open(self.starts_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not note the start of %s in %s: %s", name, self.starts_log, exc)

    @staticmethod
    def cleanup(runtime, name: str) -> None:
        try:
            runtime.cleanup(name)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def cleanup_stale(self, names: list[str]) -> None:
        """Remove containers left by a previous emulator process (their tasks were requeued)."""
        for runtime in {id(r): r for r in (self.container_runtime, self.process_runtime)}.values():
            try:
                leftovers = set(runtime.list_names(f"batchemu-{self.instance}-"))
            except Exception:  # noqa: BLE001
                leftovers = set()
            for name in leftovers | set(names):
                self.cleanup(runtime, name)


def instance_id(data_dir: Path) -> str:
    return hashlib.sha1(str(Path(data_dir).resolve()).encode() + os.uname().nodename.encode()).hexdigest()[:8]
