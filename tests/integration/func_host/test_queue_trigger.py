"""Queue triggers through the local host against Azurite: poison handling, encodings, batching, shutdown."""

from __future__ import annotations

import base64
import signal
import time

import pytest
from azure.storage.queue import QueueClient

from tests.helpers import wait_for

pytestmark = pytest.mark.integration

QUEUES_HOST_JSON = {
    "version": "2.0",
    "functionTimeout": "00:00:30",
    "extensions": {"queues": {"maxPollingInterval": "00:00:00.500", "batchSize": 4, "newBatchThreshold": 2,
                              "maxDequeueCount": 3, "visibilityTimeout": "00:00:00"}},
}


def _queue(storage, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(storage, name)
    client.create_queue()
    return client


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _queue_env(ok="unused-ok", fail="unused-fail", async_q="unused-async", **extra):
    return {"OK_QUEUE": ok, "FAIL_QUEUE": fail, "ASYNC_QUEUE": async_q, **extra}


def test_failing_function_moves_message_to_poison_after_max_dequeue_count(storage, make_host, unique):
    name = unique("fail")
    queue = _queue(storage, name)
    body = "payload that always fails: {\"id\": 7, \"ünïcode\": true}"
    queue.send_message(_b64(body))
    host = make_host("queues", env=_queue_env(fail=name)).start()

    poison = QueueClient.from_connection_string(storage, f"{name}-poison")
    messages = wait_for(lambda: poison.peek_messages(max_messages=5) if _exists(poison) else [], 15,
                        what="a message on the poison queue")
    assert base64.b64decode(messages[0].content).decode() == body
    attempts = host.events("always_fails", "start")
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    assert all(a["body"] == body for a in attempts)
    time.sleep(0.6)  # a further poll must not find the message again
    assert list(queue.peek_messages()) == []
    assert len(host.events("always_fails", "start")) == 3
    assert "has reached MaxDequeueCount of 3" in host.log()
    assert host.stop() == 0


def _exists(queue: QueueClient) -> bool:
    try:
        queue.get_queue_properties()
        return True
    except Exception:
        return False


def test_base64_bodies_are_decoded_and_invalid_base64_goes_to_poison_untouched(storage, make_host, unique):
    name = unique("b64")
    queue = _queue(storage, name)
    queue.send_message("this is not base64!")
    queue.send_message(_b64("hello from base64"))
    host = make_host("queues", env=_queue_env(ok=name)).start()

    done = wait_for(lambda: host.events("records", "done"), 10, what="the valid message to be processed")
    assert [e["body"] for e in host.events("records", "start")] == ["hello from base64"]
    assert len(done) == 1
    poison = QueueClient.from_connection_string(storage, f"{name}-poison")
    moved = wait_for(lambda: _exists(poison) and list(poison.peek_messages()), 5, what="the poison message")
    assert [m.content for m in moved] == ["this is not base64!"]
    assert list(queue.peek_messages()) == []
    host.stop()


def test_message_encoding_none_passes_the_raw_text(storage, make_host, unique):
    name = unique("plain")
    queue = _queue(storage, name)
    raw = '{"pipeline": "transform", "inputs": ["a.txt"]}'
    queue.send_message(raw)
    config = {**QUEUES_HOST_JSON, "extensions": {"queues": {**QUEUES_HOST_JSON["extensions"]["queues"],
                                                            "messageEncoding": "none"}}}
    host = make_host("queues", env=_queue_env(ok=name), host_json=config).start()
    wait_for(lambda: host.events("records", "done"), 10, what="the message to be processed")
    assert host.events("records", "start")[0]["body"] == raw
    host.stop()


def test_batches_are_limited_by_batch_size_plus_new_batch_threshold(storage, make_host, unique):
    name = unique("batch")
    queue = _queue(storage, name)
    for i in range(12):
        queue.send_message(_b64(f"m{i}"))
    host = make_host("queues", env=_queue_env(ok=name, QUEUE_SLEEP="0.5", PYTHON_THREADPOOL_THREAD_COUNT="16"),
                     host_json=QUEUES_HOST_JSON).start()
    wait_for(lambda: len(host.events("records", "done")) == 12, 20, what="12 messages processed")
    starts = host.events("records", "start")
    assert sorted(e["body"] for e in starts) == sorted(f"m{i}" for i in range(12))  # each exactly once
    spans = {e["id"]: [e["t"], None] for e in starts}
    for e in host.events("records", "done"):
        spans[e["id"]][1] = e["t"]
    peak = max(sum(1 for s, d in spans.values() if s <= t < d) for t, _ in spans.values())
    assert 4 <= peak <= 4 + 2, f"peak concurrency {peak}: batchSize 4 should run together, never more than 6"
    host.stop()


def test_async_functions_run_concurrently_on_one_event_loop(storage, make_host, unique):
    name = unique("async")
    queue = _queue(storage, name)
    for i in range(4):
        queue.send_message(_b64(f"a{i}"))
    host = make_host("queues", env=_queue_env(async_q=name, QUEUE_SLEEP="0.8")).start()
    wait_for(lambda: len(host.events("async_records", "done")) == 4, 15, what="4 async invocations")
    starts = host.events("async_records", "start")
    dones = host.events("async_records", "done")
    assert len({e["thread"] for e in starts}) == 1, "coroutines share the worker's event loop thread"
    assert max(e["t"] for e in starts) < min(e["t"] for e in dones), "the four invocations overlapped"
    host.stop()


def test_sigterm_waits_for_in_flight_invocations_to_finish(storage, make_host, unique):
    name = unique("grace")
    queue = _queue(storage, name)
    queue.send_message(_b64("finish me"))
    host = make_host("queues", env=_queue_env(ok=name, QUEUE_SLEEP="1.5")).start()
    wait_for(lambda: host.events("records", "start"), 10, what="the invocation to start")
    assert host.stop(signal.SIGTERM) == 0
    assert [e["id"] for e in host.events("records", "done")] == [host.events("records", "start")[0]["id"]]
    assert list(queue.peek_messages()) == [], "a finished message is deleted before the host exits"
    assert host.status()["state"] == "stopped"


def test_sigterm_after_grace_period_releases_the_message_for_the_next_host(storage, make_host, unique):
    name = unique("release")
    queue = _queue(storage, name)
    queue.send_message(_b64("do not lose me"))
    slow = make_host("queues", env=_queue_env(ok=name, QUEUE_SLEEP="30"), extra_args=["--grace-period", "0.5"])
    slow.start()
    wait_for(lambda: slow.events("records", "start"), 10, what="the invocation to start")
    began = time.monotonic()
    assert slow.stop(signal.SIGTERM) == 0
    assert time.monotonic() - began < 5, "the host stops soon after the grace period"
    visible = list(queue.peek_messages())
    assert [base64.b64decode(m.content).decode() for m in visible] == ["do not lose me"]
    fast = make_host("queues", env=_queue_env(ok=name)).start()
    wait_for(lambda: fast.events("records", "done"), 10, what="the released message to be processed again")
    assert fast.events("records", "start")[0]["dequeue_count"] == 2
    fast.stop()


def test_invisibility_is_renewed_while_the_function_runs(storage, make_host, unique):
    name = unique("renew")
    queue = _queue(storage, name)
    queue.send_message(_b64("long job"))
    # 2 s invisibility renewed every 1 s; without renewal the message would reappear during the 4 s run and the
    # host (polling every <= 0.5 s) would start it a second time.
    host = make_host("queues", env=_queue_env(ok=name, QUEUE_SLEEP="4",
                                              EVENTBATCH_FUNC_HOST_MESSAGE_LEASE_SECONDS="2")).start()
    wait_for(lambda: host.events("records", "done"), 10, what="the long invocation to finish")
    time.sleep(0.6)
    assert len(host.events("records", "start")) == 1
    assert list(queue.peek_messages()) == []
    host.stop()


def test_killed_host_messages_are_released_by_the_next_start(storage, make_host, unique):
    name = unique("killq")
    queue = _queue(storage, name)
    queue.send_message(_b64("survive a SIGKILL"))
    first = make_host("queues", env=_queue_env(ok=name, QUEUE_SLEEP="60")).start()
    wait_for(lambda: first.events("records", "start"), 10, what="the invocation to start")
    first.kill()
    assert list(queue.peek_messages()) == [], "the message is invisible (held by the dead host)"

    second = make_host("queues", env=_queue_env(ok=name), host_id=first.host_id)
    second.state_dir = first.state_dir  # the successor finds the dead host's journal
    began = time.monotonic()
    second.start()
    wait_for(lambda: second.events("records", "done"), 10, what="the message to be processed after the restart")
    assert time.monotonic() - began < 8, "released at start, not after the 10-minute invisibility"
    assert second.events("records", "start")[0]["body"] == "survive a SIGKILL"
    assert second.events("records", "start")[0]["dequeue_count"] == 2
    assert "left in flight by a stopped host instance" in second.log()
    second.stop()
