"""Auto pools (poolInfo.autoPoolSpecification) through the azure-batch 15 SDK: created with the job or the job
schedule, named from autoPoolIdPrefix, shown in executionInfo.poolId, deleted at the end of their lifetime unless
keepAlive; the spec is validated like a pool."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from tests.helpers import wait_for
from tests.integration.batch_emulator.conftest import vm_config


@pytest.fixture(scope="module")
def client(process_emulator):
    return process_emulator.client()


def end_job(client, job_id):
    from azure.batch.models._models import BatchJobTerminateOptions  # not exported by 15.1
    client.begin_terminate_job(job_id, BatchJobTerminateOptions(termination_reason="UserTerminate"),
                               polling_interval=0.2).result()


def pool_ids(client) -> list[str]:
    return [p.id for p in client.list_pools()]


def auto_info(lifetime, keep_alive=False, prefix="auto"):
    return m.BatchPoolInfo(auto_pool_specification=m.BatchAutoPoolSpecification(
        auto_pool_id_prefix=prefix, pool_lifetime_option=lifetime, keep_alive=keep_alive,
        pool=m.BatchPoolSpecification(vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(m),
                                      target_dedicated_nodes=1)))


def test_job_auto_pool_runs_tasks_and_is_deleted_at_job_end(client):
    client.create_job(m.BatchJobCreateOptions(id="auto-job", pool_info=auto_info("job")))
    job = client.get_job("auto-job")
    pool_id = job.execution_info.pool_id
    assert pool_id.startswith("auto_") and len(pool_id) <= 64
    assert job.pool_info.pool_id is None
    assert job.pool_info.auto_pool_specification.pool_lifetime_option == "job"
    assert client.get_pool(pool_id).vm_size == "standard_d2s_v3"
    client.create_task("auto-job", m.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'echo hi'"))
    wait_for(lambda: client.get_task("auto-job", "t").state == "completed", 60, what="task on the auto pool")
    assert client.get_task("auto-job", "t").execution_info.exit_code == 0
    end_job(client, "auto-job")
    wait_for(lambda: pool_id not in pool_ids(client), 10, what="auto pool deleted")


def test_auto_pool_is_deleted_with_its_job(client):
    client.create_job(m.BatchJobCreateOptions(id="del-job", pool_info=auto_info("job", prefix="")))
    pool_id = client.get_job("del-job").execution_info.pool_id
    assert pool_id in pool_ids(client) and "_" not in pool_id  # no prefix: just the generated id
    client.begin_delete_job("del-job", polling_interval=0.2).result()
    assert pool_id not in pool_ids(client)


def test_keep_alive_auto_pool_survives_the_job(client):
    client.create_job(m.BatchJobCreateOptions(id="keep-job", pool_info=auto_info("job", keep_alive=True)))
    pool_id = client.get_job("keep-job").execution_info.pool_id
    end_job(client, "keep-job")
    client.begin_delete_job("keep-job", polling_interval=0.2).result()
    assert pool_id in pool_ids(client)
    client.begin_delete_pool(pool_id, polling_interval=0.2).result()


def test_auto_pool_spec_is_validated_naming_the_property(client):
    with pytest.raises(HttpResponseError) as exc:
        client.create_job(m.BatchJobCreateOptions(id="bad-auto", pool_info=m.BatchPoolInfo(
            auto_pool_specification=m.BatchAutoPoolSpecification(pool_lifetime_option="job",
                                                                 pool=m.BatchPoolSpecification(vm_size="x")))))
    assert exc.value.status_code == 400
    assert "poolInfo.autoPoolSpecification.pool.virtualMachineConfiguration" in str(exc.value)
    with pytest.raises(HttpResponseError) as exc:
        client.create_job(m.BatchJobCreateOptions(id="bad-auto2", pool_info=auto_info("jobschedule")))
    assert exc.value.status_code == 400 and "poolLifetimeOption" in str(exc.value)
    with pytest.raises(HttpResponseError) as exc:
        client.create_job(m.BatchJobCreateOptions(id="bad-auto3", pool_info=auto_info("job", prefix="x" * 21)))
    assert "autoPoolIdPrefix" in str(exc.value)
    assert "bad-auto" not in [j.id for j in client.list_jobs()]


def test_schedule_lifetime_auto_pool_outlives_jobs_and_ends_with_the_schedule(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="auto-s", schedule=m.BatchJobScheduleConfiguration(recurrence_interval=dt.timedelta(hours=1)),
        job_specification=m.BatchJobSpecification(pool_info=auto_info("jobschedule", prefix="sch"))))
    pool_id = client.get_job("auto-s:job-1").execution_info.pool_id
    assert pool_id.startswith("sch_") and pool_id in pool_ids(client)
    end_job(client, "auto-s:job-1")
    assert pool_id in pool_ids(client)  # a job's end does not end a jobschedule-lifetime pool
    client.begin_terminate_job_schedule("auto-s", polling_interval=0.2).result()
    wait_for(lambda: pool_id not in pool_ids(client), 10, what="schedule's auto pool deleted")


def test_schedule_job_lifetime_auto_pool_per_job(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="auto-j", schedule=m.BatchJobScheduleConfiguration(),
        job_specification=m.BatchJobSpecification(pool_info=auto_info("job", prefix="per"))))
    pool_id = client.get_job("auto-j:job-1").execution_info.pool_id
    assert pool_id.startswith("per_") and pool_id in pool_ids(client)
    end_job(client, "auto-j:job-1")
    assert pool_id not in pool_ids(client)
