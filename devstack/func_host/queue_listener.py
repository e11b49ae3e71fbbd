"""Queue trigger listener: the host's QueueListener/QueueProcessor semantics against Azurite.

- receives up to ``batchSize`` messages with a 10 minute invisibility, renewed at half that while running;
- fetches the next batch once in-flight messages drop to ``newBatchThreshold``;
- polls with randomized exponential back-off from 100 ms up to ``maxPollingInterval`` while the queue is empty;
- decodes ``messageEncoding`` (base64 by default; a body that is not valid base64 goes to the poison queue);
- success deletes the message; failure makes it visible again after ``visibilityTimeout``, or, once its
  DequeueCount reached ``maxDequeueCount``, copies the raw body to ``<queue>-poison`` (created on demand)
  and deletes the original;
- on shutdown, messages still running after the grace period are made visible again (released), not lost.
- storage that does not answer (Azurite restarting) when a message is settled, or when a killed predecessor's
  messages are released, is tried again for a while (SETTLE_RETRY_SECONDS) rather than given up at once: given up,
  the message stays invisible for the rest of its 10 minute lease, which a user sees as a request with no result.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

from devstack.func_host import bindings
from devstack.func_host.backoff import Backoff
from devstack.func_host.clients import decode_body, queue_client
from devstack.func_host.host_config import QueuesOptions
from devstack.func_host.invoker import Invoker, Outcome
from devstack.func_host.journal import InflightJournal
from devstack.func_host.loader import LoadedFunction
from devstack.func_host.renewer import Renewer

log = logging.getLogger("func_host")

MESSAGE_INVISIBILITY = float(os.environ.get("EVENTBATCH_FUNC_HOST_MESSAGE_LEASE_SECONDS", "600"))
SETTLE_RETRY_SECONDS = 60.0


def storage_unreachable(exc: Exception) -> bool:
    """The storage service did not answer (connection refused or reset, a 5xx): worth another try. An answer
    such as 404 or a pop receipt mismatch (400) means the message is gone or someone else holds it."""
    if isinstance(exc, (ResourceNotFoundError, ResourceExistsError)):
        return False
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return exc.status_code >= 500 or exc.status_code == 408
    return isinstance(exc, (AzureError, OSError))


def with_retries(action: Callable[[], object], budget: float = SETTLE_RETRY_SECONDS, sleep=time.sleep,
                 clock=time.monotonic):
    """Run `action` until it works, while storage is unreachable and `budget` seconds have not passed; other
    errors (and the last one) are raised."""
    deadline = clock() + budget
    delay = 0.25
    while True:
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not storage_unreachable(exc) or clock() + delay > deadline:
                raise
        sleep(delay)
        delay = min(delay * 2, 5.0)


def release_orphans(queue, orphans: list[dict]) -> tuple[int, list[dict]]:
    """Make visible the messages a killed predecessor held: (released, the ones to try again because storage
    did not answer). A message deleted or received by someone else since is simply no longer ours."""
    released, again = 0, []
    for orphan in orphans:
        try:
            queue.update_message(orphan["id"], orphan["pop_receipt"], visibility_timeout=0)
            released += 1
        except Exception as exc:  # noqa: BLE001
            if storage_unreachable(exc):
                again.append(orphan)
    return released, again


class _InFlight:
    def __init__(self, message):
        self.message = message
        self.pop_receipt = message.pop_receipt
        self.lock = threading.Lock()
        self.settled = False  # deleted, released or poisoned: the host no longer owns it


class QueueListener:
    def __init__(self, function: LoadedFunction, connection_string: str, queue_name: str, options: QueuesOptions,
                 invoker: Invoker, renewer: Renewer, settle_pool: ThreadPoolExecutor,
                 journal: InflightJournal | None = None, orphans: list[dict] | None = None):
        self.function = function
        self.queue_name = queue_name
        self.options = options
        self._queue = queue_client(connection_string, queue_name)
        self._poller = queue_client(connection_string, queue_name, polling=True)
        self._failing = False
        self._poison = queue_client(connection_string, f"{queue_name}-poison")
        self._poison_ready = False
        self._invoker = invoker
        self._renewer = renewer
        self._settle = settle_pool
        self._in_flight: dict[str, _InFlight] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._backoff = Backoff(options.max_polling_interval)
        self._thread = threading.Thread(target=self._run, name=f"queue-{function.name}", daemon=True)
        self._missing_logged = False
        self._journal = journal
        self._orphans = [o for o in (orphans or []) if o.get("function") == function.name
                         and o.get("queue") == queue_name]
        self._orphans_logged = False

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)

    def describe(self) -> str:
        return f"queueTrigger on {self.queue_name!r}"

    def start(self) -> None:
        self._release_orphans()
        self._thread.start()

    def _release_orphans(self) -> None:
        """Make visible the messages a killed predecessor still held (see journal.py); those storage did not
        answer for are tried again from the polling loop."""
        if not self._orphans:
            return
        released, self._orphans = release_orphans(self._queue, self._orphans)
        if released:
            log.info("Released %d message(s) on %r left in flight by a stopped host instance", released,
                     self.queue_name)
        if self._orphans and not self._orphans_logged:
            log.warning("Could not release %d message(s) on %r left in flight by a stopped host instance (storage "
                        "does not answer); trying again while polling", len(self._orphans), self.queue_name)
            self._orphans_logged = True

    def stop(self) -> None:
        """Stop fetching; in-flight invocations keep running until they finish or are released."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while len(self._in_flight) > self.options.new_batch_threshold and not self._stop.is_set():
                    self._cond.wait(1.0)
            if self._stop.is_set():
                return
            self._release_orphans()  # only those storage did not answer for at start
            try:
                messages = self._receive_batch()
                self._missing_logged = False
                if self._failing:
                    log.info("Polling queue %r works again", self.queue_name)
                    self._failing = False
            except ResourceNotFoundError:
                if not self._missing_logged:
                    log.warning("Queue %r (function %s) does not exist yet; polling until it does",
                                self.queue_name, self.function.name)
                    self._missing_logged = True
                messages = []
            except Exception as exc:  # noqa: BLE001 - storage hiccups must not kill the listener
                if not self._failing:
                    log.warning("Polling queue %r failed (retrying with back-off): %s", self.queue_name,
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    self._failing = True
                messages = []
            if not messages:
                self._stop.wait(self._backoff.next_delay())
                continue
            self._backoff.reset()
            for message in messages:
                if self._stop.is_set():
                    self._release(_InFlight(message))
                    continue
                self._dispatch(message)

    def _receive_batch(self) -> list:
        """One Get Messages call for up to batchSize messages (the SDK's max_messages alone asks one at a time)."""
        pager = self._poller.receive_messages(messages_per_page=self.options.batch_size,
                                             visibility_timeout=int(MESSAGE_INVISIBILITY))
        page = next(pager.by_page(), None)
        return list(page) if page is not None else []

    def _dispatch(self, message) -> None:
        body = decode_body(message.content or "", self.options.message_encoding)
        item = _InFlight(message)
        if body is None:
            log.error("Message %s on queue %r is not valid base64 (host.json messageEncoding is base64); moving it "
                      "to %r", message.id, self.queue_name, f"{self.queue_name}-poison")
            self._settle.submit(self._poison_message, item)
            return
        with self._cond:
            self._in_flight[message.id] = item
        if self._journal:
            self._journal.put(self.function.name, self.queue_name, message.id, item.pop_receipt)
        self._renewer.register(("queue", self.queue_name, message.id), MESSAGE_INVISIBILITY / 2,
                               lambda: self._renew(item))
        reason = f"New queue message detected on '{self.queue_name}'."
        future = self._invoker.invoke(
            self.function, lambda _ctx: {self.function.trigger_param: bindings.queue_value(
                self.function.trigger_annotation, message, body)}, reason)
        future.add_done_callback(lambda f: _submit(self._settle, self._complete, item, f.result()))

    def _renew(self, item: _InFlight) -> None:
        with item.lock:
            if item.settled:
                return
            receipt = self._queue.update_message(item.message.id, item.pop_receipt,
                                                 visibility_timeout=int(MESSAGE_INVISIBILITY))
            item.pop_receipt = receipt.pop_receipt
            if self._journal:
                self._journal.put(self.function.name, self.queue_name, item.message.id, item.pop_receipt)

    def _complete(self, item: _InFlight, outcome: Outcome) -> None:
        try:
            with item.lock:
                if item.settled:
                    return  # released at shutdown; the message will be delivered again
                if outcome.succeeded:
                    with_retries(lambda: self._queue.delete_message(item.message.id, item.pop_receipt))
                elif item.message.dequeue_count >= self.options.max_dequeue_count:
                    log.warning("Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                                item.message.id, self.options.max_dequeue_count, f"{self.queue_name}-poison")
                    with_retries(lambda: self._copy_to_poison(item))
                    with_retries(lambda: self._queue.delete_message(item.message.id, item.pop_receipt))
                else:
                    with_retries(lambda: self._queue.update_message(
                        item.message.id, item.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)))
                item.settled = True
        except Exception as exc:  # noqa: BLE001 - the message reappears after its invisibility; log why
            log.error("Settling message %s on %r failed (it reappears when its lease ends): %s", item.message.id,
                      self.queue_name, exc)
        finally:
            self._forget(item)

    def _poison_message(self, item: _InFlight) -> None:
        try:
            with item.lock:
                self._copy_to_poison(item)
                self._queue.delete_message(item.message.id, item.pop_receipt)
                item.settled = True
        except Exception as exc:  # noqa: BLE001
            log.error("Moving message %s to the poison queue failed: %s", item.message.id, exc)

    def _copy_to_poison(self, item: _InFlight) -> None:
        if not self._poison_ready:
            try:
                self._poison.create_queue()
            except ResourceExistsError:
                pass
            self._poison_ready = True
        self._poison.send_message(item.message.content or "")

    def _forget(self, item: _InFlight) -> None:
        self._renewer.unregister(("queue", self.queue_name, item.message.id))
        if self._journal:
            self._journal.remove(self.queue_name, item.message.id)
        with self._cond:
            self._in_flight.pop(item.message.id, None)
            self._cond.notify_all()

    def _release(self, item: _InFlight) -> None:
        try:
            with item.lock:
                if item.settled:
                    return
                self._queue.update_message(item.message.id, item.pop_receipt, visibility_timeout=0)
                item.settled = True
                log.info("Released message %s on %r for redelivery (host shutting down)", item.message.id,
                         self.queue_name)
        except Exception as exc:  # noqa: BLE001
            log.warning("Releasing message %s on %r failed (it reappears after its invisibility): %s",
                        item.message.id, self.queue_name, exc)

    def release_all(self) -> None:
        """Make every message still running visible again; their late outcomes are then ignored."""
        with self._cond:
            items = list(self._in_flight.values())
        for item in items:
            self._release(item)
            self._forget(item)


def _submit(pool: ThreadPoolExecutor, fn, *args) -> None:
    """Settle on the host's small I/O pool (never on the event loop); after shutdown the work was released."""
    try:
        pool.submit(fn, *args)
    except RuntimeError:
        pass
