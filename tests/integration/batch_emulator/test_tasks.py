"""The task state machine on a non-container pool (process runtime): retries, limits, slots, dependencies,
job completion, terminate/delete of running tasks, files, environment and command-line splitting."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.helpers import wait_for

from .conftest import read_file, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(process_emulator):
    c = process_emulator.client()
    start = m.BatchStartTask(command_line="/bin/sh -c 'echo started > $AZ_BATCH_NODE_SHARED_DIR/boot.txt'",
                             wait_for_success=True)
    c.create_pool(m.BatchPoolCreateOptions(id="tasks", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                           vm_config(m), target_dedicated_nodes=2, task_slots_per_node=2,
                                           start_task=start))
    wait_nodes(c, "tasks", 2)
    yield c
    c.close()


def new_job(client, **kwargs) -> str:
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="tasks"), **kwargs))
    return job_id


def test_start_task_ran_on_every_node(client):
    nodes = list(client.list_nodes("tasks"))
    assert len(nodes) == 2
    for node in nodes:
        assert node.start_task_info.state == "completed" and node.start_task_info.exit_code == 0
        assert node.start_task.command_line.startswith("/bin/sh")


def test_failing_start_task_with_wait_for_success_marks_node(client):
    start = m.BatchStartTask(command_line="/bin/sh -c 'exit 7'", wait_for_success=True, max_task_retry_count=1)
    client.create_pool(m.BatchPoolCreateOptions(id="badstart", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m), target_dedicated_nodes=1,
                                                start_task=start))
    nodes = wait_nodes(client, "badstart", 1, states=("starttaskfailed",))
    info = nodes[0].start_task_info
    assert info.exit_code == 7 and info.retry_count == 1 and info.failure_info.code == "FailureExitCode"
    client.begin_delete_pool("badstart", polling_interval=0.2).result()


def test_success_env_and_no_shell(client):
    job = new_job(client, common_environment_settings=[m.EnvironmentSetting(name="FROM_JOB", value="j")])
    client.create_task(job, m.BatchTaskCreateOptions(
        id="env", command_line="/bin/sh -c 'env | sort > env.txt; echo out; echo err >&2'",
        environment_settings=[m.EnvironmentSetting(name="FROM_TASK", value="t v")]))
    client.create_task(job, m.BatchTaskCreateOptions(id="noshell", command_line="echo $HOME 'a  b' \"c d\""))
    task = wait_task(client, job, "env")
    assert task.execution_info.exit_code == 0 and task.execution_info.result == "success"
    assert task.execution_info.start_time and task.execution_info.end_time and task.node_info.node_id
    assert task.previous_state == "running"
    env = dict(line.split("=", 1) for line in read_file(client, job, "env", "wd/env.txt").splitlines() if "=" in line)
    assert env["FROM_JOB"] == "j" and env["FROM_TASK"] == "t v"
    assert env["AZ_BATCH_TASK_ID"] == "env" and env["AZ_BATCH_JOB_ID"] == job
    assert env["AZ_BATCH_TASK_WORKING_DIR"].endswith(f"workitems/{job}/job-1/env/wd")
    assert env["AZ_BATCH_NODE_ROOT_DIR"] and env["AZ_BATCH_POOL_ID"] == "tasks"
    assert read_file(client, job, "env", "stdout.txt") == "out\n"
    assert read_file(client, job, "env", "stderr.txt") == "err\n"
    # the command line is split like a shell would, but nothing is expanded
    wait_task(client, job, "noshell")
    assert read_file(client, job, "noshell", "stdout.txt") == "$HOME a  b c d\n"
    with open(env["AZ_BATCH_NODE_SHARED_DIR"] + "/boot.txt") as f:
        assert f.read() == "started\n"


def test_task_files_list_get_and_properties(client):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="files", command_line="/bin/sh -c 'mkdir -p sub && printf 12345 > sub/data.bin && echo hi'"))
    wait_task(client, job, "files")
    top = {f.name: f for f in client.list_task_files(job, "files")}
    assert {"stdout.txt", "stderr.txt", "wd"} <= set(top) and top["wd"].is_directory
    names = {f.name for f in client.list_task_files(job, "files", recursive=True)}
    assert "wd/sub/data.bin" in names
    props = client.get_task_file_properties(job, "files", "wd/sub/data.bin")
    assert props.content_length == 5 and props.is_directory is False and props.last_modified
    assert read_file(client, job, "files", "wd/sub/data.bin") == "12345"
    with pytest.raises(ResourceNotFoundError):
        read_file(client, job, "files", "wd/missing.txt")


def test_retries_then_failure_info(client):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(
        id="flaky", command_line="/bin/sh -c 'echo try >> $AZ_BATCH_NODE_SHARED_DIR/tries-$AZ_BATCH_JOB_ID; exit 3'",
        constraints=m.BatchTaskConstraints(max_task_retry_count=2)))
    task = wait_task(client, job, "flaky")
    info = task.execution_info
    assert info.exit_code == 3 and info.result == "failure" and info.retry_count == 2
    assert info.failure_info.category == "usererror" and info.failure_info.code == "FailureExitCode"
    assert info.last_retry_time


def test_job_max_task_retry_count_is_the_default(client):
    job = new_job(client, constraints=m.BatchJobConstraints(max_task_retry_count=1))
    client.create_task(job, m.BatchTaskCreateOptions(id="f", command_line="/bin/false"))
    assert wait_task(client, job, "f").execution_info.retry_count == 1


def test_max_wall_clock_time_is_enforced(client):
    job = new_job(client)
    started = time.monotonic()
    client.create_task(job, m.BatchTaskCreateOptions(
        id="slow", command_line="/bin/sleep 60", constraints=m.BatchTaskConstraints(max_wall_clock_time="PT1S")))
    task = wait_task(client, job, "slow", timeout=20)
    assert time.monotonic() - started < 15
    assert task.execution_info.result == "failure" and task.execution_info.failure_info.code == "TaskEnded"


def test_terminate_and_delete_stop_running_tasks(client):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(id="term", command_line="/bin/sleep 60"))
    client.create_task(job, m.BatchTaskCreateOptions(id="del", command_line="/bin/sleep 60"))
    wait_task(client, job, "term", "running")
    wait_task(client, job, "del", "running")
    client.terminate_task(job, "term")
    task = client.get_task(job, "term")
    assert task.state == "completed" and task.execution_info.failure_info.code == "TaskEnded"
    client.delete_task(job, "del")
    with pytest.raises(ResourceNotFoundError):
        client.get_task(job, "del")
    # both processes are gone: every slot is free again
    wait_for(lambda: sum(n.running_tasks_count for n in client.list_nodes("tasks")) == 0, 10,
             what="free slots")
    assert wait_task(client, job, "term").execution_info.exit_code is not None


def test_required_slots_limit_concurrency(client):
    job = new_job(client)
    marker = f"/tmp/slots-{uuid.uuid4().hex}"
    cmd = f"/bin/sh -c 'mkdir {marker}-$AZ_BATCH_NODE_ID 2>/dev/null || echo overlap; sleep 0.4; rmdir {marker}-$AZ_BATCH_NODE_ID'"
    client.create_tasks(job, [m.BatchTaskCreateOptions(id=f"wide{i}", command_line=cmd, required_slots=2)
                              for i in range(4)])
    wait_for(lambda: client.get_job_task_counts(job).task_counts.completed == 4, 30, what="4 wide tasks")
    for i in range(4):
        assert read_file(client, job, f"wide{i}", "stdout.txt") == ""  # never two on one node
    with pytest.raises(HttpResponseError):
        client.create_task(job, m.BatchTaskCreateOptions(id="zero", command_line="/bin/true", required_slots=0))


def test_dependencies_with_ids_and_ranges(client):
    job = new_job(client, uses_task_dependencies=True)
    order = f"/tmp/order-{uuid.uuid4().hex}"
    client.create_tasks(job, [
        m.BatchTaskCreateOptions(id="final", command_line=f"/bin/sh -c 'echo final >> {order}'",
                                 depends_on=m.BatchTaskDependencies(task_ids=["prep"], task_id_ranges=[
                                     m.BatchTaskIdRange(start=1, end=3)])),
        m.BatchTaskCreateOptions(id="prep", command_line=f"/bin/sh -c 'sleep 0.3; echo prep >> {order}'"),
        *[m.BatchTaskCreateOptions(id=str(i), command_line=f"/bin/sh -c 'echo {i} >> {order}'") for i in (1, 2, 3)],
        m.BatchTaskCreateOptions(id="blocked", command_line="/bin/true",
                                 depends_on=m.BatchTaskDependencies(task_ids=["bad"])),
        m.BatchTaskCreateOptions(id="bad", command_line="/bin/false"),
    ])
    wait_task(client, job, "final")
    with open(order) as f:
        lines = f.read().split()
    assert lines[-1] == "final" and sorted(lines[:-1]) == ["1", "2", "3", "prep"]
    wait_task(client, job, "bad")
    time.sleep(0.3)
    assert client.get_task(job, "blocked").state == "active"  # a failed dependency blocks by default
    with pytest.raises(HttpResponseError) as err:
        no_deps = new_job(client)
        client.create_task(no_deps, m.BatchTaskCreateOptions(id="x", command_line="/bin/true",
                                                             depends_on=m.BatchTaskDependencies(task_ids=["y"])))
    assert err.value.error.code == "TaskDependenciesNotSpecifiedOnJob"


def test_on_all_tasks_complete_terminates_the_job(client):
    job = new_job(client, all_tasks_complete_mode="terminatejob")
    client.create_tasks(job, [m.BatchTaskCreateOptions(id=f"a{i}", command_line="/bin/true") for i in range(3)])
    wait_for(lambda: client.get_job(job).state == "completed", 20, what="job completed")
    job_obj = client.get_job(job)
    assert job_obj.execution_info.termination_reason == "AllTasksComplete"


def test_exit_conditions_job_action(client):
    job = new_job(client, task_failure_mode="performexitoptionsjobaction")
    client.create_task(job, m.BatchTaskCreateOptions(
        id="fatal", command_line="/bin/sh -c 'exit 4'", exit_conditions=m.ExitConditions(exit_codes=[
            m.ExitCodeMapping(code=4, exit_options=m.ExitOptions(job_action="terminate"))])))
    wait_for(lambda: client.get_job(job).state == "completed", 20, what="job terminated by exit option")
    assert client.get_job(job).execution_info.termination_reason == "TaskFailed"


def test_launch_failure_is_reported_without_retry(client):
    job = new_job(client)
    client.create_task(job, m.BatchTaskCreateOptions(id="nope", command_line="/no/such/program",
                                                     constraints=m.BatchTaskConstraints(max_task_retry_count=3)))
    task = wait_task(client, job, "nope")
    assert task.execution_info.result == "failure" and task.execution_info.retry_count == 0
    assert task.execution_info.failure_info.code in ("CommandProgramNotFound", "CommandLaunchFailed")


def test_node_states_and_deallocation_options(client):
    start = m.BatchStartTask(command_line="/bin/sleep 1", wait_for_success=True)
    client.create_pool(m.BatchPoolCreateOptions(id="shrink", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m), target_dedicated_nodes=2,
                                                start_task=start))
    seen = wait_nodes(client, "shrink", 1, states=("waitingforstarttask",), timeout=10)
    assert {n.state for n in seen} <= {"starting", "waitingforstarttask"}
    wait_nodes(client, "shrink", 2)
    job = f"shrink-{uuid.uuid4().hex[:6]}"
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id="shrink")))
    client.create_task(job, m.BatchTaskCreateOptions(id="keep", command_line="/bin/sleep 1.5"))
    client.create_task(job, m.BatchTaskCreateOptions(id="moved", command_line="/bin/sleep 1.5"))
    wait_task(client, job, "keep", "running")
    wait_task(client, job, "moved", "running")
    assert {n.state for n in client.list_nodes("shrink")} == {"running"}
    # taskcompletion: the node leaves only when its task is done, and the task is not disturbed
    client.begin_resize_pool("shrink", m.BatchPoolResizeOptions(target_dedicated_nodes=1,
                                                                node_deallocation_option="taskcompletion"),
                             polling_interval=0.2)
    states = sorted(n.state for n in client.list_nodes("shrink"))
    assert states == ["leavingpool", "running"]
    wait_for(lambda: len(list(client.list_nodes("shrink"))) == 1, 15, what="node to leave")
    assert {wait_task(client, job, t).execution_info.requeue_count for t in ("keep", "moved")} == {0}
    # requeue (the default): the running task goes back to active and runs again elsewhere or later
    client.create_task(job, m.BatchTaskCreateOptions(id="requeued", command_line="/bin/sleep 1"))
    wait_task(client, job, "requeued", "running")
    client.begin_resize_pool("shrink", m.BatchPoolResizeOptions(target_dedicated_nodes=0), polling_interval=0.2)
    task = client.get_task(job, "requeued")
    assert task.state == "active" and task.execution_info.requeue_count == 1
    client.begin_resize_pool("shrink", m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.2)
    done = wait_task(client, job, "requeued", timeout=30)
    assert done.execution_info.result == "success" and done.execution_info.requeue_count == 1
    client.begin_delete_pool("shrink", polling_interval=0.2).result()
