"""Issue 17.6: a Batch outage ends a request failed with a reason and a message after its bounded deliveries, and
`eventbatch replay` brings back what the host poisoned. Real Azurite and emulator; "Batch is down" is a Batch
endpoint nothing listens on (the emulator stopped)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from shared import ids
from tests.integration.app.conftest import REPO, wait_running

pytestmark = pytest.mark.integration
MAX_DEQUEUE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"


def _dead_endpoint() -> str:
    """A loopback URL with nothing listening: Batch as it is while the emulator is stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _request(app, name: str) -> str:
    app.upload(name, b"words during an outage\n")
    return json.dumps({"pipeline": "transform", "inputs": [f"{app.input_container}/{name}"]})


def test_a_request_batch_cannot_take_is_failed_with_the_reason_on_its_last_delivery(app):
    """Batch unreachable, maxDequeueCount 3 (the host setting): deliveries 1 and 2 raise RequestDeferred (the host
    delivers again) with the run `received`; delivery 3 fails the run NotSubmitted with the connection error as the
    reason and one failure message, and returns, so the host never poisons the message."""
    from shared.context import create_context, set_context
    from shared.errors import RequestDeferred
    from shared.settings import load_settings

    ctx = create_context(load_settings({**app.settings_env, "BATCH_ACCOUNT_URL": _dead_endpoint(),
                                           "BATCH_RETRY_BUDGET": "PT1S", MAX_DEQUEUE: "3"}))
    set_context(ctx)
    try:
        body = _request(app, "transform/request during outage.txt")
        message_id = "outage-msg-1"
        run_ids: set[str] = set()
        for delivery in (1, 2):
            started = time.monotonic()
            with pytest.raises(RequestDeferred) as raised:
                app.request(body, message_id=message_id, dequeue_count=delivery)
            assert time.monotonic() - started < 30  # bounded by BATCH_RETRY_BUDGET, not two minutes per call
            run_ids = set(raised.value.unsubmitted)
            assert len(run_ids) == 1
            assert ctx.runs.get("transform", next(iter(run_ids)))["state"] == "received"
        app.request(body, message_id=message_id, dequeue_count=3)
        (run_id,) = run_ids
        rec = ctx.runs.get("transform", run_id)
        assert rec["state"] == "failed" and rec["notified"] is True and rec["failureCode"] == "NotSubmitted"
        assert "not submitted to Batch after 3 deliveries of its request" in rec["reason"]
        assert rec["requestId"] == ids.request_id(None, message_id, body)
        failures = [m for m in app.drain_queue(ctx.settings.queues.failures) if m["runId"] == run_id]
        assert len(failures) == 1 and failures[0]["failure"]["code"] == "NotSubmitted"
        assert failures[0]["failure"]["message"] == rec["reason"]
        assert ctx.runs.inbox_entry("transform", run_id) is None  # nothing left for the safety net
    finally:
        set_context(app.ctx)


# ---- through the local Functions host ---------------------------------------------------------------------
@pytest.fixture
def start_host(stack, tmp_path):
    """Start the local host on the app (local.settings.sample.json with fresh names and `values`); stops it and
    removes its resources at the end."""
    import secrets

    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    procs, made = [], []

    def start(batch_url: str, extra: dict | None = None, values: dict | None = None, run: bool = True):
        sample = json.loads((REPO / "local.settings.sample.json").read_text())
        if values is None:
            tag = secrets.token_hex(3)
            values = sample["Values"]
            values.update({
                "AzureWebJobsStorage": stack.storage_connection_string,
                "EVENTBATCH_STORAGE": stack.storage_connection_string, "WORKER_IMAGE": stack.worker_image,
                "INPUT_CONTAINER": f"oin-{tag}", "OUTPUT_CONTAINER": f"oout-{tag}", "REQUESTS_QUEUE": f"oreq-{tag}",
                "SUBMIT_QUEUE": f"osub-{tag}", "REJECTED_QUEUE": f"orej-{tag}", "COMPLETIONS_QUEUE": f"odone-{tag}",
                "FAILURES_QUEUE": f"ofail-{tag}", "CHECK_QUEUE": f"ochk-{tag}", "RUNS_TABLE": f"oruns{tag}",
                "MARKER_CONTAINER": f"omark-{tag}", "JOB_ID_PREFIX": f"o{tag}",
                "DEADLETTER_CONTAINER": f"odead-{tag}", "RECONCILE_SCHEDULE": "*/1 * * * * *",
            })
            BlobServiceClient.from_connection_string(stack.storage_connection_string).create_container(
                values["INPUT_CONTAINER"])
            made.append(values)
        values = {**values, "BATCH_ACCOUNT_URL": batch_url, **(extra or {})}
        settings = tmp_path / f"local.settings.{len(procs)}.json"
        settings.write_text(json.dumps({**sample, "Values": values}))
        log = tmp_path / f"host.{len(procs)}.log"
        if not run:
            return values, settings, log
        state = tmp_path / f"state{len(procs)}"
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "devstack.func_host", "--app-dir", str(REPO), "--settings", str(settings),
                 "--state-dir", str(state), "--host-id", f"test-{secrets.token_hex(3)}"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
        wait_running(state, procs[-1], log)  # its Event Grid stand-in announces what is uploaded from now on
        return values, settings, log

    def stop_all():
        while procs:
            proc = procs.pop()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    start.stop_all = stop_all
    yield start
    stop_all()
    blob = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    queues = QueueServiceClient.from_connection_string(stack.storage_connection_string)
    for values in made:
        cleanup = [lambda c=values[k]: blob.delete_container(c) for k in values if k.endswith("_CONTAINER")]
        cleanup += [lambda q=values[k]: queues.delete_queue(q) for k in values if k.endswith("_QUEUE")]
        cleanup += [lambda q=values["REQUESTS_QUEUE"]: queues.delete_queue(q + "-poison")]
        cleanup.append(lambda t=values["RUNS_TABLE"]: TableServiceClient.from_connection_string(
            stack.storage_connection_string).delete_table(t))
        for action in cleanup:
            try:
                action()
            except Exception:  # noqa: BLE001, S110 - best effort cleanup
                pass


def _wait_message(queue, predicate, log, timeout=90.0) -> dict:
    from azure.core.exceptions import ResourceNotFoundError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages = queue.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            messages = []  # the app creates its queues with its context, at its first invocation
        for m in messages:
            data = json.loads(m.content)
            if predicate(data):
                return data
        time.sleep(0.5)
    raise AssertionError(f"no matching message on {queue.queue_name}; host log:\n{log.read_text()[-4000:]}")


def _count(queue) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return queue.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


def test_through_the_host_an_outage_fails_the_request_with_a_message_instead_of_poisoning_it(stack, start_host):
    """The real local host delivers the request (maxDequeueCount 2 by app setting, as on Azure) while Batch is
    down: after its last delivery the run is failed with a reason, a failure message is out, and requests-poison
    stays empty. (The host's blob trigger also sees the input as a blob run, which waits on the submit queue.)"""
    from azure.storage.queue import QueueServiceClient

    values, _, log = start_host(_dead_endpoint(), {MAX_DEQUEUE: "2", "BATCH_RETRY_BUDGET": "PT1S",
                                                   "AzureFunctionsJobHost__extensions__queues__visibilityTimeout":
                                                       "00:00:01"})
    queues = QueueServiceClient.from_connection_string(stack.storage_connection_string)
    from azure.storage.blob import BlobServiceClient

    name = "transform/through the host during an outage.txt"
    BlobServiceClient.from_connection_string(stack.storage_connection_string).get_blob_client(
        values["INPUT_CONTAINER"], name).upload_blob(b"outage\n")
    requests = queues.get_queue_client(values["REQUESTS_QUEUE"])
    deadline = time.monotonic() + 60
    while True:  # the host creates the app's queues at its first invocation's context
        try:
            requests.send_message(json.dumps({"pipeline": "transform",
                                              "inputs": [f"{values['INPUT_CONTAINER']}/{name}"]}))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    failure = _wait_message(queues.get_queue_client(values["FAILURES_QUEUE"]),
                            lambda m: m.get("requestId") and (m.get("input") or {}).get("name") == name, log)
    assert failure["failure"]["code"] == "NotSubmitted"
    assert "after 2 deliveries of its request" in failure["failure"]["message"]
    time.sleep(2)
    assert _count(queues.get_queue_client(values["REQUESTS_QUEUE"] + "-poison")) == 0
    assert _count(requests) == 0


def _replay(settings, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", "replay", "--settings", str(settings), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=180)


def test_replay_counts_without_changing_anything_and_apply_brings_a_poisoned_request_back(stack, start_host,
                                                                                          batch_emulator):
    """A request the host poisoned (its body copied to requests-poison, as the host does) and a dead-lettered
    BlobCreated event: `eventbatch replay` counts both per source and changes nothing; `--apply` moves them back
    (the request onto the requests queue, the event into the blob intake), and with Batch up both then succeed."""
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    # No host yet: nothing but the replay may pick up the dead-lettered blob's event.
    values, settings, _ = start_host(batch_emulator, run=False)
    blob = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    queues = QueueServiceClient.from_connection_string(stack.storage_connection_string)
    name, late = "transform/poisoned request.txt", "transform/dead lettered event.txt"
    blob.get_blob_client(values["INPUT_CONTAINER"], name).upload_blob(b"poisoned\n")
    blob.get_blob_client(values["INPUT_CONTAINER"], late).upload_blob(b"late\n")
    body = json.dumps({"pipeline": "transform", "inputs": [f"{values['INPUT_CONTAINER']}/{name}"],
                       "idempotencyKey": "replayed-1"})
    poison = queues.get_queue_client(values["REQUESTS_QUEUE"] + "-poison")
    poison.create_queue()
    poison.send_message(body)
    dead = blob.get_container_client(values["DEADLETTER_CONTAINER"])
    dead.create_container()
    event = {"id": "e1", "eventType": "Microsoft.Storage.BlobCreated",
             "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
             "subject": f"/blobServices/default/containers/{values['INPUT_CONTAINER']}/blobs/{late}",
             "data": {"api": "PutBlob", "url": f"{blob.url}{values['INPUT_CONTAINER']}/{late}"}}
    dead.upload_blob("topic/sub/2026/12/03/14/e1.json", json.dumps([event]))

    dry = _replay(settings)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"{values['REQUESTS_QUEUE']}-poison: 1 message(s) -> {values['REQUESTS_QUEUE']}" in dry.stdout
    assert f"{values['DEADLETTER_CONTAINER']}: 1 event(s) in 1 blob(s) -> blob intake" in dry.stdout
    assert "dry run: 2 item(s) to replay, nothing changed" in dry.stdout
    assert _count(poison) == 1 and len(list(dead.list_blobs())) == 1
    assert _count(queues.get_queue_client(values["REQUESTS_QUEUE"])) == 0

    applied = _replay(settings, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "moved back 2 of 2 item(s)" in applied.stdout
    assert f"{late}': queued" in applied.stdout  # recorded and submitted by the replay, not by a scan
    assert _count(poison) == 0 and list(dead.list_blobs()) == []
    (back,) = queues.get_queue_client(values["REQUESTS_QUEUE"]).peek_messages()
    assert back.content == body

    _, _, log = start_host(batch_emulator, values=values)
    done = queues.get_queue_client(values["COMPLETIONS_QUEUE"])
    request_id = ids.request_id("replayed-1", None, "")
    first = _wait_message(done, lambda m: m.get("requestId") == request_id, log, timeout=120)
    second = _wait_message(done, lambda m: not m.get("requestId") and (m.get("input") or {}).get("name") == late,
                           log, timeout=120)
    assert first["state"] == second["state"] == "succeeded"
    assert first["input"]["name"] == name


def test_replay_hands_a_blob_version_the_host_poisoned_to_the_blob_intake(app):
    """A message on webjobs-blobtrigger-poison (the host's shape) for a blob of the app: the dry run counts it and
    leaves it; --apply hands the blob to the blob intake, which records and submits it, and the run succeeds."""
    from azure.core.exceptions import ResourceExistsError

    from shared.intake import handle_blob
    from shared.replay import BLOB_POISON_QUEUE, Replayer

    name = "transform/poisoned blob version.txt"
    app.upload(name, b"poisoned blob\n")
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    queue = app.ctx.storage.queue.get_queue_client(BLOB_POISON_QUEUE)
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass
    queue.send_message(json.dumps({"Type": "BlobTrigger", "FunctionId": "Host.Functions.blob_intake",
                                   "BlobType": "BlockBlob", "ContainerName": app.input_container, "BlobName": name,
                                   "ETag": etag}))

    def ours():
        return [m for m in queue.peek_messages(max_messages=32) if name in m.content]

    replayer = Replayer(app.ctx.storage, app.ctx.settings, app.ctx.config,
                        lambda: lambda container, blob: handle_blob(app.ctx, container, blob).status)
    dry = {r.source: r for r in replayer.run()}
    assert dry[BLOB_POISON_QUEUE].found >= 1 and dry[BLOB_POISON_QUEUE].moved == 0 and len(ours()) == 1
    applied = {r.source: r for r in replayer.run(apply=True)}
    (line,) = [line for line in applied[BLOB_POISON_QUEUE].lines if name in line]
    assert line.endswith(": queued")
    assert ours() == []
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    assert app.wait_terminal("transform", [run_id])[run_id]["state"] == "succeeded"
