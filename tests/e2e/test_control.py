"""Cancel and retry on the running app (host, Batch emulator, real containers): `eventbatch cancel | retry` as a
user types them, the control queue, and a cancel racing a task's completion."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
import time

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devstack.common import image_copy, paths
from devstack.tools.access import batch_client
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def eventbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=180)


def containers(app_stack) -> list[str]:
    listing = subprocess.run(image_copy.argv("podman", ["ps", "--format", "{{.Names}}"]),  # noqa: S603
                             env=app_stack.stack.container_env(), capture_output=True, text=True, timeout=60,
                             check=True)
    return listing.stdout.split()


def running_containers(app_stack, run_ids) -> set[str]:
    names = containers(app_stack)
    return {r for r in run_ids if any(r.lower() in n for n in names)}


def record(app_stack, pipeline: str, run_id: str) -> dict:
    return app_stack.access.runs.get(pipeline, run_id) or {}


def forget(app_stack, pipeline: str, run_ids) -> None:
    """Remove records a test wrote by hand (and their inbox entries), so that other tests never see them."""
    from shared.records import inbox_key

    for run_id in run_ids:
        for key in (run_id, inbox_key(run_id)):
            app_stack.access.runs.table.delete_entity(pipeline, key)


def messages(app_stack, queue: str, run_ids) -> list[dict]:
    """The messages about `run_ids` on a queue (read without removing them: they come back after 1 s)."""
    client = app_stack.access.storage.queue.get_queue_client(queue)
    found = []
    for m in client.receive_messages(messages_per_page=32, visibility_timeout=1):
        body = json.loads(m.content)
        if body.get("runId") in run_ids:
            found.append(body)
    return found


def submit_sleep_request(tmp_path, tag: str, count: int = 2) -> tuple[str, list[str]]:
    files = []
    for i in range(count):
        f = tmp_path / f"{tag}-{i}.txt"
        f.write_text(f"input {i}\n")
        files.append(str(f))
    out = eventbatch("submit", "sleep", "--request", *files, "--prefix", tag)
    assert out.returncode == 0, out.stderr
    return re.search(r"request id (\S+)", out.stdout).group(1), re.findall(r"^  run (\S+)", out.stdout, re.M)


def test_cancel_a_running_request_then_retry_its_cancelled_runs(app_stack, tmp_path):
    tag = f"e2e-cancel-{secrets.token_hex(3)}"
    request_id, run_ids = submit_sleep_request(tmp_path, tag)
    assert len(run_ids) == 2
    wait_for(lambda: running_containers(app_stack, run_ids) == set(run_ids), 90, "both tasks' containers to run",
             interval=0.5)

    out = eventbatch("cancel", "--request", request_id, "--by", "e2e-operator", "--reason", "wrong inputs", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["by"] == "e2e-operator" and report["counts"] == {"cancelled": 2}
    assert all("terminated" in r["detail"] for r in report["runs"])
    # Batch stopped the containers (the tasks sleep 20 s: these stop at once).
    wait_for(lambda: not running_containers(app_stack, run_ids), 30, "the containers to stop", interval=0.5)
    for run_id in run_ids:
        rec = record(app_stack, "sleep", run_id)
        assert rec["state"] == "cancelled" and rec["cancelledBy"] == "e2e-operator" and rec["cancelledAt"]
        assert rec["reason"] == "cancelled by e2e-operator: wrong inputs" and rec["failureCode"] == "Cancelled"
    # The tasks' own completion (their markers) comes after the cancel: it cleans up and records nothing else.
    batch = batch_client(app_stack.access)

    def tasks_gone():
        left = []
        for run_id in run_ids:
            try:
                batch.get_task(record(app_stack, "sleep", run_id)["jobId"], run_id)
                left.append(run_id)
            except ResourceNotFoundError:  # deleted once recorded
                pass
        return not left

    wait_for(tasks_gone, 60, "the terminated tasks to be cleaned up", interval=0.5)
    assert {record(app_stack, "sleep", r)["state"] for r in run_ids} == {"cancelled"}
    failures = wait_for(lambda: (m := messages(app_stack, app_stack.access.settings.queues.failures, run_ids))
                        and len(m) >= 2 and m, 30, "the failure messages")
    assert sorted(m["messageId"] for m in failures) == sorted(f"{r}:cancelled" for r in run_ids)
    assert {m["cancelledBy"] for m in failures} == {"e2e-operator"}

    again = eventbatch("cancel", run_ids[0])
    assert again.returncode == 0 and "unchanged" in again.stdout and "already cancelled by e2e-operator" in again.stdout

    out = eventbatch("retry", "--request", request_id, "--failed", "--by", "e2e-operator", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    retried = {r["run_id"]: r["new_run_id"] for r in json.loads(out.stdout)["runs"]}
    assert set(retried) == set(run_ids) and all(retried.values())
    new_ids = list(retried.values())
    wait_for(lambda: {record(app_stack, "sleep", n).get("state") for n in new_ids} == {"succeeded"}, 120,
             "the new attempts to succeed", interval=1)
    for old, new in retried.items():
        old_rec, new_rec = record(app_stack, "sleep", old), record(app_stack, "sleep", new)
        assert old_rec["state"] == "cancelled" and old_rec["supersededBy"] == new
        assert new_rec["attempt"] == 2 and new_rec["retryOf"] == old and new_rec["requestId"] == request_id
        assert new_rec["outputPrefix"] == old_rec["outputPrefix"] + "/attempt-2"
        outputs = [b.name for b in app_stack.access.storage.blob.get_container_client(new_rec["outputContainer"])
                   .list_blobs(name_starts_with=new_rec["outputPrefix"] + "/")]
        assert f"{new_rec['outputPrefix']}/slept.txt" in outputs or any(o.endswith("slept.txt") for o in outputs)

    twice = eventbatch("retry", run_ids[0])
    assert twice.returncode == 0 and "already retried as" in twice.stdout
    succeeded = eventbatch("retry", new_ids[0])
    assert succeeded.returncode == 1 and "add --force" in succeeded.stdout


def test_the_control_queue_cancels_and_rejects_a_bad_message(app_stack, tmp_path):
    tag = f"e2e-ctlq-{secrets.token_hex(3)}"
    _, (run_id,) = submit_sleep_request(tmp_path, tag, count=1)
    wait_for(lambda: record(app_stack, "sleep", run_id).get("state") in ("submitted", "running"), 60,
             "the request to be submitted", interval=0.5)
    queue = app_stack.access.storage.queue.get_queue_client(app_stack.access.settings.queues.control)
    queue.send_message(json.dumps({"action": "cancel", "runs": [run_id], "by": "queue-operator"}))
    rec = wait_for(lambda: (r := record(app_stack, "sleep", run_id)).get("state") == "cancelled" and r, 60,
                   "the control message to cancel the run", interval=0.5)
    assert rec["cancelledBy"] == "queue-operator"

    queue.send_message(json.dumps({"action": "explode", "by": tag}))

    def rejection():
        rows = app_stack.access.runs.query("PartitionKey eq @p and source eq @s", {"p": "unrouted", "s": "control"})
        return next((r for r in rows if tag in (r.get("payload") or "")), None)

    rejected = wait_for(rejection, 60, "the bad control message's rejection", interval=0.5)
    assert rejected["state"] == "rejected" and 'action must be "cancel" or "retry"' in rejected["reason"]


def test_a_cancel_racing_a_completion_records_one_end_and_one_message(app_stack):
    """Both finishers read the same record and then move it: the ETag lets exactly one win, whichever it is."""
    from shared.context import create_context
    from shared.control import cancel_one
    from shared.notify import notify_completion

    ctx = create_context(app_stack.access.settings, ensure_resources=False)
    tag = secrets.token_hex(4)
    winners = {}
    for i in range(8):
        run_id = f"sleep-race{tag}{i}"
        ctx.runs.create("sleep", run_id, "running", {"pipeline": "sleep", "jobId": f"eb-sleep-none{tag}",
                                                     "kind": "task"})
        snapshot = ctx.runs.get("sleep", run_id)
        start = threading.Barrier(2)
        outcome = {}

        def cancel(snapshot=snapshot, outcome=outcome, start=start, late=1 - i % 2):
            start.wait()
            time.sleep(0.2 * late)  # one side is a little late, by turns: each wins, the other must lose cleanly
            outcome["cancel"] = cancel_one(ctx, snapshot, "racer", "cancelled by racer").outcome

        def complete(snapshot=snapshot, outcome=outcome, start=start, run_id=run_id, late=i % 2):
            start.wait()
            time.sleep(0.2 * late)
            moved = ctx.runs.advance("sleep", run_id, "succeeded", {"exitCode": 0}, record=snapshot)
            outcome["complete"] = moved is not None
            if moved is not None:
                notify_completion(ctx, moved, {"runId": run_id, "state": "succeeded", "pipeline": "sleep"})

        threads = [threading.Thread(target=cancel), threading.Thread(target=complete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        final = ctx.runs.get("sleep", run_id)["state"]
        assert (outcome["cancel"] == "cancelled") != outcome["complete"], outcome  # exactly one winner
        assert final == ("cancelled" if outcome["cancel"] == "cancelled" else "succeeded")
        assert final == ("succeeded" if i % 2 == 0 else "cancelled")  # the one on time won
        if outcome["cancel"] != "cancelled":
            assert outcome["cancel"] == "left"  # the loser says the run had ended, and changes nothing
        winners[run_id] = final
    assert set(winners.values()) == {"cancelled", "succeeded"}
    queues = app_stack.access.settings.queues
    sent = wait_for(lambda: (m := messages(app_stack, queues.failures, winners)
                             + messages(app_stack, queues.completions, winners)) and len(m) >= len(winners) and m,
                    30, "one message per raced run")
    assert sorted(m["messageId"] for m in sent) == sorted(f"{r}:{s}" for r, s in winners.items())
    forget(app_stack, "sleep", winners)


def test_a_forced_retry_of_a_merged_input_merges_the_current_outputs_once(app_stack, tmp_path):
    tag = f"e2e-remerge-{secrets.token_hex(3)}"
    files = []
    for i, words in enumerate((3, 5)):
        f = tmp_path / f"{tag}-{i}.txt"
        f.write_text(" ".join(["word"] * words) + "\n")
        files.append(str(f))
    out = eventbatch("submit", "wordcount", "--request", *files, "--prefix", tag)
    assert out.returncode == 0, out.stderr
    run_ids = re.findall(r"^  run (\S+)", out.stdout, re.M)
    wait_for(lambda: {record(app_stack, "wordcount", r).get("state") for r in run_ids} == {"succeeded"}, 120,
             "the request to succeed", interval=1)
    merge_id = next(r for r in run_ids if record(app_stack, "wordcount", r)["kind"] == "merge")
    first = next(r for r in run_ids if r != merge_id)

    refused = eventbatch("retry", first)
    assert refused.returncode == 1 and "add --force" in refused.stdout
    out = eventbatch("retry", first, "--force", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    news = {r["run_id"]: r["new_run_id"] for r in json.loads(out.stdout)["runs"]}
    assert set(news) == {first, merge_id}  # the input and, with it, a new merge attempt
    new_merge = news[merge_id]
    wait_for(lambda: record(app_stack, "wordcount", new_merge).get("state") == "succeeded", 120,
             "the new merge attempt to succeed", interval=1)
    assert record(app_stack, "wordcount", news[first])["state"] == "succeeded"
    merged = record(app_stack, "wordcount", new_merge)
    assert merged["attempt"] == 2 and merged["retryOf"] == merge_id
    assert record(app_stack, "wordcount", merge_id)["supersededBy"] == new_merge
    logs = eventbatch("logs", new_merge, "--stdout")
    assert "merge: 2 files, 8 words" in logs.stdout  # the replaced attempt's count is not merged again


def test_a_retry_batch_cannot_take_waits_as_pending_and_the_same_retry_submits_it(app_stack, tmp_path):
    from dataclasses import replace
    from datetime import timedelta

    from shared.context import create_context
    from shared.control import retry_runs
    from shared.run_actions import Selection

    tag = f"e2e-pending-{secrets.token_hex(3)}"
    _, (run_id,) = submit_sleep_request(tmp_path, tag, count=1)
    wait_for(lambda: record(app_stack, "sleep", run_id).get("state") in ("submitted", "running"), 60,
             "the request to be submitted", interval=0.5)
    assert eventbatch("cancel", run_id).returncode == 0
    settings = app_stack.access.settings
    away = replace(settings, batch=replace(settings.batch, url="http://127.0.0.1:9"),
                   batch_retry_budget=timedelta(seconds=1))
    report = retry_runs(create_context(away, ensure_resources=False), Selection(runs=(run_id,)), "e2e")
    (pending,) = report.results
    assert pending.outcome == "pending" and "ask for the same retry again" in pending.detail
    new = record(app_stack, "sleep", pending.new_run_id)
    assert new["state"] == "received" and new["retryOf"] == run_id
    assert app_stack.access.runs.inbox_entry("sleep", pending.new_run_id)["attempts"] == 1  # not the safety net's

    again = eventbatch("retry", run_id, "--json")  # Batch is back: the same retry submits the same attempt
    assert again.returncode == 0, again.stdout + again.stderr
    (retried,) = json.loads(again.stdout)["runs"]
    assert retried["outcome"] == "retried" and retried["new_run_id"] == pending.new_run_id
    wait_for(lambda: record(app_stack, "sleep", pending.new_run_id).get("state") == "succeeded", 120,
             "the attempt to succeed", interval=1)


def test_a_run_never_submitted_is_cancelled_without_batch(app_stack):
    from dataclasses import replace

    from shared.context import create_context
    from shared.control import cancel_runs
    from shared.run_actions import Selection

    settings = app_stack.access.settings
    no_batch = replace(settings, batch=replace(settings.batch, url="http://127.0.0.1:9"))  # any call would fail
    ctx = create_context(no_batch, ensure_resources=False)
    run_id = f"sleep-held{secrets.token_hex(4)}"
    ctx.runs.create("sleep", run_id, "received", {"pipeline": "sleep", "kind": "task", "requestId": "r-held"})
    report = cancel_runs(ctx, Selection(runs=(run_id,)), "e2e-operator", "not needed")
    (result,) = report.results
    assert result.outcome == "cancelled" and result.detail == "cancelled before it was submitted to Batch"
    rec = record(app_stack, "sleep", run_id)
    assert rec["state"] == "cancelled" and rec["cancelledFrom"] == "received" and rec["notified"] is True
    assert app_stack.access.runs.inbox_entry("sleep", run_id) is None  # nothing left for the safety net
    sent = wait_for(lambda: messages(app_stack, settings.queues.failures, {run_id}), 30, "the failure message")
    assert [m["messageId"] for m in sent] == [f"{run_id}:cancelled"]
    forget(app_stack, "sleep", [run_id])


def test_cancelling_an_input_cancels_its_requests_merge(app_stack):
    """Batch holds a merge whose input was terminated: the merge is cancelled with it, saying why."""
    from dataclasses import replace

    from shared.context import create_context
    from shared.control import cancel_runs
    from shared.run_actions import Selection

    settings = app_stack.access.settings
    ctx = create_context(replace(settings, batch=replace(settings.batch, url="http://127.0.0.1:9")),
                         ensure_resources=False)
    tag = secrets.token_hex(4)
    request_id, fanout, merge = f"r{tag}", f"wordcount-in{tag}", f"wordcount-m{tag}"
    ctx.runs.create("wordcount", fanout, "received", {"pipeline": "wordcount", "kind": "task", "requestId": request_id,
                                                      "mergeTaskId": merge})
    ctx.runs.create("wordcount", merge, "received", {"pipeline": "wordcount", "kind": "merge", "requestId": request_id})
    report = cancel_runs(ctx, Selection(runs=(fanout,)), "e2e-operator")
    assert [(r.run_id, r.outcome) for r in report.results] == [(fanout, "cancelled"), (merge, "cancelled")]
    merged = record(app_stack, "wordcount", merge)
    assert merged["state"] == "cancelled" and "an input of its request was cancelled" in merged["reason"]
    forget(app_stack, "wordcount", [fanout, merge])


def test_a_run_whose_request_set_environment_overrides_is_not_retried_without_them(app_stack, tmp_path):
    tag = f"e2e-ovr-{secrets.token_hex(3)}"
    blob = f"sleep/{tag}/a.txt"
    app_stack.access.storage.blob.get_blob_client("uploads", blob).upload_blob(b"a\n", overwrite=True)
    requests = app_stack.access.storage.queue.get_queue_client(app_stack.access.settings.queues.requests)
    requests.send_message(json.dumps({"pipeline": "sleep", "inputs": [f"uploads/{blob}"],
                                      "overrides": {"environment": {"SLEEP_SECONDS": "120"}}}))

    def the_run():
        rows = app_stack.access.runs.query("PartitionKey eq @p and inputName eq @n", {"p": "sleep", "n": blob})
        return rows[0] if rows and rows[0]["state"] in ("submitted", "running") else None

    run = wait_for(the_run, 60, "the request's run", interval=0.5)
    assert eventbatch("cancel", run["RowKey"]).returncode == 0
    out = eventbatch("retry", run["RowKey"])
    assert out.returncode == 1 and "refused" in out.stdout
    assert "environment overrides (SLEEP_SECONDS)" in out.stdout and "send the request again" in out.stdout
    assert "120" not in out.stdout  # the value itself is never shown
    assert not record(app_stack, "sleep", run["RowKey"]).get("supersededBy")
