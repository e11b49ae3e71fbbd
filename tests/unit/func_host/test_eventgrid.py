"""eventGridTrigger: the webhook's semantics, the EventGridEvent binding, the local Event Grid's retry policy,
dead-letter blobs, journal and fallback-scan pacing (no Storage: fakes only where the fake is the point)."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace

import azure.functions as func
import pytest

from devstack.func_host import bindings
from devstack.func_host.errors import ConfigError, UnsupportedFeatureError
from devstack.func_host.eventgrid_journal import DeliveredVersions, Entry, EventJournal, version_of
from devstack.func_host.eventgrid_listener import EventGridListener, Subscription
from devstack.func_host.eventgrid_local import PUBLISH_PATH, LocalEventGrid, topic_of
from devstack.func_host.eventgrid_policy import (
    DEFAULT_SCHEDULE,
    RetryPolicy,
    dead_letter_blob_name,
    dead_letter_document,
    parse_policy,
)
from devstack.func_host.eventgrid_scan import FALLBACK_SCAN_INTERVAL, MAX_IDLE_SCAN_INTERVAL, next_pause
from devstack.func_host.eventgrid_webhook import PATH, EventGridWebhook
from devstack.func_host.events import blob_created_event, publish_blob_created
from devstack.func_host.host import _subscription
from devstack.func_host.invoker import Invoker, Outcome
from devstack.func_host.loader import LoadedFunction
from devstack.func_host.webhook import WebhookServer
from tests.helpers import wait_for

URL = "http://127.0.0.1:10000/devstoreaccount1/input/a/b.txt"


def _function(name: str, body) -> LoadedFunction:
    trigger = SimpleNamespace(type="eventGridTrigger", name="event")
    return LoadedFunction(name=name, trigger=trigger, user_function=body, is_async=False, trigger_param="event")


@pytest.fixture
def invoker():
    inv = Invoker(4, None)
    inv.start()
    yield inv
    inv.shutdown()


@pytest.fixture
def server(invoker):
    seen: list[func.EventGridEvent] = []
    lock = threading.Lock()

    def handler(event: func.EventGridEvent) -> None:
        with lock:
            seen.append(event)
        time.sleep(0.2)  # parallel invocations overlap; the answer waits for all
        if (event.get_json() or {}).get("fail"):
            raise ValueError(f"event {event.id} failed")

    listener = EventGridListener(_function("intake", handler), invoker, None)
    srv = WebhookServer({}, key="k3y")
    srv.add_route(PATH, EventGridWebhook({"intake": listener}).handle)
    yield srv, seen
    srv._httpd.server_close()


def _post(srv, query: str, body, kind: str | None = "Notification"):
    data = json.dumps(body).encode()
    headers = {"Content-Length": str(len(data))}
    if kind is not None:
        headers["aeg-event-type"] = kind
    return srv.handle(f"{PATH}?{query}", headers, io.BytesIO(data))


def _event(i: int, **data) -> dict:
    return {"id": f"e{i}", "topic": "/t", "subject": f"/s/{i}", "eventType": "Custom.Thing",
            "eventTime": "2026-01-02T03:04:05.123456Z", "dataVersion": "1", "data": {"n": i, **data}}


# -- webhook ----------------------------------------------------------------------------------------------------
def test_subscription_validation_answers_the_code(server):
    srv, seen = server
    validation = [{"id": "v", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                   "data": {"validationCode": "abc-123"}}]
    assert _post(srv, "functionName=intake&code=k3y", validation, "SubscriptionValidation") == \
        (200, {"validationResponse": "abc-123"})
    assert seen == []


def test_notification_invokes_each_event_in_parallel_and_answers_202_when_all_succeed(server):
    srv, seen = server
    began = time.monotonic()
    status, body = _post(srv, "functionName=intake&code=k3y", [_event(1), _event(2), _event(3)])
    took = time.monotonic() - began
    assert (status, body) == (202, None)
    assert sorted(e.id for e in seen) == ["e1", "e2", "e3"]
    assert took < 0.55, f"three 0.2 s invocations took {took:.2f} s: not in parallel"
    status, _ = _post(srv, "functionName=intake&code=k3y", _event(4))  # one object is one event
    assert status == 202 and seen[-1].id == "e4"


def test_notification_answers_500_with_the_error_when_one_fails(server):
    srv, seen = server
    status, body = _post(srv, "functionName=intake&code=k3y", [_event(1), _event(2, fail=True)])
    assert status == 500 and body == "event e2 failed"
    assert len(seen) == 2, "every event ran; Event Grid resends the whole payload"


def test_unsubscribe_other_headers_unknown_function_and_wrong_key(server):
    srv, seen = server
    assert _post(srv, "functionName=intake&code=k3y", [_event(1)], "Unsubscribe") == (202, None)
    assert _post(srv, "functionName=intake&code=k3y", [_event(1)], None)[0] == 400
    assert _post(srv, "functionName=intake&code=k3y", [_event(1)], "Something")[0] == 400
    assert _post(srv, "functionName=Host.Functions.intake&code=k3y", [_event(1)])[0] == 404  # no prefix here
    assert _post(srv, "functionName=missing&code=k3y", [_event(1)])[0] == 404
    assert _post(srv, "functionName=intake&code=wrong", [_event(1)])[0] == 401
    assert _post(srv, "functionName=intake", [_event(1)])[0] == 401
    assert seen == []


def test_the_header_is_case_insensitive_over_http(server):
    srv, seen = server
    srv.start()
    try:
        import urllib.request
        request = urllib.request.Request(f"{srv.base_url}{PATH}?functionName=intake&code=k3y",
                                         data=json.dumps([_event(9)]).encode(), method="POST",
                                         headers={"AEG-EVENT-TYPE": "notification",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        assert [e.id for e in seen] == ["e9"]
    finally:
        srv.stop()


# -- binding ----------------------------------------------------------------------------------------------------
def test_event_grid_event_is_built_like_the_workers_converter():
    event = bindings.event_grid_value(_event(7))
    assert isinstance(event, func.EventGridEvent)
    assert (event.id, event.topic, event.subject, event.event_type, event.data_version) == \
        ("e7", "/t", "/s/7", "Custom.Thing", "1")
    assert event.get_json() == {"n": 7}
    assert event.event_time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC) or \
        event.event_time.replace(tzinfo=UTC) == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_only_event_grid_event_or_no_annotation_is_accepted():
    bindings.check_trigger_annotation("f", "eventGridTrigger", None)
    bindings.check_trigger_annotation("f", "eventGridTrigger", func.EventGridEvent)
    for bad in (str, bytes, dict, func.InputStream):
        with pytest.raises(UnsupportedFeatureError, match="'f'"):
            bindings.check_trigger_annotation("f", "eventGridTrigger", bad)


# -- subscriptions, policy, dead letters --------------------------------------------------------------------------
def test_subscription_settings_resolve_percent_references():
    env = {"EventGridLocal__intake": "%IN%/sub/dir/", "IN": "input", "EventGridLocal__markers": "markers"}
    assert _subscription("intake", env) == Subscription("intake", "input", "sub/dir/")
    assert _subscription("markers", env) == Subscription("markers", "markers", "")
    assert _subscription("other", env) is None
    with pytest.raises(ConfigError, match="EventGridLocal__x"):
        _subscription("x", {"EventGridLocal__x": "Bad_Name"})
    with pytest.raises(ConfigError, match="NOPE"):
        _subscription("x", {"EventGridLocal__x": "%NOPE%"})
    sub = Subscription("intake", "input", "sub/")
    assert sub.blob_of("/blobServices/default/containers/input/blobs/sub/a.txt") == "sub/a.txt"
    assert sub.blob_of("/blobServices/default/containers/input/blobs/other/a.txt") is None
    assert sub.blob_of("/blobServices/default/containers/input2/blobs/sub/a.txt") is None


def test_retry_schedule_is_event_grids_then_hourly():
    policy = RetryPolicy()
    assert [policy.delay_after(n) for n in range(1, 10)] == [10, 30, 60, 300, 600, 1800, 3600, 3600, 3600]
    assert policy.max_delivery_attempts == 30 and policy.event_time_to_live == 1440 * 60
    assert parse_policy(None, None, None) == RetryPolicy(DEFAULT_SCHEDULE, 30, 86400)
    assert parse_policy("0.5, 1", "3", "0.5") == RetryPolicy((0.5, 1.0), 3, 30.0)
    for bad in (("x", None, None), (None, "31", None), (None, "0", None), (None, None, "0"), (None, None, "2000")):
        with pytest.raises(ConfigError):
            parse_policy(*bad)


def test_dead_letter_blob_holds_the_event_and_its_delivery_story():
    event = blob_created_event(URL, "input", "a/b.txt", "0x1", 5, "text/plain")
    entry = Entry(id="x", function="intake", event=event, published=1767236400.0, attempts=3,
                  last_outcome="GenericError", last_status=500, last_attempt=1767236460.5)
    [doc] = dead_letter_document(entry, "MaxDeliveryAttemptsExceeded")
    assert {k: doc[k] for k in event} == event
    assert doc["deadLetterReason"] == "MaxDeliveryAttemptsExceeded" and doc["deliveryAttempts"] == 3
    assert doc["lastDeliveryOutcome"] == "GenericError" and doc["lastHttpStatusCode"] == 500
    assert doc["publishTime"] == "2026-01-01T03:00:00Z"
    assert doc["lastDeliveryAttemptTime"] == "2026-01-01T03:01:00.500000Z"
    name = dead_letter_blob_name("intake", 1767236400.0)
    assert name.startswith("intake/2026/01/01/03/") and name.endswith(".json") and len(name.split("/")[-1]) == 41


# -- journal --------------------------------------------------------------------------------------------------------
def test_journal_compaction_keeps_only_undelivered_entries(tmp_path):
    journal = EventJournal(tmp_path)
    entries = [Entry(id=f"e{i}", function="f", event={"id": i}, published=100.0 + i,
                     version=("c", f"n{i}", "0x1")) for i in range(4)]
    for entry in entries:
        journal.add(entry)
    journal.done(entries[0], "delivered")
    entries[1].attempts, entries[1].next_attempt, entries[1].last_outcome = 2, 500.0, "GenericError"
    journal.attempt(entries[1])
    journal.done(entries[3], "deadlettered")
    journal.close()
    with open(journal.path, "a") as handle:
        handle.write('{"op": "add", "id": "torn", "fn"')  # a kill -9 in the middle of a write
    pending = EventJournal(tmp_path).load_and_compact()
    assert sorted(e.id for e in pending) == ["e1", "e2"]
    e1 = next(e for e in pending if e.id == "e1")
    assert (e1.attempts, e1.next_attempt, e1.last_outcome, e1.version) == (2, 500.0, "GenericError", ("c", "n1", "0x1"))
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["op"] == "add" for line in lines)
    assert sorted(e.id for e in EventJournal(tmp_path).load_and_compact()) == ["e1", "e2"]


def test_delivered_versions_survive_a_restart_and_are_deduplicated(tmp_path):
    versions = DeliveredVersions(tmp_path)
    versions.load_and_compact()
    versions.add("f", ("c", "n", "0x1"))
    versions.add("f", ("c", "n", "0x1"))
    versions.close()
    with open(versions.path, "a") as handle:
        handle.write('["f", "c", "n", "0x1"]\n["f", "c"')
    again = DeliveredVersions(tmp_path)
    again.load_and_compact()
    assert ("f", ("c", "n", "0x1")) in again and ("g", ("c", "n", "0x1")) not in again
    assert len(again.path.read_text().splitlines()) == 1
    assert version_of("c", "n", '"0x1"') == ("c", "n", "0x1") and version_of("c", "n", None) is None


# -- local delivery -----------------------------------------------------------------------------------------------
class FakeListener:
    """Outcomes on demand: the point of the test is the local Event Grid's bookkeeping, not the invocation."""

    def __init__(self, name: str, subscription: Subscription, fail: bool = False):
        self.function = SimpleNamespace(name=name)
        self.subscription = subscription
        self.fail = fail
        self.calls: list[dict] = []

    def invoke(self, event, reason):
        self.calls.append(event)
        future: Future = Future()
        future.set_result(Outcome("i", self.function.name, not self.fail, 1.0,
                                  None if not self.fail else ValueError("nope")))
        return future


class FakeDeadLetter:
    container = "dead"

    def __init__(self):
        self.written: list[tuple[Entry, str]] = []

    def write(self, entry, reason, now):
        self.written.append((entry, reason))
        return "x.json"


def test_publish_filters_like_the_subscription_and_delivers_a_version_once(tmp_path):
    ok = FakeListener("intake", Subscription("intake", "input", "a/"))
    grid = LocalEventGrid(tmp_path, [ok], RetryPolicy())
    grid.start()
    try:
        event = blob_created_event(URL, "input", "a/b.txt", '"0x1"', 5, "text/plain")
        assert grid.publish([event]) == 1
        assert grid.publish([{**event, "id": "again"}]) == 1  # same version: accepted, not journalled twice
        assert grid.publish([blob_created_event(URL, "input", "z/b.txt", "0x2", 1, None)]) == 0  # prefix
        assert grid.publish([blob_created_event(URL, "other", "a/b.txt", "0x3", 1, None)]) == 0  # container
        assert grid.publish([{**event, "data": {**event["data"], "api": "DeleteBlob"}}]) == 0
        assert grid.publish([{**event, "eventType": "Microsoft.Storage.BlobDeleted"}]) == 0
        wait_for(lambda: len(ok.calls) == 1 and grid.in_flight == 0, 5, "one delivery", 0.01)
        assert ok.calls[0]["topic"] == topic_of(URL) and ok.calls[0]["data"]["eTag"] == "0x1"
        assert grid.known("intake", ("input", "a/b.txt", "0x1"))
    finally:
        grid.stop()
    assert EventJournal(tmp_path).load_and_compact() == []


def test_a_failing_event_is_retried_on_the_schedule_then_dead_lettered(tmp_path):
    bad = FakeListener("bad", Subscription("bad", "input"), fail=True)
    dead = FakeDeadLetter()
    grid = LocalEventGrid(tmp_path, [bad], RetryPolicy((0.2, 0.4), 3, 3600), dead_letter=dead)
    grid.start()
    began = time.monotonic()
    try:
        grid.publish([blob_created_event(URL, "input", "x.txt", "0x9", 1, None)])
        wait_for(lambda: dead.written, 5, "a dead letter", 0.01)
        took = time.monotonic() - began
        assert len(bad.calls) == 3 and 0.55 < took < 2.0, took
        entry, reason = dead.written[0]
        assert reason == "MaxDeliveryAttemptsExceeded" and entry.attempts == 3
        assert entry.last_outcome == "GenericError" and entry.last_status == 500 and entry.last_error == "nope"
    finally:
        grid.stop()
    assert EventJournal(tmp_path).load_and_compact() == []
    assert grid.known("bad", ("input", "x.txt", "0x9")), "a dead-lettered version is not scanned again"


def test_an_expired_event_is_dead_lettered_for_its_time_to_live(tmp_path):
    bad = FakeListener("bad", Subscription("bad", "input"), fail=True)
    dead = FakeDeadLetter()
    grid = LocalEventGrid(tmp_path, [bad], RetryPolicy((0.2,), 30, 0.5), dead_letter=dead)
    grid.start()
    try:
        grid.publish([blob_created_event(URL, "input", "x.txt", "0x9", 1, None)])
        wait_for(lambda: dead.written, 5, "a dead letter", 0.01)
        assert dead.written[0][1] == "TimeToLiveExceeded" and 2 <= len(bad.calls) <= 4
    finally:
        grid.stop()


def test_undelivered_events_of_a_previous_run_are_delivered_at_start(tmp_path):
    journal = EventJournal(tmp_path)
    journal.add(Entry(id="old", function="intake", event={"id": "old"}, published=time.time(),
                      version=("input", "n", "0x1")))
    journal.close()
    ok = FakeListener("intake", Subscription("intake", "input"))
    grid = LocalEventGrid(tmp_path, [ok], RetryPolicy())
    grid.start()
    try:
        wait_for(lambda: [c["id"] for c in ok.calls] == ["old"], 5, "the old event", 0.01)
        wait_for(lambda: ("intake", ("input", "n", "0x1")) in grid.delivered, 5, "the version recorded", 0.01)
    finally:
        grid.stop()


def test_the_publish_endpoint_and_the_publisher(tmp_path):
    ok = FakeListener("intake", Subscription("intake", "input"))
    grid = LocalEventGrid(tmp_path / "state", [ok], RetryPolicy())
    srv = WebhookServer({}, key="k3y")
    srv.add_route(PUBLISH_PATH, grid.handle_publish)
    grid.start()
    srv.start()
    try:
        (tmp_path / "host.json").write_text(json.dumps({
            "state": "running",
            "webhook": {"url": srv.url, "key": "k3y", "publish_url": srv.base_url + PUBLISH_PATH},
            "functions": [{"name": "intake", "trigger": "eventGridTrigger",
                           "subscription": {"container": "input", "prefix": ""}},
                          {"name": "posted", "trigger": "eventGridTrigger", "subscription": None}]}))
        assert publish_blob_created(tmp_path, URL, "input", "a/b.txt", etag='"0x5"', size=7) == 1
        assert publish_blob_created(tmp_path, URL, "other", "a/b.txt", etag='"0x6"', size=7) == 0
        wait_for(lambda: len(ok.calls) == 1, 5, "one delivery", 0.01)
        assert ok.calls[0]["data"]["contentLength"] == 7
        body = b"[1]"
        assert srv.handle(f"{PUBLISH_PATH}?code=k3y", {"Content-Length": "3"}, io.BytesIO(body))[0] == 400
        assert srv.handle(f"{PUBLISH_PATH}?code=no", {"Content-Length": "3"}, io.BytesIO(body))[0] == 401
    finally:
        srv.stop()
        grid.stop()


def test_scan_pacing_is_per_subscription():
    assert next_pause([0.001], 0, delivered_recently=True, pushed_recently=False) == pytest.approx(0.1)
    assert next_pause([0.05], 0, delivered_recently=True, pushed_recently=False) == pytest.approx(0.5)
    assert next_pause([0.001], 0, delivered_recently=False, pushed_recently=True) == FALLBACK_SCAN_INTERVAL
    idle = [next_pause([0.001], n, delivered_recently=False, pushed_recently=False) for n in range(1, 8)]
    assert idle == sorted(idle) and idle[-1] == MAX_IDLE_SCAN_INTERVAL


def test_the_scan_offers_unknown_versions_written_since_the_subscription(tmp_path):
    from devstack.func_host.eventgrid_scan import FallbackScanner

    sub = Subscription("intake", "input", "a/")
    listener = FakeListener("intake", sub)
    grid = LocalEventGrid(tmp_path, [listener], RetryPolicy())
    grid._load_subscriptions()
    since = grid.subscribed_since("intake")
    assert since > 0
    grid._load_subscriptions()
    assert grid.subscribed_since("intake") == since, "kept across restarts"

    def item(name, etag, age):
        return SimpleNamespace(name=name, etag=etag, size=3, content_settings=SimpleNamespace(content_type="x/y"),
                               last_modified=datetime.fromtimestamp(since + age, UTC))

    listing = [item("a/old.txt", "0x1", -60), item("a/new.txt", "0x2", 1), item("a/again.txt", "0x3", 1)]
    grid.delivered.load_and_compact()
    grid.delivered.add("intake", ("input", "a/again.txt", "0x3"))
    container = SimpleNamespace(
        list_blobs=lambda name_starts_with=None: [i for i in listing if i.name.startswith(name_starts_with or "")],
        get_blob_client=lambda name: SimpleNamespace(url=f"http://127.0.0.1:10000/devstoreaccount1/input/{name}"))
    scanner = FallbackScanner(grid, sub, container)
    assert scanner.scan_once() == 1
    [entry] = [e for _, _, e in grid._heap]
    assert entry.version == ("input", "a/new.txt", "0x2")
    assert entry.event["data"]["url"].endswith("/input/a/new.txt") and entry.event["data"]["contentLength"] == 3
    assert scanner.scan_once() == 0, "a journalled version is not offered twice"


def test_a_subscription_setting_for_no_such_function_is_reported(caplog):
    from devstack.func_host.host import _warn_unused_subscriptions

    env = {"EventGridLocal__blob_intake": "input", "EventGridLocal__blob_intak": "input",
           "EventGridLocal__deadLetterContainer": "dead", "EventGridLocal__maxDeliveryAttempts": "3"}
    with caplog.at_level("WARNING", logger="func_host"):
        _warn_unused_subscriptions({"blob_intake"}, env)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Setting EventGridLocal__blob_intak"]
