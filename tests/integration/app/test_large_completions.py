"""Issue 17.2: large completions and completions that cannot be recorded, on the real stack (Azurite, the
emulator, real containers)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from shared import ids

pytestmark = pytest.mark.integration


def _run_id(app, pipeline: str, name: str) -> str:
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    return ids.blob_task_id(pipeline, app.input_container, name, etag)


def _messages_for(app, queue: str, run_id: str) -> list[tuple[str, dict]]:
    client = app.ctx.messenger.client(queue)
    out = []
    for m in client.receive_messages(messages_per_page=32, max_messages=1000, visibility_timeout=30):
        data = json.loads(m.content)
        if data.get("runId") == run_id:
            out.append((m.content, data))
            client.delete_message(m)
        else:
            client.update_message(m, visibility_timeout=0)
    return out


def test_a_task_with_500_outputs_completes_with_the_full_manifest_and_a_message_that_fits(app):
    """500 output files of ordinary names (about 110 characters each): the manifest lists every one, the record
    counts them, and the completion message (which would be about 56 KB with every name) carries the first ones,
    the count and outputsTruncated, and fits on a queue even once base64-encoded."""
    name = "manyout/sales-report.csv"
    app.upload(name, b"region,total\n")
    app.blob_event(name)
    run_id = _run_id(app, "manyout", name)
    rec = app.wait_terminal("manyout", [run_id], timeout=180)[run_id]
    assert rec["state"] == "succeeded" and rec["outputCount"] == 500
    manifest = app.read_json(app.output_container, rec["manifestBlob"])
    names = [o["name"] for o in manifest["outputs"]]
    assert len(names) == 500 and len(set(names)) == 500
    assert f"{name}/daily-summary-by-region-and-product-line/part-500-of-00500.snappy.parquet" in names
    ((raw, msg),) = _messages_for(app, app.ctx.settings.queues.completions, run_id)
    assert len(base64.b64encode(raw.encode("utf-8"))) <= 64 * 1024
    assert msg["outputCount"] == 500 and msg["outputsTruncated"] is True
    assert 0 < len(msg["outputs"]) < 500 and msg["outputs"] == names[:len(msg["outputs"])]
    assert msg["manifest"] == {"container": app.output_container, "name": rec["manifestBlob"]}


def _deliver_markers(app, failures: list) -> None:
    """Fire task_marker for every marker and task_check for every due check, as the host would; an invocation
    that raises is counted (the host would deliver it again), not fatal."""
    from azure.functions.queue import QueueMessage

    ctx = app.ctx
    for blob in ctx.storage.blob.get_container_client(ctx.settings.marker_container).list_blobs():
        try:
            app.blob_event(blob.name, container=ctx.settings.marker_container, function="task_marker")
        except Exception as exc:  # noqa: BLE001 - what the test counts
            failures.append((blob.name, exc))
    checks = ctx.messenger.client(ctx.settings.queues.check)
    for m in checks.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30):
        try:
            app.call("task_check", QueueMessage(id=m.id, body=m.content.encode(), dequeue_count=m.dequeue_count,
                                                pop_receipt=m.pop_receipt))
            checks.delete_message(m)
        except Exception as exc:  # noqa: BLE001
            failures.append((m.id, exc))


def test_a_run_whose_completion_keeps_failing_is_failed_with_a_reason_and_the_others_go_on(app, monkeypatch):
    """Writing one run's manifest fails every time (an injected fault): each attempt is counted on its inbox entry,
    the fifth fails the run NotRecorded with the error as the reason and one failure message, its task is cleaned
    up, and a run beside it succeeds as usual."""
    from shared.completion import MAX_RECORD_ATTEMPTS, Completer

    real_write = Completer._write_manifest

    def failing_write(self, container, manifest_name, manifest):
        if "cannot be recorded" in manifest_name:
            raise OSError("injected: the manifest cannot be written")
        return real_write(self, container, manifest_name, manifest)

    monkeypatch.setattr(Completer, "_write_manifest", failing_write)
    bad, good = "transform/cannot be recorded.txt", "transform/recorded fine.txt"
    for name in (bad, good):
        app.upload(name, b"some words\n")
        app.blob_event(name)
    app.settle()
    bad_id, good_id = _run_id(app, "transform", bad), _run_id(app, "transform", good)
    failures: list = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _deliver_markers(app, failures)
        states = {r: (app.record("transform", r) or {}) for r in (bad_id, good_id)}
        if all(s.get("state") in ("succeeded", "failed") and s.get("notified") for s in states.values()):
            break
        time.sleep(0.5)
    bad_rec, good_rec = app.record("transform", bad_id), app.record("transform", good_id)
    assert good_rec["state"] == "succeeded" and good_rec["notified"] is True
    assert bad_rec["state"] == "failed" and bad_rec["notified"] is True, bad_rec
    assert bad_rec["failureCode"] == "NotRecorded"
    assert f"could not be recorded after {MAX_RECORD_ATTEMPTS} attempts" in bad_rec["reason"]
    assert "injected: the manifest cannot be written" in bad_rec["reason"]
    assert [name for name, _ in failures] == [f"{bad_rec['jobId']}/{bad_id}"] * (MAX_RECORD_ATTEMPTS - 1)
    ((_, failure),) = _messages_for(app, app.ctx.settings.queues.failures, bad_id)
    assert failure["failure"]["code"] == "NotRecorded" and failure["state"] == "failed"
    assert len(_messages_for(app, app.ctx.settings.queues.completions, good_id)) == 1
    tasks = [t.id for t in app.ctx.batch.list_tasks(bad_rec["jobId"])]
    assert bad_id not in tasks and good_id not in tasks  # both cleaned up; nothing left for the safety net
    assert app.ctx.runs.inbox_entry("transform", bad_id) is None
