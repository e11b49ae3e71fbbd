"""Run the local Functions host as a subprocess on a copy of a test app, and read what its functions recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[3]
APPS = Path(__file__).resolve().parent / "apps"
SHARED = APPS / "_shared"


def copy_app(app: str, dest: Path) -> Path:
    """Copy the test app `app` to `dest` with the shared modules (record.py) beside its function_app.py."""
    shutil.copytree(APPS / app, dest)
    shutil.copytree(SHARED, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


class HostProcess:
    """One app copy (so a test can change its host.json), its output folder and the host process."""

    def __init__(self, app: str, tmp: Path, connection_string: str, env: dict[str, str] | None = None,
                 host_json: dict | None = None, host_id: str | None = None, extra_args: list[str] | None = None):
        self.app_dir = copy_app(app, tmp / "app")
        if host_json is not None:
            (self.app_dir / "host.json").write_text(json.dumps(host_json))
        self.out_dir = tmp / "out"
        self.out_dir.mkdir(exist_ok=True)
        self.state_dir = tmp / "state"
        self.log_path = tmp / "host.log"
        self.host_id = host_id or f"t{os.getpid()}-{tmp.name[-12:]}".lower().replace("_", "-")[:32].strip("-")
        self.env = {**os.environ, "FH_OUT": str(self.out_dir), "AzureWebJobsStorage": connection_string,
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "devstack.func_host", "--app-dir", str(self.app_dir), "--settings",
                str(self.app_dir / "local.settings.test.json"), "--state-dir", str(self.state_dir),
                "--host-id", self.host_id, *self.extra_args]

    def start(self, wait_running: bool = True) -> HostProcess:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_running:
            wait_for(lambda: self.status().get("state") == "running" and self.status().get("pid") == self.proc.pid
                     or self._died(), 20, "host to report running", 0.05)
            if self.proc.poll() is not None:
                raise AssertionError(f"host exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def status(self) -> dict:
        try:
            return json.loads((self.state_dir / "host.json").read_text())
        except (OSError, ValueError):
            return {}

    def events(self, fn: str | None = None, event: str | None = None) -> list[dict]:
        path = self.out_dir / "events.jsonl"
        if not path.exists():
            return []
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in items if (fn is None or e["fn"] == fn) and (event is None or e["event"] == event)]

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self._log:
                self._log.close()
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
