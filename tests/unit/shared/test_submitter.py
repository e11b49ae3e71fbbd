"""The submitter against an injected-fault client (the faults are the point): chunking, TaskExists, per-task
server errors, throttling with Retry-After, client errors bisected to the offending task."""

from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError

from shared import batch_client
from shared.submitter import Submitter, chunk_specs
from shared.task_spec import TaskSpec


def _spec(i, pad=0):
    return TaskSpec(task_id=f"t{i}", pipeline="transform", body={"id": f"t{i}", "pad": "x" * pad},
                    output_container="output", output_prefix=f"p/{i}")


class FaultyBatch:
    """Accepts tasks like Batch does; `faults` maps a call number to what goes wrong on that call."""

    def __init__(self, faults=None, bad_ids=(), exists=()):
        self.faults = faults or {}
        self.bad_ids, self.exists = set(bad_ids), set(exists)
        self.calls = []
        self.added = set()

    def create_task_collection(self, job_id, group):
        values = group["value"]
        self.calls.append([v["id"] for v in values])
        fault = self.faults.get(len(self.calls))
        if isinstance(fault, Exception):
            raise fault
        if any(v["id"] in self.bad_ids for v in values) and len(values) > 1 and fault == "400":
            raise _http(400, "InvalidPropertyValue")
        out = []
        for v in values:
            tid = v["id"]
            if fault == "server" and tid.endswith("1"):
                out.append({"status": "servererror", "taskId": tid, "error": {"code": "ServerBusy"}})
            elif tid in self.exists or tid in self.added:
                out.append({"status": "clienterror", "taskId": tid, "error": {"code": "TaskExists"}})
            elif tid in self.bad_ids:
                out.append({"status": "clienterror", "taskId": tid,
                            "error": {"code": "InvalidPropertyValue", "message": {"value": "bad image"}}})
            else:
                self.added.add(tid)
                out.append({"status": "success", "taskId": tid})
        return {"value": out}


def _http(status, code, retry_after=None):
    exc = HttpResponseError(message=code)
    exc.status_code = status
    exc.error = SimpleNamespace(code=code, message=code)
    exc.response = SimpleNamespace(headers={"Retry-After": retry_after} if retry_after else {})
    return exc


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(batch_client.time, "sleep", slept.append)
    return slept


def test_chunks_respect_count_and_size():
    assert [len(c) for c in chunk_specs([_spec(i) for i in range(250)])] == [100, 100, 50]
    big = [_spec(i, pad=300_000) for i in range(7)]
    assert all(sum(s.size for s in c) <= 900_000 for c in chunk_specs(big))


def test_250_tasks_take_three_calls_and_duplicates_count_as_success(config):
    client = FaultyBatch(exists={"t5"})
    out = Submitter(client, config, sleep=lambda s: None).submit("job", [_spec(i) for i in range(250)] + [_spec(3)])
    assert out.calls == 3 and len(out.accepted) == 250 and out.accepted["t5"] == "exists"
    again = Submitter(client, config, sleep=lambda s: None).submit("job", [_spec(i) for i in range(250)])
    assert set(again.accepted.values()) == {"exists"}


def test_per_task_server_errors_are_resubmitted_alone(config):
    client = FaultyBatch(faults={1: "server"})
    out = Submitter(client, config, sleep=lambda s: None).submit("job", [_spec(i) for i in range(12)])
    assert len(out.accepted) == 12 and not out.unsubmitted
    assert sorted(client.calls[1]) == ["t1", "t11"]


def test_throttling_is_retried_honouring_retry_after(config):
    client = FaultyBatch(faults={1: _http(429, "TooManyRequests", "3"), 2: _http(503, "ServerBusy")})
    no_sleep = []
    out = Submitter(client, config, sleep=no_sleep.append).submit("job", [_spec(i) for i in range(5)])
    assert len(out.accepted) == 5 and len(client.calls) == 3
    assert no_sleep[0] == 3.0


def test_client_errors_are_isolated_to_the_bad_task(config):
    client = FaultyBatch(faults={1: "400"}, bad_ids={"t6"})
    out = Submitter(client, config, sleep=lambda s: None).submit("job", [_spec(i) for i in range(10)])
    assert set(out.rejected) == {"t6"} and "InvalidPropertyValue" in out.rejected["t6"]
    assert len(out.accepted) == 9


def test_per_task_client_errors_become_rejections(config):
    out = Submitter(FaultyBatch(bad_ids={"t2"}), config, sleep=lambda s: None).submit("job", [_spec(i)
                                                                                             for i in range(4)])
    assert "bad image" in out.rejected["t2"] and len(out.accepted) == 3


def test_an_unavailable_batch_is_not_waited_for_chunk_after_chunk(config):
    down = FaultyBatch(faults={i: _http(503, "ServerBusy") for i in range(1, 50)})
    out = Submitter(down, config, sleep=lambda s: None, retry_budget=0.0).submit("job", [_spec(i)
                                                                                         for i in range(250)])
    assert len(out.unsubmitted) == 250 and not out.accepted and len(down.calls) == 1
