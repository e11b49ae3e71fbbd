"""The job schedule recurrence on a fake clock, against the real model (no HTTP, no scheduler thread)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.batch_emulator import errors
from devstack.batch_emulator.model import BatchModel
from devstack.batch_emulator.model.job_schedules import JobSchedules

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def schedules(tmp_path):
    model = BatchModel("acct", tmp_path)
    js = JobSchedules(model)
    model.job_schedules = js
    yield js
    model.store.close()


def _add(js, schedule, sid="nightly", **spec):
    return js.add({"id": sid, "schedule": schedule,
                   "jobSpecification": {"poolInfo": {"poolId": "p"}, **spec}}, now=T0)


def _jobs(js, sid="nightly"):
    return sorted(j["id"] for j in js.jobs(sid))


def _end(js, job_id):
    js.model.terminate_job(job_id, "test")


def test_a_job_at_once_then_one_per_interval_named_after_the_schedule(schedules):
    item = _add(schedules, {"recurrenceInterval": "PT1H"})
    assert _jobs(schedules) == ["nightly:job-1"]
    assert item["executionInfo"]["recentJob"]["id"] == "nightly:job-1"
    assert item["executionInfo"]["nextRunTime"].startswith("2026-12-01T09:00:00")
    _end(schedules, "nightly:job-1")
    schedules.tick(T0 + timedelta(minutes=59))
    assert _jobs(schedules) == ["nightly:job-1"]
    schedules.tick(T0 + timedelta(hours=1, seconds=1))
    assert _jobs(schedules) == ["nightly:job-1", "nightly:job-2"]


def test_at_most_one_active_job_the_next_waits_for_it_without_a_start_window(schedules):
    _add(schedules, {"recurrenceInterval": "PT1H"})
    schedules.tick(T0 + timedelta(hours=3))  # job-1 still active: no second job
    assert _jobs(schedules) == ["nightly:job-1"]
    _end(schedules, "nightly:job-1")
    schedules.tick(T0 + timedelta(hours=3, minutes=1))  # the due run starts once the job ended
    assert _jobs(schedules) == ["nightly:job-1", "nightly:job-2"]
    assert schedules.get("nightly")["executionInfo"]["nextRunTime"].startswith("2026-12-01T12:00:00")


def test_a_run_that_cannot_start_within_its_window_is_skipped(schedules):
    _add(schedules, {"recurrenceInterval": "PT1H", "startWindow": "PT10M"})
    _end(schedules, "nightly:job-1")
    schedules.tick(T0 + timedelta(hours=1, minutes=20))  # 09:00 run missed its window
    assert _jobs(schedules) == ["nightly:job-1"]
    assert schedules.get("nightly")["executionInfo"]["nextRunTime"].startswith("2026-12-01T10:00:00")
    schedules.tick(T0 + timedelta(hours=2, minutes=5))
    assert _jobs(schedules) == ["nightly:job-1", "nightly:job-2"]


def test_do_not_run_until_and_after(schedules):
    _add(schedules, {"doNotRunUntil": "2026-12-01T10:00:00Z", "doNotRunAfter": "2026-12-01T11:30:00Z",
                     "recurrenceInterval": "PT1H"})
    assert _jobs(schedules) == []
    schedules.tick(T0 + timedelta(hours=2))
    assert _jobs(schedules) == ["nightly:job-1"]
    _end(schedules, "nightly:job-1")
    schedules.tick(T0 + timedelta(hours=3, minutes=31))  # past doNotRunAfter: completed, no job-2
    item = schedules.get("nightly")
    assert _jobs(schedules) == ["nightly:job-1"]
    assert item["state"] == "completed" and "endTime" in item["executionInfo"]


def test_run_once_completes_when_its_job_ends(schedules):
    _add(schedules, {})
    assert _jobs(schedules) == ["nightly:job-1"]
    schedules.tick(T0 + timedelta(minutes=5))
    assert schedules.get("nightly")["state"] == "active"
    _end(schedules, "nightly:job-1")
    schedules.tick(T0 + timedelta(minutes=6))
    assert schedules.get("nightly")["state"] == "completed"


def test_disabled_makes_no_jobs_until_enabled(schedules):
    _add(schedules, {"recurrenceInterval": "PT1H"})
    _end(schedules, "nightly:job-1")
    schedules.disable("nightly")
    schedules.tick(T0 + timedelta(hours=1, minutes=1))
    assert _jobs(schedules) == ["nightly:job-1"]
    schedules.enable("nightly", now=T0 + timedelta(hours=1, minutes=2))
    assert _jobs(schedules) == ["nightly:job-1", "nightly:job-2"]


def test_terminate_ends_the_active_job_and_delete_removes_the_jobs(schedules):
    _add(schedules, {"recurrenceInterval": "PT1H"})
    schedules.terminate("nightly")
    assert schedules.model.get_job("nightly:job-1")["state"] == "completed"
    assert schedules.get("nightly")["state"] == "completed"
    with pytest.raises(errors.BatchError) as info:
        schedules.disable("nightly")
    assert info.value.code == "JobScheduleCompleted"
    schedules.delete("nightly")
    assert "nightly:job-1" not in schedules.model.jobs
    with pytest.raises(errors.BatchError) as info:
        schedules.get("nightly")
    assert info.value.status == 404 and info.value.code == "JobScheduleNotFound"


@pytest.mark.parametrize(("body", "prop"), [
    ({"id": "s", "jobSpecification": {"poolInfo": {"poolId": "p"}}}, "schedule"),
    ({"id": "s", "schedule": {}}, "jobSpecification"),
    ({"id": "s", "schedule": {"recurrenceInterval": "PT30S"}, "jobSpecification": {"poolInfo": {"poolId": "p"}}},
     "schedule.recurrenceInterval"),
    ({"id": "s", "schedule": {"doNotRunUntil": "soon"}, "jobSpecification": {"poolInfo": {"poolId": "p"}}},
     "schedule.doNotRunUntil"),
    ({"id": "s", "schedule": {}, "jobSpecification": {"poolInfo": {}}}, "poolInfo.poolId"),
    ({"id": "bad id", "schedule": {}, "jobSpecification": {"poolInfo": {"poolId": "p"}}}, "id"),
])
def test_bad_bodies_name_the_property(schedules, body, prop):
    with pytest.raises(errors.BatchError) as info:
        schedules.add(body, now=T0)
    assert info.value.status == 400 and prop in str(info.value.values), info.value.values
