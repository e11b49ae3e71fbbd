"""The request record against real Table and Queue storage (Azurite): the last runs of a request ending at the
same moment send ONE request-completion message between them; a retry reopens the request and its second end is
a new generation; a worker that dies after claiming the message leaves it to the safety net."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.integration
PIPELINE = "transform"  # no merge: the request is its inputs


def _runs(app, request_id: str, n: int) -> list[str]:
    run_ids = [f"{PIPELINE}-t{secrets.token_hex(6)}" for _ in range(n)]
    app.ctx.runs.create_many(PIPELINE, [(r, {"kind": "task", "requestId": request_id, "inputContainer": "data",
                                             "inputName": f"in/{r}.txt", "outputContainer": app.output_container,
                                             "outputPrefix": f"{PIPELINE}/{request_id}/{r}"}) for r in run_ids],
                             state="running")
    return run_ids


def _end(app, run_id: str, state: str) -> None:
    from shared.notify import notify_completion

    fields = {"failureCode": "FailureExitCode", "failureMessage": "exit 3"} if state == "failed" else {}
    moved = app.ctx.runs.advance(PIPELINE, run_id, state, fields)
    assert moved is not None
    notify_completion(app.ctx, moved, {"runId": run_id, "state": state, "pipeline": PIPELINE})


def _request_messages(app, request_id: str) -> list[dict]:
    return [m for m in app.drain_queue(app.ctx.settings.queues.completions)
            if m.get("kind") == "request" and m.get("requestId") == request_id]


def test_runs_ending_together_send_one_request_message(app):
    from shared import requests
    from shared.records import request_record_key

    request_id = "k" + secrets.token_hex(8)
    run_ids = _runs(app, request_id, 8)
    states = ["succeeded"] * 6 + ["failed"] * 2
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda a: _end(app, *a), zip(run_ids, states, strict=True)))
    messages = _request_messages(app, request_id)
    assert len(messages) == 1, messages
    m = messages[0]
    assert m["state"] == "partial" and m["counts"]["total"] == 8
    assert (m["counts"]["succeeded"], m["counts"]["failed"]) == (6, 2)
    assert sorted(f["runId"] for f in m["failed"]) == sorted(run_ids[6:])
    row = requests.get(app.ctx, PIPELINE, request_id)
    assert row["notified"] is True and row["generation"] == 1 and row["state"] == "partial"
    assert app.ctx.runs.inbox_entry(PIPELINE, request_record_key(request_id)) is None
    assert all(app.ctx.runs.inbox_entry(PIPELINE, r) is None for r in run_ids)  # every run marked notified

    # A retry of one failed run (a new run, the old one superseded) reopens the request...
    old = run_ids[6]
    retry = f"{PIPELINE}-t{secrets.token_hex(6)}"
    app.ctx.runs.create_many(PIPELINE, [(retry, {"kind": "task", "requestId": request_id, "attempt": 2,
                                                 "retryOf": old, "inputContainer": "data",
                                                 "inputName": f"in/{old}.txt"})], state="submitted")
    app.ctx.runs.merge(PIPELINE, old, {"supersededBy": retry})
    assert requests.refresh(app.ctx, PIPELINE, request_id, lambda *a: None) is None
    assert requests.get(app.ctx, PIPELINE, request_id)["state"] == "open"
    # ...and its end is the request's second completion, with its own messageId.
    _end(app, retry, "succeeded")
    again = _request_messages(app, request_id)
    assert [(m["generation"], m["state"], m["counts"]["failed"]) for m in again] == [(2, "partial", 1)]
    assert again[0]["messageId"] == f"request:{PIPELINE}:{request_id}:2"
    # The same runs reported again (a repeated event, the safety net) change nothing and send nothing.
    requests.refresh(app.ctx, PIPELINE, request_id, lambda *a: None)
    assert _request_messages(app, request_id) == []


def test_a_claimed_request_message_whose_sender_died_is_sent_by_the_safety_net(app, monkeypatch):
    from shared import requests
    from shared.reconcile import Reconciler
    from shared.records import request_record_key

    request_id = "k" + secrets.token_hex(8)
    (run_id,) = _runs(app, request_id, 1)
    real_send = app.ctx.messenger.send

    def dies_on_the_request_message(queue, message, delay=0):
        if message.get("kind") == "request":
            raise ConnectionError("the worker stopped here")
        real_send(queue, message, delay)

    monkeypatch.setattr(app.ctx.messenger, "send", dies_on_the_request_message)
    with pytest.raises(ConnectionError):
        _end(app, run_id, "succeeded")
    monkeypatch.setattr(app.ctx.messenger, "send", real_send)
    row = requests.get(app.ctx, PIPELINE, request_id)
    assert row["state"] == "succeeded" and row["notified"] is False  # claimed, never sent
    assert app.ctx.runs.inbox_entry(PIPELINE, request_record_key(request_id)) is not None
    assert _request_messages(app, request_id) == []

    # Not before NOTIFY_REPAIR_AFTER (its claimer may be alive and slow)...
    Reconciler(app.ctx).tick()
    assert _request_messages(app, request_id) == []
    # ...then once, marked as a possible repeat.
    later = datetime.now(UTC) + app.ctx.settings.notify_repair_after + timedelta(seconds=5)
    Reconciler(app.ctx, clock=lambda: later).tick()
    messages = _request_messages(app, request_id)
    assert len(messages) == 1 and messages[0]["possibleDuplicate"] is True and messages[0]["state"] == "succeeded"
    assert requests.get(app.ctx, PIPELINE, request_id)["notified"] is True
    assert app.ctx.runs.inbox_entry(PIPELINE, request_record_key(request_id)) is None
    Reconciler(app.ctx, clock=lambda: later + timedelta(minutes=5)).tick()
    assert _request_messages(app, request_id) == []


def test_a_merge_whose_input_never_became_a_task_is_failed_not_left_waiting(app):
    from shared import requests
    from shared.outcomes import fail_run

    pipeline = "wordcount"  # no requireAll: a failure that ran satisfies the merge, a missing task never does
    request_id = "k" + secrets.token_hex(8)
    inputs = [f"{pipeline}-t{secrets.token_hex(6)}" for _ in range(2)]
    merge_id = f"{pipeline}-m{secrets.token_hex(6)}"
    app.ctx.runs.create_many(pipeline, [(r, {"kind": "task", "requestId": request_id, "inputContainer": "data",
                                             "inputName": f"in/{r}.txt", "mergeTaskId": merge_id})
                                        for r in inputs] +
                             [(merge_id, {"kind": "merge", "requestId": request_id})], state="submitted")
    moved = app.ctx.runs.advance(pipeline, inputs[0], "succeeded")
    from shared.notify import notify_completion

    notify_completion(app.ctx, moved, {"runId": inputs[0], "state": "succeeded", "pipeline": pipeline})
    assert fail_run(app.ctx, pipeline, inputs[1], "not submitted to Batch after 5 deliveries", "NotSubmitted")
    merge = app.ctx.runs.get(pipeline, merge_id)
    assert merge["state"] == "failed" and merge["failureCode"] == "InputFailed"
    assert "never became a Batch task" in merge["failureMessage"] and f"data/in/{inputs[1]}.txt" in merge[
        "failureMessage"]
    (message,) = _request_messages(app, request_id)
    assert message["state"] == "failed" and message["outputs"]["merge"]["failure"]["code"] == "InputFailed"
    assert requests.get(app.ctx, pipeline, request_id)["notified"] is True
    failures = [m for m in app.drain_queue(app.ctx.settings.queues.failures) if m.get("runId") == merge_id]
    assert len(failures) == 1 and failures[0]["failure"]["code"] == "InputFailed"  # the merge's own message
