"""Container pools on podman: prefetch with registry credentials, Batch's mounts and env in the container,
ENTRYPOINT for an empty command line, pull at task start, pull failures, resource/output files via Azurite."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from azure.batch import models as m
from azure.storage.blob import BlobServiceClient

from devstack.common import image_copy
from tests.helpers import wait_for

from .conftest import read_file, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(podman_emulator, stack):
    c = podman_emulator.client()
    registry = m.ContainerRegistryReference(registry_server=stack.registry_server, username=stack.registry_username,
                                            password=stack.registry_password)
    cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[stack.worker_image],
                                       container_registries=[registry])
    c.create_pool(m.BatchPoolCreateOptions(id="ctr", vm_size="standard_d2s_v3",
                                           virtual_machine_configuration=vm_config(m, cc), target_dedicated_nodes=1,
                                           task_slots_per_node=4))
    wait_nodes(c, "ctr", 1, timeout=180)
    yield c
    c.close()


def new_job(client) -> str:
    job_id = f"cjob-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="ctr")))
    return job_id


def podman(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run(image_copy.argv("podman", args), env=stack.container_env(), capture_output=True, text=True, timeout=120)


def test_container_task_gets_batch_mounts_env_and_workdir(client, stack):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="c1", command_line="/bin/sh -c 'pwd; echo $AZ_BATCH_TASK_ID $MODE; echo data > out.txt; "
                              "ls $AZ_BATCH_NODE_SHARED_DIR > /dev/null && echo shared-ok; echo host=$(cat /etc/hostname)'",
        environment_settings=[m.EnvironmentSetting(name="MODE", value="prod")],
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image,
                                                        container_run_options="--hostname emu-test")))
    task = wait_task(client, job, "c1", timeout=60)
    assert task.execution_info.exit_code == 0, read_file(client, job, "c1", "stderr.txt")
    assert task.execution_info.container_info.container_id
    out = read_file(client, job, "c1", "stdout.txt").split("\n")
    assert out[0].endswith(f"workitems/{job}/job-1/c1/wd")  # the task working dir is the container's workdir
    assert out[1] == "c1 prod" and out[2] == "shared-ok"
    assert out[3] == "host=emu-test"  # containerRunOptions reached `create`
    assert read_file(client, job, "c1", "wd/out.txt") == "data\n"


def test_empty_command_line_runs_the_image_entrypoint(client, stack):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="ep", command_line="", container_settings=m.BatchTaskContainerSettings(image_name=stack.hello_image)))
    task = wait_task(client, job, "ep", timeout=120)
    assert task.execution_info.exit_code == 0
    assert read_file(client, job, "ep", "stdout.txt").startswith("hello from the entrypoint, task ep")
    assert read_file(client, job, "ep", "wd/hello.txt") == "entrypoint ran\n"


def test_image_default_working_directory_and_selected_bind_mounts(client, stack):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="wd", command_line="/bin/sh -c 'pwd; test -d \"$AZ_BATCH_NODE_SHARED_DIR\" && echo shared; "
                              "echo ${AZ_BATCH_TASK_WORKING_DIR:-unset}'",
        container_settings=m.BatchTaskContainerSettings(
            image_name=stack.worker_image, working_directory="containerImageDefault",
            container_host_batch_bind_mounts=[m.ContainerHostBatchBindMountEntry(source="Shared", is_read_only=True)])))
    wait_task(client, job, "wd", timeout=60)
    assert read_file(client, job, "wd", "stdout.txt").split("\n")[:3] == ["/", "shared", "unset"]


def test_other_image_is_pulled_at_task_start_and_pull_failure_is_reported(client, stack):
    tag = f"{stack.registry_server}/eventbatch/emutest:{uuid.uuid4().hex[:8]}"
    assert podman(stack, "tag", stack.worker_image, tag).returncode == 0
    push = podman(stack, "push", "--tls-verify=false", "--creds",
                  f"{stack.registry_username}:{stack.registry_password}", tag)
    assert push.returncode == 0, push.stderr
    podman(stack, "rmi", tag)
    assert podman(stack, "image", "exists", tag).returncode != 0
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="pull", command_line="/app/noop.sh", container_settings=m.BatchTaskContainerSettings(image_name=tag)))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="missing", command_line="/app/noop.sh", container_settings=m.BatchTaskContainerSettings(
            image_name=f"{stack.registry_server}/eventbatch/does-not-exist:1")))
    # a registry reached through identityReference: the emulator's BATCH_EMULATOR_REGISTRY_CREDENTIALS stand in
    tag2 = tag + "-id"
    assert podman(stack, "tag", stack.worker_image, tag2).returncode == 0
    assert podman(stack, "push", "--tls-verify=false", "--creds",
                  f"{stack.registry_username}:{stack.registry_password}", tag2).returncode == 0
    podman(stack, "rmi", tag2)
    identity = m.ContainerRegistryReference(registry_server=stack.registry_server,
                                            identity_reference=m.BatchNodeIdentityReference(resource_id="/x/uai"))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="pull-id", command_line="/app/noop.sh",
        container_settings=m.BatchTaskContainerSettings(image_name=tag2, registry=identity)))
    try:
        assert wait_task(client, job, "pull-id", timeout=120).execution_info.exit_code == 0
        assert wait_task(client, job, "pull", timeout=120).execution_info.exit_code == 0
        assert podman(stack, "image", "exists", tag).returncode == 0
        bad = wait_task(client, job, "missing", timeout=120).execution_info
        assert bad.result == "failure" and bad.exit_code is None
        assert bad.failure_info.category == "usererror" and bad.failure_info.code.startswith("Container")
    finally:
        podman(stack, "rmi", tag)
        podman(stack, "rmi", tag2)


def test_prefetch_failure_makes_the_node_unusable(client, stack):
    cc = m.BatchContainerConfiguration(type="dockerCompatible",
                                       container_image_names=[f"{stack.registry_server}/eventbatch/nothing:1"])
    client.create_pool(m.BatchPoolCreateOptions(id="badimg", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m, cc),
                                                target_dedicated_nodes=1))
    nodes = wait_nodes(client, "badimg", 1, states=("unusable",), timeout=120)
    assert nodes[0].errors and nodes[0].errors[0].code.startswith("Container")
    client.begin_delete_pool("badimg", polling_interval=0.2).result()


def test_terminate_stops_the_container(client, stack):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="long", command_line="/bin/sleep 120",
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image)))
    task = wait_task(client, job, "long", "running", timeout=60)
    wait_for(lambda: (client.get_task(job, "long").execution_info.container_info or None), 30, what="container id")
    cid = client.get_task(job, "long").execution_info.container_info.container_id
    client.terminate_task(job, "long")
    assert client.get_task(job, "long").state == "completed"

    def gone():
        res = podman(stack, "ps", "-q", "--no-trunc")
        return cid not in res.stdout
    wait_for(gone, 30, what="container to stop")
    assert task.node_info.pool_id == "ctr"


def test_resource_and_output_files_through_azurite(client, stack):
    blobs = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    name = f"emu-{uuid.uuid4().hex[:8]}"
    inputs = blobs.create_container(f"{name}-in")
    outputs = blobs.create_container(f"{name}-out")
    inputs.upload_blob("data/words.txt", b"one two three\n")
    job = new_job(client)
    dest = m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
        container_url=outputs.url, path=f"{job}/out", identity_reference=m.BatchNodeIdentityReference(
            resource_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u")))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="stage", command_line="/bin/sh -c 'wc -w < in/data/words.txt > count.txt'",
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image),
        resource_files=[m.ResourceFile(storage_container_url=inputs.url, file_path="in",
                                       identity_reference=m.BatchNodeIdentityReference(resource_id="/x/uai"))],
        output_files=[m.OutputFile(file_pattern="*.txt", destination=dest,
                                   upload_options=m.OutputFileUploadConfiguration(upload_condition="tasksuccess"))]))
    task = wait_task(client, job, "stage", timeout=60)
    assert task.execution_info.result == "success", task.execution_info.failure_info
    assert outputs.download_blob(f"{job}/out/count.txt").readall().strip() == b"3"
    # a missing input fails the task before anything runs
    client.create_task(job, m.BatchTaskCreateOptions(
        id="nofile", command_line="/bin/sh -c 'echo ran > ran.txt'",
        container_settings=m.BatchTaskContainerSettings(image_name=stack.worker_image),
        resource_files=[m.ResourceFile(http_url=f"{inputs.url}/absent.txt", file_path="absent.txt",
                                       identity_reference=m.BatchNodeIdentityReference(resource_id="/x/uai"))]))
    failed = wait_task(client, job, "nofile", timeout=60).execution_info
    assert failed.result == "failure" and failed.failure_info.code == "BlobNotFound"
    names = {f.name for f in client.list_task_files(job, "nofile", recursive=True)}
    assert "wd/ran.txt" not in names


def test_prefetch_pulls_every_image_with_the_pool_registry_credentials(client, stack):
    tag = f"{stack.registry_server}/eventbatch/emuprefetch:{uuid.uuid4().hex[:8]}"
    assert podman(stack, "tag", stack.worker_image, tag).returncode == 0
    assert podman(stack, "push", "--tls-verify=false", "--creds",
                  f"{stack.registry_username}:{stack.registry_password}", tag).returncode == 0
    podman(stack, "rmi", tag)
    assert podman(stack, "image", "exists", tag).returncode != 0
    registry = m.ContainerRegistryReference(registry_server=stack.registry_server, username=stack.registry_username,
                                            password=stack.registry_password)
    cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[stack.worker_image, tag],
                                       container_registries=[registry])
    try:
        client.create_pool(m.BatchPoolCreateOptions(id="prefetch", vm_size="standard_d2s_v3",
                                                    virtual_machine_configuration=vm_config(m, cc),
                                                    target_dedicated_nodes=1))
        wait_nodes(client, "prefetch", 1, timeout=120)
        assert podman(stack, "image", "exists", tag).returncode == 0  # pulled before the node became idle
        client.begin_delete_pool("prefetch", polling_interval=0.2).result()
    finally:
        podman(stack, "rmi", tag)
