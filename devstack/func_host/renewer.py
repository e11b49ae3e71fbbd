"""Keeps leases alive while functions run: queue message invisibility and blob receipt leases.

One thread for the whole host; each registration says how often to renew. A renewal that fails is logged and
dropped (the message or receipt becomes available again, which is the at-least-once behaviour of the host).
"""

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("func_host")


class Renewer:
    def __init__(self, tick: float = 0.5):
        self._tick = tick
        self._items: dict[object, list] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def register(self, key: object, interval: float, renew: Callable[[], None]) -> None:
        with self._lock:
            self._items[key] = [time.monotonic() + interval, interval, renew]

    def unregister(self, key: object) -> None:
        with self._lock:
            self._items.pop(key, None)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                due = [(k, v) for k, v in self._items.items() if v[0] <= now]
                for _, entry in due:
                    entry[0] = now + entry[1]
            for key, (_, _, renew) in due:
                try:
                    renew()
                except Exception as exc:  # noqa: BLE001 - a failed renewal must not stop the others
                    log.warning("lease renewal for %s failed: %s", key, exc)
                    self.unregister(key)
