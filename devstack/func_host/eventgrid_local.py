"""A local stand-in for Event Grid's delivery to eventGridTrigger functions (Azurite has no Event Grid).

Subscriptions are declared by app settings, ``EventGridLocal__<function>`` = ``<container>[/<prefix>]`` (the
equivalent of infra's subscription: BlobCreated events, data.api in CopyBlob/PutBlob/PutBlockList/FlushWithClose,
subjectBeginsWith /blobServices/default/containers/<container>/blobs/<prefix>, one event per delivery). Other
settings (all optional, %Setting% references resolved where a name is expected):
``EventGridLocal__deadLetterContainer`` (no dead-lettering without it: exhausted events are dropped),
``EventGridLocal__connection`` (the connection setting of the watched account; default AzureWebJobsStorage),
``EventGridLocal__retrySchedule`` (seconds, comma-separated), ``EventGridLocal__maxDeliveryAttempts``,
``EventGridLocal__eventTimeToLive`` (minutes), ``EventGridLocal__maxConcurrentDeliveries`` (default 16); the
host's --eventgrid-* flags win over them.

Publishing: ``POST /eventgrid/local/publish?code=<key>`` on the host's webhook server (what
devstack.func_host.events.publish_blob_created calls) takes an event array, appends one journal line per matching
subscription and answers 200 at once, like Event Grid's publish API; it costs Azurite nothing. A delivery pool
(at most ``concurrency`` at a time) invokes the function; a failed delivery is retried on Event Grid's schedule and
finally dead-lettered (eventgrid_policy). The fallback scan (eventgrid_scan) turns blob versions that no event
announced into events of the same kind. A blob version already journalled or delivered for a subscription is not
journalled again, so a pushed and a scanned event of one version deliver once.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from devstack.func_host.eventgrid_journal import DeliveredVersions, Entry, EventJournal, version_of
from devstack.func_host.eventgrid_listener import EventGridListener, Subscription
from devstack.func_host.eventgrid_policy import (
    MAX_ATTEMPTS_EXCEEDED,
    TTL_EXCEEDED,
    DeadLetterWriter,
    RetryPolicy,
)
from devstack.func_host.invoker import Outcome
from devstack.func_host.webhook import read_json_body

log = logging.getLogger("func_host")

PUBLISH_PATH = "/eventgrid/local/publish"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_APIS = ("CopyBlob", "PutBlob", "PutBlockList", "FlushWithClose")
DEFAULT_CONCURRENCY = 16
LOCAL_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
DEAD_LETTER_RETRY = 10.0  # seconds before a failed dead-letter write is tried again


def topic_of(blob_url: str) -> str:
    """The storage account's resource id, as Event Grid's system topic names it (a local, fixed subscription)."""
    parts = urlsplit(blob_url)
    host = parts.hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.replace(".", "").isdigit():
        account = parts.path.lstrip("/").split("/")[0]  # path style: the account comes first
    else:
        account = host.split(".")[0]
    return (f"/subscriptions/{LOCAL_SUBSCRIPTION_ID}/resourceGroups/local/providers/Microsoft.Storage/"
            f"storageAccounts/{account or 'devstoreaccount1'}")


def as_storage_emits(event: dict) -> dict:
    """The event as Storage's system topic delivers it: the account's resource id as topic, and the ETag without
    the quotes an upload's response (what local publishers pass on) puts around it."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    out = dict(event)
    if not out.get("topic"):
        out["topic"] = topic_of(str(data.get("url") or ""))
    if isinstance(data.get("eTag"), str) and data["eTag"].startswith('"'):
        out["data"] = {**data, "eTag": data["eTag"].strip('"')}
    return out


class LocalEventGrid:
    def __init__(self, state_dir: Path, listeners: list[EventGridListener], policy: RetryPolicy,
                 concurrency: int = DEFAULT_CONCURRENCY, dead_letter: DeadLetterWriter | None = None,
                 clock=time.time):
        self.listeners = {lst.function.name: lst for lst in listeners if lst.subscription is not None}
        self.subscriptions = [lst.subscription for lst in self.listeners.values()]
        self.policy = policy
        self.concurrency = concurrency
        self.dead_letter = dead_letter
        self.journal = EventJournal(state_dir)
        self.delivered = DeliveredVersions(state_dir)
        self._clock = clock
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Entry]] = []
        self._seq = itertools.count()
        self._known: set[tuple[str, tuple]] = set()  # (function, version) journalled and not yet settled
        self._active = 0
        self._stopping = False
        self._last_push: dict[str, float] = {}  # container -> monotonic time of the latest pushed event
        self._last_delivery: dict[str, float] = {}  # function -> monotonic time of the latest settled delivery
        self._subscriptions_file = state_dir / "eventgrid-subscriptions.json"
        self._since: dict[str, float] = {}  # function -> epoch its local subscription was created
        self._settle = ThreadPoolExecutor(max_workers=2, thread_name_prefix="eventgrid-settle")
        self._thread = threading.Thread(target=self._run, name="eventgrid-delivery", daemon=True)

    # -- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._load_subscriptions()
        self.delivered.load_and_compact()
        pending = self.journal.load_and_compact()
        now = self._clock()
        kept = 0
        for entry in pending:
            if entry.function not in self.listeners:
                log.warning("Dropping %d-attempt event %s of function %s: it no longer has a local subscription",
                            entry.attempts, entry.id, entry.function)
                self.journal.done(entry, "dropped")
                continue
            if entry.version:
                self._known.add((entry.function, entry.version))
            self._push(entry, max(now, entry.next_attempt))
            kept += 1
        if kept:
            log.info("Local Event Grid: %d undelivered event(s) from the journal are delivered again", kept)
        self._thread.start()

    def _load_subscriptions(self) -> None:
        """When each subscription was created, kept across restarts: as with Event Grid, a new subscription gets
        events for blobs written from then on, not for what its container already held (a changed container or
        prefix is a new subscription)."""
        try:
            previous = json.loads(self._subscriptions_file.read_text())
        except (OSError, ValueError):
            previous = {}
        now = self._clock()
        doc = {}
        for sub in self.subscriptions:
            old = previous.get(sub.function) if isinstance(previous, dict) else None
            if isinstance(old, dict) and old.get("container") == sub.container and old.get("prefix") == sub.prefix:
                created = float(old.get("created") or now)
            else:
                created = now
                log.info("Local Event Grid subscription for %s created (%s): blobs already there are not delivered, "
                         "as with Event Grid", sub.function, sub.subject_begins_with)
            self._since[sub.function] = created
            doc[sub.function] = {"container": sub.container, "prefix": sub.prefix, "created": created}
        self._subscriptions_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._subscriptions_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self._subscriptions_file)

    def subscribed_since(self, function: str) -> float:
        """Epoch seconds the function's local subscription was created (0 before start)."""
        return self._since.get(function, 0.0)

    def stop(self) -> None:
        """No new deliveries start; those in flight finish (the host waits for its grace period)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._active

    # -- intake ------------------------------------------------------------------------------------------------
    def handle_publish(self, query: dict, headers, body_stream) -> tuple[int, dict | list | None]:
        """The publish endpoint (the key was checked by the webhook server)."""
        status, body = read_json_body(headers, body_stream)
        if status is not None:
            return status, body
        events = [body] if isinstance(body, dict) else body
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return 400, {"error": "the body must be an Event Grid event array"}
        if self._stopping:
            return 503, {"error": "the host is shutting down"}
        return 200, {"deliveries": self.publish(events, pushed=True)}

    def publish(self, events: list[dict], pushed: bool = False) -> int:
        """Journal each BlobCreated event once per matching subscription; returns how many subscriptions
        matched (an already known blob version counts as matched but is not journalled twice)."""
        matched = 0
        for event in events:
            for sub, name in self._matches(event):
                matched += 1
                if pushed:
                    self._last_push[sub.container] = time.monotonic()
                data = event.get("data") or {}
                self.offer(sub, event, version_of(sub.container, name, data.get("eTag")))
        return matched

    def _matches(self, event: dict):
        if event.get("eventType") != BLOB_CREATED:
            return
        data = event.get("data")
        if not isinstance(data, dict) or data.get("api") not in BLOB_APIS:
            return
        subject = str(event.get("subject") or "")
        for sub in self.subscriptions:
            name = sub.blob_of(subject)
            if name:
                yield sub, name

    def known(self, function: str, version) -> bool:
        with self._lock:
            return (function, version) in self._known or (function, version) in self.delivered

    def offer(self, sub: Subscription, event: dict, version) -> bool:
        """Journal one event for one subscription unless its blob version is already journalled or delivered."""
        now = self._clock()
        event = as_storage_emits(event)
        entry = Entry(id=str(uuid.uuid4()), function=sub.function, event=event, published=now, version=version,
                      next_attempt=now)
        with self._lock:
            if version is not None:
                key = (sub.function, version)
                if key in self._known or key in self.delivered:
                    return False
                self._known.add(key)
            self.journal.add(entry)  # durable before the publisher hears "accepted"
            self._push(entry, now)
        return True

    def pushed_recently(self, container: str, within: float) -> bool:
        return time.monotonic() - self._last_push.get(container, float("-inf")) < within

    def delivered_recently(self, function: str, within: float) -> bool:
        return time.monotonic() - self._last_delivery.get(function, float("-inf")) < within

    # -- delivery ----------------------------------------------------------------------------------------------
    def _push(self, entry: Entry, due: float) -> None:
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._seq), entry))
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._heap or self._active >= self.concurrency
                                              or self._heap[0][0] > self._clock()):
                    wait = None
                    if self._heap and self._active < self.concurrency:
                        wait = max(0.0, self._heap[0][0] - self._clock())
                    self._lock.wait(wait if wait is None else min(wait, 1.0))
                if self._stopping:
                    return
                _, _, entry = heapq.heappop(self._heap)
                self._active += 1
            self._attempt(entry)

    def _attempt(self, entry: Entry) -> None:
        now = self._clock()
        if entry.dead_letter_reason or now >= self.policy.expires_at(entry.published):
            self._submit(self._dead_letter, entry, entry.dead_letter_reason or TTL_EXCEEDED)
            return
        listener = self.listeners[entry.function]
        entry.last_attempt = now
        reason = f"EventGrid trigger fired (local delivery, attempt {entry.attempts + 1})"
        future = listener.invoke(entry.event, reason)
        future.add_done_callback(lambda f: self._submit(self._settle_outcome, entry, f.result()))

    def _submit(self, fn, *args) -> None:
        try:
            self._settle.submit(fn, *args)
        except RuntimeError:  # shutting down: the entry stays in the journal
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._active -= 1
            self._lock.notify_all()

    def _settle_outcome(self, entry: Entry, outcome: Outcome) -> None:
        try:
            entry.attempts += 1
            if outcome.succeeded:
                entry.last_outcome, entry.last_status = "Success", 202
                self._finish(entry, "delivered")
                return
            entry.last_outcome, entry.last_status = "GenericError", 500
            entry.last_error = str(outcome.error) if outcome.error is not None else "invocation failed"
            now = self._clock()
            if entry.attempts >= self.policy.max_delivery_attempts:
                self._dead_letter(entry, MAX_ATTEMPTS_EXCEEDED, release=False)
                return
            entry.next_attempt = min(now + self.policy.delay_after(entry.attempts),
                                     self.policy.expires_at(entry.published))
            self.journal.attempt(entry)
            log.warning("Event %s for %s failed (attempt %d of %d); next attempt in %.1f s", entry.id, entry.function,
                        entry.attempts, self.policy.max_delivery_attempts, entry.next_attempt - now)
            self._push(entry, entry.next_attempt)
        except Exception as exc:  # noqa: BLE001 - the journal keeps it; the next start delivers it again
            log.error("Settling event %s for %s failed: %s", entry.id, entry.function, exc)
        finally:
            self._release()

    def _dead_letter(self, entry: Entry, reason: str, release: bool = True) -> None:
        try:
            if self.dead_letter is None:
                log.warning("Event %s for %s dropped (%s after %d attempt(s)); set EventGridLocal__deadLetterContainer "
                            "to keep such events", entry.id, entry.function, reason, entry.attempts)
                self._finish(entry, "dropped")
                return
            try:
                name = self.dead_letter.write(entry, reason, self._clock())
            except Exception as exc:  # noqa: BLE001 - Storage hiccup: try the dead-letter write again later
                log.warning("Dead-lettering event %s for %s failed (retrying in %.0f s): %s", entry.id,
                            entry.function, DEAD_LETTER_RETRY, str(exc).splitlines()[0] if str(exc) else exc)
                entry.dead_letter_reason = reason
                self._push(entry, self._clock() + DEAD_LETTER_RETRY)
                return
            log.warning("Event %s for %s dead-lettered (%s after %d attempt(s)) to %s/%s", entry.id, entry.function,
                        reason, entry.attempts, self.dead_letter.container, name)
            self._finish(entry, "deadlettered")
        finally:
            if release:
                self._release()

    def _finish(self, entry: Entry, how: str) -> None:
        self.journal.done(entry, how)
        if entry.version is not None:
            self.delivered.add(entry.function, entry.version)
            with self._lock:
                self._known.discard((entry.function, entry.version))
        self._last_delivery[entry.function] = time.monotonic()
