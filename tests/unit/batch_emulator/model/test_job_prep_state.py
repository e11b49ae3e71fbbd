"""Job preparation on the model's side (model/job_prep.py) with a fake agent: the first task on a node waits in
``preparing``; a failed preparation with waitForSuccess keeps the job's tasks off the node; terminate hands the
prepared nodes to the release runs."""

from __future__ import annotations

import pytest

from devstack.batch_emulator.model.job_prep import PREP, RELEASE
from tests.unit.batch_emulator.model.fakes import add_job, add_task, new_model

PREP_TASK = {"id": "prep", "commandLine": "/bin/true"}


@pytest.fixture
def account(tmp_path):
    model, agent = new_model(tmp_path)
    yield model, agent
    model.store.close()


def prep_done(model, a, result: str) -> None:
    info = {"state": "completed", "result": result, "exitCode": 0 if result == "success" else 1}
    model.prep_update(a.job_key, a.pool_key, a.node_id, PREP, info)
    model.prep_task_go(a.job_key, a.task_key, a.attempt, result == "success")


def test_the_first_task_on_a_node_is_preparing_until_the_preparation_succeeds(account):
    model, agent = account
    add_job(model, jobPreparationTask=PREP_TASK)
    add_task(model, "t1")
    assert agent.schedule() == ["t1"]
    a = agent.running["t1"]
    assert a.prep == "run" and model.get_task("j", "t1")["state"] == "preparing"
    (status,) = model.job_prep_status("j")
    assert status["poolId"] == "p" and status["jobPreparationTaskExecutionInfo"]["state"] == "running"
    prep_done(model, a, "success")
    assert model.get_task("j", "t1")["state"] == "running"
    assert model.job_prep_status("j")[0]["jobPreparationTaskExecutionInfo"]["result"] == "success"
    agent.finish("t1", 0)
    add_task(model, "t2")
    assert agent.schedule() == ["t2"] and agent.running["t2"].prep is None  # prepared once per node


def test_a_failed_preparation_with_wait_for_success_keeps_the_tasks_off_the_node(account):
    model, agent = account
    add_job(model, jobPreparationTask=PREP_TASK)
    add_task(model, "t1")
    agent.schedule()
    prep_done(model, agent.running.pop("t1"), "failure")
    task = model.get_task("j", "t1")
    assert task["state"] == "active" and "nodeInfo" not in task and "startTime" not in task["executionInfo"]
    assert agent.schedule() == []
    model.resize_pool("p", {"targetDedicatedNodes": 2})
    assert agent.schedule() == ["t1"]  # the new node prepares again


def test_without_wait_for_success_the_task_runs_while_the_preparation_does(account):
    model, agent = account
    add_job(model, jobPreparationTask={**PREP_TASK, "waitForSuccess": False})
    add_task(model, "t1")
    agent.schedule()
    assert agent.running["t1"].prep == "run-async" and model.get_task("j", "t1")["state"] == "running"


def test_terminating_the_job_hands_the_prepared_nodes_to_the_release_runs(account):
    model, agent = account
    released = []
    model.on_job_release = lambda job, nodes: released.append((job["id"], nodes))
    add_job(model, jobPreparationTask=PREP_TASK, jobReleaseTask={"id": "rel", "commandLine": "/bin/true"})
    add_task(model, "t1")
    agent.schedule()
    a = agent.running["t1"]
    prep_done(model, a, "success")
    model.terminate_job("j", None)
    assert released == [("j", [(a.pool_key, a.node_id)])]
    assert model.job_prep_status("j")[0]["jobReleaseTaskExecutionInfo"]["state"] == "running"
    model.prep_update(a.job_key, a.pool_key, a.node_id, RELEASE, {"state": "completed", "result": "success"})
    assert model.job_prep_status("j")[0]["jobReleaseTaskExecutionInfo"]["result"] == "success"
