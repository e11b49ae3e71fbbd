"""The process runtime: a non-container pool's task runs as a plain host process.

Batch runs a task's command line without a shell, in the task working directory, with the task's
environment; so do we (argv list, no shell). Each task gets its own process group so that killing a task
(terminate, maxWallClockTime) also stops whatever it started.

The task does NOT inherit the emulator's environment: that holds the storage connection string and registry
credentials standing in for the pool's managed identity, which a task on Azure could not read either. It gets
PATH, LANG/LC_ALL/TZ from the host plus the task environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

from .base import RegistryAuth, RunSpec, StartError

_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessHandle:
    container_id: str | None = None

    def __init__(self, proc: subprocess.Popen):
        self._proc = proc
        self.pid = proc.pid
        self._lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            rc = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        # Killed by signal N: report 128+N, as a shell and Batch's Linux agent do.
        return rc if rc >= 0 else 128 - rc

    def kill(self) -> None:
        self.kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=15)

    def kill_group(self) -> None:
        with self._lock, contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class ProcessRuntime:
    name = "process"

    def __init__(self, env: dict[str, str] | None = None):
        source = {**os.environ, **(env or {})}
        self.base_env = {k: source[k] for k in _INHERITED if k in source}
        self.base_env.setdefault("PATH", _DEFAULT_PATH)
        self._handles: dict[str, ProcessHandle] = {}

    def pull(self, image: str, auth: RegistryAuth | None, timeout: float = 300) -> None:
        """Nothing to pull: a non-container pool has no images."""

    def has_image(self, image: str) -> bool:
        return True

    def start(self, spec: RunSpec) -> ProcessHandle:
        if not spec.command:
            raise StartError(
                "CommandLaunchFailed",
                "the task has an empty command line; only container tasks may leave it empty (image ENTRYPOINT)",
            )
        cwd = spec.workdir or None
        if cwd and not Path(cwd).is_dir():
            raise StartError("CommandLaunchFailed", f"working directory {cwd} does not exist")
        env = {**self.base_env, **spec.env}
        with open(spec.stdout_path, "wb") as out, open(spec.stderr_path, "wb") as err:
            try:
                proc = subprocess.Popen(  # noqa: S603 - argv list from the task, no shell, as Batch runs it
                    spec.command,
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise StartError(
                    "CommandProgramNotFound", f"The program {spec.command[0]!r} was not found"
                ) from None
            except OSError as exc:
                raise StartError(
                    "CommandLaunchFailed", f"Starting {spec.command[0]!r} failed: {exc.strerror}"
                ) from None
        handle = ProcessHandle(proc)
        self._handles[spec.name] = handle
        return handle

    def cleanup(self, name: str) -> None:
        """Kill anything the task left running in its process group (Batch ends a task's processes too)."""
        handle = self._handles.pop(name, None)
        if handle:
            handle.kill_group()

    def list_names(self, prefix: str) -> list[str]:
        return sorted(n for n in self._handles if n.startswith(prefix))
