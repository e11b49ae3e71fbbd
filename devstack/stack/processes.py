"""Start, health-check, reuse and stop the local stack's background processes.

Each service is a plain process started in its own session (so `down` can stop its whole process group), with
its output in `.devstack/logs/<name>.log` and its pid in `.devstack/pids/<name>.pid`. A service that already
answers its health check is reused, whoever started it; a port held by something that is not our service is a
clear error rather than a silent clash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.common import paths
from devstack.common.procs import pid_alive, session_members


class StackError(RuntimeError):
    """A problem a person can fix; the message says how."""


@dataclass
class Service:
    name: str
    command: list[str]
    port: int | None
    healthy: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = paths.REPO_ROOT
    start_timeout: float = 30.0
    hint: str = ""
    # What `up()` does around ensuring the service runs (started or reused): build what it needs first, provision
    # it after. Each is called with up()'s log.
    before_up: Callable[[Callable[[str], None]], None] | None = None
    after_up: Callable[[Callable[[str], None]], None] | None = None
    # How `up()` ensures it runs, when not plainly `ensure_running` (the host restarts when its app changed).
    ensure: Callable[[Service, Callable[[str], None]], str] | None = None

    @property
    def log_path(self) -> Path:
        return paths.logs_dir() / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return paths.pids_dir() / f"{self.name}.pid"

    def bring_up(self, log: Callable[[str], None] = print) -> str:
        """What `up()` does for this service: its hooks around ensuring it runs. Returns the action taken."""
        if self.before_up:
            self.before_up(log)
        action = (self.ensure or ensure_running)(self, log)
        if self.after_up:
            self.after_up(log)
        return action


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> tuple[int, dict[str, str]] | None:
    """Status and headers of a GET, or None when nothing answers (an HTTP error status is still an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs we build
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def read_pid(service: Service) -> int | None:
    try:
        pid = int(service.pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def ensure_running(service: Service, log: Callable[[str], None] = print) -> str:
    """Start `service` unless it is already healthy. Returns 'reused' or 'started'."""
    if service.healthy():
        log(f"  {service.name:<14} reused (already healthy)")
        return "reused"
    if service.port is not None and port_open(service.port):
        raise StackError(
            f"{service.name}: port 127.0.0.1:{service.port} is taken by a process that is not a healthy "
            f"{service.name}. Stop that process (see `ss -ltnp 'sport = :{service.port}'`) or pick another port "
            f"{service.hint}".rstrip()
        )
    exe = service.command[0]
    if not (Path(exe).exists() or shutil.which(exe)):
        raise StackError(f"{service.name}: {exe} not found. Run `make setup` first.")
    service.log_path.parent.mkdir(parents=True, exist_ok=True)
    service.pid_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **service.env}
    with open(service.log_path, "ab") as logf:
        logf.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} starting\n".encode())
        logf.flush()
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            service.command,
            cwd=service.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service.pid_path.write_text(str(proc.pid))
    deadline = time.monotonic() + service.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(
                f"{service.name} exited with code {proc.returncode} while starting. "
                f"Last lines of {service.log_path}:\n{tail(service.log_path)}"
            )
        if service.healthy():
            log(f"  {service.name:<14} started (pid {proc.pid}, log {_rel(service.log_path)})")
            return "started"
        time.sleep(0.1)
    stop(service)
    raise StackError(
        f"{service.name} did not become healthy within {service.start_timeout:.0f}s. "
        f"Last lines of {service.log_path}:\n{tail(service.log_path)}"
    )


def stop(service: Service, timeout: float = 15.0) -> bool:
    """Stop the service we started (by its pid file). Returns True when something was stopped."""
    pid = read_pid(service)
    service.pid_path.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # Children that left the group still hold the session id; stop them too.
    for other in session_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(other, signal.SIGKILL)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)
