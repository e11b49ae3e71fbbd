"""Acceptance 5 and 6: hostile blob names are processed with the exact name preserved (or rejected with a reason)
and a canary proves no command injection; every bad-input class yields exactly one rejection with a readable
reason, even when delivered twice."""

from __future__ import annotations

import json

import pytest

from shared import ids

pytestmark = pytest.mark.integration

CANARY = "$AZ_BATCH_TASK_WORKING_DIR/out/pwned"
KEPT = [
    "transform/with space.txt",
    "transform/quote's \"double\".txt",
    f"transform/$(touch {CANARY}-subst).txt",
    f"transform/semi;touch {CANARY}-semi;.txt",
    f"transform/back`touch {CANARY}-tick`.txt",
    "transform/café 日本語 ñ emoji🙂.txt",
    "transform/" + "L" * 800 + ".txt",
    "transform/-dash & pipe | gt > lt <.txt",
]
REJECTED = {
    "transform/new\nline.txt": "control character",
    "transform/../escape.txt": "'..' path segment",
    "transform/" + "X" * 1000 + ".txt": "too long",
}


def _etag(app, name):
    return app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag


def test_hostile_names_keep_their_exact_name_and_cannot_inject(app):
    runs = {}
    for i, name in enumerate(KEPT):
        app.upload(name, f"line {i}\n".encode())
        app.blob_event(name)
        runs[ids.blob_task_id("transform", app.input_container, name, _etag(app, name))] = (i, name)
    app.upload("control/canary.txt", b"x")  # positive control: a task that does create the canary file
    app.blob_event("control/canary.txt")
    control = ids.blob_task_id("control", app.input_container, "control/canary.txt", _etag(app, "control/canary.txt"))
    for name in REJECTED:
        if "XXXX" in name:
            app.upload(name, b"a valid blob name whose output path would be too long")
        app.blob_event(name)  # unsafe names are refused before the blob is even looked up
    assert app.wait_terminal("control", [control])[control]["state"] == "succeeded"
    done = app.wait_terminal("transform", list(runs))
    for run_id, (i, name) in runs.items():
        rec = done[run_id]
        assert rec["state"] == "succeeded", (name, rec.get("failureMessage"), rec.get("stderrTail"))
        assert rec["inputName"] == name
        manifest = app.read_json(app.output_container, f"{name}/manifest.json")
        assert manifest["input"]["name"] == name
        assert app.read_text(app.output_container, f"{name}/result.txt") == f"LINE {i}\n"
    everything = [b.name for b in app.ctx.storage.blob.get_container_client(app.output_container).list_blobs()]
    canaries = [n for n in everything if n.rsplit("/", 1)[-1].startswith("pwned")]
    assert "control/canary.txt/pwned-control" in canaries  # the positive control is seen
    assert [c for c in canaries if not c.startswith("control/")] == [], "command injection!"
    for name, reason in REJECTED.items():
        etag = _etag(app, name) if "XXXX" in name else ""
        rec = app.record("transform", ids.rejection_id("blob", app.input_container, name, etag))
        assert rec["state"] == "rejected" and reason in rec["reason"], (name, rec)
        assert rec["inputName"] == name


BAD_REQUESTS = {
    "malformed": ("{pipeline: wordcount", "not valid JSON"),
    "schema": (json.dumps({"pipeline": "wordcount", "inputs": "data/a.txt"}), "'inputs' is required"),
    "unknown-pipeline": (json.dumps({"pipeline": "nope", "inputs": ["x/y"]}), "pipeline 'nope' does not exist"),
    "missing-blob": (json.dumps({"pipeline": "wordcount", "inputs": ["nothere/a.txt"]}), "not found"),
    "outside-policy": (json.dumps({"pipeline": "transform", "inputs": ["input/other/a.txt"]}), "outside pipeline"),
    "unsafe-name": (json.dumps({"pipeline": "wordcount", "inputs": ["data/a\u0007b"]}), "control character"),
}


def test_each_bad_input_class_is_rejected_exactly_once_with_a_reason(app):
    queue = app.ctx.settings.queues.rejected
    app.drain_queue(queue)
    for code, (body, _) in BAD_REQUESTS.items():
        for dequeue in (1, 2):  # a redelivery must not make a second rejection
            assert app.request(body, message_id=f"bad-{code}", dequeue_count=dequeue) is None
    for _ in range(2):
        app.blob_event("elsewhere/not-for-any-pipeline.txt")
    app.upload("transform/too-big.txt", b"x")
    messages = app.drain_queue(queue)
    by_run = {}
    for m in messages:
        by_run.setdefault(m["runId"], []).append(m)
    assert all(len(v) == 1 for v in by_run.values()), {k: len(v) for k, v in by_run.items()}
    for code, (body, words) in BAD_REQUESTS.items():
        rid = ids.rejection_id("request", f"bad-{code}", "")
        [msg] = by_run[rid]
        assert msg["code"] == code and words in msg["reason"] and msg["payload"] == body, msg
        partition = "wordcount" if '"wordcount"' in body else "transform" if '"transform"' in body else "unrouted"
        rec = app.record(partition, rid)
        assert rec["state"] == "rejected" and words in rec["reason"]
    blob_rid = ids.rejection_id("blob", app.input_container, "elsewhere/not-for-any-pipeline.txt", "")
    [msg] = by_run[blob_rid]
    assert msg["code"] == "outside-policy" and "no pipeline takes blob" in msg["reason"]
    assert len(by_run) == len(BAD_REQUESTS) + 1



def test_inputs_of_a_disabled_pipeline_are_rejected_naming_the_pool(app):
    """The sample GPU pipeline is off (DEPLOY_GPU_POOLS unset): an upload in its folder and a request for it end as
    rejected runs whose reason names the disabled pool, with one message each; no pool is created for them."""
    queue = app.ctx.settings.queues.rejected
    app.drain_queue(queue)
    app.upload("gpuinfo/frame.txt", b"data")
    app.blob_event("gpuinfo/frame.txt")
    body = json.dumps({"pipeline": "gpuinfo", "inputs": [f"{app.input_container}/gpuinfo/frame.txt"]})
    app.request(body, message_id="gpu-off")
    messages = app.drain_queue(queue)
    assert [m["code"] for m in messages] == ["pipeline-disabled"] * 2, messages
    for m in messages:
        assert m["pipeline"] == "gpuinfo" and "its pool eventbatch-gpu has enabled: false" in m["reason"]
        assert app.record("gpuinfo", m["runId"])["state"] == "rejected"
