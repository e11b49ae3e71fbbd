"""The local Event Grid's fallback: list a subscribed container and turn unannounced blob versions into events.

Uploads by the stack's own tools are announced by publish_blob_created; anything else (another tool, the portal's
local equivalent, a publish that did not reach the host) is found here. Each subscription has its own scanner,
listing its container narrowed to the prefix; a version (container, name, ETag) not journalled or delivered for the
function becomes a BlobCreated event built from the listing (URL, ETag, size, content type). Blobs last
modified before the subscription was created (LocalEventGrid.subscribed_since, kept in the state dir) are left
alone, as Event Grid announces only what is written after a subscription exists.

Pacing is per subscription: while events are being pushed for the container (within PUSHED_RECENTLY), the scan
is only the fallback and runs every FALLBACK_SCAN_INTERVAL; otherwise, while this subscription delivered within
IDLE_AFTER, the pause is SCAN_COST_FACTOR times the cheapest recent scan, between MIN_SCAN_INTERVAL and
MAX_SCAN_INTERVAL (the blob listener's rule); when idle, the pause doubles with each scan that finds nothing, up to
MAX_IDLE_SCAN_INTERVAL. Scans use the host's polling client from host threads, so the call counter counts them as
``host blob GET list``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from azure.core.exceptions import ResourceNotFoundError

from devstack.func_host.eventgrid_journal import version_of
from devstack.func_host.eventgrid_listener import Subscription
from devstack.func_host.events import blob_created_event

log = logging.getLogger("func_host")

SCAN_COST_FACTOR = 10.0
MIN_SCAN_INTERVAL = 0.1
MAX_SCAN_INTERVAL = 1.0
IDLE_AFTER = 10.0
MAX_IDLE_SCAN_INTERVAL = 2.0
PUSHED_RECENTLY = 60.0
FALLBACK_SCAN_INTERVAL = 5.0
CLOCK_SLACK = 2.0  # Last-Modified has whole seconds (and Azurite's clock is this machine's): err towards delivering


def next_pause(recent_costs, empty_scans: int, delivered_recently: bool, pushed_recently: bool,
               minimum: float = MIN_SCAN_INTERVAL) -> float:
    """The pause before a subscription's next scan (pure: the pacing rule above)."""
    active = min(MAX_SCAN_INTERVAL, max(minimum, SCAN_COST_FACTOR * min(recent_costs, default=0.0)))
    if pushed_recently:
        return max(active, FALLBACK_SCAN_INTERVAL)
    if delivered_recently:
        return active
    return min(MAX_IDLE_SCAN_INTERVAL, active * 2 ** min(empty_scans, 8))


class FallbackScanner:
    def __init__(self, grid, subscription: Subscription, container_client, minimum: float = MIN_SCAN_INTERVAL):
        self.grid = grid  # LocalEventGrid
        self.subscription = subscription
        self._container = container_client
        self._minimum = minimum
        self._stop = threading.Event()
        self._failing = False
        self._missing_logged = False
        self._thread = threading.Thread(target=self._run, name=f"eventgrid-scan-{subscription.function}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        recent: deque = deque(maxlen=5)
        empty = 0
        sub = self.subscription
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                found = self.scan_once()
                empty = 0 if found else empty + 1
                if self._failing:
                    log.info("Scanning container %r for %s works again", sub.container, sub.function)
                    self._failing = False
            except Exception as exc:  # noqa: BLE001 - keep scanning through storage hiccups
                if not self._failing:
                    log.warning("Scanning container %r for %s failed (retrying): %s", sub.container, sub.function,
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    self._failing = True
                empty += 1
            recent.append(time.monotonic() - began)
            pause = next_pause(recent, empty, self.grid.delivered_recently(sub.function, IDLE_AFTER),
                               self.grid.pushed_recently(sub.container, PUSHED_RECENTLY), self._minimum)
            self._stop.wait(pause)

    def scan_once(self) -> int:
        """List the container once; returns how many new events were journalled."""
        sub = self.subscription
        try:
            blobs = list(self._container.list_blobs(name_starts_with=sub.prefix or None))
            self._missing_logged = False
        except ResourceNotFoundError:
            if not self._missing_logged:
                log.warning("Container %r (function %s) does not exist yet; scanning until it does", sub.container,
                            sub.function)
                self._missing_logged = True
            return 0
        found = 0
        since = self.grid.subscribed_since(sub.function) - CLOCK_SLACK
        for item in sorted(blobs, key=lambda b: b.last_modified):
            if self._stop.is_set():
                break
            if item.last_modified is not None and item.last_modified.timestamp() < since:
                continue  # written before the subscription existed: Event Grid would not have announced it
            version = version_of(sub.container, item.name, item.etag)
            if version is None or self.grid.known(sub.function, version):
                continue
            url = self._container.get_blob_client(item.name).url
            content_type = getattr(item.content_settings, "content_type", None)
            event = blob_created_event(url, sub.container, item.name, item.etag, item.size, content_type,
                                       api="PutBlob")
            if self.grid.offer(sub, event, version):
                found += 1
        return found
