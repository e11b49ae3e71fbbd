"""The process runtime: a non-container pool's task runs as a plain host process.

Batch runs a task's command line without a shell, in the task working directory, with the task's
environment; so do we (argv list, no shell). Each task gets its own process group so that killing a task
(terminate, maxWallClockTime) also stops whatever it started.

With a `state_dir`, each running process is also recorded on disk (pid + kernel start time), so an emulator
that restarts after a crash can find and kill the process groups its previous life left running
(`list_names` + `cleanup`) before it requeues their tasks; the start time guards against a reused pid.

The task does NOT inherit the emulator's environment: that holds the storage connection string and registry
credentials standing in for the pool's managed identity, which a task on Azure could not read either. It gets
PATH, LANG/LC_ALL/TZ from the host plus the task environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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

    def __init__(self, env: dict[str, str] | None = None, state_dir: str | Path | None = None):
        source = {**os.environ, **(env or {})}
        self.base_env = {k: source[k] for k in _INHERITED if k in source}
        self.base_env.setdefault("PATH", _DEFAULT_PATH)
        self._handles: dict[str, ProcessHandle] = {}
        self.state_dir = Path(state_dir) if state_dir else None
        if self.state_dir:
            self.state_dir.mkdir(parents=True, exist_ok=True)

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
        if self.state_dir:
            record = {"name": spec.name, "pid": proc.pid, "start": _start_time(proc.pid)}
            path = self._record_path(spec.name)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)  # a crash leaves the old record or the new one, never half a file
        return handle

    def cleanup(self, name: str) -> None:
        """Kill anything the task left running in its process group (Batch ends a task's processes too)."""
        handle = self._handles.pop(name, None)
        if handle:
            handle.kill_group()
        if self.state_dir:
            path = self._record_path(name)
            record = _load(path)
            if record and not handle and _start_time(record["pid"]) == record.get("start"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record["pid"], signal.SIGKILL)  # left by an earlier emulator process
            path.unlink(missing_ok=True)

    def list_names(self, prefix: str) -> list[str]:
        names = set(self._handles)
        if self.state_dir:
            names.update(r["name"] for r in map(_load, self.state_dir.glob("*.json")) if r)
        return sorted(n for n in names if n.startswith(prefix))

    def _record_path(self, name: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json")


def _start_time(pid: int) -> str | None:
    """Kernel start time of a process (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _load(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "name" in record and "pid" in record else None
