"""A GPU (N-series) container pool on a machine without a GPU: its tasks fail at start, visibly, instead of
running without one. The detection is faked to 'no GPU' (EVENTBATCH_EMULATOR_GPU=absent) so this runs anywhere."""

from __future__ import annotations

import uuid

import pytest
from azure.batch import models as m

from .conftest import Emulator, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack, tmp_path_factory):
    env = {**stack.batch_emulator_env(), "EVENTBATCH_EMULATOR_GPU": "absent"}
    with Emulator(tmp_path_factory.mktemp("batch") / "data", "podman", env) as emu:
        yield emu.client()


def _pool_and_job(client, vm_size: str) -> str:
    pool_id, job_id = f"gpu-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:8]}"
    container = m.BatchContainerConfiguration(type="dockerCompatible")
    client.create_pool(m.BatchPoolCreateOptions(id=pool_id, vm_size=vm_size, target_dedicated_nodes=1,
                                                virtual_machine_configuration=vm_config(m, container)))
    wait_nodes(client, pool_id, 1)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    return job_id


def test_gpu_pool_task_fails_at_start_without_a_gpu(client):
    job_id = _pool_and_job(client, "Standard_NC4as_T4_v3")
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="t1", command_line="nvidia-smi",
        container_settings=m.BatchTaskContainerSettings(image_name="docker.io/library/busybox:1.36")))
    task = wait_task(client, job_id, "t1")
    info = task.execution_info
    assert info.result == "failure"
    assert info.exit_code is None
    assert info.failure_info.code == "GPUUnavailable"
    assert info.failure_info.category == "servererror"
    assert "this machine has no GPU" in info.failure_info.message
    assert "Standard_NC4as_T4_v3" in info.failure_info.message


def test_non_gpu_pool_is_not_affected(client):
    """Same fake, ordinary vmSize: no GPU failure (the task gets to the image step, which fails here only because
    no registry answers on port 1: the point is that its failure is not GPUUnavailable)."""
    job_id = _pool_and_job(client, "standard_d2s_v3")
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="t1", command_line="true",
        container_settings=m.BatchTaskContainerSettings(image_name="127.0.0.1:1/none/such:1")))
    task = wait_task(client, job_id, "t1", timeout=120)
    failure = task.execution_info.failure_info
    assert failure is None or failure.code != "GPUUnavailable"
