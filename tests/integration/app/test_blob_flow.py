"""Acceptance 1-3: a blob becomes a container task; outputs, manifest, record and message come back; failures are
recorded with their exit code and stderr; a duplicated event makes one task and one result."""

from __future__ import annotations

import time

import pytest

from shared import ids

pytestmark = pytest.mark.integration


def test_blob_becomes_a_task_with_outputs_manifest_record_and_message(app):
    name = "transform/hello world.txt"
    app.upload(name, b"hello batch\nsecond line\n")
    app.blob_event(name)
    props = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties()
    run_id = ids.blob_task_id("transform", app.input_container, name, props.etag)
    assert app.record("transform", run_id)["state"] == "received"
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded" and rec["exitCode"] == 0
    for state in ("received", "submitted", "succeeded"):
        assert rec[f"{state}At"]
    prefix = f"transform/{name}"
    assert app.read_text(app.output_container, f"{prefix}/result.txt") == "HELLO BATCH\nSECOND LINE\n"
    manifest = app.read_json(app.output_container, f"{prefix}/manifest.json")
    assert manifest["input"]["name"] == name and manifest["input"]["etag"] == props.etag
    assert manifest["state"] == "succeeded" and manifest["taskId"] == run_id and manifest["jobId"] == rec["jobId"]
    assert {o["name"] for o in manifest["outputs"]} == {f"{prefix}/result.txt", f"{prefix}/summary.json"}
    assert manifest["logs"]["stdout"]["name"] == f"{prefix}/logs/stdout.txt"
    assert manifest["durationSeconds"] is not None and manifest["retryCount"] == 0
    done = [m for m in app.drain_queue(app.ctx.settings.queues.completions) if m["runId"] == run_id]
    assert len(done) == 1 and done[0]["state"] == "succeeded"
    assert done[0]["manifest"] == {"container": app.output_container, "name": f"{prefix}/manifest.json"}


def test_failing_task_records_exit_code_stderr_tail_and_failure_message(app):
    name = "failing/doomed.txt"
    app.upload(name, b"x")
    app.blob_event(name)
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("failing", app.input_container, name, etag)
    rec = app.wait_terminal("failing", [run_id])[run_id]
    assert rec["state"] == "failed" and rec["exitCode"] == 7 and rec["retryCount"] == 1
    assert "giving up with exit code 7" in rec["stderrTail"]
    manifest = app.read_json(app.output_container, rec["manifestBlob"])
    assert manifest["result"] == "failure" and manifest["exitCode"] == 7
    assert "simulated failure while processing failing/doomed.txt" in manifest["stderrTail"]
    assert manifest["failureInfo"]["category"] == "usererror"
    failures = [m for m in app.drain_queue(app.ctx.settings.queues.failures) if m["runId"] == run_id]
    assert len(failures) == 1 and failures[0]["exitCode"] == 7


def test_same_event_three_times_makes_one_task_and_one_result(app):
    name = "transform/dup.txt"
    app.upload(name, b"once\n")
    for _ in range(3):
        app.blob_event(name)
    app.tick("submit_drain")
    app.blob_event(name)  # and once more after it was submitted
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded"
    app.blob_event(name)  # a late duplicate after completion changes nothing
    app.tick("submit_drain")
    app.tick("reconciler")
    jobs = [j.id for j in app.ctx.batch.list_jobs() if j.id.startswith(app.ctx.settings.job_prefix)]
    tasks = [t.id for j in jobs for t in app.ctx.batch.list_tasks(j) if t.id == run_id]
    assert tasks == []  # recorded and deleted; never re-added
    done = [m for m in app.drain_queue(app.ctx.settings.queues.completions) if m["runId"] == run_id]
    assert len(done) == 1
    assert app.record("transform", run_id)["state"] == "succeeded"


def test_batch_outage_leaves_the_event_queued_and_nothing_is_lost(app, monkeypatch):
    """Batch answers 503 to every addTaskCollection (an injected fault): the submit message stays on the queue and
    the run stays `received`; once Batch is back the next drain submits it."""
    from azure.core.exceptions import HttpResponseError

    from shared import drain as drain_module
    from shared.drain import drain
    from shared.submitter import Submitter

    monkeypatch.setattr(drain_module, "RETRY_VISIBILITY", 2)  # 15 s in production; shorter to keep the test quick

    class Down:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def create_task_collection(self, job_id, group):
            exc = HttpResponseError(message="ServerBusy")
            exc.status_code = 503
            raise exc

    name = "transform/during outage.txt"
    app.upload(name, b"later\n")
    app.blob_event(name)
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    working = app.ctx.submitter
    app.ctx.submitter = Submitter(Down(app.ctx.batch), app.ctx.config, retry_budget=0.5)
    try:
        result = drain(app.ctx)
    finally:
        app.ctx.submitter = working
    assert result.deferred >= 1 and result.submitted == 0
    assert app.record("transform", run_id)["state"] == "received"
    result = drain(app.ctx)
    assert result.messages == 0  # invisible for RETRY_VISIBILITY seconds, not gone
    time.sleep(drain_module.RETRY_VISIBILITY + 0.5)
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded"


def test_drain_takes_at_most_its_limit_per_tick(app):
    from shared.drain import drain

    names = [f"transform/limit-{i}.txt" for i in range(34)]
    for name in names:
        app.upload(name, b"n\n")
        app.blob_event(name)
    first = drain(app.ctx, limit=33)  # more than one receive call, not a multiple of 32
    second = drain(app.ctx, limit=33)
    assert (first.messages, first.submitted) == (33, 33) and (second.messages, second.submitted) == (1, 1)
    runs = [ids.blob_task_id("transform", app.input_container, n, app.ctx.storage.blob.get_blob_client(
        app.input_container, n).get_blob_properties().etag) for n in names]
    assert {r["state"] for r in app.wait_terminal("transform", runs).values()} == {"succeeded"}


def test_redelivered_submit_message_after_completion_does_not_run_the_container_again(app):
    """A submit message that comes back (its delete was lost) after the run was recorded and its task deleted
    must not add the task again: the container would run a second time and rewrite the outputs."""
    import json

    name = "transform/redelivered.txt"
    app.upload(name, b"just once\n")
    app.blob_event(name)
    submit_queue = app.ctx.messenger.client(app.ctx.settings.queues.submit)
    original = [m.content for m in submit_queue.peek_messages(max_messages=32)
                if json.loads(m.content).get("name") == name]
    assert len(original) == 1
    app.tick("submit_drain")
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    assert app.wait_terminal("transform", [run_id])[run_id]["state"] == "succeeded"
    app.tick("reconciler")

    # The same message again, as a redelivery (it will be received with a dequeue count above 1).
    sent = submit_queue.send_message(original[0])
    redelivered = submit_queue.receive_message(visibility_timeout=1)
    assert redelivered.id == sent.id
    time.sleep(1.5)
    app.tick("submit_drain")
    assert [m for m in submit_queue.peek_messages(max_messages=32) if m.id == sent.id] == []  # consumed
    jobs = [j.id for j in app.ctx.batch.list_jobs() if j.id.startswith(app.ctx.settings.job_prefix)]
    assert [t.id for j in jobs for t in app.ctx.batch.list_tasks(j) if t.id == run_id] == []
    assert app.record("transform", run_id)["state"] == "succeeded"
