"""After kill -9 of the emulator its task containers are labelled leftovers (issue 17, item 13): the restarted
emulator removes them before the requeued attempt runs, and `make down`'s cleanup removes them by label."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from azure.batch import models as m

from devstack.common import image_copy
from devstack.stack import lifecycle
from tests.helpers import wait_for

from .conftest import Emulator, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


def labelled(stack, name_part: str) -> list[str]:
    res = subprocess.run(image_copy.argv("podman", ["ps", "-a", "--filter", "label=eventbatch.emulator", "--format",
                                                    "{{.Names}}"]),
                         env=stack.container_env(), capture_output=True, text=True, timeout=120, check=True)
    return [n for n in res.stdout.split() if name_part in n]


def start_sleeper(emu, stack, job: str) -> None:
    c = emu.client()
    cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[stack.worker_image],
                                       container_registries=[m.ContainerRegistryReference(
                                           registry_server=stack.registry_server, username=stack.registry_username,
                                           password=stack.registry_password)])
    c.create_pool(m.BatchPoolCreateOptions(id=f"p-{job}", vm_size="standard_d2s_v3", target_dedicated_nodes=1,
                                           virtual_machine_configuration=vm_config(m, cc)))
    wait_nodes(c, f"p-{job}", 1, timeout=180)
    c.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id=f"p-{job}")))
    c.create_task(job, m.BatchTaskCreateOptions(id="sleeper", command_line="/bin/sleep 120",
                                                container_settings=m.BatchTaskContainerSettings(
                                                    image_name=stack.worker_image)))
    wait_task(c, job, "sleeper", "running", timeout=60)
    wait_for(lambda: labelled(stack, job), 30, what="the labelled task container")


def test_make_down_removes_the_labelled_containers_of_a_killed_emulator(stack, tmp_path):
    if stack.runtime != "podman":
        pytest.skip("the stack does not use podman")
    job = f"left-{uuid.uuid4().hex[:6]}"
    emu = Emulator(tmp_path / "data", "podman", stack.batch_emulator_env())
    emu.start()
    try:
        start_sleeper(emu, stack, job)
        emu.kill()
        assert labelled(stack, job), "the container should outlive the killed emulator"
        lifecycle._remove_emulator_containers(stack.env)  # what `make down` runs after stopping services
        assert labelled(stack, job) == []
    finally:
        emu.stop()


def test_a_restarted_emulator_removes_its_leftover_container_before_rerunning(stack, tmp_path):
    if stack.runtime != "podman":
        pytest.skip("the stack does not use podman")
    job = f"rerun-{uuid.uuid4().hex[:6]}"
    emu = Emulator(tmp_path / "data", "podman", stack.batch_emulator_env())
    emu.start()
    try:
        start_sleeper(emu, stack, job)
        first = labelled(stack, job)
        emu.kill()
        emu.start()
        c = emu.client()
        wait_for(lambda: c.get_task(job, "sleeper").execution_info.requeue_count == 1, 60, what="the requeue")
        assert not set(first) & set(labelled(stack, job)), "the first attempt's container is still there"
        c.terminate_task(job, "sleeper")
    finally:
        emu.stop()
