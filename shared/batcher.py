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
- more than one chunk is added in parallel (`parallel` calls at a time);
- higher `priority` pipelines first (pipelines.yaml, -1000..1000): a burst over several pipelines is taken and
  added in that order, then by arrival;
- `release_held(pipeline)` (a run of a pipeline with maxConcurrentTasks ended, shared.quotas.slot_freed) releases
  that pipeline's held runs on this thread at once, before new work of the same priority.

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
                 clock: Callable[[], float] = time.monotonic, priority: Callable[[str], int] = lambda p: 0,
                 release: Callable[[str], SubmitReport] | None = None):
        self.submit, self.runs = submit, runs
        self.priority, self.release = priority, release
        self._release: set[str] = set()  # pipelines whose held runs may go
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
            self._start()
            self._cond.notify_all()

    def release_held(self, pipeline: str) -> None:
        """Release the pipeline's held runs soon, on this batcher's thread; returns at once."""
        if self.release is None:
            return
        with self._cond:
            if self._closed:
                return
            self._release.add(pipeline)
            self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="eventbatch-batcher", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything handed over has been submitted (tools and tests)."""
        deadline = self.clock() + timeout
        with self._cond:
            while self._items or self._busy or self._release:
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
        if self._release:
            return 0.0
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
                releases = sorted(self._release, key=lambda p: -self.priority(p))
                self._release.clear()
                batch = []
                if self._items and (not releases or self._wait_time(self.clock()) == 0):
                    batch = self._pick(self._take(self.clock()))
                self._busy = True
            try:
                for pipeline in releases:
                    self._release_one(pipeline)
                self._submit(batch)
            except Exception:  # noqa: BLE001 - the runs stay `received`; the safety net submits them later
                log.exception("submitting %d run(s) failed; the safety net will submit them again", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _pick(self, n: int) -> list[tuple[str, PendingRun, float, bool, bool]]:
        """Take `n` waiting runs, higher priority pipelines first, then by arrival (the rest keep their order)."""
        if len({item[0] for item in self._items}) == 1:
            picked = self._items[:n]
            del self._items[:n]
            return picked
        order = sorted(range(len(self._items)), key=lambda i: (-self.priority(self._items[i][0]), i))[:n]
        chosen = set(order)
        picked = [self._items[i] for i in order]
        self._items = [item for i, item in enumerate(self._items) if i not in chosen]
        return picked

    def _release_one(self, pipeline: str) -> None:
        try:
            self.reports.append(self.release(pipeline))
        except Exception:  # noqa: BLE001 - the runs stay held; the safety net releases them later
            log.exception("releasing the held runs of %s failed; the safety net will release them", pipeline)

    def _submit(self, batch: list[tuple[str, PendingRun, float, bool, bool]]) -> None:
        if not batch:
            return
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
