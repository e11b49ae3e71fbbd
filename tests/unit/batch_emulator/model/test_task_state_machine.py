"""The task state machine on a real BatchModel (temporary store) with a fake agent: retries, requeue, exit
conditions, dependencies, job completion and terminate, as the wire dicts a client reads them."""

from __future__ import annotations

import pytest

from devstack.batch_emulator.errors import BatchError
from devstack.batch_emulator.model import BatchModel
from tests.unit.batch_emulator.model.fakes import FakeAgent, add_job, add_task, new_model


@pytest.fixture
def account(tmp_path):
    model, agent = new_model(tmp_path)
    yield model, agent
    model.store.close()


def node_of(model: BatchModel) -> dict:
    (node,) = model.list_nodes("p")
    return node


def test_a_task_that_exits_zero_completes_with_success_and_frees_its_node(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    assert model.get_task("j", "t1")["state"] == "active"
    assert agent.schedule() == ["t1"]
    running = model.get_task("j", "t1")
    assert running["state"] == "running" and running["previousState"] == "active"
    assert running["nodeInfo"]["poolId"] == "p" and "startTime" in running["executionInfo"]
    assert node_of(model)["state"] == "running" and node_of(model)["runningTasksCount"] == 1
    agent.finish("t1", 0)
    task = model.get_task("j", "t1")
    assert task["state"] == "completed"
    info = task["executionInfo"]
    assert info["result"] == "success" and info["exitCode"] == 0 and "failureInfo" not in info
    assert info["retryCount"] == 0 and info["requeueCount"] == 0 and "endTime" in info
    node = node_of(model)
    assert node["state"] == "idle" and node["runningTasksCount"] == 0
    assert node["totalTasksRun"] == 1 and node["totalTasksSucceeded"] == 1
    assert model.task_counts("j")["taskCounts"] == {"active": 0, "running": 0, "completed": 1, "succeeded": 1,
                                                     "failed": 0}
    assert not any(k.startswith("_") for k in task)


def test_a_failing_task_is_retried_max_task_retry_count_times_then_fails(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1", constraints={"maxTaskRetryCount": 2})
    for retry in (1, 2):
        assert agent.schedule() == ["t1"]
        agent.finish("t1", 1)
        task = model.get_task("j", "t1")
        assert task["state"] == "active"
        assert task["executionInfo"]["retryCount"] == retry and "lastRetryTime" in task["executionInfo"]
        assert "exitCode" not in task["executionInfo"] and "startTime" not in task["executionInfo"]
    assert agent.schedule() == ["t1"]
    agent.finish("t1", 1)
    task = model.get_task("j", "t1")
    info = task["executionInfo"]
    assert task["state"] == "completed" and info["result"] == "failure" and info["exitCode"] == 1
    assert info["retryCount"] == 2 and info["failureInfo"]["code"] == "FailureExitCode"
    assert info["failureInfo"]["category"] == "usererror"
    assert agent.schedule() == []
    assert model.task_counts("j")["taskCounts"]["failed"] == 1
    assert node_of(model)["totalTasksSucceeded"] == 0


def test_the_job_constraint_gives_tasks_their_default_retry_count(account):
    model, agent = account
    add_job(model, constraints={"maxTaskRetryCount": 1})
    assert add_task(model, "t1")["constraints"]["maxTaskRetryCount"] == 1
    agent.schedule()
    agent.finish("t1", 7)
    assert model.get_task("j", "t1")["state"] == "active"


def test_a_timed_out_attempt_fails_with_task_ended_and_is_not_retried(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1", constraints={"maxTaskRetryCount": 3})
    agent.schedule()
    agent.finish("t1", None, timed_out=True)
    info = model.get_task("j", "t1")["executionInfo"]
    assert info["result"] == "failure" and info["exitCode"] == 137
    assert info["failureInfo"]["code"] == "TaskEnded" and info["failureInfo"]["category"] == "servererror"


def test_a_pre_processing_failure_completes_the_task_without_an_exit_code(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    failure = {"category": "usererror", "code": "BlobAccessDenied", "message": "no"}
    agent.finish("t1", None, pre_processing_failure=failure)
    info = model.get_task("j", "t1")["executionInfo"]
    assert info["failureInfo"] == failure and "exitCode" not in info and info["result"] == "failure"


def test_disable_with_requeue_puts_the_running_task_back_and_ignores_the_killed_attempt(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    killed_attempt = agent.running["t1"]
    model.disable_job("j", "requeue")
    assert agent.killed == ["t1"]
    task = model.get_task("j", "t1")
    assert task["state"] == "active" and task["executionInfo"]["requeueCount"] == 1
    assert task["executionInfo"]["retryCount"] == 0 and "lastRequeueTime" in task["executionInfo"]
    assert model.get_job("j")["state"] == "disabled"
    assert node_of(model)["runningTasksCount"] == 0
    agent.finish("t1", 137)  # the late report of the killed attempt changes nothing
    assert model.get_task("j", "t1")["state"] == "active"
    assert agent.schedule() == []  # a disabled job's tasks are not scheduled
    model.enable_job("j")
    assert agent.schedule() == ["t1"]
    assert agent.running["t1"].attempt == killed_attempt.attempt + 2  # requeue and the new assignment
    agent.finish("t1", 0)
    task = model.get_task("j", "t1")
    assert task["executionInfo"]["result"] == "success" and task["executionInfo"]["requeueCount"] == 1


def test_removing_the_node_requeues_its_task_and_resizing_back_runs_it(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    model.remove_nodes("p", [node_of(model)["id"]], "requeue")
    assert model.list_nodes("p") == []
    assert model.get_task("j", "t1")["state"] == "active"
    assert model.get_pool("p")["targetDedicatedNodes"] == 0
    model.resize_pool("p", {"targetDedicatedNodes": 1})
    assert agent.schedule() == ["t1"]


@pytest.mark.parametrize("action, job_state", [("terminate", "completed"), ("disable", "disabled"),
                                               ("none", "active")])
def test_exit_conditions_choose_the_job_action(account, action, job_state):
    model, agent = account
    add_job(model, onTaskFailure="performexitoptionsjobaction")
    add_task(model, "t1", exitConditions={"exitCodes": [{"code": 3, "exitOptions": {"jobAction": action}}]})
    add_task(model, "t2")
    agent.schedule()
    agent.finish("t1", 3)
    job = model.get_job("j")
    assert job["state"] == job_state
    if action == "terminate":
        assert job["executionInfo"]["terminateReason"] == "TaskFailed"
        assert model.get_task("j", "t2")["state"] == "active"  # not started: it stays as it was


def test_without_perform_exit_options_a_failure_leaves_the_job_active(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    agent.finish("t1", 1)
    assert model.get_job("j")["state"] == "active"


def test_a_dependent_task_waits_for_its_dependency_to_succeed(account):
    model, agent = account
    add_job(model, usesTaskDependencies=True)
    add_task(model, "a")
    add_task(model, "b", dependsOn={"taskIds": ["a"]})
    assert agent.schedule() == ["a"]
    model.resize_pool("p", {"targetDedicatedNodes": 2})
    assert agent.schedule() == []  # a free node, but b's dependency is still running
    agent.finish("a", 0)
    assert agent.schedule() == ["b"]


def test_a_failed_dependency_blocks_unless_its_exit_options_satisfy(account):
    model, agent = account
    add_job(model, usesTaskDependencies=True)
    add_task(model, "a")
    add_task(model, "b", exitConditions={"exitCodes": [{"code": 2, "exitOptions": {"dependencyAction": "satisfy"}}]})
    add_task(model, "c", dependsOn={"taskIds": ["a"]})
    add_task(model, "d", dependsOn={"taskIdRanges": [{"start": 1, "end": 1}], "taskIds": ["b"]})
    add_task(model, "1")
    assert agent.schedule() == ["a"]
    agent.finish("a", 1)
    assert agent.schedule() == ["b"]
    agent.finish("b", 2)
    assert agent.schedule() == ["1"]  # c is blocked by a's failure; d waits for 1
    agent.finish("1", 0)
    assert agent.schedule() == ["d"]
    assert model.get_task("j", "c")["state"] == "active"


def test_on_all_tasks_complete_terminatejob_ends_the_job_after_the_last_task(account):
    model, agent = account
    add_job(model, onAllTasksComplete="terminatejob")
    add_task(model, "t1")
    add_task(model, "t2")
    model.resize_pool("p", {"targetDedicatedNodes": 2})
    assert sorted(agent.schedule()) == ["t1", "t2"]
    agent.finish("t1", 0)
    assert model.get_job("j")["state"] == "active"
    agent.finish("t2", 1)
    job = model.get_job("j")
    assert job["state"] == "completed" and job["executionInfo"]["terminateReason"] == "AllTasksComplete"
    assert "endTime" in job["executionInfo"]
    with pytest.raises(BatchError) as err:
        add_task(model, "t3")
    assert err.value.code == "JobCompleted"


def test_terminating_a_running_task_ends_it_and_kills_the_attempt(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    model.terminate_task("j", "t1")
    assert agent.killed == ["t1"]
    task = model.get_task("j", "t1")
    info = task["executionInfo"]
    assert task["state"] == "completed" and info["result"] == "failure"
    assert info["failureInfo"] == {"category": "usererror", "code": "TaskEnded",
                                   "message": "The task was terminated by a user request."}
    agent.finish("t1", 143)  # the killed process reports late: the verdict stays, the exit code is filled in
    task = model.get_task("j", "t1")
    assert task["executionInfo"]["result"] == "failure" and task["executionInfo"]["exitCode"] == 143
    model.reactivate_task("j", "t1")
    task = model.get_task("j", "t1")
    assert task["state"] == "active" and task["executionInfo"]["retryCount"] == 0


def test_terminating_the_job_ends_its_running_tasks_and_keeps_the_reason(account):
    model, agent = account
    add_job(model)
    add_task(model, "t1")
    add_task(model, "t2")
    agent.schedule()
    model.terminate_job("j", None)
    job = model.get_job("j")
    assert job["state"] == "completed" and job["previousState"] == "terminating"
    assert job["executionInfo"]["terminateReason"] == "UserTerminate"
    t1, t2 = model.get_task("j", "t1"), model.get_task("j", "t2")
    assert t1["state"] == "completed" and t1["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert t2["state"] == "active"
    assert agent.killed == ["t1"] and agent.schedule() == []
    with pytest.raises(BatchError) as err:
        model.terminate_job("j", None)
    assert err.value.code == "JobCompleted"


def test_recover_requeues_the_running_task_and_boots_the_nodes_again(tmp_path):
    model, agent = new_model(tmp_path)
    add_job(model)
    add_task(model, "t1")
    agent.schedule()
    model.store.flush()
    model.store.close()
    again = BatchModel("acct", tmp_path / "account")
    fresh = FakeAgent(again)
    assert again.recover() == []  # the fake agent named no container
    task = again.get_task("j", "t1")
    assert task["state"] == "active" and task["executionInfo"]["requeueCount"] == 1
    assert [n["state"] for n in again.list_nodes("p")] == ["starting"]
    assert len(fresh.pending) == 1
    assert fresh.schedule() == ["t1"]
    again.store.close()
