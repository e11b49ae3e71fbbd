"""Quotas and limits, the pure parts: the two pipeline keys, the settings, the job limits, what counts as in flight,
the submitter's job add (priority, wall clock, the active job quota; the Batch client is the fault here) and the
Batcher's order by priority."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
import yaml
from azure.core.exceptions import ResourceExistsError

from shared import batch_client
from shared.batcher import Batcher
from shared.errors import ConfigError
from shared.job_limits import JobLimits, JobQuotaReached
from shared.pipelines import parse_config
from shared.quotas import held_entries, held_reason, in_flight
from shared.settings import load_settings
from shared.submitter import Submitter
from tests.unit.shared.conftest import LOCAL, REPO

BATCH = {"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", "BATCH_ACCOUNT_URL": "http://127.0.0.1:8095",
         "BATCH_ACCOUNT_NAME": "acct", "BATCH_ACCOUNT_KEY": "a2V5"}


def _config(**transform):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"][0].update(transform)
    return parse_config(doc, LOCAL)


# ---- pipelines.yaml ------------------------------------------------------------------------------------------
def test_the_two_keys_are_read_and_default_to_no_limit_and_priority_0():
    plain = _config().pipeline("transform")
    assert plain.max_concurrent_tasks is None and plain.priority == 0
    limited = _config(maxConcurrentTasks=2, priority=500).pipeline("transform")
    assert limited.max_concurrent_tasks == 2 and limited.priority == 500


@pytest.mark.parametrize(("key", "value", "says"), [
    ("maxConcurrentTasks", 0, "out of range 1..100000"),
    ("maxConcurrentTasks", "two", "not a whole number"),
    ("priority", 1001, "out of range -1000..1000"),
    ("priority", -1001, "out of range -1000..1000"),
])
def test_bad_values_name_the_key_and_the_range(key, value, says):
    with pytest.raises(ConfigError) as err:
        _config(**{key: value})
    assert f"pipelines[0].{key}" in str(err.value) and says in str(err.value)


# ---- settings --------------------------------------------------------------------------------------------------
def test_quota_settings_default_to_azures_quota_and_a_share_of_it():
    s = load_settings(BATCH)
    assert (s.batch_active_job_quota, s.active_job_quota_share, s.job_max_wall_clock) == (100, 0.8, None)
    s = load_settings({**BATCH, "BATCH_ACTIVE_JOB_QUOTA": "300", "ACTIVE_JOB_QUOTA_SHARE": "0.5",
                       "JOB_MAX_WALL_CLOCK": "P3D"})
    assert (s.batch_active_job_quota, s.active_job_quota_share, s.job_max_wall_clock) == (300, 0.5, timedelta(days=3))


@pytest.mark.parametrize(("name", "value", "says"), [
    ("ACTIVE_JOB_QUOTA_SHARE", "1.5", "fraction from 0.05 to 1"),
    ("ACTIVE_JOB_QUOTA_SHARE", "most", "not a number"),
    ("BATCH_ACTIVE_JOB_QUOTA", "0", "out of range"),
    ("JOB_MAX_WALL_CLOCK", "PT10M", "between PT1H and P180D"),
    ("JOB_MAX_WALL_CLOCK", "soon", "ISO 8601"),
])
def test_bad_quota_settings_name_the_setting(name, value, says):
    with pytest.raises(ConfigError) as err:
        load_settings({**BATCH, name: value})
    assert name in str(err.value) and says in str(err.value)


# ---- job limits ------------------------------------------------------------------------------------------------
def test_the_job_wall_clock_is_sized_from_the_period_and_the_tasks_limits():
    transform = _config().pipeline("transform")  # PT10M, retries 1
    assert JobLimits(period="day").job_wall_clock(transform) == timedelta(days=1, minutes=20, hours=1)
    assert JobLimits(period="hour").job_wall_clock(transform) == timedelta(hours=2, minutes=20)
    assert JobLimits(wall_clock=timedelta(days=3)).job_wall_clock(transform) == timedelta(days=3)
    endless = _config(retries=-1).pipeline("transform")
    assert JobLimits().job_wall_clock(endless) is None and JobLimits().constraints(endless) is None
    assert JobLimits(period="hour").constraints(transform) == {"maxWallClockTime": "PT2H20M"}


def test_the_quota_share_is_refused_with_a_reason_that_names_the_quota():
    limits = JobLimits(quota=10, share=0.8)
    assert limits.allowed == 8
    limits.check(7, "eb-x-20260101")
    with pytest.raises(JobQuotaReached) as err:
        limits.check(8, "eb-x-20260101")
    text = str(err.value)
    assert "active job quota" in text and "eb-x-20260101" in text and "0.8 of 10" in text


# ---- what counts as in flight --------------------------------------------------------------------------------
def _entry(run, state="received", held=None, at=None):
    return {"RowKey": f"~inbox-{run}", "runId": run, "state": state, "held": held, "heldAt": at, "since": at}


def test_in_flight_is_every_unfinished_run_let_through():
    entries = [_entry("a"), _entry("b", "submitted"), _entry("c", "running"), _entry("d", "succeeded"),
               _entry("e", held="held: 2/2 running (maxConcurrentTasks)"), _entry("f", held="")]
    assert in_flight(entries) == 4  # a (let through, being added), b, c, f (released); not d (done) nor e (held)
    assert in_flight(entries, exclude={"a"}) == 3


def test_held_runs_are_released_oldest_first():
    entries = [_entry("late", held="h", at="2026-01-01T00:00:03Z"), _entry("z2", held="h", at="2026-01-01T00:00:01Z"),
               _entry("free"), _entry("done", "failed", held="h", at="2026-01-01T00:00:00Z"),
               _entry("a3", held="h", at="2026-01-01T00:00:01Z")]
    entries[1]["heldSeq"], entries[4]["heldSeq"] = 0, 1  # held together, z2 came first
    assert [e["runId"] for e in held_entries(entries)] == ["z2", "a3", "late"]
    assert held_reason(4, 4) == "held: 4/4 running (maxConcurrentTasks)"


# ---- the submitter's job add ---------------------------------------------------------------------------------
class Jobs:
    """The job calls of a Batch client; `active` jobs exist, `refuse` answers ActiveJobAndScheduleQuotaReached."""

    def __init__(self, active=(), refuse=False, schedules=0):
        self.active, self.refuse, self.created, self.schedules = list(active), refuse, [], schedules

    def list_jobs(self, filter=None, select=None):
        assert filter == "state eq 'active'"
        return [{"id": j} for j in self.active]

    def list_job_schedules(self, filter=None, select=None):
        assert filter == "state eq 'active'"
        return [{"id": f"s{i}"} for i in range(self.schedules)]

    def create_job(self, job):
        if self.refuse:
            exc = ResourceExistsError(message="quota")
            exc.error = SimpleNamespace(code="ActiveJobAndScheduleQuotaReached", message="quota")
            raise exc
        self.created.append(job.as_dict())
        self.active.append(job.as_dict()["id"])


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(batch_client.time, "sleep", lambda s: None)


def _submitter(client, cfg, **limits):
    submitter = Submitter(client, cfg, sleep=lambda s: None, limits=JobLimits(**limits))
    submitter._pools.add(cfg.pipeline("transform").pool)  # the pool exists: only the job is created here
    return submitter


def test_a_job_carries_its_pipelines_priority_limit_and_a_wall_clock():
    cfg = _config(priority=-200, maxConcurrentTasks=3)
    client = Jobs()
    _submitter(client, cfg, period="day").ensure_job("eb-transform-20260101", "transform")
    (body,) = client.created
    assert body["priority"] == -200
    assert body["maxParallelTasks"] == 3
    assert body["constraints"] == {"maxWallClockTime": "P1DT1H20M"}
    plain = Jobs()
    _submitter(plain, _config(), period="day").ensure_job("eb-transform-20260101", "transform")
    assert "maxParallelTasks" not in plain.created[0] and plain.created[0]["priority"] == 0


def test_the_share_of_the_quota_is_never_passed_and_an_existing_job_needs_no_room():
    cfg = _config()
    client = Jobs(active=[f"other-{i}" for i in range(8)] + ["eb-transform-20260101"])
    submitter = _submitter(client, cfg, quota=10, share=0.8)
    submitter.ensure_job("eb-transform-20260101", "transform")  # exists already: fine at the limit
    with pytest.raises(JobQuotaReached, match="9 active jobs and job schedules in the account"):
        submitter.ensure_job("eb-transform-20260102", "transform")
    assert client.created == []


def test_job_schedules_count_against_the_quota_too():
    cfg = _config()
    client = Jobs(active=["other-1"], schedules=7)
    with pytest.raises(JobQuotaReached, match="8 active jobs and job schedules"):
        _submitter(client, cfg, quota=10, share=0.8).ensure_job("eb-transform-20260101", "transform")
    _submitter(Jobs(active=["other-1"], schedules=6), cfg, quota=10, share=0.8).ensure_job("eb-t-1", "transform")


def test_batchs_quota_error_is_not_taken_for_job_exists():
    cfg = _config()
    submitter = _submitter(Jobs(refuse=True), cfg)
    with pytest.raises(JobQuotaReached, match="Batch answered ActiveJobAndScheduleQuotaReached"):
        submitter.ensure_job("eb-transform-20260101", "transform")
    assert "eb-transform-20260101" not in submitter._jobs  # tried again next time, not remembered as made


# ---- the Batcher's order -------------------------------------------------------------------------------------
def test_a_burst_over_several_pipelines_is_submitted_higher_priority_first():
    order = []
    prio = {"low": -10, "mid": 0, "high": 900}
    b = Batcher(lambda p, runs: order.append(p) or SimpleNamespace(), priority=prio.get, max_batch=2, parallel=1)
    for i, p in enumerate(["low", "mid", "low", "high", "mid", "high"]):
        b._items.append((p, SimpleNamespace(spec=SimpleNamespace(task_id=f"t{i}")), float(i), False, False))
    picked = b._pick(4)
    assert [item[0] for item in picked] == ["high", "high", "mid", "mid"]
    assert [item[0] for item in b._items] == ["low", "low"]  # the rest keeps its order
    b._submit(picked)
    assert order == ["high", "mid"]


def test_release_held_runs_on_the_batchers_thread():
    released = []
    b = Batcher(lambda p, runs: None, release=lambda p: released.append(p) or SimpleNamespace())
    b.release_held("transform")
    assert b.wait_idle(5)
    assert released == ["transform"]
    b.close()
