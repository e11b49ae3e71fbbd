"""The local host's Event Grid webhook for blob triggers, and the publisher the stack's uploaders use."""

from __future__ import annotations

import io
import json
import threading

import pytest

from devstack.func_host.events import blob_created_event, publish_blob_created
from devstack.func_host.webhook import WebhookServer, blob_of


class FakeListener:
    class path:  # noqa: N801 - mimics BlobPath
        container = "input"

    def __init__(self):
        self.seen = []
        self.event = threading.Event()

    def notify(self, name, etag, size=None, content_type=None):
        self.seen.append((name, etag, size, content_type))
        self.event.set()


def _post(server, query: str, events) -> tuple[int, object]:
    body = json.dumps(events).encode()
    return server.handle(f"/runtime/webhooks/blobs?{query}", {"Content-Length": str(len(body))}, io.BytesIO(body))


@pytest.fixture
def server():
    listener = FakeListener()
    srv = WebhookServer({"blob_intake": listener}, key="k3y")
    yield srv, listener
    srv._httpd.server_close()


def test_blob_urls_of_azure_and_of_azurite_name_container_and_blob():
    assert blob_of("https://acct.blob.core.windows.net/input/a/b%20c.txt") == ("input", "a/b c.txt")
    assert blob_of("http://127.0.0.1:10000/devstoreaccount1/input/x.txt") == ("input", "x.txt")
    assert blob_of("http://127.0.0.1:10000/devstoreaccount1/input") is None


def test_a_blob_created_event_reaches_the_functions_listener(server):
    srv, listener = server
    event = blob_created_event("http://127.0.0.1:10000/devstoreaccount1/input/t/a.txt", "input", "t/a.txt",
                               '"0x1"', 5, "text/plain")
    status, _ = _post(srv, "functionName=Host.Functions.blob_intake&code=k3y", [event])
    assert status == 202
    assert listener.seen == [("t/a.txt", '"0x1"', 5, "text/plain")]


def test_wrong_key_unknown_function_and_other_containers_are_refused_or_ignored(server):
    srv, listener = server
    event = blob_created_event("http://127.0.0.1:10000/devstoreaccount1/other/a.txt", "other", "a.txt", "e", 1, None)
    assert _post(srv, "functionName=Host.Functions.blob_intake&code=nope", [event])[0] == 401
    assert _post(srv, "functionName=Host.Functions.missing&code=k3y", [event])[0] == 404
    assert _post(srv, "functionName=Host.Functions.blob_intake&code=k3y", [event])[0] == 202
    assert listener.seen == []  # a container the function does not watch
    assert _post(srv, "functionName=Host.Functions.blob_intake&code=k3y", {"not": "events"})[0] == 202
    body = b"not json"
    status, answer = srv.handle("/runtime/webhooks/blobs?functionName=blob_intake&code=k3y",
                                {"Content-Length": str(len(body))}, io.BytesIO(body))
    assert status == 400 and "JSON" in answer["error"]


def test_the_subscription_handshake_is_answered(server):
    srv, _ = server
    status, answer = _post(srv, "functionName=Host.Functions.blob_intake&code=k3y",
                           [{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                             "data": {"validationCode": "abc"}}])
    assert (status, answer) == (200, {"validationResponse": "abc"})


def test_the_publisher_posts_to_the_running_host_over_http(server, tmp_path):
    srv, listener = server
    srv.start()
    try:
        (tmp_path / "host.json").write_text(json.dumps({
            "state": "running", "webhook": {"url": srv.url, "key": "k3y"},
            "functions": [{"name": "blob_intake", "container": "input", "source": "EventGrid"},
                          {"name": "task_marker", "container": "markers", "source": "EventGrid"}]}))
        sent = publish_blob_created(tmp_path, "http://127.0.0.1:10000/devstoreaccount1/input/n.txt", "input", "n.txt",
                                    etag='"0x2"', size=3)
        assert sent == 1 and listener.event.wait(5)
        assert listener.seen[0][:2] == ("n.txt", '"0x2"')
    finally:
        srv.stop()


def test_no_running_host_means_no_event_and_no_error(tmp_path):
    assert publish_blob_created(tmp_path, "http://x/devstoreaccount1/input/n", "input", "n", etag="e") == 0
    (tmp_path / "host.json").write_text(json.dumps({"state": "running", "functions": [],
                                                    "webhook": {"url": "http://127.0.0.1:9/x", "key": "k"}}))
    assert publish_blob_created(tmp_path, "http://x/devstoreaccount1/input/n", "input", "n", etag="e") == 0
