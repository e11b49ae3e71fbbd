"""Per pipeline `maxConcurrentTasks`: how many of a pipeline's runs may be in Batch at once, and the runs held back.

In flight = the pipeline's unfinished runs that were let through: its inbox entries (shared.records, one key-range
query) that are not terminal and not held. That is submitted + running, plus what was just let through and is
being added (the inbox keeps `received` when a burst moves on in bulk, so an entry's state alone cannot tell).

A run beyond the limit stays `received`; its record and inbox entry carry `held` (the reason a person reads in
`eventbatch status`, e.g. "held: 2/2 running (maxConcurrentTasks)") and `heldAt`. When a run of the pipeline ends
(shared.notify, one line: `slot_freed`) the worker's Batcher releases the next held runs at once, oldest first
(shared.submission.release_held); the safety net (shared.reconcile) releases what a lost event left held.

A pipeline without the limit costs nothing here: no Storage call. Runs of a queue request are let through as a
whole (a request is one unit whose merge depends on its siblings, and its override values are in no record, so its
tasks cannot be rebuilt later); they count as in flight, so blob runs wait behind a large request.
Admission is serialized per pipeline within a worker process; instances that scale out admit independently, so the
limit can be passed briefly by what two instances let through at the same moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from shared.app_context import AppContext
from shared.records import INBOX_PREFIX, TERMINAL, now_iso

log = logging.getLogger("eventbatch.quotas")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def lock(pipeline: str) -> threading.Lock:
    """The admission lock of a pipeline in this process (admit and release hold it)."""
    with _locks_guard:
        return _locks.setdefault(pipeline, threading.Lock())


def limit_of(ctx: AppContext, pipeline: str) -> int | None:
    p = ctx.config.pipelines.get(pipeline)
    return None if p is None else p.max_concurrent_tasks


def run_id_of(entry: dict) -> str:
    return entry.get("runId") or entry["RowKey"].removeprefix(INBOX_PREFIX)


def in_flight(entries: Sequence[dict], exclude: set[str] = frozenset()) -> int:
    """The runs let through and not finished, among a pipeline's inbox entries."""
    return sum(1 for e in entries if e.get("state") not in TERMINAL and not e.get("held")
               and run_id_of(e) not in exclude)


def held_entries(entries: Sequence[dict]) -> list[dict]:
    """The held runs, in the order they are released: oldest first."""
    waiting = [e for e in entries if e.get("held") and e.get("state") not in TERMINAL]
    return sorted(waiting, key=lambda e: (e.get("heldAt") or e.get("since") or "", int(e.get("heldSeq") or 0)))


def held_reason(running: int, limit: int) -> str:
    return f"held: {running}/{limit} running (maxConcurrentTasks)"


def admit(ctx: AppContext, pipeline: str, runs: Sequence, *, is_request=lambda run: False) -> tuple[list, list]:
    """Split `runs` (shared.submission.PendingRun) into those to submit now and those held, and mark the held
    ones. Call with lock(pipeline) held. Older held runs go first: while any wait, new runs wait behind them."""
    limit = limit_of(ctx, pipeline)
    if limit is None:
        return list(runs), []
    entries = ctx.runs.inbox(pipeline)
    mine = {r.spec.task_id for r in runs}
    flying = in_flight(entries, exclude=mine)
    older = [e for e in held_entries(entries) if run_id_of(e) not in mine]
    free = 0 if older else max(0, limit - flying)
    go, hold = [], []
    for run in runs:
        if is_request(run) or len(go) < free:
            go.append(run)
        else:
            hold.append(run)
    before = {run_id_of(e) for e in entries if e.get("held")}  # handed over again (a repeated event)
    unmark_held(ctx, pipeline, [r.spec.task_id for r in go if r.spec.task_id in before])
    hold_new = [r.spec.task_id for r in hold if r.spec.task_id not in before]  # the others keep their place
    if hold_new:
        mark_held(ctx, pipeline, hold_new, held_reason(flying + len(go), limit))
    if hold:
        log.info("%s: %d run(s) held (%d/%d in flight, %d held before)", pipeline, len(hold), flying, limit,
                 len(older))
    return go, hold


def mark_held(ctx: AppContext, pipeline: str, run_ids: Sequence[str], reason: str) -> None:
    """Mark runs held: the reason on the record (what `eventbatch status` shows) and on the inbox entry."""
    stamp = now_iso()
    # heldSeq keeps the order of runs held together (one stamp): they are released in the order they came
    ctx.runs.note_many(pipeline, {r: {"held": reason, "heldAt": stamp, "heldSeq": i} for i, r in enumerate(run_ids)})


def unmark_held(ctx: AppContext, pipeline: str, run_ids: Sequence[str]) -> None:
    """Released runs count as in flight from now on: their inbox entries lose the mark (the record's goes with its
    move to `submitted`, see submission.submit_runs)."""
    ctx.runs.note_many(pipeline, {r: {"held": ""} for r in run_ids}, records=False)


def slot_freed(ctx: AppContext, record: dict) -> None:
    """The notify hook: a run of a limited pipeline ended, so its held runs may go (on the Batcher's thread, at
    once; the completion that called this does not wait for the submission)."""
    pipeline = record.get("PartitionKey")
    if limit_of(ctx, pipeline) is None or record.get("state") == "rejected" or ctx.batcher is None:
        return
    ctx.batcher.release_held(pipeline)
