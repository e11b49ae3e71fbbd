"""Submit on arrival, in bulk: the runs that this worker process's intake invocations create go to Batch together.

Each blob intake invocation writes its run record (with its inbox entry) and hands the task to the process's
Batcher, then returns; the Batcher's thread adds what is waiting with addTaskCollection. The rule for when to add:
- a lone event is not kept waiting for company: when nothing else arrived in the last `lone_window` seconds, its
  task is added at once;
- what arrives together is batched together: during a burst the Batcher waits until it has `max_batch` (100, the
  service limit) tasks, or the stream pauses for `gap` (1 s), or the oldest task has waited `hold`
  (SUBMIT_BATCH_HOLD, 5 s): a burst of a thousand costs about ten calls even when it arrives at 20 events a
  second, and its last tasks wait a second once it ends; a burst goes in whole chunks (130 waiting: 100 now,
  the 30 wait for company);
- more than one chunk is added in parallel (`parallel` calls at a time).

Nothing is lost if the process dies while it holds tasks: their records are `received` with an inbox entry, and
the safety net (shared.reconcile) submits such runs again after RESUBMIT_AFTER. A run handed over a second time
(a duplicate event for an old `received` record) has its record read again just before the add, so a run that got
further meanwhile is never added twice.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from shared.submission import PendingRun, SubmitReport

log = logging.getLogger("eventbatch.batcher")


class Batcher:
    """`submit(pipeline, runs)` adds one chunk of a pipeline's runs and records what became of them
    (shared.submission.submit_runs); `runs` is the run table, read again for a run handed over a second time."""

    def __init__(self, submit: Callable[[str, list[PendingRun]], SubmitReport], runs=None, *, hold: float = 5.0,
                 gap: float = 1.0, lone_window: float = 0.5, max_batch: int = 100, parallel: int = 4,
                 clock: Callable[[], float] = time.monotonic):
        self.submit, self.runs = submit, runs
        self.hold, self.gap, self.lone_window = hold, gap, lone_window
        self.max_batch, self.parallel = max_batch, parallel
        self.clock = clock
        # pipeline, run, arrived, re-check first, arrived alone (nothing else in the lone_window before it)
        self._items: list[tuple[str, PendingRun, float, bool, bool]] = []
        self._last_arrival = float("-inf")
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.reports: deque[SubmitReport] = deque(maxlen=64)  # the latest outcomes, for tools and tests

    # ---- the intake side ---------------------------------------------------------------------------------
    def offer(self, pipeline: str, run: PendingRun, *, recheck: bool = False) -> None:
        """Queue one created run for submission; returns at once. `recheck`: read its record again before the
        add (the run was not created by this invocation)."""
        now = self.clock()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed (the worker is shutting down)")
            self._items.append((pipeline, run, now, recheck, now - self._last_arrival > self.lone_window))
            self._last_arrival = now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="eventbatch-batcher", daemon=True)
                self._thread.start()
                atexit.register(self.close)
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything handed over has been submitted (tools and tests)."""
        deadline = self.clock() + timeout
        with self._cond:
            while self._items or self._busy:
                left = deadline - self.clock()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Submit what is still held, then stop taking work (process exit)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self.wait_idle(timeout)

    # ---- the submitting side -----------------------------------------------------------------------------
    def _wait_time(self, now: float) -> float | None:
        """Seconds until the next add is due (0: now), None when nothing waits."""
        if not self._items:
            return None
        if self._closed or len(self._items) >= self.max_batch:
            return 0.0
        if len(self._items) == 1 and self._items[0][4]:
            return 0.0  # a lone event: nothing arrived shortly before it
        return max(0.0, self._due(now) - now)

    def _due(self, now: float) -> float:
        """When what waits must go whatever its number: the oldest held `hold`, or the stream paused `gap`."""
        oldest, last = self._items[0][2], self._items[-1][2]
        return min(oldest + self.hold, last + self.gap)

    def _take(self, now: float) -> int:
        """How many of the waiting runs to add now (once `_wait_time` said 0). Gone only because enough are
        waiting, a burst is added in whole chunks of `max_batch` and the rest waits for company (its own hold
        and gap still apply): 130 waiting make one call of 100, not a call of 100 and one of 30."""
        limit = self.max_batch * self.parallel
        lone = len(self._items) == 1 and self._items[0][4]
        if self._closed or lone or self._due(now) <= now:
            return min(len(self._items), limit)
        return min(len(self._items) // self.max_batch * self.max_batch, limit)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait = self._wait_time(self.clock())
                    if wait is None:
                        if self._closed:
                            return
                        self._cond.wait()
                    elif wait <= 0:
                        break
                    else:
                        self._cond.wait(wait)
                batch = self._items[: self._take(self.clock())]
                del self._items[: len(batch)]
                self._busy = True
            try:
                self._submit(batch)
            except Exception:  # noqa: BLE001 - the runs stay `received`; the safety net submits them later
                log.exception("submitting %d run(s) failed; the safety net will submit them again", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _submit(self, batch: list[tuple[str, PendingRun, float, bool, bool]]) -> None:
        per_pipeline: dict[str, dict[str, PendingRun]] = {}
        for pipeline, run, _, recheck, _ in batch:
            if recheck:
                run = self._recheck(pipeline, run)
                if run is None:
                    continue
            per_pipeline.setdefault(pipeline, {})[run.spec.task_id] = run
        chunks = [(p, list(runs.values())[i:i + self.max_batch]) for p, runs in per_pipeline.items()
                  for i in range(0, len(runs), self.max_batch)]
        if len(chunks) == 1:
            self.reports.append(self.submit(*chunks[0]))
            return
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(chunks))) as pool:
            for report in pool.map(lambda c: self.submit(*c), chunks):
                self.reports.append(report)

    def _recheck(self, pipeline: str, run: PendingRun) -> PendingRun | None:
        record = self.runs.get(pipeline, run.spec.task_id)
        if record is None or record.get("state") != "received":
            log.info("run %s is %s already; not adding its task again", run.spec.task_id,
                     (record or {}).get("state"))
            return None
        return replace(run, etag=record.get("_etag"))
