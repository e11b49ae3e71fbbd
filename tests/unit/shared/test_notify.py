"""A sent message is marked sent even through a brief Storage outage (the fault is injected)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.notify import notify_completion


class FlakyRuns:
    def __init__(self, failures: int):
        self.failures, self.marked = failures, []

    def mark_notified(self, pipeline, run_id):
        if self.failures:
            self.failures -= 1
            raise ServiceRequestError("connection refused (storage restarting)")
        self.marked.append((pipeline, run_id))


def _ctx(runs, repair=timedelta(seconds=30)):
    sent = []
    return SimpleNamespace(runs=runs, messenger=SimpleNamespace(completed=sent.append),
                           settings=SimpleNamespace(notify_repair_after=repair),
                           config=SimpleNamespace(pipelines={}), batcher=None), sent


def test_marking_a_sent_message_is_retried_through_a_storage_outage():
    runs = FlakyRuns(failures=2)
    ctx, sent = _ctx(runs)
    notify_completion(ctx, {"PartitionKey": "p", "RowKey": "r1", "state": "succeeded"}, {"runId": "r1"})
    assert [m["messageId"] for m in sent] == ["r1:succeeded"]  # sent once
    assert runs.marked == [("p", "r1")]  # and marked, so the safety net does not send it again


def test_an_outage_longer_than_half_the_repair_delay_is_left_to_the_safety_net():
    ctx, sent = _ctx(FlakyRuns(failures=100), repair=timedelta(seconds=1))
    with pytest.raises(ServiceRequestError):
        notify_completion(ctx, {"PartitionKey": "p", "RowKey": "r1", "state": "succeeded"}, {"runId": "r1"})
    assert len(sent) == 1
