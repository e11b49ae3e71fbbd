"""Requests as a unit, through the whole stack: a wordcount request with one bad input (a file that is not text, so
its fan-out task fails while it runs) ends `partial`, its merge runs over the rest and reports the failed input,
and the request gets ONE completion message with the right counts; with merge.requireAll the same request ends
`failed` and its merge never runs."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devstack.common import paths
from devstack.tools.access import batch_client
from shared.records import request_record_key
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GOOD = ["alpha beta gamma\n", "one two three four five\n"]
BAD = b"not \x00 text\n"


def _send(access, pipeline: str, tmp_path, tag: str):
    from devstack.tools.submit import send_request

    files = []
    for i, text in enumerate(GOOD):
        path = tmp_path / f"good-{i}.txt"
        path.write_text(text)
        files.append(path)
    bad = tmp_path / "broken.bin"
    bad.write_bytes(BAD)
    files.append(bad)
    sent = send_request(access, access.config.pipeline(pipeline), files, [], tag, sub=tag)
    bad_run = next(run_id for run_id, what in sent.runs if what.endswith("/broken.bin"))
    return sent, bad_run


def _request_record(access, pipeline: str, request_id: str, timeout: float = 240) -> dict:
    def sent():
        row = access.runs.get(pipeline, request_record_key(request_id))
        return row if row and row.get("notified") else None

    return wait_for(sent, timeout, f"the completion message of request {request_id}", interval=1)


def _request_messages(access, request_id: str) -> list[dict]:
    """The request-completion messages of one request on the completions queue (others are left there)."""
    queue = access.storage.queue.get_queue_client(access.settings.queues.completions)
    mine, seen = [], set()
    while True:
        page = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30))
        if not page or all(m.id in seen for m in page):
            break
        for m in page:
            seen.add(m.id)
            data = json.loads(m.content)
            if data.get("kind") == "request" and data.get("requestId") == request_id:
                mine.append(data)
                queue.delete_message(m)
    return mine


def _blob_json(access, container: str, name: str) -> dict:
    return json.loads(access.storage.blob.get_blob_client(container, name).download_blob().readall())


def test_a_merge_over_a_partial_request(app_stack, tmp_path):
    access = app_stack.access
    tag = f"e2e-req-{secrets.token_hex(3)}"
    sent, bad_run = _send(access, "wordcount", tmp_path, tag)
    record = _request_record(access, "wordcount", sent.request_id)
    assert record["state"] == "partial", record
    assert (record["runsTotal"], record["countSucceeded"], record["countFailed"]) == (3, 2, 1)

    runs = access.runs.by_request("wordcount", sent.request_id)
    assert runs[bad_run]["state"] == "failed" and runs[bad_run]["exitCode"] == 2
    merge = runs[sent.merge_run]
    assert merge["state"] == "succeeded"
    assert (merge["partial"], merge["inputsFailed"], merge["inputsExpected"]) == (True, 1, 3)
    manifest = _blob_json(access, merge["outputContainer"], merge["manifestBlob"])
    assert manifest["partial"] is True and manifest["inputsFailed"] == 1
    assert manifest["failedInputs"] == [f"uploads/wordcount/{tag}/broken.bin"]

    # The merge itself was told: in/_failed/<run id> held the failed task's stderr, which names the input.
    total = _blob_json(access, merge["outputContainer"], f"{merge['outputPrefix']}/total.json")
    assert total["files"] == 2 and total["words"] == sum(len(t.split()) for t in GOOD)
    assert total["partial"] is True and total["inputsFailed"] == 1 and total["inputsExpected"] == 3
    assert [f["runId"] for f in total["failed"]] == [bad_run]
    assert f"wordcount/{tag}/broken.bin is not a text file" in total["failed"][0]["error"]

    messages = _request_messages(access, sent.request_id)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message["state"] == "partial" and message["pipeline"] == "wordcount"
    assert message["counts"]["total"] == 3 and message["counts"]["succeeded"] == 2 and message["counts"]["failed"] == 1
    assert message["messageId"] == f"request:wordcount:{sent.request_id}:1"
    assert [f["runId"] for f in message["failed"]] == [bad_run]
    assert message["failed"][0]["input"] == f"uploads/wordcount/{tag}/broken.bin"
    assert message["outputs"]["merge"]["manifest"] == merge["manifestBlob"]
    assert message["outputs"]["merge"]["inputsFailed"] == 1
    assert message["outputs"]["prefix"] == f"wordcount/{sent.request_id}/wordcount/{tag}"
    assert len(message["outputs"]["prefixes"]) == 2

    # What an operator sees: `eventbatch request ID`.
    shown = _cli("request", sent.request_id)
    assert shown.returncode == 0, shown.stderr
    assert f"request {sent.request_id} (pipeline wordcount): partial" in shown.stdout
    assert "inputs   3: succeeded 2, failed 1" in shown.stdout
    assert f"{bad_run}  uploads/wordcount/{tag}/broken.bin  failed FailureExitCode" in shown.stdout
    assert "is not a text file" in shown.stdout and "completion message: generation 1, sent" in shown.stdout
    data = json.loads(_cli("request", sent.request_id, "--json").stdout)
    assert data["state"] == "partial" and data["counts"]["failed"] == 1 and data["message"]["sent"] is True
    missing = _cli("request", "k-none-such")
    assert missing.returncode == 1 and "no runs of request 'k-none-such'" in missing.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_require_all_fails_the_request_without_running_the_merge(app_stack, tmp_path):
    access = app_stack.access
    tag = f"e2e-strict-{secrets.token_hex(3)}"
    sent, bad_run = _send(access, "wordcount-strict", tmp_path, tag)
    record = _request_record(access, "wordcount-strict", sent.request_id)
    assert record["state"] == "failed", record
    assert (record["countSucceeded"], record["countFailed"]) == (2, 1)

    merge = access.runs.get("wordcount-strict", sent.merge_run)
    assert merge["state"] == "failed" and merge["failureCode"] == "InputFailed"
    assert "merge.requireAll" in merge["failureMessage"] and f"{tag}/broken.bin" in merge["failureMessage"]
    assert not merge.get("startedAt") and merge.get("exitCode") is None  # it never ran
    blobs = list(access.storage.blob.get_container_client(merge["outputContainer"])
                 .list_blobs(name_starts_with=merge["outputPrefix"] + "/"))
    assert blobs == []

    # Its blocked task was terminated, not left waiting in Batch for inputs that will never all succeed (or it is
    # gone already: the safety net deletes a recorded merge with the tasks it waited for).
    try:
        task = batch_client(access).get_task(merge["jobId"], sent.merge_run).as_dict()
    except ResourceNotFoundError:
        task = None
    if task is not None:
        assert task["state"] == "completed" and not (task.get("executionInfo") or {}).get("startTime"), task

    messages = _request_messages(access, sent.request_id)
    assert len(messages) == 1, messages
    assert messages[0]["state"] == "failed" and messages[0]["outputs"]["merge"]["failure"]["code"] == "InputFailed"
    assert messages[0]["counts"]["succeeded"] == 2 and [f["runId"] for f in messages[0]["failed"]] == [bad_run]
