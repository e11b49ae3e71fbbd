"""The app under the local Functions host (devstack.func_host), as `make up` runs it: the Event Grid blob
trigger with the SDK-type BlobClient binding, the queue trigger, and the drain and reconciler timers, with
settings from local.settings.sample.json pointed at this session's private emulator and fresh resource names."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from tests.integration.app.conftest import REPO, wait_running

pytestmark = pytest.mark.integration


@pytest.fixture
def host(stack, batch_emulator, tmp_path):
    tag = secrets.token_hex(3)
    sample = json.loads((REPO / "local.settings.sample.json").read_text())
    values = sample["Values"]
    values.update({
        "AzureWebJobsStorage": stack.storage_connection_string, "EVENTBATCH_STORAGE": stack.storage_connection_string,
        "BATCH_ACCOUNT_URL": batch_emulator, "WORKER_IMAGE": stack.worker_image,
        "INPUT_CONTAINER": f"hin-{tag}", "OUTPUT_CONTAINER": f"hout-{tag}", "REQUESTS_QUEUE": f"hreq-{tag}",
        "SUBMIT_QUEUE": f"hsub-{tag}", "REJECTED_QUEUE": f"hrej-{tag}", "COMPLETIONS_QUEUE": f"hdone-{tag}",
        "FAILURES_QUEUE": f"hfail-{tag}", "RUNS_TABLE": f"hruns{tag}", "JOB_ID_PREFIX": f"h{tag}",
        "RECONCILE_SCHEDULE": "*/1 * * * * *",
    })
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps(sample))
    blob = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    blob.create_container(values["INPUT_CONTAINER"])
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.func_host", "--app-dir", str(REPO), "--settings",
                                 str(settings), "--state-dir", str(tmp_path / "state"), "--host-id", f"test-{tag}"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        # Uploads from now on are announced: the host's Event Grid stand-in subscribes when it starts, and like a
        # real subscription it delivers what is written after that, not what the container held before.
        wait_running(tmp_path / "state", proc, log)
        yield values, blob, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        from azure.data.tables import TableServiceClient

        queues = QueueServiceClient.from_connection_string(stack.storage_connection_string)
        containers = (values["INPUT_CONTAINER"], values["OUTPUT_CONTAINER"])
        cleanup = [lambda c=c: blob.delete_container(c) for c in containers]
        cleanup += [lambda q=values[k]: queues.delete_queue(q) for k in values if k.endswith("_QUEUE")]
        cleanup.append(lambda: TableServiceClient.from_connection_string(
            stack.storage_connection_string).delete_table(values["RUNS_TABLE"]))
        for action in cleanup:
            try:
                action()
            except Exception:  # noqa: BLE001, S110 - best effort cleanup
                pass


def _wait_blob(blob, container, name, log, timeout=60):
    deadline = time.monotonic() + timeout
    client = blob.get_blob_client(container, name)
    while time.monotonic() < deadline:
        if client.exists():
            return json.loads(client.download_blob().readall())
        time.sleep(0.5)
    raise AssertionError(f"{container}/{name} did not appear; host log:\n{log.read_text()[-4000:]}")


def test_blob_and_request_through_the_local_host(stack, host):
    values, blob, log = host
    name = "transform/through the host.txt"
    blob.get_blob_client(values["INPUT_CONTAINER"], name).upload_blob(b"via host\n")
    manifest = _wait_blob(blob, values["OUTPUT_CONTAINER"], f"{name}/manifest.json", log)
    assert manifest["state"] == "succeeded" and manifest["input"]["name"] == name
    queues = QueueServiceClient.from_connection_string(stack.storage_connection_string)
    queues.get_queue_client(values["REQUESTS_QUEUE"]).send_message(json.dumps(
        {"pipeline": "transform", "inputs": [f"{values['INPUT_CONTAINER']}/{name}"], "idempotencyKey": "host-1",
         "overrides": {"environment": {"TRANSFORM_MODE": "lower"}}}))
    queues.get_queue_client(values["REQUESTS_QUEUE"]).send_message("not json at all")
    deadline = time.monotonic() + 60
    done = queues.get_queue_client(values["COMPLETIONS_QUEUE"])
    rejected = queues.get_queue_client(values["REJECTED_QUEUE"])
    seen, refused = [], []
    ended = []
    while time.monotonic() < deadline and (len(seen) < 2 or not ended or not refused):
        everything = [json.loads(m.content) for m in done.peek_messages(max_messages=32)]
        seen = [m for m in everything if m.get("kind") != "request"]  # one message per run
        ended = [m for m in everything if m.get("kind") == "request"]  # and one when the request has ended
        refused = [json.loads(m.content) for m in rejected.peek_messages(max_messages=32)]
        time.sleep(0.5)
    assert len(seen) == 2, log.read_text()[-4000:]
    assert {m["requestId"] is not None for m in seen} == {True, False}
    request_id = next(m["requestId"] for m in seen if m["requestId"])
    assert [(m["requestId"], m["state"]) for m in ended] == [(request_id, "succeeded")], ended
    assert len(refused) == 1 and refused[0]["code"] == "malformed" and refused[0]["payload"] == "not json at all"
