"""The function app against real services: Azurite and the registry from the shared `stack` fixture, and a
private Batch emulator (free port, temp data dir, the stack's podman settings) so that other suites' jobs, pools
and restarts never interfere with these tests and vice versa.

Each session uses its own containers, queues, table and job prefix. The functions are called the way Microsoft's
docs show: `function_app.app.get_functions()` (once), then `get_user_function()(input)` with azure.functions
input objects (QueueMessage, TimerRequest) or an azure.storage.blob.BlobClient for the SDK-type blob binding.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devstack.batch_emulator.launcher import EmulatorProcess

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def batch_emulator(stack, tmp_path_factory):
    """A private emulator with the stack's container runtime settings; yields its URL."""
    data = tmp_path_factory.mktemp("batch")
    with EmulatorProcess(data / "state", "auto", stack.batch_emulator_env(), account=stack.batch_account,
                         key=stack.batch_key, log=data / "emulator.log", stop_timeout=15) as emu:
        health = emu.health()
        if health.get("runtime") == "unavailable":
            pytest.fail(f"no container runtime for the Batch emulator: {health.get('runtimeProblem')} "
                        "(`make setup` installs podman)", pytrace=False)
        yield emu.url


TEST_PIPELINES = [
    {"name": "failing", "description": "Always fails (exit code from FAIL_EXIT_CODE): failure handling.",
     "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}", "commandLine": "/app/fail.sh",
     "inputs": {"blob": {"container": "${INPUT_CONTAINER}", "prefix": "failing/", "glob": "*"}, "queue": True},
     "environment": {"FAIL_EXIT_CODE": "7"},
     "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{inputKey}", "patterns": ["out/**"]},
     "retries": 1, "maxWallClockTime": "PT5M"},
    {"name": "widecount", "description": "wordcount with a fan-in of 3: exercises barrier tasks at small scale.",
     "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}", "commandLine": "/app/wordcount.sh",
     "inputs": {"queue": True},
     "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{request}/{inputKey}",
                 "patterns": ["out/**"]},
     "merge": {"commandLine": "/app/merge.sh", "outputs": {"path": "{pipeline}/{request}/_merged"}, "fanIn": 3},
     "maxWallClockTime": "PT5M"},
    {"name": "manyout", "description": "Writes 500 output files of ordinary names: large completions.",
     "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}",
     "commandLine": ("/bin/sh -c 'd=\"$AZ_BATCH_TASK_WORKING_DIR/out/daily-summary-by-region-and-product-line\" && "
                     "mkdir -p \"$d\" && i=1 && while [ $i -le 500 ]; do echo $i > \"$d/part-$i-of-00500.snappy"
                     ".parquet\"; i=$((i+1)); done'"),
     "inputs": {"blob": {"container": "${INPUT_CONTAINER}", "prefix": "manyout/", "glob": "*"}},
     "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{input}", "patterns": ["out/**"]},
     "maxWallClockTime": "PT5M"},
    {"name": "control", "description": "Positive control for the injection canary: deliberately creates it.",
     "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}",
     "commandLine": ("/bin/sh -c 'mkdir -p \"$AZ_BATCH_TASK_WORKING_DIR/out\" && "
                     "touch \"$AZ_BATCH_TASK_WORKING_DIR/out/pwned-control\"'"),
     "inputs": {"blob": {"container": "${INPUT_CONTAINER}", "prefix": "control/", "glob": "*"}},
     "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{input}", "patterns": ["out/**"]},
     "maxWallClockTime": "PT5M"},
    {"name": "nightly", "description": "transform over nightly/batch/*.txt at 02:00 UTC: scheduled pipelines.",
     "pool": "eventbatch-standard", "image": "${WORKER_IMAGE}", "commandLine": "/app/transform.sh",
     "inputs": {"blob": {"container": "${INPUT_CONTAINER}", "prefix": "nightly/", "glob": "*"}},
     "maxInputBytes": 64, "environment": {"TRANSFORM_MODE": "upper"},
     "schedule": {"cron": "0 0 2 * * *", "prefix": "nightly/batch/", "glob": "*.txt"},
     "outputs": {"container": "${OUTPUT_CONTAINER}", "path": "{pipeline}/{input}", "patterns": ["out/**"]},
     "maxWallClockTime": "PT5M"},
]


def wait_running(state_dir, proc, log, timeout: float = 60.0) -> None:
    """Until the host's status file says running (its subscriptions exist)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((state_dir / "status.json").read_text()).get("state") == "running":
                return
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"the host did not start; log:\n{log.read_text()[-3000:]}")


def grid_event(url: str, container: str, name: str, etag: str, size: int, content_type: str | None):
    """A BlobCreated event as the host's Event Grid trigger binding hands it to a function."""
    import azure.functions as func

    from devstack.func_host.events import blob_created_event

    event = blob_created_event(url, container, name, etag, size, content_type)
    return func.EventGridEvent(id=event["id"], data=event["data"], topic=event.get("topic") or "",
                               subject=event["subject"], event_type=event["eventType"], event_time=None,
                               data_version=event["dataVersion"])


@dataclass
class App:
    """The function app wired to this session's resources."""

    ctx: object
    functions: dict
    settings_env: dict
    input_container: str
    output_container: str
    data_container: str

    def call(self, name: str, arg):
        return self.functions[name].get_user_function()(arg)

    def blob_event(self, name: str, container: str | None = None, function: str = "blob_intake"):
        """What Event Grid delivers after an upload: a BlobCreated event (func.EventGridEvent) with the blob's ETag,
        size and content type, as the host's Event Grid trigger binding builds it. A blob that does not exist, or
        whose name Storage refuses, gets an event with a made-up ETag."""
        from azure.core.exceptions import HttpResponseError

        container = container or self.input_container
        client = self.ctx.storage.blob.get_blob_client(container, name)
        try:
            props = client.get_blob_properties()
            etag, size, content_type = props.etag, props.size, props.content_settings.content_type
        except (HttpResponseError, ValueError):  # not found, or a name Storage refuses (400)
            etag, size, content_type = "0x0", 0, None
        return self.call(function, grid_event(client.url, container, name, etag, size, content_type))

    def request(self, body: str | bytes, message_id: str | None = None, dequeue_count: int = 1):
        from azure.functions.queue import QueueMessage

        data = body.encode() if isinstance(body, str) else body
        return self.call("queue_intake", QueueMessage(id=message_id or secrets.token_hex(8), body=data,
                                                      dequeue_count=dequeue_count, pop_receipt="r"))

    def tick(self, name: str):
        from azure.functions.timer import TimerRequest

        return self.call(name, TimerRequest(past_due=False))

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the worker's Batcher has submitted everything the intake handed it."""
        assert self.ctx.batcher.wait_idle(timeout), "the batcher did not finish submitting"

    def deliver_events(self) -> int:
        """What the host does between invocations: every completion marker present fires task_marker (as its
        Event Grid blob event would), every due message on the check queue fires task_check. Returns how many
        invocations ran."""
        from azure.functions.queue import QueueMessage

        from shared.context import get_context

        ctx = get_context()
        count = 0
        markers = ctx.storage.blob.get_container_client(ctx.settings.marker_container)
        for blob in markers.list_blobs():
            url = markers.get_blob_client(blob.name).url
            self.call("task_marker", grid_event(url, ctx.settings.marker_container, blob.name, blob.etag, blob.size,
                                                blob.content_settings.content_type))
            count += 1
        checks = ctx.messenger.client(ctx.settings.queues.check)
        for m in checks.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30):
            self.call("task_check", QueueMessage(id=m.id, body=m.content.encode(), dequeue_count=m.dequeue_count,
                                                 pop_receipt=m.pop_receipt))
            checks.delete_message(m)
            count += 1
        return count

    def upload(self, name: str, data: bytes, container: str | None = None) -> None:
        self.ctx.storage.blob.get_blob_client(container or self.input_container, name).upload_blob(
            data, overwrite=True)

    def record(self, pipeline: str, run_id: str) -> dict | None:
        return self.ctx.runs.get(pipeline, run_id)

    def wait_terminal(self, pipeline: str, run_ids, timeout: float = 120.0) -> dict[str, dict]:
        """Deliver the runs' events (markers, checks) and tick the safety net, as the host would, until every run is
        terminal and notified."""
        pending = set(run_ids)
        done: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self.settle()
            self.deliver_events()
            self.tick("reconciler")
            for rid in list(pending):
                rec = self.record(pipeline, rid)
                if rec and rec.get("state") in ("succeeded", "failed", "rejected") and rec.get("notified"):
                    done[rid] = rec
                    pending.discard(rid)
            if pending:
                time.sleep(0.5)
        assert not pending, f"runs not finished after {timeout}s: " + ", ".join(
            f"{r}={(self.record(pipeline, r) or {}).get('state')}" for r in list(pending)[:5])
        return done

    def messages(self, queue: str) -> list[dict]:
        client = self.ctx.messenger.client(queue)
        return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]

    def drain_queue(self, queue: str) -> list[dict]:
        client = self.ctx.messenger.client(queue)
        out = []
        while True:
            batch = list(client.receive_messages(messages_per_page=32, max_messages=32))
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m.content))
                client.delete_message(m)

    def read_json(self, container: str, name: str) -> dict:
        return json.loads(self.ctx.storage.blob.get_blob_client(container, name).download_blob().readall())

    def read_text(self, container: str, name: str) -> str:
        return self.ctx.storage.blob.get_blob_client(container, name).download_blob().readall().decode()


@pytest.fixture(scope="session")
def app(stack, batch_emulator, tmp_path_factory):
    import function_app
    from shared.context import create_context, set_context
    from shared.settings import load_settings

    tag = secrets.token_hex(3)
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"].extend(TEST_PIPELINES)
    pipelines = tmp_path_factory.mktemp("app") / "pipelines.yaml"
    pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {
        "EVENTBATCH_STORAGE": stack.storage_connection_string,
        "BATCH_ACCOUNT_URL": batch_emulator, "BATCH_ACCOUNT_NAME": stack.batch_account,
        "BATCH_ACCOUNT_KEY": stack.batch_key,
        "WORKER_IMAGE": stack.worker_image, "REGISTRY_SERVER": stack.registry_server,
        "REGISTRY_USERNAME": stack.registry_username, "REGISTRY_PASSWORD": stack.registry_password,
        "PIPELINES_FILE": str(pipelines), "INPUT_CONTAINER": f"in-{tag}", "OUTPUT_CONTAINER": f"out-{tag}",
        "REQUESTS_QUEUE": f"requests-{tag}", "SUBMIT_QUEUE": f"submit-{tag}", "REJECTED_QUEUE": f"rejected-{tag}",
        "COMPLETIONS_QUEUE": f"completions-{tag}", "FAILURES_QUEUE": f"failures-{tag}", "RUNS_TABLE": f"runs{tag}",
        "CHECK_QUEUE": f"check-{tag}", "CONTROL_QUEUE": f"control-{tag}", "MARKER_CONTAINER": f"markers-{tag}",
        "JOB_ID_PREFIX": f"t{tag}", "POOL_SCALE_MODE": "fixed", "POOL_FIXED_NODES": "2",
        # The safety net takes over a run left `received` after 5 s (2 min on Azure), so its tests need not wait
        # long; a claimed message only after 30 s: a live but slow sender (a loaded machine) must not be repeated.
        "RESUBMIT_AFTER": "PT5S", "NOTIFY_REPAIR_AFTER": "PT30S",
    }
    ctx = create_context(load_settings(env))
    for container in (env["INPUT_CONTAINER"], f"data-{tag}"):  # the app creates its output containers itself
        ctx.storage.blob.create_container(container)
    assert ctx.storage.blob.get_container_client(env["OUTPUT_CONTAINER"]).exists()
    set_context(ctx)
    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    yield App(ctx=ctx, functions=functions, settings_env=env, input_container=env["INPUT_CONTAINER"],
              output_container=env["OUTPUT_CONTAINER"], data_container=f"data-{tag}")
    set_context(None)
    for container in (env["INPUT_CONTAINER"], env["OUTPUT_CONTAINER"], env["MARKER_CONTAINER"], f"data-{tag}"):
        ctx.storage.blob.delete_container(container)
    for queue in ctx.settings.queues.all():
        ctx.messenger.client(queue).delete_queue()
    ctx.runs.table.delete_table()
