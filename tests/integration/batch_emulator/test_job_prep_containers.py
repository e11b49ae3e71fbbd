"""A job preparation task with containerSettings runs in a real container (podman) on a container pool, and its
output is visible to the job's container tasks; the release task without containerSettings runs on the node."""

from __future__ import annotations

import pytest
from azure.batch import models as m
from azure.batch.models._models import BatchJobTerminateOptions  # not exported by 15.1

from tests.helpers import wait_for

from .conftest import read_file, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


def test_container_prep_output_reaches_container_tasks_and_host_release_runs(podman_emulator, stack):
    c = podman_emulator.client()
    registry = m.ContainerRegistryReference(registry_server=stack.registry_server, username=stack.registry_username,
                                            password=stack.registry_password)
    cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[stack.worker_image],
                                       container_registries=[registry])
    c.create_pool(m.BatchPoolCreateOptions(id="ctr-prep", vm_size="standard_d2s_v3",
                                           virtual_machine_configuration=vm_config(m, cc), target_dedicated_nodes=1))
    wait_nodes(c, "ctr-prep", 1, timeout=180)
    settings = m.BatchTaskContainerSettings(image_name=stack.worker_image)
    prep = m.BatchJobPreparationTask(
        command_line="/bin/sh -c 'test -f /.dockerenv -o -f /run/.containerenv && echo in-container > ready.txt'",
        container_settings=settings)
    release = m.BatchJobReleaseTask(command_line="/bin/sh -c 'echo released'")
    c.create_job(m.BatchJobCreateOptions(id="cprep", pool_info=m.BatchPoolInfo(pool_id="ctr-prep"),
                                         job_preparation_task=prep, job_release_task=release))
    c.create_task("cprep", m.BatchTaskCreateOptions(
        id="reader", command_line="/bin/sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/ready.txt'",
        container_settings=settings))
    task = wait_task(c, "cprep", "reader", timeout=180)
    assert task.execution_info.exit_code == 0, task.execution_info
    assert read_file(c, "cprep", "reader", "stdout.txt").strip() == "in-container"
    status = list(c.list_job_preparation_and_release_task_status("cprep"))
    assert status[0].job_preparation_task_execution_info.result == "success"
    c.begin_terminate_job("cprep", BatchJobTerminateOptions(termination_reason="done"), polling_interval=0.2).result()

    def released():
        info = list(c.list_job_preparation_and_release_task_status("cprep"))[0].job_release_task_execution_info
        return info if info and info.state == "completed" else None
    assert wait_for(released, 60).exit_code == 0
    c.begin_delete_pool("ctr-prep", polling_interval=0.2).result()
    c.close()
