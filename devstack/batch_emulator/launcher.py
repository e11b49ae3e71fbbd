"""A private Batch emulator process for tests and benchmarks: free port, own data dir, own log file.

The stack's shared emulator is a managed service (``devstack.stack.emulator``); this is the throw-away kind that a test
module or a benchmark starts for itself, so it can stop, kill and restart it without disturbing anyone. Only the
standard library is used here, so the azure-batch 14.2 env (tests/compat14) can import it too; building a Batch
client is left to the caller, who knows which SDK it has.

    with EmulatorProcess(tmp / "data", runtime="process") as emu:
        client = BatchClient(emu.url, AzureNamedKeyCredential(emu.account, emu.key))
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from devstack.common.local_accounts import BATCH_ACCOUNT_KEY, BATCH_ACCOUNT_NAME
from devstack.common.paths import REPO_ROOT

LOG_TAIL_CHARS = 2000


class EmulatorStartError(RuntimeError):
    """The emulator exited or did not answer its health check in time; the message names the log and quotes it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; another process could still take it first)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmulatorProcess:
    """One emulator process on 127.0.0.1; ``restart()`` keeps the port and data dir, ``kill()`` is a crash.

    ``env`` is added to this process's environment; ``extra_args`` go after the standard options (for example
    ``("--log-level", "WARNING")``); ``python`` may be another interpreter that can import ``devstack``. Output
    goes to ``log`` (by default ``emulator-<port>.log`` next to the data dir), appended across restarts.
    """

    def __init__(self, data_dir: Path | str, runtime: str = "process", env: Mapping[str, str] | None = None,
                 extra_args: Sequence[str] = (), python: str = sys.executable, *,
                 account: str = BATCH_ACCOUNT_NAME, key: str = BATCH_ACCOUNT_KEY, log: Path | str | None = None,
                 start_timeout: float = 30.0, stop_timeout: float = 20.0):
        self.data_dir = Path(data_dir)
        self.runtime = runtime
        self.env = dict(env or {})
        self.extra_args = tuple(extra_args)
        self.python = str(python)
        self.account = account
        self.key = key
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log) if log is not None else self.data_dir.parent / f"emulator-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [self.python, "-m", "devstack.batch_emulator", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--account", f"{self.account}:{self.key}",
                "--runtime", self.runtime, *self.extra_args]

    def start(self) -> dict:
        """Start the process and wait until its health endpoint answers; returns that first health report."""
        if self.running:
            raise RuntimeError(f"the emulator on {self.url} is already running (pid {self.proc.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env={**os.environ, **self.env},
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                return self.health(timeout=1)
            except OSError:
                if self.proc.poll() is not None:
                    self._fail(f"exited with code {self.proc.returncode}")
                if time.monotonic() > deadline:
                    self.stop()
                    self._fail(f"did not answer {self.url}/_emulator/health within {self.start_timeout:g}s")
                time.sleep(0.1)

    def _fail(self, what: str) -> NoReturn:
        try:
            tail = self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            tail = "(no log)"
        shown = " ".join(self.command()).replace(f"{self.account}:{self.key}", f"{self.account}:<key>")
        raise EmulatorStartError(f"Batch emulator ({shown}) {what}; log {self.log}:\n{tail}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self, timeout: float = 5) -> dict:
        with urllib.request.urlopen(self.url + "/_emulator/health", timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read())

    def stop(self) -> None:
        """SIGTERM (the emulator saves its state and stops its tasks), then SIGKILL after ``stop_timeout``."""
        if not self.running:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no flush, no cleanup, like a crashed host."""
        if self.proc is None:
            raise RuntimeError("the emulator was never started")
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> dict:
        """Stop (if running) and start again on the same port with the same data dir."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
