"""A private Batch emulator per test module (free port, tmp data dir), driven by the real azure-batch client.

Private instances let the durability tests stop, kill and restart the emulator without disturbing the stack's
shared one; they run with the stack's env (podman config, registry, Azurite credentials for identityReference).
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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KEY = "ZXZlbnRiYXRjaC1sb2NhbC1lbXVsYXRvci13ZWxsLWtub3duLWtleS1ub3QtYS1zZWNyZXQ="
ACCOUNT = "eventbatchlocal"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One emulator process; ``restart()`` keeps the port and data dir, ``kill()`` simulates a crash."""

    def __init__(self, data_dir: Path, runtime: str, env: dict[str, str]):
        self.data_dir = data_dir
        self.runtime = runtime
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"emulator-{self.port}.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.batch_emulator", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--account", f"{ACCOUNT}:{KEY}", "--runtime", self.runtime],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/_emulator/health", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"emulator did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no flush, no cleanup, like a crashed host."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def health(self) -> dict:
        return json.loads(urllib.request.urlopen(self.url + "/_emulator/health", timeout=5).read())

    def client(self, key: str = KEY, api_version: str | None = None):
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        kwargs = {"api_version": api_version} if api_version else {}
        return BatchClient(self.url, AzureNamedKeyCredential(ACCOUNT, key), **kwargs)


def emulator_env(stack) -> dict[str, str]:
    env = {**os.environ, **stack.env}
    env["BATCH_EMULATOR_STORAGE_CONNECTION_STRING"] = stack.storage_connection_string
    env["BATCH_EMULATOR_REGISTRY_CREDENTIALS"] = json.dumps(
        {stack.registry_server: {"username": stack.registry_username, "password": stack.registry_password}})
    return env


@pytest.fixture(scope="module")
def process_emulator(tmp_path_factory):
    """Process runtime only: no containers, no stack needed (fast protocol and state-machine tests)."""
    emu = Emulator(tmp_path_factory.mktemp("batch") / "data", "process", dict(os.environ))
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def podman_emulator(stack, tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("batch") / "data", "podman", emulator_env(stack))
    emu.start()
    yield emu
    emu.stop()


def vm_config(m, container=None):
    return m.VirtualMachineConfiguration(
        image_reference=m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204",
                                                version="latest"),
        node_agent_sku_id="batch.node.ubuntu 22.04", container_configuration=container)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_task(client, job_id: str, task_id: str, state: str = "completed", timeout: float = 60):
    def check():
        task = client.get_task(job_id, task_id)
        return task if task.state == state else None
    return wait_for(check, timeout, what=f"task {job_id}/{task_id} to be {state}")


def wait_nodes(client, pool_id: str, count: int, states=("idle", "running"), timeout: float = 60):
    def check():
        nodes = list(client.list_nodes(pool_id))
        ready = [n for n in nodes if n.state in states]
        return nodes if len(ready) >= count else None
    return wait_for(check, timeout, what=f"{count} nodes of {pool_id} in {states}")


def read_file(client, job_id: str, task_id: str, path: str) -> str:
    return b"".join(client.download_task_file(job_id, task_id, path)).decode()
