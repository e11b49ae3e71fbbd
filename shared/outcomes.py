"""What became of a piece of work, recorded once: a rejected input, a task Batch refused, a run that will not end.

Intake, the schedules, the bulk submission, completion and the safety net all end runs through these functions, so
each outcome has one record shape and one message shape. The move of a record is guarded by its ETag (or it is
created, keyed by the input's identity), and only the winner of the move sends the run's one message
(shared.notify).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.app_context import AppContext
from shared.errors import Rejection, cap_reason
from shared.notify import notify_failure, notify_rejection
from shared.records import now_iso
from shared.task_spec import TaskSpec

log = logging.getLogger("eventbatch.outcomes")
UNROUTED = "unrouted"  # the partition of rejections that belong to no pipeline


@dataclass(frozen=True)
class IntakeResult:
    status: str  # queued | duplicate | submitted | rejected | failed | empty
    run_ids: tuple[str, ...] = ()
    reason: str | None = None
    job_id: str | None = None
    batch_calls: int = 0


def reject(ctx: AppContext, *, partition: str, run_id: str, rejection: Rejection, source: str, payload: str,
           fields: dict | None = None) -> IntakeResult:
    """Record an input's rejection and announce it once; safe to call again for the same input."""
    stamp = now_iso()
    values = {"source": source, "reason": rejection.reason, "rejectionCode": rejection.code,
              "payload": payload[:4000], "notified": False, "notifyClaimedAt": stamp, **(fields or {})}
    created, record = ctx.runs.create(partition, run_id, "rejected", values)
    if not created:
        # Rejected before (its creator sent the message; the safety net repairs a claim whose sender died), or an
        # earlier delivery got further (e.g. submitted) before this one failed: keep the better record.
        return IntakeResult("duplicate", (run_id,), record.get("reason"))
    message = {"runId": run_id, "state": "rejected", "code": rejection.code, "reason": rejection.reason,
               "source": source, "pipeline": None if partition == UNROUTED else partition, "payload": payload,
               "rejectedAt": record.get("rejectedAt") or stamp, **(fields or {})}
    notify_rejection(ctx, record, message)
    log.warning("rejected %s: %s", run_id, rejection.reason)
    return IntakeResult("rejected", (run_id,), rejection.reason)


def reject_refused(ctx: AppContext, pipeline: str, spec: TaskSpec, reason: str, job_id: str) -> str:
    """A task Batch refused (a client error): its `received` run becomes `rejected` with the reason, and the
    winner of the move sends the one rejection message. Returns the (capped) reason."""
    reason = cap_reason(reason)
    moved = ctx.runs.advance(pipeline, spec.task_id, "rejected", {"reason": reason, "jobId": job_id,
                                                                 "rejectionCode": "batch-client-error"})
    if moved is not None:
        item = spec.work_item
        message = {"runId": spec.task_id, "state": "rejected", "code": "batch-client-error", "reason": reason,
                   "source": item.source if item else "queue", "pipeline": pipeline}
        if item is not None:
            message.update(container=item.blob.container, name=item.blob.name, requestId=item.request_id)
        notify_rejection(ctx, moved, message)
    return reason


def fail_run(ctx: AppContext, pipeline: str, run_id: str, reason: str, code: str, job_id: str | None = None) -> bool:
    """Move a run that will not end on its own to `failed` (reason, failureCode) and send its one failure message;
    `code` says why (NotSubmitted | TaskGone | Stuck | NotRecorded | JobEnded). False when it was terminal already (someone
    else finished it)."""
    moved = ctx.runs.advance(pipeline, run_id, "failed", {"reason": reason, "failureCode": code,
                                                          "failureMessage": reason})
    if moved is None:
        return False
    notify_failure(ctx, moved, {"runId": run_id, "state": "failed", "pipeline": pipeline,
                                "jobId": job_id or moved.get("jobId"),
                                "taskId": run_id, "requestId": moved.get("requestId"),
                                "input": _input_of(moved), "exitCode": None, "result": "failure",
                                "failure": {"code": code, "message": reason}})
    log.warning("run %s failed (%s): %s", run_id, code, reason)
    return True


def _input_of(record: dict) -> dict | None:
    if not record.get("inputName"):
        return None
    return {"container": record.get("inputContainer"), "name": record.get("inputName"),
            "etag": record.get("inputEtag"), "size": record.get("inputSize"),
            "contentType": record.get("inputContentType")}
