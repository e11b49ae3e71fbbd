"""Quotas against real services: Azurite, the registry's worker image, and a private Batch emulator that enforces
an active job quota (--active-job-quota 2), running tasks in real containers on one node of 4 task slots.

- maxConcurrentTasks: 6 inputs of a pipeline limited to 2 never have more than 2 tasks in Batch at once, end
  succeeded, and go to Batch in the order they came; the held ones say why in their records meanwhile.
- a job whose tasks can never run ends by its maxWallClockTime, and the safety net fails its runs (JobEnded).
- the active job quota: a job add refused with ActiveJobAndScheduleQuotaReached is recorded on the run (the reason
  names the quota), the run waits on the submit queue's back-off, and once a job is gone it is retried and runs.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
import yaml
from azure.batch import models

from devstack.batch_emulator.launcher import EmulatorProcess
from shared import ids
from shared.completion import check_task
from shared.intake import handle_blob
from shared.messages import CheckMessage
from shared.reconcile import Reconciler
from shared.submission import retry_from_message

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
SLOW = ("/bin/sh -c 'sleep 2 && mkdir -p \"$AZ_BATCH_TASK_WORKING_DIR/out\" && "
        "echo done > \"$AZ_BATCH_TASK_WORKING_DIR/out/result.txt\"'")


def _pipeline(name: str, **extra) -> dict:
    return {"name": name, "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}", "commandLine": SLOW,
            "inputs": {"blob": {"container": "${INPUT_CONTAINER}", "prefix": f"{name}/", "glob": "*"}},
            "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{inputKey}", "patterns": ["out/**"]},
            "maxWallClockTime": "PT5M", **extra}


@pytest.fixture(scope="module")
def quota_emulator(stack, tmp_path_factory):
    data = tmp_path_factory.mktemp("quota-batch")
    with EmulatorProcess(data / "state", "auto", stack.batch_emulator_env(), ("--active-job-quota", "2"),
                         account=stack.batch_account, key=stack.batch_key, log=data / "emulator.log",
                         stop_timeout=15) as emu:
        if emu.health().get("runtime") == "unavailable":
            pytest.fail("no container runtime for the Batch emulator", pytrace=False)
        yield emu.url


@pytest.fixture(scope="module")
def ctx(stack, quota_emulator, tmp_path_factory):
    from shared.context import create_context
    from shared.settings import load_settings

    tag = secrets.token_hex(3)
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    nodeless = {**doc["pools"][0], "id": "nodeless", "scale": {"mode": "fixed", "dedicatedNodes": 0, "spotNodes": 0}}
    doc["pools"].append(nodeless)  # a pool that never gets a node: its tasks can never run
    doc["pipelines"] = [_pipeline("limited", maxConcurrentTasks=2), _pipeline("quota", priority=100),
                        {**_pipeline("stranded"), "pool": "nodeless"}]
    pipelines = tmp_path_factory.mktemp("quota-app") / "pipelines.yaml"
    pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {
        "EVENTBATCH_STORAGE": stack.storage_connection_string, "BATCH_ACCOUNT_URL": quota_emulator,
        "BATCH_ACCOUNT_NAME": stack.batch_account, "BATCH_ACCOUNT_KEY": stack.batch_key,
        "WORKER_IMAGE": stack.worker_image, "REGISTRY_SERVER": stack.registry_server,
        "REGISTRY_USERNAME": stack.registry_username, "REGISTRY_PASSWORD": stack.registry_password,
        "PIPELINES_FILE": str(pipelines), "INPUT_CONTAINER": f"in-{tag}", "OUTPUT_CONTAINER": f"out-{tag}",
        "REQUESTS_QUEUE": f"requests-{tag}", "SUBMIT_QUEUE": f"submit-{tag}", "REJECTED_QUEUE": f"rejected-{tag}",
        "COMPLETIONS_QUEUE": f"completions-{tag}", "FAILURES_QUEUE": f"failures-{tag}", "RUNS_TABLE": f"runs{tag}",
        "CHECK_QUEUE": f"check-{tag}", "MARKER_CONTAINER": f"markers-{tag}", "JOB_ID_PREFIX": f"q{tag}",
        "POOL_SCALE_MODE": "fixed", "POOL_FIXED_NODES": "1", "RESUBMIT_AFTER": "PT5S",
        # The app's own count would stop at 80 % of 2 jobs; with its share at 100 % of 3 it lets Batch refuse.
        "BATCH_ACTIVE_JOB_QUOTA": "3", "ACTIVE_JOB_QUOTA_SHARE": "1",
    }
    context = create_context(load_settings(env))
    context.storage.blob.create_container(env["INPUT_CONTAINER"])
    yield context
    context.batcher.close()
    for container in (env["INPUT_CONTAINER"], env["OUTPUT_CONTAINER"], env["MARKER_CONTAINER"]):
        context.storage.blob.delete_container(container)
    for queue in context.settings.queues.all():
        context.messenger.client(queue).delete_queue()
    context.runs.table.delete_table()


def _upload(ctx, name: str) -> str:
    """Upload a blob and deliver its BlobCreated event to the intake; returns the run id."""
    container = ctx.settings.input_container
    client = ctx.storage.blob.get_blob_client(container, name)
    etag = client.upload_blob(name.encode(), overwrite=True)["etag"]
    result = handle_blob(ctx, container, name)
    assert result.status == "queued", result
    return ids.blob_task_id(name.split("/")[0], container, name, etag)


def _deliver(ctx) -> None:
    """What Event Grid and the host do: every marker fires the completion, every due check message too."""
    markers = ctx.storage.blob.get_container_client(ctx.settings.marker_container)
    for blob in markers.list_blobs():
        job_id, _, task_id = blob.name.partition("/")
        check_task(ctx, job_id, task_id)
    checks = ctx.messenger.client(ctx.settings.queues.check)
    for m in checks.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30):
        check = CheckMessage.from_body(m.content)
        check_task(ctx, check.job_id, check.task_id, check.attempt)
        checks.delete_message(m)


def _not_completed(ctx, job_id: str) -> int:
    return sum(1 for t in ctx.batch.list_tasks(job_id, select=["id", "state"]) if t.state != "completed")


def test_six_inputs_with_a_limit_of_two_never_run_more_than_two_and_all_succeed_in_order(ctx):
    runs = [_upload(ctx, f"limited/{i}.txt") for i in range(6)]
    assert ctx.batcher.wait_idle(30)
    records = {r: ctx.runs.get("limited", r) for r in runs}
    held = [r for r in runs if records[r]["state"] == "received"]
    assert len(held) == 4, {r: rec["state"] for r, rec in records.items()}
    assert all(records[r]["held"] == "held: 2/2 running (maxConcurrentTasks)" for r in held)
    job_id = next(rec["jobId"] for rec in records.values() if rec.get("jobId"))
    most, deadline = 0, time.monotonic() + 180
    while time.monotonic() < deadline:
        most = max(most, _not_completed(ctx, job_id))
        _deliver(ctx)
        ctx.batcher.wait_idle(10)
        most = max(most, _not_completed(ctx, job_id))
        states = {r: ctx.runs.get("limited", r)["state"] for r in runs}
        if all(s == "succeeded" for s in states.values()):
            break
        time.sleep(0.3)
    assert all(s == "succeeded" for s in states.values()), states
    assert most <= 2, f"{most} tasks were in Batch at once with maxConcurrentTasks 2"
    assert most == 2  # and the limit was used, not one at a time
    done = [ctx.runs.get("limited", r) for r in runs]
    submitted = [r["submittedAt"] for r in done]
    assert submitted == sorted(submitted), "the held runs went to Batch in another order than they came"
    assert not any(r.get("held") for r in done)  # the reason went with the release
    assert [e for e in ctx.runs.inbox("limited") if e.get("held")] == []


def test_a_refused_job_is_recorded_with_the_quota_and_retried_once_a_job_is_gone(ctx):
    pool = ctx.config.pipelines["quota"].pool
    ctx.submitter.ensure_pool(pool)
    active = [j.id for j in ctx.batch.list_jobs(filter="state eq 'active'")]
    others = [f"other-{secrets.token_hex(3)}" for _ in range(2 - len(active))]
    for job_id in others:  # the account is full: other work holds the rest of its 2 active jobs
        ctx.batch.create_job(models.BatchJobCreateOptions({"id": job_id, "poolInfo": {"poolId": pool}}))
    run = _upload(ctx, "quota/a.txt")
    assert ctx.batcher.wait_idle(30)
    record = ctx.runs.get("quota", run)
    assert record["state"] == "received"
    assert "active job quota reached" in record["lastError"]
    assert "ActiveJobAndScheduleQuotaReached" in record["lastError"]
    entry = ctx.runs.inbox_entry("quota", run)
    assert entry["attempts"] == 1 and "active job quota" in entry["lastError"]
    # Room again: the other work's job ended. The retry message comes due after its back-off (15 s).
    for job_id in others:
        ctx.batch.begin_delete_job(job_id).result()
    queue = ctx.messenger.client(ctx.settings.queues.submit)
    deadline = time.monotonic() + 60
    retried = None
    while retried is None and time.monotonic() < deadline:
        for m in queue.receive_messages(max_messages=32):
            retried = retry_from_message(ctx, m.content)
            queue.delete_message(m)
        time.sleep(1)
    assert retried is not None and retried.submitted == [run], retried
    deadline = time.monotonic() + 120
    while ctx.runs.get("quota", run)["state"] != "succeeded" and time.monotonic() < deadline:
        _deliver(ctx)
        time.sleep(0.5)
    assert ctx.runs.get("quota", run)["state"] == "succeeded"
    job = ctx.batch.get_job(ctx.runs.get("quota", run)["jobId"])
    assert job.priority == 100 and job.constraints.max_wall_clock_time is not None


def test_a_job_that_ends_by_its_wall_clock_fails_its_unrun_runs_with_the_reason(ctx):
    for job in ctx.batch.list_jobs(filter="state eq 'active'"):  # room under the quota of 2: the finished work's
        ctx.batch.begin_delete_job(job.id).result()
        ctx.submitter.forget_job(job.id)
    run = _upload(ctx, "stranded/a.txt")
    assert ctx.batcher.wait_idle(30)
    record = ctx.runs.get("stranded", run)
    assert record["state"] == "submitted"
    job_id = record["jobId"]
    assert ctx.batch.get_job(job_id).constraints.max_wall_clock_time is not None  # sized by the app
    # The app's limit is a day and more; shorten it the way an operator can, through Batch, to see it end now.
    ctx.batch.update_job(job_id, models.BatchJobUpdateOptions({"constraints": {"maxWallClockTime": "PT1S"}}))
    deadline = time.monotonic() + 30
    while ctx.batch.get_job(job_id).state != "completed":
        assert time.monotonic() < deadline, "the emulator did not end the job at its wall clock"
        time.sleep(0.5)
    assert ctx.batch.get_job(job_id).as_dict()["executionInfo"]["terminateReason"] == "MaxWallClockTimeExpiry"
    result = Reconciler(ctx).tick()
    assert run in result.failed
    record = ctx.runs.get("stranded", run)
    assert record["state"] == "failed" and record["failureCode"] == "JobEnded"
    assert "MaxWallClockTimeExpiry" in record["failureMessage"] and job_id in record["failureMessage"]
    failures = [m for m in _messages(ctx, ctx.settings.queues.failures) if m.get("runId") == run]
    assert len(failures) == 1 and failures[0]["state"] == "failed"


def _messages(ctx, queue: str) -> list[dict]:
    import json

    return [json.loads(m.content) for m in ctx.messenger.client(queue).peek_messages(max_messages=32)]
