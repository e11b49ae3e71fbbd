"""Task users on podman: a non-admin auto-user runs as a non-root uid in the container and owns its task
folders; admin runs as root; a non-admin task cannot write root-owned paths of the image; bind mounts limit
what the container sees; the start task runs as its userIdentity."""

from __future__ import annotations

import uuid

import pytest
from azure.batch import models as m

from .conftest import read_file, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(podman_emulator, stack):
    c = podman_emulator.client()
    registry = m.ContainerRegistryReference(registry_server=stack.registry_server, username=stack.registry_username,
                                            password=stack.registry_password)
    cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[stack.worker_image],
                                       container_registries=[registry])
    start = m.BatchStartTask(
        command_line="/bin/sh -c 'id -u > $AZ_BATCH_NODE_STARTUP_WORKING_DIR/uid.txt; touch /root-only'",
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image),
        user_identity=m.UserIdentity(auto_user=m.AutoUserSpecification(scope="pool", elevation_level="admin")),
        wait_for_success=True)
    c.create_pool(m.BatchPoolCreateOptions(id="users", vm_size="standard_d2s_v3", start_task=start,
                                           virtual_machine_configuration=vm_config(m, cc), target_dedicated_nodes=1,
                                           task_slots_per_node=4))
    wait_nodes(c, "users", 1, states=("idle",), timeout=180)
    yield c
    c.close()


def run(client, stack, command: str, identity=None, binds=None, workdir=None):
    job = f"ujob-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id="users")))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="t", command_line=command, user_identity=identity,
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image,
                                                        container_host_batch_bind_mounts=binds,
                                                        working_directory=workdir)))
    task = wait_task(client, job, "t", timeout=90)
    return job, task


def auto(scope: str, level: str):
    return m.UserIdentity(auto_user=m.AutoUserSpecification(scope=scope, elevation_level=level))


def test_non_admin_task_runs_as_non_root_and_writes_its_wd(client, stack):
    job, task = run(client, stack, "/bin/sh -c 'id -u; id -g; echo ok > out.txt; echo log > ../own.txt'",
                    auto("pool", "nonadmin"))
    assert task.execution_info.exit_code == 0, read_file(client, job, "t", "stderr.txt")
    assert read_file(client, job, "t", "stdout.txt").split() == ["1000", "1000"]
    assert read_file(client, job, "t", "wd/out.txt") == "ok\n"


def test_default_and_task_scope_are_non_root(client, stack):
    job, task = run(client, stack, "/bin/sh -c 'id -u'", auto("task", "nonadmin"))
    assert read_file(client, job, "t", "stdout.txt").strip() == "1001"
    job, task = run(client, stack, "/bin/sh -c 'id -u'")
    assert task.execution_info.exit_code == 0
    assert read_file(client, job, "t", "stdout.txt").strip() != "0"


def test_admin_task_runs_as_root(client, stack):
    job, task = run(client, stack, "/bin/sh -c 'id -u; touch /etc/written'", auto("pool", "admin"))
    assert task.execution_info.exit_code == 0, read_file(client, job, "t", "stderr.txt")
    assert read_file(client, job, "t", "stdout.txt").strip() == "0"


def test_non_admin_task_cannot_write_root_owned_paths(client, stack):
    job, task = run(client, stack, "/bin/sh -c 'touch /etc/written'", auto("pool", "nonadmin"))
    assert task.execution_info.exit_code != 0
    assert task.execution_info.result == "failure"
    assert "denied" in read_file(client, job, "t", "stderr.txt").lower()


def test_admin_start_task_ran_as_root(client):
    node = next(iter(client.list_nodes("users")))
    assert node.start_task_info.exit_code == 0
    assert node.start_task_info.state == "completed"


def test_bind_mounts_limit_what_the_container_sees(client, stack):
    job, task = run(client, stack,
                    "/bin/sh -c 'test -d \"$AZ_BATCH_NODE_ROOT_DIR/shared\" && echo shared; "
                    "test -e \"$AZ_BATCH_NODE_ROOT_DIR/startup/wd/uid.txt\" && echo startup; "
                    "echo x > \"$AZ_BATCH_NODE_ROOT_DIR/shared/w\" 2>/dev/null || echo readonly; true'",
                    auto("pool", "admin"), binds=[m.ContainerHostBatchBindMountEntry(source="Shared",
                                                                                     is_read_only=True)],
                    workdir="containerImageDefault")
    assert task.execution_info.exit_code == 0
    assert read_file(client, job, "t", "stdout.txt").split() == ["shared", "readonly"]
