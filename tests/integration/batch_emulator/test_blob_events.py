"""--blob-events: the output files a task stores reach the local Functions host as BlobCreated events (Event
Grid's schema, through the host's blob webhook), once the task shows completed, as the storage account's Event Grid
subscription brings them on Azure (the app's completion markers, issue 18)."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from azure.batch import models as m
from azure.storage.blob import BlobServiceClient

from tests.helpers import wait_for

from .conftest import Emulator, vm_config, wait_nodes

pytestmark = pytest.mark.integration


class _Hook(BaseHTTPRequestHandler):
    """Stands in for the host's /runtime/webhooks/blobs: records each event with the task's state at that moment."""

    received: list = []
    state_of = None

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = parse_qs(urlparse(self.path).query)
        for event in body:
            self.received.append((query["functionName"][0], event, type(self).state_of(event)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def host(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = tmp_path / "host"
    state.mkdir()
    yield server, state
    server.shutdown()


def test_stored_output_files_are_announced_after_the_task_completed(stack, tmp_path, host):
    server, state = host
    blobs = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    name = f"ev-{uuid.uuid4().hex[:8]}"
    watched, other = blobs.create_container(f"{name}-markers"), blobs.create_container(f"{name}-out")
    (state / "host.json").write_text(json.dumps({
        "state": "running", "webhook": {"url": f"http://127.0.0.1:{server.server_port}/runtime/webhooks/blobs",
                                        "key": "k"},
        "functions": [{"name": "task_marker", "container": watched.container_name, "source": "EventGrid"}]}))
    with Emulator(tmp_path / "data", "process", stack.batch_emulator_env(),
                  extra_args=["--blob-events", str(state)]) as emu:
        client = emu.client()
        _Hook.received = []
        _Hook.state_of = lambda event: client.get_task("j", event["subject"].rsplit("/", 1)[-1]).state
        client.create_pool(m.BatchPoolCreateOptions(id="p", vm_size="standard_d2s_v3",
                                                    virtual_machine_configuration=vm_config(m),
                                                    target_dedicated_nodes=1))
        wait_nodes(client, "p", 1)
        client.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        identity = m.BatchNodeIdentityReference(resource_id="/x/uai")

        def to(container, path):
            return m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                container_url=container.url, path=path, identity_reference=identity))

        client.create_task("j", m.BatchTaskCreateOptions(
            id="t1", command_line="/bin/sh -c 'echo result > out.txt; echo done >&2'",
            output_files=[m.OutputFile(file_pattern="out.txt", destination=to(other, "t1/out.txt"),
                                       upload_options=m.OutputFileUploadConfiguration(upload_condition="tasksuccess")),
                          m.OutputFile(file_pattern="../stderr.txt", destination=to(watched, "j/t1"),
                                       upload_options=m.OutputFileUploadConfiguration(
                                           upload_condition="taskcompletion"))]))
        wait_for(lambda: _Hook.received, timeout=60, what="the marker's BlobCreated event")
        client.close()
    (function, event, state_then), = _Hook.received  # only the watched container's blob, once
    assert function == "Host.Functions.task_marker"
    assert event["eventType"] == "Microsoft.Storage.BlobCreated"
    assert event["subject"] == f"/blobServices/default/containers/{watched.container_name}/blobs/j/t1"
    props = watched.get_blob_client("j/t1").get_blob_properties()
    assert event["data"]["eTag"].strip('"') == props.etag.strip('"') and event["data"]["contentLength"] == props.size
    assert "?" not in event["data"]["url"]  # no SAS in an event
    assert state_then == "completed"  # "look now" means the task can be read as finished
