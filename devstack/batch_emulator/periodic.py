"""A daemon thread that calls one step function every few seconds until stopped (the autoscaler, the preempter).

A step that raises is logged and the next tick tries again: a background worker must not end the emulator.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class PeriodicThread:
    def __init__(self, name: str, step: Callable[[], object], tick: float, log: logging.Logger, what: str):
        self.name = name
        self._step = step
        self._tick = tick
        self._log = log
        self._what = what  # for the log line: "<what> step failed"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - keep the emulator alive; the next tick retries
                self._log.exception("%s step failed", self._what)
            self._stop.wait(self._tick)
