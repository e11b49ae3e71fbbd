"""Autoscaled emulator pools, seen through the azure-batch 15.1 client as an application would see them.

A private emulator (process runtime, free port, temp data dir) samples every second and evaluates every 2 s via
BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL / BATCH_EMULATOR_AUTOSCALE_EVALUATION_INTERVAL, so the pool's own
autoScaleEvaluationInterval can stay at the REST API's PT5M minimum.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.batch_emulator.launcher import EmulatorProcess
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def batch():
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    env = {"BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL": "1", "BATCH_EMULATOR_AUTOSCALE_EVALUATION_INTERVAL": "PT2S"}
    with tempfile.TemporaryDirectory(prefix="autoscale-emulator-") as tmp:
        with EmulatorProcess(Path(tmp) / "data", "process", env, ("--log-level", "WARNING")) as emu:
            client = BatchClient(emu.url, AzureNamedKeyCredential(emu.account, emu.key))
            yield client
            client.close()


def _create_autoscaled_pool(client, pool_id: str, formula: str) -> None:
    from azure.batch import models as m

    vmc = m.VirtualMachineConfiguration(
        image_reference=m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204"),
        node_agent_sku_id="batch.node.ubuntu 22.04")
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vmc, task_slots_per_node=1,
        enable_auto_scale=True, auto_scale_formula=formula, auto_scale_evaluation_interval=timedelta(minutes=5)))


def _add_tasks(client, pool_id: str, job_id: str, commands: list[str]) -> None:
    from azure.batch import models as m

    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line=cmd)
                                 for i, cmd in enumerate(commands)])


def test_pool_grows_from_zero_when_tasks_arrive_and_returns_to_zero_when_idle(batch):
    _create_autoscaled_pool(batch, "grow", "pending = max(0, $PendingTasks.GetSample(1));\n"
                                           "$TargetDedicatedNodes = min(2, pending);\n"
                                           "$NodeDeallocationOption = taskcompletion;")
    pool = wait_for(lambda: batch.get_pool("grow").auto_scale_run, 10, "the first evaluation") and batch.get_pool("grow")
    assert pool.target_dedicated_nodes == 0 and pool.current_dedicated_nodes == 0
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;"
                                                  "$NodeDeallocationOption=taskcompletion;pending=0")
    assert list(batch.list_nodes("grow")) == []

    _add_tasks(batch, "grow", "grow-job", ["/bin/sh -c 'sleep 2'"] * 3)
    wait_for(lambda: len(list(batch.list_nodes("grow"))) == 2, 20, "two nodes")
    grown = batch.get_pool("grow")
    assert grown.target_dedicated_nodes == 2 and "$TargetDedicatedNodes=2;" in grown.auto_scale_run.results

    wait_for(lambda: batch.get_job_task_counts("grow-job").task_counts.completed == 3, 30, "all tasks completed")
    wait_for(lambda: not list(batch.list_nodes("grow")), 20, "no nodes left")
    idle = batch.get_pool("grow")
    assert idle.target_dedicated_nodes == 0 and idle.current_dedicated_nodes == 0
    assert batch.get_job_task_counts("grow-job").task_counts.succeeded == 3


def test_taskcompletion_lets_the_running_task_finish_before_its_node_leaves(batch):
    # Only queued tasks ask for a node: once the task runs, the next evaluation targets 0 nodes.
    _create_autoscaled_pool(batch, "drain", "$TargetDedicatedNodes = min(1, max(0, $ActiveTasks.GetSample(1)));\n"
                                            "$NodeDeallocationOption = taskcompletion;")
    _add_tasks(batch, "drain", "drain-job", ["/bin/sh -c 'sleep 6; echo finished'"])
    wait_for(lambda: batch.get_task("drain-job", "t0").state == "running", 20, "the task to run")
    wait_for(lambda: batch.get_pool("drain").target_dedicated_nodes == 0, 10, "the scale-down decision")
    # The decision is made, the task still runs, and its node is still there.
    assert batch.get_task("drain-job", "t0").state == "running"
    assert len(list(batch.list_nodes("drain"))) == 1

    wait_for(lambda: batch.get_task("drain-job", "t0").state == "completed", 20, "the task to complete")
    task = batch.get_task("drain-job", "t0")
    assert task.execution_info.exit_code == 0 and task.execution_info.result == "success"
    wait_for(lambda: not list(batch.list_nodes("drain")), 10, "the node to leave")
