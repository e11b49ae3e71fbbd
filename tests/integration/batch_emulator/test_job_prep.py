"""Job preparation and release tasks through the azure-batch 15 SDK (process runtime): once per node before
the job's tasks, output visible to the tasks, a failing preparation with waitForSuccess keeps tasks off the
node, release at terminate, the status API and its 409."""

from __future__ import annotations

import uuid

import pytest
from azure.batch import models as m
from azure.batch.models._models import BatchJobTerminateOptions  # not exported by 15.1
from azure.core.exceptions import HttpResponseError

from tests.helpers import wait_for

from .conftest import read_file, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(process_emulator):
    c = process_emulator.client()
    c.create_pool(m.BatchPoolCreateOptions(id="prep", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                           vm_config(m), target_dedicated_nodes=2, task_slots_per_node=2))
    wait_nodes(c, "prep", 2)
    yield c
    c.close()


def _job(client, prep=None, release=None) -> str:
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="prep"),
                                              job_preparation_task=prep, job_release_task=release))
    return job_id


def _status(client, job_id):
    return list(client.list_job_preparation_and_release_task_status(job_id))


def test_prep_runs_once_per_node_before_tasks_and_tasks_see_its_output(client):
    prep = m.BatchJobPreparationTask(command_line="/bin/sh -c 'sleep 0.5; echo run >> $AZ_BATCH_NODE_SHARED_DIR"
                                     "/prep-$AZ_BATCH_JOB_ID.txt; echo weights > model.bin'")
    job_id = _job(client, prep)
    for i in range(6):
        client.create_task(job_id, m.BatchTaskCreateOptions(
            id=f"t{i}", command_line="/bin/sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/model.bin; "
            "wc -l < $AZ_BATCH_NODE_SHARED_DIR/prep-$AZ_BATCH_JOB_ID.txt'"))
    seen = set()
    wait_for(lambda: (seen.update(t.state for t in client.list_tasks(job_id)) or
                      all(t.state == "completed" for t in client.list_tasks(job_id))), 60, interval=0.05)
    assert "preparing" in seen
    for i in range(6):
        task = client.get_task(job_id, f"t{i}")
        assert task.execution_info.exit_code == 0, task.execution_info
        # the preparation's file is there, and it ran exactly once on this node
        assert read_file(client, job_id, f"t{i}", "stdout.txt").split() == ["weights", "1"]
    status = _status(client, job_id)
    used = {client.get_task(job_id, f"t{i}").node_info.node_id for i in range(6)}
    assert {s.node_id for s in status} == used
    for s in status:
        info = s.job_preparation_task_execution_info
        assert info.state == "completed" and info.exit_code == 0 and info.result == "success"
        assert info.task_root_directory == f"workitems/{job_id}/job-1/jobpreparation"
        assert s.pool_id == "prep" and s.node_url.endswith(f"/pools/prep/nodes/{s.node_id}")
        assert s.job_release_task_execution_info is None


def test_failing_prep_with_wait_for_success_keeps_tasks_off(client):
    prep = m.BatchJobPreparationTask(command_line="/bin/sh -c 'echo broken >&2; exit 3'",
                                     constraints=m.BatchTaskConstraints(max_task_retry_count=1))
    job_id = _job(client, prep)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="never", command_line="/bin/sh -c 'echo ran'"))

    def failed_everywhere():
        status = _status(client, job_id)
        done = [s for s in status if s.job_preparation_task_execution_info.state == "completed"]
        return status if len(done) == 2 else None
    status = wait_for(failed_everywhere, 60)
    for s in status:
        info = s.job_preparation_task_execution_info
        assert info.exit_code == 3 and info.result == "failure" and info.retry_count == 1
        assert info.failure_info.code == "FailureExitCode" and info.failure_info.category == "usererror"
    task = client.get_task(job_id, "never")
    assert task.state == "active" and not (task.execution_info and task.execution_info.exit_code is not None)


def test_without_wait_for_success_tasks_start_while_prep_runs(client):
    prep = m.BatchJobPreparationTask(command_line="/bin/sh -c 'sleep 3; exit 1'", wait_for_success=False)
    job_id = _job(client, prep)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="quick", command_line="/bin/sh -c 'echo ok'"))
    task = wait_task(client, job_id, "quick", timeout=10)
    assert task.execution_info.result == "success"
    info = _status(client, job_id)[0].job_preparation_task_execution_info
    assert info.state == "running"  # the task did not wait for it
    wait_for(lambda: _status(client, job_id)[0].job_preparation_task_execution_info.state == "completed", 15)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="after-fail", command_line="/bin/sh -c 'echo ok'"))
    assert wait_task(client, job_id, "after-fail", timeout=10).execution_info.result == "success"


def test_release_runs_at_terminate_on_prepared_nodes(client):
    prep = m.BatchJobPreparationTask(command_line="/bin/sh -c 'echo prepared'")
    release = m.BatchJobReleaseTask(command_line="/bin/sh -c 'echo released; exit 4'")
    job_id = _job(client, prep, release)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="one", command_line="/bin/sh -c 'echo hi'"))
    wait_task(client, job_id, "one")
    client.begin_terminate_job(job_id, BatchJobTerminateOptions(termination_reason="done"),
                               polling_interval=0.2).result()

    def released():
        status = _status(client, job_id)
        infos = [s.job_release_task_execution_info for s in status]
        return status if infos and all(i and i.state == "completed" for i in infos) else None
    status = wait_for(released, 30)
    assert len(status) == 1
    info = status[0].job_release_task_execution_info
    assert info.exit_code == 4 and info.result == "failure"
    assert info.task_root_directory == f"workitems/{job_id}/job-1/jobrelease"


def test_status_409_without_prep_or_release(client):
    job_id = _job(client)
    with pytest.raises(HttpResponseError) as exc:
        _status(client, job_id)
    assert exc.value.status_code == 409
    assert exc.value.error.code == "JobPreparationTaskOrReleaseTaskNotSpecified"


@pytest.mark.parametrize("prep,release,prop", [
    ({}, None, "jobPreparationTask.commandLine"),
    ({"commandLine": "x", "waitForSuccess": "yes"}, None, "jobPreparationTask.waitForSuccess"),
    (None, {"commandLine": "x"}, "jobReleaseTask"),
    ({"commandLine": "x"}, {"commandLine": "y", "maxWallClockTime": "soon"}, "jobReleaseTask.maxWallClockTime"),
])
def test_bad_bodies_are_400_naming_the_property(process_emulator, client, prep, release, prop):
    body = {"id": f"bad-{uuid.uuid4().hex[:6]}", "poolInfo": {"poolId": "prep"}}
    if prep is not None:
        body["jobPreparationTask"] = prep
    if release is not None:
        body["jobReleaseTask"] = release
    from azure.core.rest import HttpRequest
    with pytest.raises(HttpResponseError) as exc:
        client.send_request(HttpRequest("POST", f"{process_emulator.url}/jobs?api-version=2024-07-01.20.0",
                                        json=body, headers={"Content-Type": "application/json; odata="
                                                                            "minimalmetadata"}))
    assert exc.value.status_code == 400
    assert prop in str(exc.value)


def test_prep_status_survives_restart_and_prep_does_not_rerun(tmp_path):
    import os

    from .conftest import Emulator
    emu = Emulator(tmp_path / "data", "process", dict(os.environ))
    emu.start()
    try:
        c = emu.client()
        c.create_pool(m.BatchPoolCreateOptions(id="p1", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                               vm_config(m), target_dedicated_nodes=1))
        c.create_job(m.BatchJobCreateOptions(id="j1", pool_info=m.BatchPoolInfo(pool_id="p1"),
                                             job_preparation_task=m.BatchJobPreparationTask(
                                                 command_line="/bin/sh -c 'echo run >> "
                                                 "$AZ_BATCH_NODE_SHARED_DIR/prep-runs.txt'")))
        cmd = "/bin/sh -c 'wc -l < $AZ_BATCH_NODE_SHARED_DIR/prep-runs.txt'"
        c.create_task("j1", m.BatchTaskCreateOptions(id="before", command_line=cmd))
        wait_task(c, "j1", "before")
        before = [s.as_dict() for s in c.list_job_preparation_and_release_task_status("j1")]
        emu.restart()
        c = emu.client()
        assert [s.as_dict() for s in c.list_job_preparation_and_release_task_status("j1")] == before
        wait_nodes(c, "p1", 1)
        c.create_task("j1", m.BatchTaskCreateOptions(id="after", command_line=cmd))
        wait_task(c, "j1", "after")
        assert read_file(c, "j1", "after", "stdout.txt").strip() == "1"
    finally:
        emu.stop()
