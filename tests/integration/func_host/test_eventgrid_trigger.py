"""eventGridTrigger through the local host against Azurite: the local Event Grid's push, fallback scan, retries and
dead letters, durability across kill -9, and the webhook."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
from azure.storage.blob import BlobServiceClient

from devstack.func_host.events import publish_blob_created
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _env(unique, **extra):
    return {"EG_CONTAINER": unique("eg"), "EG_BAD_CONTAINER": unique("egbad"), "EG_DEADLETTER": unique("egdead"),
            **extra}


def _container(storage: str, name: str):
    client = BlobServiceClient.from_connection_string(storage).get_container_client(name)
    client.create_container()
    return client


def _upload(container, name: str, data: bytes, publish_to=None):
    blob = container.get_blob_client(name)
    result = blob.upload_blob(data, overwrite=True)
    sent = None
    if publish_to is not None:
        sent = publish_blob_created(publish_to.state_dir, blob.url, container.container_name, name,
                                    etag=result["etag"], size=len(data), content_type="text/plain")
    return result["etag"], sent


def _starts(host, fn: str, name: str | None = None) -> list[dict]:
    return [e for e in host.events(fn, "start") if name is None or e["subject"].endswith(f"/blobs/{name}")]


def test_a_pushed_event_is_delivered_once_with_its_etag_and_size(storage, make_host, unique):
    env = _env(unique)
    container = _container(storage, env["EG_CONTAINER"])
    host = make_host("eventgrid", env=env).start()
    status = host.status()
    fn = next(f for f in status["functions"] if f["name"] == "on_event")
    assert fn["subscription"] == {"container": env["EG_CONTAINER"], "prefix": ""}
    assert next(f for f in status["functions"] if f["name"] == "on_posted")["subscription"] is None
    assert status["webhook"]["publish_url"].endswith("/eventgrid/local/publish")

    uploaded = time.time()
    etag, sent = _upload(container, "dir/a.txt", b"hello", publish_to=host)
    assert sent == 1
    [start] = wait_for(lambda: _starts(host, "on_event", "dir/a.txt"), 5, what="the pushed event")
    print(f"publish -> function start: {(start['t'] - uploaded) * 1000:.0f} ms")
    assert start["etag"] == etag.strip('"') and start["size"] == 5  # unquoted, as Storage's events carry it and start["content_type"] == "text/plain"
    assert start["type"] == "EventGridEvent" and start["event_type"] == "Microsoft.Storage.BlobCreated"
    assert start["topic"].endswith("/storageAccounts/devstoreaccount1")
    assert start["t"] - uploaded < 1.0
    time.sleep(6.0)  # past the 5 s fallback scan of a pushed container: the scan sees the same version
    assert len(_starts(host, "on_event")) == 1, "pushed and scanned: one delivery"

    etag2, _ = _upload(container, "dir/b.txt", b"found by the scan first")
    wait_for(lambda: _starts(host, "on_event", "dir/b.txt"), 8, what="the scan to find dir/b.txt")
    blob = container.get_blob_client("dir/b.txt")
    assert publish_blob_created(host.state_dir, blob.url, container.container_name, "dir/b.txt", etag=etag2,
                                size=23) == 1  # accepted, but that version was delivered already
    time.sleep(1.0)
    assert len(_starts(host, "on_event", "dir/b.txt")) == 1, "scanned then pushed: one delivery"
    assert host.stop() == 0


def test_an_upload_without_an_event_is_found_by_the_fallback_scan(storage, make_host, unique, tmp_path):
    env = _env(unique)
    container = _container(storage, env["EG_CONTAINER"])
    counter = tmp_path / "calls.json"
    _upload(container, "before.txt", b"there before the subscription")
    time.sleep(2.5)  # Last-Modified has whole seconds; the scan allows for that
    host = make_host("eventgrid", env={**env, "EVENTBATCH_CALL_COUNTER_FILE": str(counter)}).start()
    etag, _ = _upload(container, "plain.bin", b"12345678")
    [start] = wait_for(lambda: _starts(host, "on_event", "plain.bin"), 5, what="the scan to find the blob")
    assert start["etag"] == etag.strip('"') and start["size"] == 8
    assert start["url"] == container.get_blob_client("plain.bin").url
    assert host.stop() == 0
    detail = json.loads(counter.read_text())["detail"]
    assert detail.get("host blob GET list", 0) > 0, detail
    assert not any(k.startswith("app blob GET list") for k in detail), detail

    again = make_host("eventgrid", env=env, host_id=host.host_id)
    again.state_dir, again.out_dir = host.state_dir, host.out_dir
    again.env["FH_OUT"] = str(host.out_dir)
    _upload(container, "while-down.txt", b"written while no host ran")
    again.start()
    wait_for(lambda: _starts(again, "on_event", "while-down.txt"), 5, what="the blob written while the host was down")
    time.sleep(1.0)
    assert len(_starts(again, "on_event", "plain.bin")) == 1, "a restarted host does not deliver a version again"
    assert not _starts(again, "on_event", "before.txt"), "a blob older than the subscription is not announced"
    again.stop()


def test_a_failing_function_is_retried_then_dead_lettered(storage, make_host, unique):
    env = _env(unique)
    bad = _container(storage, env["EG_BAD_CONTAINER"])
    host = make_host("eventgrid", env=env).start()
    _upload(bad, "outside-the-prefix.txt", b"x")
    etag, sent = _upload(bad, "in/doomed.txt", b"doomed", publish_to=host)
    assert sent == 1
    dead = BlobServiceClient.from_connection_string(storage).get_container_client(env["EG_DEADLETTER"])

    def dead_letters():
        try:
            return list(dead.list_blobs())
        except Exception:  # noqa: BLE001 - the container is created with the first dead letter
            return []

    [blob] = wait_for(dead_letters, 10, what="the dead-letter blob")
    starts = _starts(host, "on_event_fails")
    assert len(starts) == 3 and all(s["subject"].endswith("/blobs/in/doomed.txt") for s in starts)
    gaps = [b["t"] - a["t"] for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] > 0.25 and gaps[1] > 0.55, gaps  # the test schedule: 0.3 s, 0.6 s
    parts = blob.name.split("/")
    assert parts[0] == "on_event_fails" and len(parts) == 6 and parts[-1].endswith(".json")
    [doc] = json.loads(dead.download_blob(blob.name).readall())
    assert doc["deadLetterReason"] == "MaxDeliveryAttemptsExceeded" and doc["deliveryAttempts"] == 3
    assert doc["lastDeliveryOutcome"] == "GenericError" and doc["lastDeliveryAttemptTime"]
    assert doc["data"]["eTag"] == etag.strip('"') and doc["eventType"] == "Microsoft.Storage.BlobCreated"
    time.sleep(1.0)
    assert len(_starts(host, "on_event_fails")) == 3, "a dead-lettered version is not delivered again"
    assert not _starts(host, "on_event_fails", "outside-the-prefix.txt")
    assert host.stop() == 0


def test_events_accepted_before_a_kill_are_delivered_after_the_restart(storage, make_host, unique):
    env = _env(unique, EG_SLEEP="3", EventGridLocal__maxConcurrentDeliveries="1")
    container = _container(storage, env["EG_CONTAINER"])
    host = make_host("eventgrid", env=env).start()
    for i in range(3):
        assert _upload(container, f"k{i}.txt", b"k", publish_to=host)[1] == 1
    wait_for(lambda: host.events("on_event", "start"), 5, what="the first delivery to start")
    host.stop(signal.SIGKILL)
    assert not host.events("on_event", "done"), "killed in the middle of the first delivery"

    again = make_host("eventgrid", env={**env, "EG_SLEEP": "0"}, host_id=host.host_id)
    again.state_dir, again.out_dir = host.state_dir, host.out_dir
    again.env["FH_OUT"] = str(host.out_dir)
    again.start()
    wait_for(lambda: {e["subject"].rsplit("/", 1)[1] for e in again.events("on_event", "done")}
             == {"k0.txt", "k1.txt", "k2.txt"}, 10, what="every accepted event after the restart")
    assert "undelivered event(s) from the journal are delivered again" in again.log()
    time.sleep(1.0)
    assert len(again.events("on_event", "done")) == 3
    assert again.stop() == 0


def test_the_webhook_of_a_function_without_a_local_subscription(storage, make_host, unique):
    host = make_host("eventgrid", env=_env(unique)).start()
    hook = host.status()["webhook"]
    assert "Function on_posted: eventGridTrigger (webhook only" in host.log()

    def post(kind: str, body, name="on_posted", key=hook["key"]):
        request = urllib.request.Request(f"{hook['eventgrid_url']}?functionName={name}&code={key}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"aeg-event-type": kind, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    event = {"id": "w1", "subject": "s", "eventType": "Custom", "eventTime": "2026-01-01T00:00:00Z",
             "dataVersion": "1", "data": {}}
    assert post("SubscriptionValidation", [{"data": {"validationCode": "c0de"}}]) == \
        (200, json.dumps({"validationResponse": "c0de"}))
    assert post("Notification", [event, {**event, "id": "w2"}])[0] == 202
    status, text = post("Notification", [{**event, "id": "w3", "data": {"fail": True}}])
    assert (status, text) == (500, "asked to fail")
    assert post("Notification", [event], key="wrong")[0] == 401
    assert post("Notification", [event], name="nope")[0] == 404
    assert post("Bogus", [event])[0] == 400
    assert sorted(e["id"] for e in host.events("on_posted", "start")) == ["w1", "w2", "w3"]
    assert host.stop() == 0


def test_shutdown_lets_the_delivery_in_flight_finish_and_keeps_the_rest(storage, make_host, unique):
    env = _env(unique, EG_SLEEP="1", EventGridLocal__maxConcurrentDeliveries="1")
    container = _container(storage, env["EG_CONTAINER"])
    host = make_host("eventgrid", env=env).start()
    for i in range(3):
        assert _upload(container, f"s{i}.txt", b"s", publish_to=host)[1] == 1
    wait_for(lambda: host.events("on_event", "start"), 5, what="the first delivery to start")
    assert host.stop() == 0
    done = host.events("on_event", "done")
    assert len(done) == 1 and len(host.events("on_event", "start")) == 1, "no new delivery after the signal"

    again = make_host("eventgrid", env={**env, "EG_SLEEP": "0"}, host_id=host.host_id)
    again.state_dir, again.out_dir = host.state_dir, host.out_dir
    again.env["FH_OUT"] = str(host.out_dir)
    again.start()
    wait_for(lambda: len(again.events("on_event", "done")) == 3, 10, what="the two kept events after the restart")
    time.sleep(1.0)
    names = sorted(e["subject"].rsplit("/", 1)[1] for e in again.events("on_event", "done"))
    assert names == ["s0.txt", "s1.txt", "s2.txt"], "the finished delivery is not repeated"
    assert again.stop() == 0
