"""An eventGridTrigger function: invocations from the webhook and from the local Event Grid's delivery pool.

Every event becomes one invocation whose trigger argument is built by the worker's own converter
(bindings.event_grid_value). ``in_flight`` counts running invocations whatever their origin, so the host's
shutdown waits for them within its grace period.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass

from devstack.func_host import bindings
from devstack.func_host.invoker import Invoker, Outcome
from devstack.func_host.loader import LoadedFunction

SUBJECT_PREFIX = "/blobServices/default/containers/"


@dataclass(frozen=True)
class Subscription:
    """The local equivalent of infra's Event Grid subscription for one function: BlobCreated events whose subject
    begins with /blobServices/default/containers/<container>/blobs/<prefix>."""

    function: str
    container: str
    prefix: str = ""

    @property
    def subject_begins_with(self) -> str:
        return f"{SUBJECT_PREFIX}{self.container}/blobs/{self.prefix}"

    def blob_of(self, subject: str) -> str | None:
        """The blob name of a matching event's subject, else None."""
        if not subject.startswith(self.subject_begins_with):
            return None
        return subject[len(f"{SUBJECT_PREFIX}{self.container}/blobs/"):]


class EventGridListener:
    def __init__(self, function: LoadedFunction, invoker: Invoker, subscription: Subscription | None):
        self.function = function
        self.subscription = subscription
        self._invoker = invoker
        self._lock = threading.Lock()
        self._running = 0

    def describe(self) -> str:
        if self.subscription is None:
            return (f"eventGridTrigger (webhook only: no EventGridLocal__{self.function.name} setting, so only "
                    "events posted to /runtime/webhooks/eventgrid reach it)")
        return (f"eventGridTrigger (local subscription: BlobCreated in container {self.subscription.container!r}"
                f"{f' under {self.subscription.prefix!r}' if self.subscription.prefix else ''}; webhook too)")

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._running

    def start(self) -> None:  # the webhook and the delivery pool drive it
        return

    def stop(self) -> None:
        return

    def release_all(self) -> None:  # undelivered events stay in the local Event Grid's journal
        return

    def invoke(self, event: dict, reason: str) -> Future:
        """One invocation; the future resolves to an Outcome (never raises)."""
        with self._lock:
            self._running += 1
        param = self.function.trigger_param
        future = self._invoker.invoke(self.function, lambda _ctx: {param: bindings.event_grid_value(event)}, reason)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future) -> None:
        with self._lock:
            self._running -= 1

    def invoke_all(self, events: list[dict], reason: str) -> list[Outcome]:
        """Invoke once per event, all in parallel, and wait for every one (the webhook's Notification)."""
        futures = [self.invoke(event, reason) for event in events]
        return [f.result() for f in futures]
