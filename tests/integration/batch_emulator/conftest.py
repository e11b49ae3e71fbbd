"""A private Batch emulator per test module (free port, tmp data dir), driven by the real azure-batch client.

Private instances let the durability tests stop, kill and restart the emulator without disturbing the stack's
shared one; they run with the stack's env (podman config, registry, Azurite credentials for identityReference).
"""

from __future__ import annotations

import pytest

from devstack.batch_emulator.launcher import EmulatorProcess
from devstack.common.local_accounts import BATCH_ACCOUNT_KEY as KEY
from devstack.common.local_accounts import BATCH_ACCOUNT_NAME as ACCOUNT
from tests.helpers import wait_for


class Emulator(EmulatorProcess):
    """The launcher's process plus a track-2 client for it (this suite runs with azure-batch 15)."""

    def client(self, key: str = KEY, api_version: str | None = None):
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        kwargs = {"api_version": api_version} if api_version else {}
        return BatchClient(self.url, AzureNamedKeyCredential(ACCOUNT, key), **kwargs)


@pytest.fixture(scope="module")
def process_emulator(tmp_path_factory):
    """Process runtime only: no containers, no stack needed (fast protocol and state-machine tests)."""
    with Emulator(tmp_path_factory.mktemp("batch") / "data", "process") as emu:
        yield emu


@pytest.fixture(scope="module")
def podman_emulator(stack, tmp_path_factory):
    with Emulator(tmp_path_factory.mktemp("batch") / "data", "podman", stack.batch_emulator_env()) as emu:
        yield emu


def vm_config(m, container=None):
    return m.VirtualMachineConfiguration(
        image_reference=m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204",
                                                version="latest"),
        node_agent_sku_id="batch.node.ubuntu 22.04", container_configuration=container)


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
