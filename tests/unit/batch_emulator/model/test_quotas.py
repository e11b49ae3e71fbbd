"""The emulator's job limits, on a real BatchModel: --active-job-quota answers like Batch at the account's quota,
and a job past its constraints.maxWallClockTime is terminated (MaxWallClockTimeExpiry) with its tasks unrun."""

from __future__ import annotations

import pytest

from devstack.batch_emulator.errors import BatchError
from tests.unit.batch_emulator.model.fakes import add_job, add_task, new_model


@pytest.fixture
def model(tmp_path):
    model, _ = new_model(tmp_path)
    yield model
    model.store.close()


def test_a_job_past_the_quota_is_refused_like_batch_and_a_finished_job_frees_its_place(model):
    model.active_job_quota = 2
    add_job(model, "a")
    add_job(model, "b")
    with pytest.raises(BatchError) as err:
        add_job(model, "c")
    assert (err.value.status, err.value.code) == (409, "ActiveJobAndScheduleQuotaReached")
    assert "quota" in err.value.message
    model.terminate_job("a", None)  # completed jobs do not count
    add_job(model, "c")
    assert {j["id"] for j in model.list_jobs()} == {"a", "b", "c"}


def test_without_the_option_there_is_no_quota(model):
    for i in range(5):
        add_job(model, f"j{i}")
    assert len(model.list_jobs()) == 5


def test_a_job_past_its_wall_clock_ends_and_its_waiting_task_never_runs(model):
    add_job(model, "j", constraints={"maxWallClockTime": "PT0S"}, poolInfo={"poolId": "nopool"})
    add_task(model, "t1")
    model.check_job_deadlines()
    job = model.get_job("j")
    assert job["state"] == "completed"
    assert job["executionInfo"]["terminateReason"] == "MaxWallClockTimeExpiry"
    assert model.get_task("j", "t1")["state"] == "active"  # what the app's safety net fails as JobEnded
