"""Job schedules through the azure-batch 15 SDK: every operation, a job made at once and its task run, the
schedule's jobs, disable/enable, terminate and delete with the SDK's pollers, and survival of a restart.
(The recurrence over hours and days is tested on a fake clock in tests/unit/batch_emulator/test_job_schedules.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.helpers import wait_for

from .conftest import vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(process_emulator):
    c = process_emulator.client()
    c.create_pool(m.BatchPoolCreateOptions(id="sched", vm_size="standard_d2s_v3",
                                           virtual_machine_configuration=vm_config(m), target_dedicated_nodes=1))
    wait_nodes(c, "sched", 1)
    yield c
    c.close()


def _spec(**kwargs):
    return m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id="sched"), **kwargs)


def test_add_get_list_exists_and_the_job_it_makes(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="hourly", schedule=m.BatchJobScheduleConfiguration(recurrence_interval=dt.timedelta(hours=1)),
        job_specification=_spec(priority=5, common_environment_settings=[m.EnvironmentSetting(name="K", value="v")]),
        metadata=[m.BatchMetadataItem(name="team", value="data")]))
    schedule = client.get_job_schedule("hourly")
    assert schedule.state == m.BatchJobScheduleState.ACTIVE
    assert schedule.execution_info.recent_job.id == "hourly:job-1"
    assert schedule.execution_info.next_run_time > schedule.creation_time
    assert schedule.schedule.recurrence_interval == dt.timedelta(hours=1)
    assert "hourly" in [s.id for s in client.list_job_schedules()]
    assert client.job_schedule_exists("hourly") is True
    with pytest.raises(ResourceNotFoundError):  # 15.1's exists raises on the 404 (as pool_exists does)
        client.job_schedule_exists("nope")
    [job] = list(client.list_jobs_from_schedule("hourly"))
    assert job.id == "hourly:job-1" and job.priority == 5 and job.pool_info.pool_id == "sched"
    client.create_task(job.id, m.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'test \"$K\" = v'"))
    task = wait_task(client, job.id, "t")
    assert task.execution_info.exit_code == 0


def test_update_replace_disable_enable(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="later", schedule=m.BatchJobScheduleConfiguration(
            do_not_run_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
        job_specification=_spec()))
    assert list(client.list_jobs_from_schedule("later")) == []  # not due yet
    client.update_job_schedule("later", m.BatchJobScheduleUpdateOptions(
        metadata=[m.BatchMetadataItem(name="k", value="1")]))
    assert client.get_job_schedule("later").metadata[0].value == "1"
    client.disable_job_schedule("later")
    assert client.get_job_schedule("later").state == m.BatchJobScheduleState.DISABLED
    client.enable_job_schedule("later")
    assert client.get_job_schedule("later").state == m.BatchJobScheduleState.ACTIVE
    # Replace with a schedule that is due now: the job comes at once, metadata is reset.
    client.replace_job_schedule("later", m.BatchJobSchedule(
        schedule=m.BatchJobScheduleConfiguration(), job_specification=_spec(priority=1)))
    replaced = client.get_job_schedule("later")
    assert replaced.metadata in (None, []) and replaced.execution_info.recent_job.id == "later:job-1"


def test_terminate_ends_its_job_and_delete_removes_schedule_and_jobs(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="once", schedule=m.BatchJobScheduleConfiguration(), job_specification=_spec()))
    client.create_task("once:job-1", m.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 60"))
    wait_task(client, "once:job-1", "long", state="running")
    client.begin_terminate_job_schedule("once", polling_interval=0).result()
    assert client.get_job_schedule("once").state == m.BatchJobScheduleState.COMPLETED
    assert client.get_job("once:job-1").state == m.BatchJobState.COMPLETED
    assert client.get_task("once:job-1", "long").state == m.BatchTaskState.COMPLETED
    with pytest.raises(HttpResponseError) as info:
        client.disable_job_schedule("once")
    assert info.value.status_code == 409 and "JobScheduleCompleted" in str(info.value)
    client.begin_delete_job_schedule("once", polling_interval=0).result()
    with pytest.raises(ResourceNotFoundError, match="JobScheduleNotFound"):
        client.get_job_schedule("once")
    with pytest.raises(ResourceNotFoundError):
        client.get_job("once:job-1")


def test_run_once_schedule_completes_when_its_job_ends(client):
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="single", schedule=m.BatchJobScheduleConfiguration(),
        job_specification=_spec(all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB)))
    client.create_task("single:job-1", m.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    wait_for(lambda: client.get_job_schedule("single").state == m.BatchJobScheduleState.COMPLETED, 30,
             what="the run-once schedule to complete")
    assert client.get_job_schedule("single").execution_info.end_time is not None


def test_bad_schedule_is_refused_naming_the_property(client):
    with pytest.raises(HttpResponseError) as info:
        client.create_job_schedule(m.BatchJobScheduleCreateOptions(
            id="fast", schedule=m.BatchJobScheduleConfiguration(recurrence_interval=dt.timedelta(seconds=10)),
            job_specification=_spec()))
    assert info.value.status_code == 400 and "schedule.recurrenceInterval" in str(info.value)
    client.create_job_schedule(m.BatchJobScheduleCreateOptions(
        id="dup", schedule=m.BatchJobScheduleConfiguration(
            do_not_run_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)), job_specification=_spec()))
    with pytest.raises(HttpResponseError) as info:
        client.create_job_schedule(m.BatchJobScheduleCreateOptions(
            id="dup", schedule=m.BatchJobScheduleConfiguration(), job_specification=_spec()))
    assert info.value.status_code == 409 and "JobScheduleExists" in str(info.value)


def test_a_schedule_survives_a_restart_and_keeps_its_numbering(tmp_path):
    from .conftest import Emulator

    data = tmp_path / "data"
    for run in (1, 2):
        with Emulator(data, "process") as emu:
            c = emu.client()
            if run == 1:
                c.create_pool(m.BatchPoolCreateOptions(id="sched", vm_size="standard_d2s_v3",
                                                       virtual_machine_configuration=vm_config(m),
                                                       target_dedicated_nodes=1))
                c.create_job_schedule(m.BatchJobScheduleCreateOptions(
                    id="kept", schedule=m.BatchJobScheduleConfiguration(recurrence_interval=dt.timedelta(hours=1)),
                    job_specification=_spec()))
            schedule = c.get_job_schedule("kept")
            assert schedule.execution_info.recent_job.id == "kept:job-1"
            assert [j.id for j in c.list_jobs_from_schedule("kept")] == ["kept:job-1"]
            c.close()
