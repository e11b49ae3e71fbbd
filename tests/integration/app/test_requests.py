"""Acceptance 4: a queue request with 250 inputs -> 250 tasks in at most 3 addTaskCollection calls, and a merge
task that runs after all of them. Plus redelivery of the same request (idempotency key)."""

from __future__ import annotations

import json

import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared import ids

pytestmark = pytest.mark.integration
N = 250


class CountCalls(SansIOHTTPPolicy):
    def __init__(self):
        self.requests = []

    def on_request(self, request):
        self.requests.append((request.http_request.method, request.http_request.url.split("?")[0]))


@pytest.fixture
def counted(app):
    """Swap the app's Batch client for one whose every HTTP request is recorded (per-retry policy)."""
    from shared.batch_client import make_batch_client
    from shared.submitter import Submitter

    counter = CountCalls()
    client = make_batch_client(app.ctx.settings.batch, per_retry_policies=[counter])
    old = app.ctx.batch, app.ctx.submitter
    app.ctx.batch = client
    app.ctx.submitter = Submitter(client, app.ctx.config)
    yield counter
    app.ctx.batch, app.ctx.submitter = old


def test_250_inputs_fan_out_in_three_calls_and_merge_runs_after_all(app, counted):
    names = [f"words/part {i:03d}.txt" for i in range(N)]
    for i, name in enumerate(names):
        app.upload(name, (" ".join(["w"] * (i % 7 + 1)) + "\n").encode(), container=app.data_container)
    expected_words = sum(i % 7 + 1 for i in range(N))
    body = json.dumps({"pipeline": "wordcount", "idempotencyKey": "fanout-250",
                       "inputs": [f"{app.data_container}/{n}" for n in names]})
    app.request(body, message_id="m-fanout")
    adds = [u for m, u in counted.requests if m == "POST" and u.endswith("/addtaskcollection")]
    assert len(adds) <= 3, adds
    request_id = ids.request_id("fanout-250", "m-fanout", body)
    merge_id = ids.merge_task_id("wordcount", request_id)
    records = app.ctx.runs.by_request("wordcount", request_id)
    assert len(records) == N + 1 and {r["state"] for r in records.values()} <= {"submitted", "running",
                                                                                 "succeeded"}
    # The same request delivered again (same idempotency key, new message) adds nothing.
    before = len(counted.requests)
    app.request(body, message_id="m-fanout-again")
    assert not [u for m, u in counted.requests[before:] if u.endswith("/addtaskcollection")]
    assert len(app.ctx.runs.by_request("wordcount", request_id)) == N + 1
    done = app.wait_terminal("wordcount", list(records), timeout=180)
    merge = done.pop(merge_id)
    assert all(r["state"] == "succeeded" for r in done.values())
    assert merge["state"] == "succeeded"
    assert merge["startedAt"] >= max(r["endedAt"] for r in done.values())
    assert any(r.get("runningAt") for r in done.values())  # the reconciler saw tasks running on the way
    total = app.read_json(app.output_container, f"wordcount/{request_id}/_merged/total.json")
    assert total == {"files": N, "words": expected_words}
    one = app.read_json(app.output_container, f"wordcount/{request_id}/{names[5]}/manifest.json")
    assert one["input"]["name"] == names[5] and one["requestId"] == request_id


def test_request_with_idempotency_key_delivered_twice_runs_once(app):
    app.upload("transform/req.txt", b"abc\n")
    body = json.dumps({"pipeline": "transform", "inputs": [f"{app.input_container}/transform/req.txt"],
                       "idempotencyKey": "twice", "overrides": {"environment": {"TRANSFORM_MODE": "lower"}}})
    first = app.request(body, message_id="a")
    second = app.request(body, message_id="b")
    assert first is None and second is None  # the functions return nothing; the records tell
    request_id = ids.request_id("twice", None, body)
    runs = app.ctx.runs.by_request("transform", request_id)
    assert len(runs) == 1
    rec = app.wait_terminal("transform", list(runs))[next(iter(runs))]
    assert rec["state"] == "succeeded"
    out = app.read_text(app.output_container, f"{rec['outputPrefix']}/result.txt")
    assert out == "abc\n"  # TRANSFORM_MODE=lower came through as an allowed override
    assert json.loads(rec["overrides"]) == {"environment": {"TRANSFORM_MODE": "<redacted, 5 chars>"}}


def test_fan_out_wider_than_the_fan_in_merges_through_barriers(app):
    """fanIn 3 and 7 inputs: 3 barrier tasks (3+3+1) and a merge waiting on them; every input is counted once and
    every task of the request is gone from Batch once the merge is recorded."""
    names = [f"wide/{i}.txt" for i in range(7)]
    for i, name in enumerate(names):
        app.upload(name, (" ".join(["w"] * (i + 1)) + "\n").encode(), container=app.data_container)
    # One prefix line stands for all seven blobs (listed, not looked up one by one).
    body = json.dumps({"pipeline": "widecount", "inputs": [{"container": app.data_container, "prefix": "wide/"}]})
    app.request(body, message_id="m-wide")
    request_id = ids.request_id(None, "m-wide", body)
    records = app.ctx.runs.by_request("widecount", request_id)
    kinds = sorted(r["kind"] for r in records.values())
    assert kinds == ["barrier"] * 3 + ["merge"] + ["task"] * 7
    done = app.wait_terminal("widecount", list(records))
    assert {r["state"] for r in done.values()} == {"succeeded"}
    total = app.read_json(app.output_container, f"widecount/{request_id}/_merged/total.json")
    assert total == {"files": 7, "words": sum(range(1, 8))}
    job = next(iter(done.values()))["jobId"]
    for _ in range(3):
        app.tick("reconciler")
    left = {t.id for t in app.ctx.batch.list_tasks(job)} & set(records)
    assert left == set()


def test_a_reused_idempotency_key_with_another_request_is_rejected_and_mixes_nothing(app):
    """Issue 17.4: the key is bound to the first request (a digest in its request row). Another request with that
    key is rejected once (`idempotency-conflict`, its override value redacted) and makes no run; the first request
    sent again is a duplicate and adds nothing; the request row is never shown as a run."""
    from devstack.tools.runs_view import query_runs

    rejected = app.ctx.settings.queues.rejected
    app.drain_queue(rejected)
    for name in ("transform/key-a.txt", "transform/key-b.txt"):
        app.upload(name, f"{name}\n".encode())
    first = json.dumps({"pipeline": "transform", "inputs": [f"{app.input_container}/transform/key-a.txt"],
                        "idempotencyKey": "reused-key"})
    other = json.dumps({"pipeline": "transform", "inputs": [f"{app.input_container}/transform/key-b.txt"],
                        "idempotencyKey": "reused-key",
                        "overrides": {"environment": {"TRANSFORM_MODE": "tok-do-not-echo"}}})
    app.request(first, message_id="key-first")
    app.request(other, message_id="key-other")
    app.request(other, message_id="key-other", dequeue_count=2)  # a redelivery: still one rejection
    app.request(first, message_id="key-first-again")  # the same request again: a duplicate
    request_id = ids.request_id("reused-key", None, first)
    runs = app.ctx.runs.by_request("transform", request_id)
    assert [r["inputName"] for r in runs.values()] == ["transform/key-a.txt"]
    assert not app.ctx.runs.query("PartitionKey eq @p and inputName eq @n",
                                  {"p": "transform", "n": "transform/key-b.txt"})
    messages = [m for m in app.drain_queue(rejected) if m.get("messageId", "").startswith("rej-")]
    rid = ids.rejection_id("request", "key-other", "")
    assert [m["runId"] for m in messages] == [rid]
    [msg] = messages
    rec = app.record("transform", rid)
    assert msg["code"] == rec["rejectionCode"] == "idempotency-conflict"
    assert "'reused-key' was already used" in msg["reason"] and request_id in rec["reason"]
    for shown in (msg["payload"], rec["payload"], json.dumps(msg), json.dumps(rec, default=str)):
        assert "tok-do-not-echo" not in shown
    assert '"TRANSFORM_MODE": "<redacted, 15 chars>"' in msg["payload"]
    done = app.wait_terminal("transform", list(runs))
    assert [r["state"] for r in done.values()] == ["succeeded"]
    assert app.read_text(app.output_container, "transform/key-a.txt/result.txt") == \
        "TRANSFORM/KEY-A.TXT\n"
    rows = query_runs(app.ctx.runs, pipeline="transform", request_id=request_id)
    assert [r.run_id for r in rows] == list(runs)  # the request row is bookkeeping, not a run
    assert not [r for r in query_runs(app.ctx.runs, pipeline="transform") if r.run_id.startswith("~")]


def test_two_requests_racing_for_one_key_leave_one_owner(app):
    """The pre-check can be passed by two requests at once; the request row created in the records' first
    transaction decides: the loser gets RequestConflict and none of its records exist."""
    from shared.records import RequestConflict

    runs = app.ctx.runs
    row = {"idempotencyKey": "race-key", "requestId": "krace", "runCount": 1}
    made = runs.create_many("transform", [("race-winner", {"requestId": "krace", "kind": "task"})],
                            request={**row, "digest": "a" * 64})
    assert set(made) == {"race-winner"}
    with pytest.raises(RequestConflict):
        runs.create_many("transform", [(f"race-loser-{i}", {"requestId": "krace", "kind": "task"})
                                       for i in range(60)], request={**row, "digest": "b" * 64})
    assert list(runs.by_request("transform", "krace")) == ["race-winner"]
    same = runs.create_many("transform", [("race-winner-2", {"requestId": "krace", "kind": "task"})],
                            request={**row, "digest": "a" * 64})  # the same request racing: goes on
    assert set(same) == {"race-winner-2"}
    assert runs.get_request("transform", "race-key")["digest"] == "a" * 64
    from devstack.tools.runs_view import query_runs

    shown = {r.run_id for r in query_runs(runs, pipeline="transform", request_id="krace")}
    assert shown == {"race-winner", "race-winner-2"}  # not the request row, which carries the request id too
    for rid in ("race-winner", "race-winner-2"):
        runs.forget("transform", rid)
