"""Blob trigger listener: the local stand-in for Event Grid delivery (and for LogsAndContainerScan).

Azurite has no Event Grid, so new and changed blobs are found by listing the watched container (narrowed to the
path's literal prefix). Scans are as frequent as they are cheap: the pause after a scan is SCAN_COST_FACTOR times
what the scan took, at least ``scan_interval`` (default 0.04 s) and at most MAX_SCAN_INTERVAL. A small container
(the completion markers, which the app deletes as it records them) is looked at 25 times a second, so a new blob
reaches its function in tens of milliseconds, as Event Grid's push does on Azure; a container of thousands of blobs
is listed less often, so that scanning never takes more than a tenth of the time. When no blob function of the
host has run for IDLE_AFTER seconds, the pause doubles with every scan that finds nothing, up to
MAX_IDLE_SCAN_INTERVAL, so an idle host costs Azurite little; the next invocation (an event pushed to the
webhook, or a find) brings every listener back to full speed. A container whose blobs arrive as events pushed to
the webhook (the stack's own uploads) is listed only every FALLBACK_SCAN_INTERVAL: there the scan is the fallback
for other tools' uploads, and a large input container listed often would hold up Azurite for everything else. A blob version (container, name, ETag) is
handed to the function once, guarded by a receipt (see blob_receipts); receipts already completed are loaded
once at start, so a restarted host does not fire handled blobs again. A failed version is retried on later scans
(after queues.visibilityTimeout) until poisonBlobThreshold failures, then a message goes to
``webjobs-blobtrigger-poison`` and the version is marked handled.
"""

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from devstack.func_host import bindings
from devstack.func_host.blob_path import BlobPath
from devstack.func_host.blob_receipts import Claim, ReceiptStore
from devstack.func_host.clients import blob_service, encode_body, queue_client
from devstack.func_host.connections import ResolvedConnection
from devstack.func_host.host_config import HostConfig
from devstack.func_host.invoker import Invoker, Outcome
from devstack.func_host.loader import LoadedFunction
from devstack.func_host.renewer import Renewer

log = logging.getLogger("func_host")

POISON_QUEUE = "webjobs-blobtrigger-poison"
SCAN_COST_FACTOR = 10.0
MAX_SCAN_INTERVAL = 1.0
IDLE_AFTER = 10.0  # seconds without any blob invocation in the host: scans back off
MAX_IDLE_SCAN_INTERVAL = 2.0
PUSHED_RECENTLY = 60.0  # a container whose blobs arrive as pushed events is scanned only as the fallback ...
FALLBACK_SCAN_INTERVAL = 5.0  # ... every 5 s (uploads by other tools are found within that)


class BlobGoneError(Exception):
    """The blob was deleted between detection and invocation; the version is skipped, as the host does."""


class Slots:
    """maxDegreeOfParallelism: concurrent blob-triggered invocations across all blob functions."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()
        self._waiters: list[threading.Event] = []
        self.last_activity = 0.0  # time.monotonic() of the latest slot taken (a blob invocation starting)

    def on_free(self, wake: threading.Event) -> None:
        """Set `wake` whenever a slot is given back (a listener with pushed blobs waiting)."""
        self._waiters.append(wake)

    def try_take(self) -> bool:
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            self.last_activity = time.monotonic()
            return True

    def give(self) -> None:
        with self._lock:
            self._used -= 1
        for wake in self._waiters:
            wake.set()


class BlobListener:
    def __init__(self, function: LoadedFunction, connection: ResolvedConnection, path: BlobPath,
                 receipts: ReceiptStore, config: HostConfig, invoker: Invoker, renewer: Renewer,
                 settle_pool: ThreadPoolExecutor, slots: Slots, scan_interval: float,
                 previous_lease_id: str | None = None):
        self.function = function
        self.path = path
        self._connection = connection
        self._container = blob_service(connection.connection_string).get_container_client(path.container)
        self._lister = blob_service(connection.connection_string, polling=True).get_container_client(path.container)
        self._failing = False
        self._receipts = receipts
        self._config = config
        self._invoker = invoker
        self._renewer = renewer
        self._settle = settle_pool
        self._slots = slots
        self._scan_interval = scan_interval
        self._previous_lease_id = previous_lease_id
        self._done: set[tuple[str, str, str]] = set()
        self._claiming: set[tuple[str, str, str]] = set()
        # Claims (3 round trips each) run beside the scanner, as many at once as there are slots, so detection
        # never waits for one blob's receipt before the next blob's.
        self._claimer = ThreadPoolExecutor(max_workers=max(1, min(slots.limit, 16)),
                                           thread_name_prefix=f"claim-{function.name}")
        self._running: dict[tuple[str, str, str], Claim] = {}
        self._retry_at: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"blob-{function.name}", daemon=True)
        self._missing_logged = False
        self._released: set[tuple[str, str, str]] = set()
        self._pushed: deque = deque()  # blobs announced by an event (devstack.func_host.webhook), not yet claimed
        self._last_push = float("-inf")
        self._wake = threading.Event()
        slots.on_free(self._wake)

    def describe(self) -> str:
        return f"blobTrigger on {self.path.pattern!r}"

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._running) + len(self._claiming)

    def start(self) -> None:
        done, incomplete = self._receipts.load(self.function.function_id)
        self._done = done
        if incomplete and self._previous_lease_id:
            released = self._receipts.release_stale(incomplete, self._previous_lease_id)
            if released:
                log.info("Released %d blob receipt lease(s) of function %s left by a stopped host instance",
                         released, self.function.name)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._claimer.shutdown(wait=False)

    def notify(self, name: str, etag: str | None, size: int | None = None, content_type: str | None = None) -> None:
        """A BlobCreated event for `name` (from the webhook): claim and invoke it as soon as a slot is free,
        without waiting for the next scan."""
        if self.path.match(name) is None or not etag:
            return
        etag = etag.strip('"')  # as a listing gives it (an upload's response and a HEAD quote it)
        item = SimpleNamespace(name=name, etag=etag, size=int(size or 0), last_modified=datetime.now(UTC),
                               content_settings=SimpleNamespace(content_type=content_type), metadata={})
        self._pushed.append(item)
        self._last_push = time.monotonic()
        self._wake.set()

    def _dispatch_pushed(self) -> None:
        while self._pushed and not self._stop.is_set():
            item = self._pushed[0]
            key = (self.path.container, item.name, item.etag)
            with self._lock:
                seen = key in self._done or key in self._running or key in self._claiming
            if not seen:
                if not self._slots.try_take():
                    return  # woken again when a slot is given back
                self._start_claim(key, item)
            self._pushed.popleft()

    def _run(self) -> None:
        last_scan = float("-inf")
        active_pause = idle_pause = self._scan_interval
        empty_scans = 0
        recent: deque = deque(maxlen=5)  # what the last scans took: the cheapest one stands for the container's
        # size (a scan that waited behind another request is no reason to pause ten times as long)
        while not self._stop.is_set():
            self._wake.clear()
            self._dispatch_pushed()
            now = time.monotonic()
            active = now - self._slots.last_activity <= IDLE_AFTER
            due = last_scan + (active_pause if active else idle_pause)
            if now < due:
                self._wake.wait(due - now)  # woken early by a pushed event or a slot given back
                continue
            try:
                empty_scans = 0 if self.scan_once() else empty_scans + 1
                if self._failing:
                    log.info("Scanning container %r for %s works again", self.path.container, self.function.name)
                    self._failing = False
            except Exception as exc:  # noqa: BLE001 - keep scanning through storage hiccups
                if not self._failing:
                    log.warning("Scanning container %r for %s failed (retrying every scan): %s", self.path.container,
                                self.function.name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    self._failing = True
            recent.append(time.monotonic() - now)
            active_pause = min(MAX_SCAN_INTERVAL, max(self._scan_interval, SCAN_COST_FACTOR * min(recent)))
            idle_pause = min(MAX_IDLE_SCAN_INTERVAL, active_pause * 2 ** min(empty_scans, 8))
            if time.monotonic() - self._last_push < PUSHED_RECENTLY:
                active_pause = idle_pause = max(active_pause, FALLBACK_SCAN_INTERVAL)
            last_scan = now

    def scan_once(self) -> int:
        """List the container once and dispatch new versions; returns how many were dispatched."""
        try:
            blobs = list(self._lister.list_blobs(name_starts_with=self.path.prefix or None))
            self._missing_logged = False
        except ResourceNotFoundError:
            if not self._missing_logged:
                log.warning("Container %r (function %s) does not exist yet; scanning until it does",
                            self.path.container, self.function.name)
                self._missing_logged = True
            return 0
        now = time.monotonic()
        dispatched = 0
        for item in sorted(blobs, key=lambda b: b.last_modified):
            if self._stop.is_set():
                break
            key = (self.path.container, item.name, item.etag)
            with self._lock:
                if (key in self._done or key in self._running or key in self._claiming
                        or self._retry_at.get(key, 0) > now):
                    continue
            if self.path.match(item.name) is None:
                with self._lock:
                    self._done.add(key)  # never a candidate; skip the regex next time
                continue
            if not self._slots.try_take():
                break
            if not self._start_claim(key, item):
                break
            dispatched += 1
        return dispatched

    def _start_claim(self, key, item) -> bool:
        """Claim and invoke on the claim pool (a slot is taken); False when the host is shutting down."""
        with self._lock:
            self._claiming.add(key)
        try:
            self._claimer.submit(self._claim, key, item)
        except RuntimeError:  # shutting down
            with self._lock:
                self._claiming.discard(key)
            self._slots.give()
            return False
        return True

    def _claim(self, key, item) -> None:
        try:
            if not self._claim_and_dispatch(key, item):
                self._slots.give()
        except Exception as exc:  # noqa: BLE001 - the version is tried again on a later scan
            self._slots.give()
            log.warning("Claiming blob %s/%s failed (retrying on a later scan): %s", key[0], key[1],
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            with self._lock:
                self._claiming.discard(key)

    def _claim_and_dispatch(self, key, item) -> bool:
        claim = self._receipts.try_claim(self.function.function_id, *key)
        if claim == "completed":
            with self._lock:
                self._done.add(key)
            return False
        if claim == "busy":  # another instance runs it; look again in a while, not on every scan
            with self._lock:
                self._retry_at[key] = time.monotonic() + 2.0
            return False
        with self._lock:
            self._running[key] = claim
            self._retry_at.pop(key, None)
        self._renewer.register(("blob", self.function.name, key), 15, lambda: ReceiptStore.renew(claim))
        event = bindings.BlobEvent(
            connection_setting=self._connection.setting_name, container=key[0], name=key[1], etag=key[2],
            length=item.size or 0, uri=self._container.get_blob_client(key[1]).url,
            properties={"Length": item.size, "ETag": item.etag, "LastModified": str(item.last_modified),
                        "ContentType": getattr(item.content_settings, "content_type", None)},
            metadata=dict(item.metadata or {}))
        reason = f"New blob detected({self.path.container}/{item.name})"
        future = self._invoker.invoke(self.function, lambda _ctx: self._build(event), reason)
        future.add_done_callback(lambda f: _submit(self._settle, self._complete, key, claim, f.result()))
        return True

    def _build(self, event: bindings.BlobEvent) -> dict:
        annotation = self.function.trigger_annotation
        content = None
        metadata = event.metadata
        if bindings.wants_content(annotation):
            try:
                downloader = self._container.get_blob_client(event.name).download_blob()
            except ResourceNotFoundError as exc:
                raise BlobGoneError(f"blob {event.container}/{event.name} no longer exists") from exc
            content = downloader.readall()
            metadata = dict(downloader.properties.metadata or {})
        event = bindings.BlobEvent(**{**event.__dict__, "metadata": metadata})
        return {self.function.trigger_param: bindings.blob_value(annotation, event, content)}

    def _complete(self, key, claim: Claim, outcome: Outcome) -> None:
        try:
            with self._lock:
                if key in self._released:
                    return
            if outcome.succeeded or isinstance(outcome.error, BlobGoneError):
                ReceiptStore.complete(claim)
                with self._lock:
                    self._done.add(key)
                return
            failures = ReceiptStore.record_failure(claim)
            threshold = self._config.blobs.poison_blob_threshold
            if failures >= threshold:
                log.warning("Blob %s/%s (ETag %s) failed %d time(s) (poisonBlobThreshold=%d); moving it to queue '%s'",
                            key[0], key[1], key[2], failures, threshold, POISON_QUEUE)
                self._poison(key)
                claim2 = self._receipts.try_claim(self.function.function_id, *key)
                if not isinstance(claim2, str):
                    ReceiptStore.complete(claim2)
                with self._lock:
                    self._done.add(key)
            else:
                with self._lock:
                    self._retry_at[key] = time.monotonic() + self._config.queues.visibility_timeout
        except Exception as exc:  # noqa: BLE001 - the lease expires and the version is retried
            log.error("Recording the outcome for blob %s/%s failed: %s", key[0], key[1], exc)
        finally:
            self._renewer.unregister(("blob", self.function.name, key))
            with self._lock:
                self._running.pop(key, None)
            self._slots.give()

    def _poison(self, key) -> None:
        queue = queue_client(self._connection.connection_string, POISON_QUEUE)
        try:
            queue.create_queue()
        except ResourceExistsError:
            pass
        body = json.dumps({"Type": "BlobTrigger", "FunctionId": self.function.function_id, "BlobType": "BlockBlob",
                           "ContainerName": key[0], "BlobName": key[1], "ETag": key[2]})
        queue.send_message(encode_body(body.encode("utf-8"), self._config.queues.message_encoding))

    def release_all(self) -> None:
        """Give up receipts still running at shutdown so the next host start runs those versions again."""
        with self._lock:
            running = list(self._running.items())
            self._released.update(k for k, _ in running)
        for key, claim in running:
            self._renewer.unregister(("blob", self.function.name, key))
            try:
                ReceiptStore.release(claim)
                log.info("Released blob %s/%s for a later run (host shutting down)", key[0], key[1])
            except Exception as exc:  # noqa: BLE001
                log.warning("Releasing the receipt lease for %s/%s failed (it expires in 30 s): %s",
                            key[0], key[1], exc)


def _submit(pool: ThreadPoolExecutor, fn, *args) -> None:
    """Settle on the host's small I/O pool (never on the event loop); after shutdown the work was released."""
    try:
        pool.submit(fn, *args)
    except RuntimeError:
        pass
