"""The azure-batch 14.2 track-1 client (api-version 2024-02-01.19.0) end to end against the emulator."""

from __future__ import annotations

import base64

import azure.batch.models as bm
import pytest
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials

from tests.helpers import wait_for

from .conftest import ACCOUNT


@pytest.fixture(scope="module")
def pool(client):
    vmc = bm.VirtualMachineConfiguration(image_reference=bm.ImageReference(publisher="canonical", offer="ubuntu",
                                                                           sku="22_04-lts", version="latest"),
                                         node_agent_sku_id="batch.node.ubuntu 22.04")
    client.pool.add(bm.PoolAddParameter(id="p14", vm_size="standard_d2s_v3", virtual_machine_configuration=vmc,
                                        target_dedicated_nodes=2, task_slots_per_node=2))
    wait_for(lambda: all(n.state == "idle" for n in client.compute_node.list("p14"))
             and len(list(client.compute_node.list("p14"))) == 2, what="nodes idle")
    return "p14"


def test_pool_get_and_exists(client, pool):
    got = client.pool.get(pool)
    assert got.id == pool and got.current_dedicated_nodes == 2 and got.e_tag and got.url.endswith("/pools/p14")
    assert client.pool.exists(pool) is True
    assert client.pool.exists("absent") is False


def test_jobs_tasks_collection_paging_and_files(client, pool):
    client.job.add(bm.JobAddParameter(id="j14", pool_info=bm.PoolInformation(pool_id=pool),
                                      uses_task_dependencies=True))
    tasks = [bm.TaskAddParameter(id=str(i), command_line=f"/bin/sh -c 'echo task {i}'") for i in range(12)]
    tasks.append(bm.TaskAddParameter(id="t-dep", command_line="/bin/true",
                                     depends_on=bm.TaskDependencies(task_ids=["0"],
                                                                    task_id_ranges=[bm.TaskIdRange(start=1, end=2)])))
    result = client.task.add_collection("j14", tasks)
    assert all(r.status == "success" for r in result.value) and len(result.value) == 13
    wait_for(lambda: client.job.get_task_counts("j14").task_counts.completed == 13, what="13 completed")
    options = bm.TaskListOptions(filter="state eq 'completed' and executionInfo/result eq 'success'",
                                 select="id,state,executionInfo", max_results=5)
    listed = list(client.task.list("j14", task_list_options=options))
    assert len(listed) == 13 and all(t.execution_info.exit_code == 0 for t in listed)
    task = client.task.get("j14", "7")
    assert task.state == "completed" and task.node_info.pool_id == pool
    stream = client.file.get_from_task("j14", "7", "stdout.txt")
    assert b"".join(stream) == b"task 7\n"
    files = [f.name for f in client.file.list_from_task("j14", "7", recursive=True)]
    assert "stdout.txt" in files
    props = client.file.get_properties_from_task("j14", "7", "stdout.txt", raw=True)
    assert int(props.headers["Content-Length"]) == 7


def test_errors_are_batch_error_exceptions(client, pool):
    with pytest.raises(bm.BatchErrorException) as err:
        client.job.get("no-such-job")
    assert err.value.error.code == "JobNotFound"
    client.job.add(bm.JobAddParameter(id="dupe14", pool_info=bm.PoolInformation(pool_id=pool)))
    with pytest.raises(bm.BatchErrorException) as err:
        client.job.add(bm.JobAddParameter(id="DUPE14", pool_info=bm.PoolInformation(pool_id=pool)))
    assert err.value.error.code == "JobExists"
    with pytest.raises(bm.BatchErrorException) as err:
        client.task.add("dupe14", bm.TaskAddParameter(id="bad/id", command_line="/bin/true"))
    assert err.value.response.status_code in (400, 404)


def test_terminate_job_and_task(client, pool):
    client.job.add(bm.JobAddParameter(id="term14", pool_info=bm.PoolInformation(pool_id=pool)))
    client.task.add("term14", bm.TaskAddParameter(id="sleepy", command_line="/bin/sleep 60"))
    wait_for(lambda: client.task.get("term14", "sleepy").state == "running", what="running")
    client.task.terminate("term14", "sleepy")
    assert client.task.get("term14", "sleepy").state == "completed"
    client.job.terminate("term14", terminate_reason="done")
    job = client.job.get("term14")
    assert job.state == "completed" and job.execution_info.terminate_reason == "done"
    client.job.delete("term14")


def test_wrong_key_is_refused(emulator_url):
    bad = BatchServiceClient(SharedKeyCredentials(ACCOUNT, base64.b64encode(b"wrong").decode()), emulator_url)
    with pytest.raises(bm.BatchErrorException) as err:
        bad.pool.get("p14")
    assert err.value.response.status_code == 403
    assert err.value.error.code == "AuthenticationFailed"
