"""A queue message is settled (or a killed predecessor's message released) even when storage does not answer for
a few seconds, as when Azurite restarts (found by tests/e2e/test_faults.py): given up at the first error, the
message would stay invisible for the rest of its 10 minute lease. The fault is the point of the fake here."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from devstack.func_host.queue_listener import release_orphans, storage_unreachable, with_retries


class FlakyQueue:
    """update_message fails with `errors` (one per call) before it works."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.updates = []

    def update_message(self, message_id, pop_receipt, visibility_timeout):
        if self.errors:
            raise self.errors.pop(0)
        self.updates.append((message_id, visibility_timeout))


def _status(code: int) -> HttpResponseError:
    exc = HttpResponseError(message=f"status {code}")
    exc.status_code = code
    return exc


def test_storage_that_does_not_answer_is_worth_another_try_an_answer_is_not():
    assert storage_unreachable(ServiceRequestError("connection refused"))
    assert storage_unreachable(_status(503))
    assert not storage_unreachable(_status(400))  # pop receipt mismatch: someone else holds the message
    assert not storage_unreachable(ResourceNotFoundError("gone"))


def test_a_settle_is_tried_again_while_storage_restarts():
    queue = FlakyQueue([ServiceRequestError("refused"), ServiceRequestError("refused"), _status(503)])
    slept = []
    with_retries(lambda: queue.update_message("m1", "r1", visibility_timeout=10), sleep=slept.append)
    assert queue.updates == [("m1", 10)]
    assert slept == [0.25, 0.5, 1.0]


def test_a_settle_gives_up_after_its_budget_and_at_once_on_an_answer():
    clock = iter(range(0, 1000, 10)).__next__  # ten seconds pass per look at the clock
    queue = FlakyQueue([ServiceRequestError("refused")] * 100)
    with pytest.raises(ServiceRequestError):
        with_retries(lambda: queue.update_message("m1", "r1", 10), budget=30, sleep=lambda s: None, clock=clock)
    queue = FlakyQueue([_status(400)])
    with pytest.raises(HttpResponseError):
        with_retries(lambda: queue.update_message("m1", "r1", 10), sleep=lambda s: pytest.fail("no retry"))


def test_orphans_storage_did_not_answer_for_are_kept_for_another_try():
    orphans = [{"id": "a", "pop_receipt": "1"}, {"id": "b", "pop_receipt": "2"}, {"id": "c", "pop_receipt": "3"}]
    queue = FlakyQueue([ServiceRequestError("refused"), ResourceNotFoundError("deleted since")])
    released, again = release_orphans(queue, orphans)
    assert (released, again) == (1, [orphans[0]])  # b was deleted since: no longer ours; c released
    assert release_orphans(queue, again) == (1, [])
    assert [m for m, _ in queue.updates] == ["c", "a"]
