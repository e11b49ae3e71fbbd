"""The operator's CLI on the running app: `wait` with its exit codes, `logs --follow`, `status RUN` links, --json.

Everything real: the Functions host, Azurite, the Batch emulator running the worker image in containers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import pytest

from devstack.common import paths
from shared import ids

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def eventbatch(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)


def send_transform_request(access, tag: str, mode: str) -> tuple[str, str]:
    """Put one file under transform's input prefix (a request may only name blobs there; uploaded with the SDK, no
    event is published) and send a transform request overriding TRANSFORM_MODE; (request id, run id)."""
    name = f"transform/{tag}/in.txt"
    blob = access.storage.blob.get_blob_client("input", name)
    etag = blob.upload_blob(b"some text\n", overwrite=True)["etag"]
    body = json.dumps({"pipeline": "transform", "inputs": [f"input/{name}"],
                       "overrides": {"environment": {"TRANSFORM_MODE": mode}}})
    message = access.storage.queue.get_queue_client(access.settings.queues.requests).send_message(body)
    request_id = ids.request_id(None, message.id, body)
    return request_id, ids.request_task_id("transform", request_id, "input", name, str(etag))


def test_wait_request_succeeds_and_json_parses(app_stack, tmp_path):
    files = []
    for i, words in enumerate((2, 4)):
        f = tmp_path / f"w{i}.txt"
        f.write_text(" ".join(["w"] * words) + "\n")
        files.append(str(f))
    sent = eventbatch("submit", "wordcount", "--request", *files, "--prefix", f"ops-{secrets.token_hex(3)}",
                      "--json")
    assert sent.returncode == 0, sent.stderr
    request = json.loads(sent.stdout)
    assert len(request["runs"]) == 3 and request["mergeRun"] == request["runs"][-1]["runId"]

    waited = eventbatch("wait", "--request", request["requestId"], "--timeout", "150")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "all 3 run(s) succeeded" in waited.stdout
    assert "waiting for request" in waited.stdout  # the progress, as plain lines on a pipe

    as_json = eventbatch("wait", "--request", request["requestId"], "--json", "--timeout", "10")
    assert as_json.returncode == 0
    final = json.loads(as_json.stdout)
    assert final["done"] and not final["timedOut"] and final["counts"] == {"succeeded": 3}
    assert {r["run_id"] for r in final["runs"]} == {r["runId"] for r in request["runs"]}


def test_wait_exits_1_when_a_run_failed_and_logs_show_why(app_stack):
    request_id, run_id = send_transform_request(app_stack.access, f"ops-fail-{secrets.token_hex(3)}", "bogus")
    waited = eventbatch("wait", "--request", request_id, "--timeout", "150")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "not all succeeded" in waited.stdout and run_id in waited.stdout

    by_run = eventbatch("wait", run_id, "--timeout", "10", "--json")
    assert by_run.returncode == 1
    final = json.loads(by_run.stdout)["runs"][0]
    assert final["state"] == "failed" and final["exit_code"] == 2  # transform.sh: unknown TRANSFORM_MODE

    logs = eventbatch("logs", run_id, "--json")
    data = json.loads(logs.stdout)
    assert data["state"] == "failed" and set(data["logs"]) == {"stdout", "stderr"}
    assert data["logs"]["stderr"]["url"].startswith(app_stack.access.storage.blob_endpoint + "/output/")


def test_wait_times_out_with_exit_2_and_bad_usage_is_3(app_stack):
    started = time.monotonic()
    out = eventbatch("wait", "transform-" + "z" * 26, "--timeout", "1.5")
    assert out.returncode == 2, out.stdout + out.stderr
    assert 1.4 < time.monotonic() - started < 30
    assert "timed out after 1.5s" in out.stdout and "not recorded yet" in out.stdout
    assert eventbatch("wait").returncode == 3
    assert eventbatch("wait", "--request", "x", "--pipeline", "no-such-pipeline").returncode == 3


def test_logs_follow_on_an_ended_run_prints_the_uploaded_logs(app_stack, tmp_path):
    doc = tmp_path / "follow.txt"
    doc.write_text("one\ntwo\nthree\n")
    sent = eventbatch("submit", "transform", str(doc), "--prefix", f"ops-follow-{secrets.token_hex(3)}", "--json")
    run_id = json.loads(sent.stdout)["uploaded"][0]["run_id"]
    assert eventbatch("wait", run_id, "--timeout", "120").returncode == 0
    followed = eventbatch("logs", run_id, "--follow", timeout=240)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.count("transform: 14 bytes, 3 lines") == 1


def test_logs_follow_streams_a_running_task(app_stack):
    """`logs RUN --follow` on a run whose task is still running: output shows up before the task completes, the
    command ends once the run is recorded as ended. The task is a slow one made for the test (the sample pipelines
    finish in a second); its run record is what the app writes for a running run."""
    from azure.batch import models

    from devstack.tools.access import batch_client

    access = app_stack.access
    client = batch_client(access)
    job, run_id = f"e2e-follow-{secrets.token_hex(3)}", f"transform-e2efollow{secrets.token_hex(4)}"
    client.create_job(models.BatchJobCreateOptions(id=job, pool_info=models.BatchPoolInfo(
        pool_id=access.config.pipelines["transform"].pool)))
    runs = access.runs.table
    try:
        client.create_task(job, models.BatchTaskCreateOptions(
            id=run_id, command_line='/bin/sh -c "echo first; echo oops >&2; sleep 6; echo second"',
            container_settings=models.BatchTaskContainerSettings(image_name=access.settings.environ["WORKER_IMAGE"])))
        runs.upsert_entity({"PartitionKey": "transform", "RowKey": run_id, "state": "running", "kind": "task",
                            "jobId": job, "taskId": run_id, "runningAt": "2026-01-01T00:00:00.000Z",
                            "outputContainer": "output", "outputPrefix": f"e2e-follow/{run_id}"})
        proc = subprocess.Popen([sys.executable, "-m", "devstack.cli", "logs", run_id, "--follow"],
                                cwd=paths.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # blocks until the first line was streamed
        state = client.get_task(job, run_id, select=["id", "state"]).state
        assert first == "first\n" and str(getattr(state, "value", state)) != "completed"
        while str(getattr(state, "value", state)) != "completed":
            time.sleep(0.5)
            state = client.get_task(job, run_id, select=["id", "state"]).state
        runs.update_entity({"PartitionKey": "transform", "RowKey": run_id, "state": "succeeded", "exitCode": 0})
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert first + out == "first\nsecond\n"
        assert "oops\n" in err and f"==> run {run_id} succeeded (exit code 0)" in err
    finally:
        client.begin_delete_job(job)
        runs.delete_entity("transform", run_id)


def test_status_run_shows_links_and_json_carries_them(app_stack, tmp_path):
    doc = tmp_path / "linked.txt"
    doc.write_text("link me\n")
    sent = eventbatch("submit", "transform", str(doc), "--prefix", f"ops-links-{secrets.token_hex(3)}", "--json")
    run_id = json.loads(sent.stdout)["uploaded"][0]["run_id"]
    assert eventbatch("wait", run_id, "--timeout", "120").returncode == 0
    detail = json.loads(eventbatch("status", run_id, "--json").stdout)
    blob = app_stack.access.storage.blob_endpoint
    assert detail["links"]["logs"]["stdout"].startswith(f"{blob}/output/")
    assert any(u.endswith("/result.txt") for u in detail["links"]["outputs"])
    assert detail["links"]["portal"] is None  # no BATCH_ACCOUNT_RESOURCE_ID locally
    text = eventbatch("status", run_id).stdout
    assert detail["links"]["manifest"] in text and detail["links"]["logs"]["stderr"] in text
    listed = json.loads(eventbatch("status", "--json", "--limit", "0").stdout)
    row = next(r for r in listed if r["run_id"] == run_id)
    assert row["links"]["outputsFolder"] == detail["links"]["outputsFolder"]


def test_replay_dry_run_json_counts_per_source(app_stack):
    out = eventbatch("replay", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["apply"] is False and report["moved"] == 0
    sources = {s["source"] for s in report["sources"]}
    assert f"{app_stack.access.settings.queues.requests}-poison" in sources
    assert report["found"] == sum(s["found"] for s in report["sources"])
