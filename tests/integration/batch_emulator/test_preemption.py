"""Spot preemption through the azure-batch 15 SDK: the emulator-only preempt endpoint and the --preempt-rate knob.

A preempted Spot node shows ``preempted``, still counts in currentLowPriorityNodes and in /nodecounts; its running
task goes back to active with requeueCount + 1 and retryCount unchanged (maxTaskRetryCount 0 still completes), and
runs again once the node is back or on another node; an autoscale formula sees ``$PreemptedNodeCount``.
"""

from __future__ import annotations

import uuid

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from tests.helpers import wait_for

from .conftest import Emulator, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration

KEEP_SPOT = "$TargetLowPriorityNodes = 1; $TargetDedicatedNodes = 1;"
# The first attempt leaves a marker and sleeps (it gets preempted); the requeued attempt finds it and ends.
ONCE = "/bin/sh -c 'if [ -f \"$MARKER\" ]; then echo again on $AZ_BATCH_NODE_ID; exit 0; fi; touch \"$MARKER\"; sleep 60'"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    env = {"BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL": "0.5"}
    with Emulator(tmp_path_factory.mktemp("batch") / "data", "process", env) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator):
    c = emulator.client()
    yield c
    c.close()


def preempt(client, pool_id: str, node_id: str, body: dict | None = None):
    request = HttpRequest("POST", f"/_emulator/pools/{pool_id}/nodes/{node_id}/preempt",
                          params={"api-version": "2025-06-01"}, json=body if body is not None else {})
    return client.send_request(request)


def counts(client, pool_id: str):
    return next(c for c in client.list_pool_node_counts() if c.pool_id == pool_id)


def spot_pool(client, pool_id: str, **kwargs):
    client.create_pool(m.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m), **kwargs))


def test_preempted_node_requeues_its_task_which_completes_after_recovery(client, tmp_path):
    spot_pool(client, "spot1", enable_auto_scale=True, auto_scale_formula=KEEP_SPOT,
              auto_scale_evaluation_interval="PT15M")
    nodes = wait_nodes(client, "spot1", 2)
    spot = next(n for n in nodes if not n.is_dedicated)
    dedicated = next(n for n in nodes if n.is_dedicated)
    client.disable_node_scheduling("spot1", dedicated.id, m.BatchNodeDisableSchedulingOptions(
        node_disable_scheduling_option="requeue"))  # the task can only run on the Spot node
    job = f"job-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id="spot1")))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="long", command_line=ONCE, constraints=m.BatchTaskConstraints(max_task_retry_count=0),
        environment_settings=[m.EnvironmentSetting(name="MARKER", value=str(tmp_path / "started"))]))
    wait_for(lambda: (tmp_path / "started").exists(), what="the first attempt to start")
    assert client.get_task(job, "long").state == "running"

    response = preempt(client, "spot1", spot.id, {"recoverAfterSeconds": 3})
    assert response.status_code == 200 and response.json()["state"] == "preempted"

    node = client.get_node("spot1", spot.id)
    assert node.state == "preempted" and node.running_tasks_count == 0
    task = client.get_task(job, "long")
    assert task.state == "active" and task.previous_state == "running"
    assert task.execution_info.requeue_count == 1 and task.execution_info.retry_count == 0
    assert task.execution_info.last_requeue_time is not None
    pool = client.get_pool("spot1")
    assert (pool.current_low_priority_nodes, pool.current_dedicated_nodes) == (1, 1)  # preempted still counts
    low = counts(client, "spot1").low_priority
    assert (low.preempted, low.total, counts(client, "spot1").dedicated.preempted) == (1, 1, 0)

    formula = "$TargetDedicatedNodes = $PreemptedNodeCount; $TargetLowPriorityNodes = 1;"
    run = client.evaluate_pool_auto_scale("spot1", m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=formula))
    assert run.error is None and "$TargetDedicatedNodes=1" in run.results.replace(" ", "")
    sampled = ("n = $PreemptedNodeCount.GetSample(1); $TargetDedicatedNodes = max(n); "
               "$TargetLowPriorityNodes = 1;")
    wait_for(lambda: "$TargetDedicatedNodes=1" in client.evaluate_pool_auto_scale(
        "spot1", m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=sampled)).results.replace(" ", ""),
        timeout=10, what="a $PreemptedNodeCount sample of 1")

    done = wait_task(client, job, "long", timeout=30)  # after ~3 s the node starts again and takes the task
    info = done.execution_info
    assert info.result == "success" and info.exit_code == 0
    assert (info.requeue_count, info.retry_count) == (1, 0)
    assert done.node_info.node_id == spot.id
    node = client.get_node("spot1", spot.id)
    assert node.state in ("idle", "running") and counts(client, "spot1").low_priority.preempted == 0
    run = client.evaluate_pool_auto_scale("spot1", m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=formula))
    assert "$TargetDedicatedNodes=0" in run.results.replace(" ", "")
    client.begin_delete_pool("spot1", polling_interval=0.2).result()


def test_requeued_task_runs_on_another_spot_node(client, tmp_path):
    spot_pool(client, "spot2", target_low_priority_nodes=2)
    wait_nodes(client, "spot2", 2)
    job = f"job-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id="spot2")))
    client.create_task(job, m.BatchTaskCreateOptions(
        id="long", command_line=ONCE,
        environment_settings=[m.EnvironmentSetting(name="MARKER", value=str(tmp_path / "started"))]))
    wait_for(lambda: (tmp_path / "started").exists(), what="the first attempt to start")
    first = wait_task(client, job, "long", state="running").node_info.node_id
    assert preempt(client, "spot2", first, {"recoverAfterSeconds": 600}).status_code == 200
    done = wait_task(client, job, "long", timeout=30)
    assert done.execution_info.result == "success" and done.node_info.node_id != first
    assert (done.execution_info.requeue_count, done.execution_info.retry_count) == (1, 0)
    assert client.get_node("spot2", first).state == "preempted"
    client.begin_delete_pool("spot2", polling_interval=0.2).result()


def refused(client, pool_id: str, node_id: str, body: dict | None = None) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as err:
        preempt(client, pool_id, node_id, body)
    return err.value


def test_preempt_refuses_dedicated_unknown_and_preempted_nodes(client, emulator):
    spot_pool(client, "mixed", target_dedicated_nodes=1, target_low_priority_nodes=1)
    nodes = wait_nodes(client, "mixed", 2)
    dedicated = next(n for n in nodes if n.is_dedicated)
    spot = next(n for n in nodes if not n.is_dedicated)
    err = refused(client, "mixed", dedicated.id)
    assert (err.status_code, err.error.code) == (409, "NodeIsDedicated")
    assert client.get_node("mixed", dedicated.id).state == "idle"
    assert refused(client, "mixed", "tvm-nope").error.code == "NodeNotFound"
    assert refused(client, "nopool", spot.id).error.code == "PoolNotFound"
    err = refused(client, "mixed", spot.id, {"recoverAfterSeconds": -1})
    assert err.status_code == 400 and "recoverAfterSeconds" in str(err)
    assert refused(client, "mixed", spot.id, {"seconds": 1}).status_code == 400
    assert client.get_node("mixed", spot.id).state == "idle"
    assert preempt(client, "mixed", spot.id).status_code == 200
    err = refused(client, "mixed", spot.id)
    assert (err.status_code, err.error.code) == (409, "NodeNotPreemptible")
    # without the account key the lever cannot be pulled
    wrong = emulator.client(key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    try:
        assert refused(wrong, "mixed", spot.id).status_code == 403
    finally:
        wrong.close()
    client.begin_delete_pool("mixed", polling_interval=0.2).result()


def test_preempt_rate_option_preempts_spot_nodes_and_never_dedicated(tmp_path):
    with Emulator(tmp_path / "data", "process", extra_args=("--preempt-rate", "1", "--preempt-seed", "3",
                                                           "--preempt-duration", "600")) as emu:
        c = emu.client()
        try:
            assert emu.health()["preemption"]["ratePerMinute"] == 1
            spot_pool(c, "rated", target_dedicated_nodes=2, target_low_priority_nodes=2)
            wait_for(lambda: counts(c, "rated").low_priority.preempted == 2, what="both Spot nodes preempted")
            nodes = wait_nodes(c, "rated", 2)
            assert sorted((n.is_dedicated, n.state) for n in nodes) == [
                (False, "preempted"), (False, "preempted"), (True, "idle"), (True, "idle")]
            assert counts(c, "rated").dedicated.preempted == 0 and emu.health()["preemption"]["preempted"] == 2
        finally:
            c.close()
