"""The Azure way of reaching Storage (the pool's identity via identityReference, no SAS in the task; the emulator
stands in for the managed identity), and cleanup: a past period's job disappears once its tasks are recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared import ids

pytestmark = pytest.mark.integration


def test_identity_reference_mode_runs_without_any_sas(app):
    from shared.context import create_context, set_context
    from shared.settings import load_settings

    env = {**app.settings_env, "BATCH_NODE_IDENTITY_RESOURCE_ID":
           "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pool"}
    ctx = create_context(load_settings(env), batch_client=app.ctx.batch)
    set_context(ctx)
    try:
        name = "transform/by identity.txt"
        app.upload(name, b"identity\n")
        app.blob_event(name)
        assert ctx.batcher.wait_idle(30)
        etag = ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
        run_id = ids.blob_task_id("transform", app.input_container, name, etag)
        job_id = app.record("transform", run_id)["jobId"]
        task = ctx.batch.get_task(job_id, run_id).as_dict()
        assert task["resourceFiles"][0]["identityReference"] == {"resourceId": env["BATCH_NODE_IDENTITY_RESOURCE_ID"]}
        assert "sig=" not in str(task["resourceFiles"]) + str(task["outputFiles"])
        rec = app.wait_terminal("transform", [run_id])[run_id]
        assert rec["state"] == "succeeded"
        assert app.read_text(app.output_container, f"{name}/result.txt") == "IDENTITY\n"
    finally:
        set_context(app.ctx)


def test_a_past_periods_job_is_deleted_once_its_tasks_are_recorded(app):
    from shared.intake import record_fields
    from shared.storage import blob_info
    from shared.submission import PendingRun, submit_runs
    from shared.task_spec import build_task
    from shared.work_items import WorkItem

    past = datetime.now(UTC) - timedelta(days=3)
    name = "transform/old period.txt"
    app.upload(name, b"old\n")
    # A run submitted three days ago: its record and task made as intake and the Batcher would have then.
    props = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties()
    item = WorkItem(pipeline="transform", blob=blob_info(props, app.input_container, name), source="blob")
    spec = build_task(item, app.ctx.config.pipeline("transform"), app.ctx.task_access, now=past)
    _, record = app.ctx.runs.create("transform", spec.task_id, "received", record_fields(item, spec))
    assert submit_runs(app.ctx, "transform", [PendingRun(spec, record["_etag"])], now=past).submitted
    app.upload("transform/current period.txt", b"now\n")  # and one for today's job, which must stay
    app.blob_event("transform/current period.txt")
    app.settle()
    old_job = ids.job_id(app.ctx.settings.job_prefix, "transform", "day", past)
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    assert app.record("transform", run_id)["jobId"] == old_job
    app.wait_terminal("transform", [run_id])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        app.tick("reconciler")
        states = {j.id: j.state for j in app.ctx.batch.list_jobs()}
        if states.get(old_job) in (None, "deleting"):
            break
        time.sleep(0.5)
    assert states.get(old_job) in (None, "deleting"), states
    current = ids.job_id(app.ctx.settings.job_prefix, "transform", "day")
    assert states.get(current) == "active"  # the current period's job is kept


def test_a_past_periods_job_stays_while_a_completed_task_waits_for_its_marker_event(app):
    """A task that completed moments ago is its marker event's to record; the safety net ticking in between must
    not clean up its (past period's) job with it, or the run would be lost with its task."""
    from shared.intake import record_fields
    from shared.reconcile import Reconciler
    from shared.storage import blob_info
    from shared.submission import PendingRun, submit_runs
    from shared.task_spec import build_task
    from shared.work_items import WorkItem

    past = datetime.now(UTC) - timedelta(days=3)
    name = "transform/old period, fresh.txt"
    app.upload(name, b"fresh\n")
    props = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties()
    item = WorkItem(pipeline="transform", blob=blob_info(props, app.input_container, name), source="blob")
    spec = build_task(item, app.ctx.config.pipeline("transform"), app.ctx.task_access, now=past)
    _, record = app.ctx.runs.create("transform", spec.task_id, "received", record_fields(item, spec))
    assert submit_runs(app.ctx, "transform", [PendingRun(spec, record["_etag"])], now=past).submitted
    old_job = ids.job_id(app.ctx.settings.job_prefix, "transform", "day", past)
    deadline = time.monotonic() + 120
    while app.ctx.batch.get_task(old_job, spec.task_id).state != "completed":
        assert time.monotonic() < deadline, "the task did not complete"
        time.sleep(0.2)
    result = Reconciler(app.ctx).tick()  # no marker event delivered yet
    jobs = {j.id for j in app.ctx.batch.list_jobs()}
    recorded = (app.record("transform", spec.task_id) or {}).get("state") == "succeeded"
    assert recorded or (old_job in jobs and old_job not in result.deleted_jobs)
    assert app.wait_terminal("transform", [spec.task_id])[spec.task_id]["state"] == "succeeded"


def test_task_retention_keeps_recorded_tasks_until_it_has_passed(app):
    """TASK_RETENTION=PT1H: the task stays in Batch after it was recorded; an hour later (the clock is the fake
    here) the reconciler deletes it, and it is never recorded twice."""
    from shared.context import create_context, set_context
    from shared.reconcile import Reconciler
    from shared.settings import load_settings

    ctx = create_context(load_settings({**app.settings_env, "TASK_RETENTION": "PT1H"}), batch_client=app.ctx.batch)
    set_context(ctx)
    try:
        name = "transform/kept for an hour.txt"
        app.upload(name, b"keep\n")
        app.blob_event(name)
        etag = ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
        run_id = ids.blob_task_id("transform", app.input_container, name, etag)
        rec = app.wait_terminal("transform", [run_id])[run_id]
        assert ctx.batch.get_task(rec["jobId"], run_id).state == "completed"  # recorded, still kept
        later = Reconciler(ctx, clock=lambda: datetime.now(UTC) + timedelta(hours=1, minutes=1))
        result = later.tick()
        assert run_id not in result.recorded and result.deleted_tasks >= 1
        assert run_id not in [t.id for t in ctx.batch.list_tasks(rec["jobId"])]
        done = [m for m in app.drain_queue(ctx.settings.queues.completions) if m.get("runId") == run_id]
        assert len(done) == 1
    finally:
        set_context(app.ctx)
