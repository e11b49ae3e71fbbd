"""Requests as a unit: the request record, kept up to date as its runs end, and its one completion message.

Every run that ends is announced through shared.notify, which calls `run_ended` once the run's own message went
out and before the run is marked notified. Here the request's runs are read again (RunStore.by_request) and summed
up (shared.request_summary); the result is written on the request record `~req-<request id>` with its ETag. The
writer that finds every run ended claims the request's completion message in that same guarded write (with an
inbox entry beside it, in one transaction), sends it on the completions queue and marks it sent, so two workers
that finish the last two runs at once send one message between them.

Nothing is lost when a worker dies on the way: before `run_ended` returns, the ending run is still in the inbox
with its claim, and the safety net sends its message again, which comes back here; after the request's claim, its
inbox entry is what the safety net (`repair`) finds to send the request's message. A request that a retry reopens
(new runs, the old attempts marked `supersededBy`) is `open` again, and when it ends again it gets a new message
with the next generation number in its messageId.

A merge that can never run is not left waiting: with merge.requireAll the fan-out tasks block their dependants
when they fail, and without it an input that never became a Batch task (rejected by Batch, never submitted, its
task gone) is a dependency that never completes. Once such an input has ended, the waiting barrier and merge runs
are failed here (code InputFailed, naming those inputs) and their Batch tasks terminated.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.app_context import AppContext
from shared.batch_client import call
from shared.durations import parse_timestamp
from shared.records import inbox_key, now_iso, request_record_key
from shared.request_summary import (
    NO_TASK,
    OPEN,
    SUMMARY_FIELDS,
    RequestSummary,
    blocking_inputs,
    input_label,
    merge_fields,
    request_message,
    summarize,
)
from shared.request_summary import (
    record_fields as summary_fields,
)

log = logging.getLogger("eventbatch.requests")
WRITE_TRIES = 12  # guarded writes of the request record, each after reading it and its runs again
REQUEST_KIND = "request"
_busy = threading.local()  # request ids this thread is working on (the merge it skips ends through here too)

FailureSender = Callable[[AppContext, dict, dict], dict]


def run_ended(ctx: AppContext, record: dict, send_failure: FailureSender) -> dict | None:
    """The hook for every run whose message went out: bring its request's record up to date, and send the
    request's completion message when this was the last run. Returns that message (None for runs without a
    request, or when the request is still open)."""
    request_id = record.get("requestId")
    if not request_id or record.get("PartitionKey") is None:
        return None
    # Retried through a Storage outage (an Azurite restart) like the run's own mark, for a quarter of
    # NOTIFY_REPAIR_AFTER, so that the run's mark after it still comes before the safety net would take over.
    return call(lambda: refresh(ctx, record["PartitionKey"], request_id, send_failure),
                f"update request {request_id}", budget=ctx.settings.notify_repair_after.total_seconds() / 4)


def get(ctx: AppContext, pipeline: str, request_id: str) -> dict | None:
    """The request record (None before the first of its runs ended)."""
    return ctx.runs.get(pipeline, request_record_key(request_id))


def summary(ctx: AppContext, pipeline: str, request_id: str) -> RequestSummary:
    """The request summed up from its run records now (what `refresh` writes)."""
    records = ctx.runs.by_request(pipeline, request_id, select=SUMMARY_FIELDS)
    return summarize(pipeline, request_id, records.values(), _require_all(ctx, pipeline))


def refresh(ctx: AppContext, pipeline: str, request_id: str, send_failure: FailureSender) -> dict | None:
    """Recompute the request from its runs and write it; claim and send its completion message if it ended.

    The record is read before the runs, so a writer whose view is older than the claim always loses its ETag. A
    count written while runs are still ending may lose the race to another: it is left to the next run's end
    (the last end always sees every run ended), so a burst of ends never fails a run's recording over it."""
    busy = _busy.__dict__.setdefault("ids", set())
    if (pipeline, request_id) in busy:
        return None  # a run this call ends itself (a skipped merge): the outer call sees it when it reads again
    busy.add((pipeline, request_id))
    try:
        for attempt in range(WRITE_TRIES):
            current = get(ctx, pipeline, request_id)
            s = summary(ctx, pipeline, request_id)
            blocking = blocking_inputs(s, _require_all(ctx, pipeline))
            if blocking and s.pending_steps:
                _skip_merge(ctx, s, blocking, send_failure)
                continue  # the skipped runs changed the request: read it again
            if not s.ended:
                if _write(ctx, current, s, claim=False) or attempt >= 2:
                    return None
                continue
            if current is not None and current.get("state") != OPEN and current.get("digest") == s.digest:
                return None  # this completion was claimed already (its claimer sends it, or the safety net does)
            claimed = _write(ctx, current, s, claim=True)
            if claimed is None:
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # noqa: S311 - jitter, not a secret
                continue
            return _send(ctx, claimed, s)
        raise RuntimeError(f"request {request_id} kept changing while it was recorded; its next run retries")
    finally:
        busy.discard((pipeline, request_id))


def _require_all(ctx: AppContext, pipeline: str) -> bool:
    p = ctx.config.pipeline(pipeline)
    return bool(p is not None and p.merge is not None and p.merge.require_all)


def _write(ctx: AppContext, current: dict | None, s: RequestSummary, claim: bool) -> dict | None:
    """Write the summary with the record's ETag (create it when there is none); with `claim`, also take the
    completion message (the next generation) and add the inbox entry that lets the safety net finish it. The
    written record, or None when someone else wrote first."""
    key = request_record_key(s.request_id)
    stamp = now_iso()
    fields = {"PartitionKey": s.pipeline, "RowKey": key, **summary_fields(s), "updatedAt": stamp}
    if claim:
        generation = int((current or {}).get("generation") or 0) + 1
        fields.update(generation=generation, notified=False, notifyClaimedAt=stamp, endedAt=stamp)
    elif current is not None and current.get("state") == OPEN and all(
            current.get(k) == v for k, v in fields.items() if k != "updatedAt"):
        return current  # nothing changed
    fields = {k: v for k, v in fields.items() if v is not None}
    if current is None:
        ops = [("create", fields)]
    else:
        ops = [("update", fields, {"mode": UpdateMode.MERGE, "etag": current.get("_etag"),
                                   "match_condition": MatchConditions.IfNotModified})]
    if claim:
        ops.append(("upsert", {"PartitionKey": s.pipeline, "RowKey": inbox_key(key), "kind": REQUEST_KIND,
                               "requestId": s.request_id, "state": s.state, "since": stamp},
                    {"mode": UpdateMode.REPLACE}))
    try:
        results = ctx.runs.table.submit_transaction(ops)
    except (TableTransactionError, HttpResponseError) as exc:
        if _status(exc) in (409, 412):
            return None
        raise
    return {**(current or {}), **fields, "_etag": (results[0] or {}).get("etag")}


def _send(ctx: AppContext, claimed: dict, s: RequestSummary, repeat: bool = False) -> dict:
    if s.merge is not None and s.merge.get("state") == "succeeded":
        expected = merge_fields(s)
        if any(s.merge.get(k) != v for k, v in expected.items()):
            # The merge recorded what it could see when it ended; the request's end knows every input's outcome.
            ctx.runs.merge(s.pipeline, s.merge["RowKey"], expected)
            s.merge.update(expected)
    message = request_message(s, int(claimed["generation"]), claimed.get("endedAt") or now_iso())
    if repeat:
        message["possibleDuplicate"] = True
    ctx.messenger.send(ctx.messenger.names.completions, message)
    _mark_sent(ctx, s.pipeline, s.request_id)
    log.info("request %s/%s ended %s (%s)", s.pipeline, s.request_id, s.state,
             ", ".join(f"{k} {v}" for k, v in s.counts.items() if v))
    return message


def _mark_sent(ctx: AppContext, pipeline: str, request_id: str) -> None:
    key = request_record_key(request_id)
    ops = [("update", {"PartitionKey": pipeline, "RowKey": key, "notified": True, "notifiedAt": now_iso()},
            {"mode": UpdateMode.MERGE}),
           ("delete", {"PartitionKey": pipeline, "RowKey": inbox_key(key)})]
    try:
        ctx.runs.table.submit_transaction(ops)
    except (TableTransactionError, HttpResponseError):
        ctx.runs.merge(pipeline, key, {"notified": True, "notifiedAt": now_iso()})
        with contextlib.suppress(ResourceNotFoundError):
            ctx.runs.table.delete_entity(pipeline, inbox_key(key))


def _skip_merge(ctx: AppContext, s: RequestSummary, blocking: list[dict], send_failure: FailureSender) -> None:
    """The merge (and its barriers) can never run: merge.requireAll and an input failed, or an input never became a
    Batch task (the merge would wait for it forever). Fail them with the reason, naming those inputs, and terminate
    their waiting tasks."""
    names = [input_label(r) for r in blocking]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if any(r.get("state") == "failed" and r.get("failureCode") not in NO_TASK for r in blocking):
        reason = (f"the merge was skipped: merge.requireAll is set and {len(names)} of {s.counts['total']} "
                  f"input(s) failed: {shown}")
    else:
        reason = (f"the merge cannot run: {len(names)} of {s.counts['total']} input(s) never became a Batch task "
                  f"that it could wait for: {shown}")
    for run in s.pending_steps:  # barriers first: the merge is the last of them
        run_id = run["RowKey"]
        moved = ctx.runs.advance(s.pipeline, run_id, "failed", {"reason": reason, "failureCode": "InputFailed",
                                                                "failureMessage": reason,
                                                                "inputsFailed": len(s.failed)})
        if moved is not None:
            send_failure(ctx, moved, {"runId": run_id, "state": "failed", "pipeline": s.pipeline,
                                      "kind": moved.get("kind"), "jobId": moved.get("jobId"), "taskId": run_id,
                                      "requestId": s.request_id, "input": None, "exitCode": None,
                                      "result": "failure", "failure": {"code": "InputFailed", "message": reason}})
            log.warning("request %s: %s run %s failed (InputFailed): %s", s.request_id, moved.get("kind"), run_id,
                        reason)
        job_id = (moved or run).get("jobId")
        if job_id:
            try:
                call(lambda j=job_id, t=run_id: ctx.batch.terminate_task(j, t), f"terminate the skipped task {run_id}")
            except ResourceNotFoundError:
                pass
            except HttpResponseError as exc:  # completed meanwhile, or Batch is away: the safety net cleans up
                log.warning("terminating the skipped task %s/%s: %s", job_id, run_id, exc)


def repair(ctx: AppContext, pipeline: str, entry: dict, now: datetime | None = None) -> str | None:
    """The safety net, for a request whose completion message was claimed and not marked sent (its worker
    stopped in between): after NOTIFY_REPAIR_AFTER the claim is taken over and the message sent again, marked
    `possibleDuplicate`. Returns the request id when it sent one."""
    request_id = entry.get("requestId")
    if not request_id:
        return None
    current = get(ctx, pipeline, request_id)
    if current is None or current.get("notified") or current.get("state") == OPEN:
        with contextlib.suppress(ResourceNotFoundError):
            ctx.runs.table.delete_entity(pipeline, entry["RowKey"])
        return None
    now = now or datetime.now(UTC)
    claimed_at = parse_timestamp(current.get("notifyClaimedAt"))
    if claimed_at and now - claimed_at < ctx.settings.notify_repair_after:
        return None
    taken = _take_over(ctx, current)
    if taken is None:
        return None
    s = summary(ctx, pipeline, request_id)
    if not s.ended or s.digest != current.get("digest"):
        return None  # reopened (a retry) since the claim: its runs' ends bring it up to date
    _send(ctx, taken, s, repeat=True)
    log.warning("safety net: sent the completion message of request %s, whose worker stopped before sending it",
                request_id)
    return request_id


def _take_over(ctx: AppContext, current: dict) -> dict | None:
    update = {"PartitionKey": current["PartitionKey"], "RowKey": current["RowKey"], "notifyClaimedAt": now_iso(),
              "notifyTakenOverFrom": current.get("notifyClaimedAt")}
    try:
        meta = ctx.runs.table.update_entity(update, mode=UpdateMode.MERGE, etag=current.get("_etag"),
                                            match_condition=MatchConditions.IfNotModified)
    except HttpResponseError as exc:
        if _status(exc) == 412:
            return None
        raise
    return {**current, **update, "_etag": (meta or {}).get("etag")}


def merge_inputs(ctx: AppContext, record: dict) -> dict:
    """What a merge run that just completed was given: its request's inputs and how many failed, from the run
    records as they stand (the request's end corrects it if an input's failure was recorded after the merge)."""
    request_id = record.get("requestId")
    if not request_id:
        return {}
    try:
        s = summary(ctx, record["PartitionKey"], request_id)
    except Exception:  # noqa: BLE001 - the merge's result is recorded regardless; the request's end fills this in
        log.exception("request %s: the inputs of merge %s could not be read", request_id, record.get("RowKey"))
        return {}
    return {**merge_fields(s), "failedInputs": [input_label(r) for r in s.failed[:50]]}


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status


