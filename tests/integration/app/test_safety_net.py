"""One message per run when finishers race; the safety net finishes what no event reports (issue 18)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared import ids

pytestmark = pytest.mark.integration


def _messages_for(app, queue: str, run_id: str) -> list[dict]:
    return [m for m in app.drain_queue(queue) if m.get("runId") == run_id]


def _run_id(app, name: str) -> str:
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    return ids.blob_task_id("transform", app.input_container, name, etag)


def _completed_task(app, name: str, data: bytes) -> tuple[str, str]:
    """Upload `name`, deliver its event, and wait until its Batch task completed (its marker not delivered yet);
    returns (run id, job id)."""
    app.upload(name, data)
    app.blob_event(name)
    app.settle()
    run_id = _run_id(app, name)
    job_id = app.record("transform", run_id)["jobId"]
    deadline = time.monotonic() + 60
    while app.ctx.batch.get_task(job_id, run_id).state != "completed":
        assert time.monotonic() < deadline, "the task did not complete"
        time.sleep(0.2)
    return run_id, job_id


def test_marker_events_and_safety_nets_racing_on_one_task_send_one_message(app):
    from shared.completion import check_task
    from shared.reconcile import Reconciler

    run_id, job_id = _completed_task(app, "transform/raced.txt", b"race\n")
    later = datetime.now(UTC) + timedelta(minutes=2)  # past the safety net's grace for marker events
    # The safety nets run two minutes ahead; with the default NOTIFY_REPAIR_AFTER (1 min) they would take the
    # winner's fresh claim for a dead worker's and repeat its message (at least once, by design). Here no worker
    # dies, so the claim must not look stale to them.
    ahead = replace(app.ctx, settings=replace(app.ctx.settings, notify_repair_after=timedelta(minutes=10)))
    start = threading.Barrier(4)
    errors = []

    def run(fn):
        try:
            start.wait()
            fn()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    racers = [lambda: check_task(app.ctx, job_id, run_id), lambda: check_task(app.ctx, job_id, run_id),
              lambda: Reconciler(ahead, clock=lambda: later).tick(),
              lambda: Reconciler(ahead, clock=lambda: later).tick()]
    threads = [threading.Thread(target=run, args=(fn,)) for fn in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    record = app.record("transform", run_id)
    assert record["state"] == "succeeded" and record["notified"] is True
    done = _messages_for(app, app.ctx.settings.queues.completions, run_id)
    assert len(done) == 1 and done[0]["messageId"] == f"{run_id}:succeeded"
    assert app.ctx.runs.inbox("transform") == [] or all(e["runId"] != run_id for e in app.ctx.runs.inbox("transform"))


def test_a_run_whose_worker_died_before_submitting_is_submitted_by_the_safety_net(app):
    """The record (and its inbox entry) exist, but no worker holds the task any more: after RESUBMIT_AFTER the
    safety net builds the task again from the record and submits it."""
    from shared.intake import record_fields
    from shared.reconcile import Reconciler
    from shared.storage import blob_info
    from shared.task_spec import build_task
    from shared.work_items import WorkItem

    name = "transform/orphaned.txt"
    app.upload(name, b"orphan\n")
    props = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties()
    item = WorkItem(pipeline="transform", blob=blob_info(props, app.input_container, name), source="blob")
    spec = build_task(item, app.ctx.config.pipeline("transform"), app.ctx.task_access)
    created, _ = app.ctx.runs.create("transform", spec.task_id, "received", record_fields(item, spec))
    assert created  # ... and the worker died here, before handing the task to its Batcher
    result = Reconciler(app.ctx).tick()
    assert spec.task_id not in result.resubmitted  # too early: its worker may still hold it
    later = datetime.now(UTC) + app.ctx.settings.resubmit_after + timedelta(seconds=1)
    result = Reconciler(app.ctx, clock=lambda: later).tick()
    assert spec.task_id in result.resubmitted
    rec = app.wait_terminal("transform", [spec.task_id])[spec.task_id]
    assert rec["state"] == "succeeded"
    assert len(_messages_for(app, app.ctx.settings.queues.completions, spec.task_id)) == 1


def test_a_submitted_run_whose_task_is_gone_is_failed_with_the_reason(app):
    from shared.reconcile import Reconciler

    name = "transform/vanishing.txt"
    app.upload(name, b"gone\n")
    app.blob_event(name)
    app.settle()
    run_id = _run_id(app, name)
    job_id = app.record("transform", run_id)["jobId"]
    app.wait_terminal("transform", [run_id])  # the job exists and is listed; now a run that lost its task:
    fake = "transform-" + ids.digest("vanished", run_id)
    _, record = app.ctx.runs.create("transform", fake, "received", {"pipeline": "transform", "kind": "task"})
    app.ctx.runs.advance("transform", fake, "submitted", {"jobId": job_id}, record=record)
    later = datetime.now(UTC) + app.ctx.settings.resubmit_after + timedelta(seconds=1)
    result = Reconciler(app.ctx, clock=lambda: later).tick()
    assert fake in result.failed
    rec = app.record("transform", fake)
    assert rec["state"] == "failed" and "no longer exists" in rec["reason"] and rec["notified"] is True
    (message,) = _messages_for(app, app.ctx.settings.queues.failures, fake)
    assert message["failure"]["code"] == "TaskGone" and "no longer exists" in message["failure"]["message"]


def test_a_result_recorded_while_the_safety_net_moves_the_run_to_running_is_not_lost(app):
    """The marker's look reads the record beside the task; if the safety net moves the run to `running` in
    between, the look's ETag no longer matches. That is not "another worker recorded it": the result must still be
    recorded, or the task is deleted as if it were and the run later fails TaskGone (found by tests/e2e/
    test_faults.py)."""
    from shared.completion import TASK_FIELDS, Completer

    run_id, job_id = _completed_task(app, "transform/overtaken.txt", b"overtaken\n")
    stale = app.record("transform", run_id)  # what the marker's look read ...
    assert stale["state"] == "submitted"
    assert app.ctx.runs.advance("transform", run_id, "running", {})  # ... before the safety net's move
    task = app.ctx.batch.get_task(job_id, run_id, select=TASK_FIELDS).as_dict()
    status, _ = Completer(app.ctx).finish(job_id, "transform", task, record=stale)
    assert status == "recorded"
    record = app.record("transform", run_id)
    assert record["state"] == "succeeded" and record["notified"] is True
    assert len(_messages_for(app, app.ctx.settings.queues.completions, run_id)) == 1


def test_a_worker_dead_between_its_message_and_the_mark_is_repeated_once_and_says_so(app, monkeypatch):
    """At least once, visibly: the worker sends the completion and dies before marking it sent; the safety net takes
    the stale claim over and sends the message again, with the same messageId and `possibleDuplicate`, and the
    record names the claim it took over. A claim that is not stale yet is left alone."""
    from shared import notify
    from shared.completion import check_task
    from shared.reconcile import Reconciler

    run_id, job_id = _completed_task(app, "transform/died-after-send.txt", b"send then die\n")

    def die(*_args, **_kwargs):
        raise SystemExit("the worker is killed after sending")

    monkeypatch.setattr(notify, "call", die)  # the mark_notified step
    with pytest.raises(SystemExit):
        check_task(app.ctx, job_id, run_id)
    monkeypatch.undo()
    first = app.record("transform", run_id)
    assert first["state"] == "succeeded" and not first.get("notified")
    Reconciler(app.ctx, clock=lambda: datetime.now(UTC)).tick()  # the claim is fresh: not taken over
    assert not app.record("transform", run_id).get("notified")
    later = datetime.now(UTC) + app.ctx.settings.notify_repair_after + timedelta(seconds=1)
    Reconciler(app.ctx, clock=lambda: later).tick()
    record = app.record("transform", run_id)
    assert record["notified"] is True and record["notifyTakenOverFrom"] == first["notifyClaimedAt"]
    copies = _messages_for(app, app.ctx.settings.queues.completions, run_id)
    assert [m["messageId"] for m in copies] == [f"{run_id}:succeeded"] * 2
    assert [bool(m.get("possibleDuplicate")) for m in copies] == [False, True]
    Reconciler(app.ctx, clock=lambda: later + timedelta(minutes=5)).tick()
    assert _messages_for(app, app.ctx.settings.queues.completions, run_id) == []  # once marked, never again
