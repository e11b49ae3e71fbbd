"""Timer trigger listener: NCRONTAB schedules in UTC, runOnStartup, and the schedule monitor.

Invocations of one timer never overlap: the next occurrence is computed after the previous run finished.
With useMonitor (default: on when occurrences are at least a minute apart) the schedule status
``{"Last", "Next", "LastUpdated"}`` is kept in ``azure-webjobs-hosts/timers/{hostId}/{functionId}/status`` as the
host does, so an occurrence missed while the host was down runs at start with ``past_due=True``.
"""

import json
import logging
import threading
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from devstack.func_host import bindings
from devstack.func_host.blob_receipts import HOSTS_CONTAINER
from devstack.func_host.invoker import Invoker
from devstack.func_host.loader import LoadedFunction
from shared.ncrontab import CronSchedule, IntervalSchedule, min_interval

log = logging.getLogger("func_host")


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class TimerListener:
    def __init__(self, function: LoadedFunction, schedule: CronSchedule | IntervalSchedule,
                 host_storage: BlobServiceClient, host_id: str, invoker: Invoker, clock=None):
        self.function = function
        self.schedule = schedule
        self._invoker = invoker
        self._now = clock or (lambda: datetime.now(UTC))
        trigger = function.trigger
        self.run_on_startup = bool(trigger.run_on_startup)
        monitor = trigger.use_monitor
        self.use_monitor = (min_interval(schedule, self._now()) >= 60) if monitor is None else bool(monitor)
        self._status_blob = host_storage.get_blob_client(
            HOSTS_CONTAINER, f"timers/{host_id}/{function.function_id}/status")
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{function.name}", daemon=True)

    def describe(self) -> str:
        return f"timerTrigger {self.schedule.expression!r}"

    @property
    def in_flight(self) -> int:
        return 1 if self._busy.is_set() else 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def release_all(self) -> None:
        """Nothing to release: an interrupted timer run is simply not recorded as Last."""

    def _read_status(self) -> dict:
        if not self.use_monitor:
            return {}
        try:
            return json.loads(self._status_blob.download_blob().readall() or b"{}")
        except ResourceNotFoundError:
            return {}
        except (ValueError, OSError) as exc:
            log.warning("Timer status for %s unreadable (%s); starting fresh", self.function.name, exc)
            return {}

    def _write_status(self, last: datetime | None, nxt: datetime | None) -> dict:
        status = {"Last": _iso(last), "Next": _iso(nxt), "LastUpdated": _iso(self._now())}
        if self.use_monitor:
            try:
                self._status_blob.upload_blob(json.dumps(status).encode(), overwrite=True)
            except Exception as exc:  # noqa: BLE001 - the monitor is best effort, as in the host
                log.warning("Writing timer status for %s failed: %s", self.function.name, exc)
        return status

    def _fire(self, past_due: bool, status: dict, reason: str) -> None:
        self._busy.set()
        try:
            request = bindings.timer_value(past_due, status)
            future = self._invoker.invoke(self.function, lambda _ctx: {self.function.trigger_param: request}, reason)
            future.result()  # runs never overlap; shutdown waits for this one through in_flight
        finally:
            self._busy.clear()

    def _log_schedule(self, nxt: datetime) -> None:
        """Like the host, list the next five occurrences once at start (not on every tick)."""
        upcoming = [nxt]
        while len(upcoming) < 5 and upcoming[-1] is not None:
            upcoming.append(self.schedule.next_after(upcoming[-1]))
        shown = ", ".join(_iso(t) for t in upcoming if t is not None)
        log.info("The next 5 occurrences of the '%s' schedule (%s) will be: %s", self.function.name,
                 self.schedule.expression, shown)

    def _run(self) -> None:
        status = self._read_status()
        last = _parse_iso(status.get("Last"))
        scheduled_next = _parse_iso(status.get("Next"))
        now = self._now()
        if self.run_on_startup:
            self._fire(False, status, "Timer fired at startup (runOnStartup)")
        elif scheduled_next and scheduled_next < now:
            log.info("Function %s is past due: its occurrence at %s was missed", self.function.name,
                     _iso(scheduled_next))
            self._fire(True, status, "Timer fired late (past due)")
            last = now
        first = True
        while not self._stop.is_set():
            nxt = self.schedule.next_after(self._now())
            if nxt is None:
                log.warning("Schedule %r of %s has no future occurrence; the timer is idle",
                            self.schedule.expression, self.function.name)
                return
            status = self._write_status(last, nxt)
            if first:
                self._log_schedule(nxt)
                first = False
            while not self._stop.is_set():
                remaining = (nxt - self._now()).total_seconds()
                if remaining <= 0:
                    break
                self._stop.wait(min(remaining, 1.0))
            if self._stop.is_set():
                return
            self._fire(False, status, "Timer fired at " + _iso(nxt))
            last = nxt
