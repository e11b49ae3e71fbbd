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
    assert app.record("transform", run_id)["state"] in ("received", "submitted")  # submitted on arrival
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded" and rec["exitCode"] == 0
    for state in ("received", "submitted", "succeeded"):
        assert rec[f"{state}At"]
    prefix = name  # input/transform/x lands under output/transform/x/: {pipeline}/{input}, {input} below transform/
    assert app.read_text(app.output_container, f"{prefix}/result.txt") == "HELLO BATCH\nSECOND LINE\n"
    manifest = app.read_json(app.output_container, f"{prefix}/manifest.json")
    assert manifest["input"]["name"] == name and manifest["input"]["etag"] == props.etag.strip('"')  # unquoted, as events and listings give it
    assert manifest["state"] == "succeeded" and manifest["taskId"] == run_id and manifest["jobId"] == rec["jobId"]
    assert {o["name"] for o in manifest["outputs"]} == {f"{prefix}/result.txt", f"{prefix}/summary.json"}
    assert manifest["logs"]["stdout"]["name"] == f"{prefix}/logs/stdout.txt"
    assert manifest["durationSeconds"] is not None and manifest["retryCount"] == 0
    done = [m for m in app.drain_queue(app.ctx.settings.queues.completions) if m.get("runId") == run_id]
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
    failures = [m for m in app.drain_queue(app.ctx.settings.queues.failures) if m.get("runId") == run_id]
    assert len(failures) == 1 and failures[0]["exitCode"] == 7


def test_same_event_three_times_makes_one_task_and_one_result(app):
    name = "transform/dup.txt"
    app.upload(name, b"once\n")
    for _ in range(3):
        app.blob_event(name)
    app.settle()
    app.blob_event(name)  # and once more after it was submitted
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded"
    app.blob_event(name)  # a late duplicate after completion changes nothing
    app.settle()
    app.deliver_events()
    app.tick("reconciler")
    jobs = [j.id for j in app.ctx.batch.list_jobs() if j.id.startswith(app.ctx.settings.job_prefix)]
    tasks = [t.id for j in jobs for t in app.ctx.batch.list_tasks(j) if t.id == run_id]
    assert tasks == []  # recorded and deleted; never re-added
    done = [m for m in app.drain_queue(app.ctx.settings.queues.completions) if m.get("runId") == run_id]
    assert len(done) == 1
    assert app.record("transform", run_id)["state"] == "succeeded"


class _BatchDown:
    """The Batch client with addTaskCollection answering 503 (an injected fault)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def create_task_collection(self, job_id, group):
        from azure.core.exceptions import HttpResponseError

        exc = HttpResponseError(message="ServerBusy")
        exc.status_code = 503
        raise exc


def _retry_messages(app, run_id: str, wait: float = 10.0) -> list:
    """The submit queue's retry messages that name run_id, received (invisible to others) once due."""
    import json

    queue = app.ctx.messenger.client(app.ctx.settings.queues.submit)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = [m for m in queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30)
                 if run_id in json.loads(m.content).get("runIds", [])]
        if found:
            return found
        time.sleep(0.25)
    return []


def test_batch_outage_defers_the_run_and_the_retry_submits_it(app, monkeypatch):
    """Batch answers 503 to every addTaskCollection: the run stays `received` and one retry message waits on the
    submit queue for a back-off; once Batch is back, the queue-triggered drain submits it."""
    from azure.functions.queue import QueueMessage

    from shared import submission
    from shared.submitter import Submitter

    monkeypatch.setattr(submission, "retry_delay", lambda attempt: 1)  # 15 s and more in production
    working = app.ctx.submitter
    app.ctx.submitter = Submitter(_BatchDown(app.ctx.batch), app.ctx.config, retry_budget=0.5)
    name = "transform/during outage.txt"
    try:
        app.upload(name, b"later\n")
        app.blob_event(name)
        app.settle()
    finally:
        app.ctx.submitter = working
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    assert app.record("transform", run_id)["state"] == "received"
    (message,) = _retry_messages(app, run_id)
    queue = app.ctx.messenger.client(app.ctx.settings.queues.submit)
    app.call("submit_drain", QueueMessage(id=message.id, body=message.content.encode(),
                                          dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt))
    queue.delete_message(message)
    assert app.record("transform", run_id)["state"] == "submitted"
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded"


def test_a_run_batch_never_takes_fails_with_the_reason_after_the_last_attempt(app, monkeypatch):
    """SUBMIT_MAX_ATTEMPTS=2: after the second refused attempt the run is failed with Batch's error as the reason
    and one failure message, instead of being retried until a queue's time-to-live drops it."""
    from azure.functions.queue import QueueMessage

    from shared import submission
    from shared.context import create_context, set_context
    from shared.settings import load_settings
    from shared.submitter import Submitter

    monkeypatch.setattr(submission, "retry_delay", lambda attempt: 1)
    ctx = create_context(load_settings({**app.settings_env, "SUBMIT_MAX_ATTEMPTS": "2"}),
                            batch_client=app.ctx.batch)
    ctx.submitter = Submitter(_BatchDown(app.ctx.batch), ctx.config, retry_budget=0.3)
    set_context(ctx)
    try:
        name = "transform/never accepted.txt"
        app.upload(name, b"no\n")
        app.blob_event(name)
        assert ctx.batcher.wait_idle(30)
        etag = ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
        run_id = ids.blob_task_id("transform", app.input_container, name, etag)
        (message,) = _retry_messages(app, run_id)
        app.call("submit_drain", QueueMessage(id=message.id, body=message.content.encode(),
                                              dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt))
        ctx.messenger.client(ctx.settings.queues.submit).delete_message(message)
        rec = ctx.runs.get("transform", run_id)
        assert rec["state"] == "failed" and rec["notified"] is True
        assert "not submitted to Batch after 2 attempt(s)" in rec["reason"] and "503" in rec["reason"]
        failures = [m for m in app.drain_queue(ctx.settings.queues.failures) if m.get("runId") == run_id]
        assert len(failures) == 1 and failures[0]["failure"]["code"] == "NotSubmitted"
        assert _retry_messages(app, run_id, wait=2) == []  # no further attempt is scheduled
    finally:
        set_context(app.ctx)


def test_a_burst_goes_to_batch_in_few_calls(app):
    """34 events arriving together: the worker's Batcher adds them in at most three addTaskCollection calls (a
    lone first event may go alone, the rest together), not 34."""
    before = len(app.ctx.batcher.reports)
    names = [f"transform/burst-{i}.txt" for i in range(34)]
    for name in names:
        app.upload(name, b"n\n")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(app.blob_event, names))
    app.settle()
    reports = list(app.ctx.batcher.reports)[before:]
    assert sum(len(r.submitted) for r in reports) == 34
    assert sum(r.batch_calls for r in reports) <= 3, [r.batch_calls for r in reports]
    runs = [ids.blob_task_id("transform", app.input_container, n, app.ctx.storage.blob.get_blob_client(
        app.input_container, n).get_blob_properties().etag) for n in names]
    assert {r["state"] for r in app.wait_terminal("transform", runs).values()} == {"succeeded"}


def test_a_retry_message_for_a_finished_run_does_not_run_the_container_again(app):
    """A retry message that comes back after the run was recorded and its task deleted (for example a copy whose
    delete was lost) must not add the task again: the container would run a second time."""
    import json

    from azure.functions.queue import QueueMessage

    name = "transform/redelivered.txt"
    app.upload(name, b"just once\n")
    app.blob_event(name)
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    assert app.wait_terminal("transform", [run_id])[run_id]["state"] == "succeeded"
    body = json.dumps({"v": 2, "pipeline": "transform", "runIds": [run_id], "attempt": 2}).encode()
    app.call("submit_drain", QueueMessage(id="m1", body=body, dequeue_count=2, pop_receipt="r"))
    jobs = [j.id for j in app.ctx.batch.list_jobs() if j.id.startswith(app.ctx.settings.job_prefix)]
    assert [t.id for j in jobs for t in app.ctx.batch.list_tasks(j) if t.id == run_id] == []
    assert app.record("transform", run_id)["state"] == "succeeded"
