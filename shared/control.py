"""Cancel and retry: what an operator does to runs once they exist, from the CLI or a control-queue message.

Both paths call the same functions with an AppContext (`eventbatch cancel/retry` in devstack/tools/control.py,
functions/control.py for the CONTROL_QUEUE messages of shared.control_messages), so a cancel on Azure without the
CLI does exactly what the CLI does.

Cancel moves each selected run to `cancelled` with who (`cancelledBy`), when (`cancelledAt`) and why (`reason`),
through the same ETag-guarded terminal move that completion uses: whoever wins (the cancel, or the task's own
completion racing it) records the run and sends its one message, the loser changes nothing. A run still
`received` is cancelled without a Batch call; a submitted or running one has its Batch task terminated after the
move (Batch stops its container; the completion that follows finds the run recorded and only cleans up). The
failure message (state `cancelled`, failure code `Cancelled`) goes out through shared.notify like any other end.
A run that already ended is left alone and reported, a second cancel changes nothing and says so. Batch holds a
merge whose input was terminated, so cancelling any input of a request with a merge cancels its merge (and
barriers) too; `retry --request ID --failed` runs the cancelled inputs and a new merge.

Retry (shared.retry_attempts) makes a new attempt of a failed or cancelled run: a new record and task id,
`attempt` + 1, `retryOf`, its own output folder; the old record keeps its state and outputs and gets
`supersededBy`. Never a succeeded run unless `force`.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.app_context import AppContext
from shared.batch_client import call, error_code
from shared.errors import cap_reason
from shared.notify import notify_failure
from shared.records import TERMINAL, is_current
from shared.retry_attempts import plan_retries
from shared.run_actions import ControlReport, RunAction, Selection, ordered, select

CANCELLED_CODE = "Cancelled"
MOVE_TRIES = 4  # moves to `cancelled`, each after reading the record again (it moved on meanwhile)
TERMINATE_BUDGET = 30.0  # seconds of retries for one terminate call while Batch throttles or is briefly away
ACTIVE_STATES = ("received", "submitted", "running")


# ---- cancel ----------------------------------------------------------------------------------------------------
def cancel_runs(ctx: AppContext, selection: Selection, by: str, reason: str | None = None) -> ControlReport:
    """Cancel the selected runs (and the merge of every request one of them belongs to); see the module docstring."""
    selection.check(ctx, ACTIVE_STATES)
    report = ControlReport("cancel", by)
    why = cap_reason(f"cancelled by {by}" + (f": {reason}" if reason else ""))
    done: set[str] = set()
    requests: set[tuple[str, str]] = set()
    for record in select(ctx, selection, report):
        result = cancel_one(ctx, record, by, why)
        report.add(result)
        done.add(record["RowKey"])
        pipeline = ctx.config.pipeline(record["PartitionKey"])
        if result.outcome == "cancelled" and record.get("requestId") and pipeline and pipeline.merge:
            requests.add((record["PartitionKey"], record["requestId"]))
    for pipeline, request_id in sorted(requests):
        for record in ordered(ctx.runs.by_request(pipeline, request_id).values()):
            if record["RowKey"] in done or record.get("kind") not in ("merge", "barrier") or not is_current(record) \
                    or record.get("state") in TERMINAL:
                continue
            report.add(cancel_one(ctx, record, by, cap_reason(f"{why} (an input of its request was cancelled, and "
                                                              "Batch holds a merge whose input was terminated)")))
    return report


def cancel_one(ctx: AppContext, record: dict, by: str, reason: str) -> RunAction:
    """Cancel one run, given its record as read: the ETag-guarded move, the terminate, the one message."""
    pipeline, run_id = record["PartitionKey"], record["RowKey"]
    for _ in range(MOVE_TRIES):
        state = record.get("state")
        if state == "cancelled":
            return _cancelled_before(ctx, record)
        if state in TERMINAL:
            return RunAction(run_id, pipeline, "left", f"already {state}: left as it is")
        fields = {"cancelledBy": by[:200], "reason": reason, "failureCode": CANCELLED_CODE, "failureMessage": reason,
                  "cancelledFrom": state}
        moved = ctx.runs.advance(pipeline, run_id, "cancelled", fields, record=record)
        if moved is not None:
            break
        record = ctx.runs.get(pipeline, run_id)  # it moved on meanwhile (submitted, running, or ended): look again
        if record is None:
            return RunAction(run_id, pipeline, "not-found", "the run's record disappeared")
    else:
        return RunAction(run_id, pipeline, "error", "the run kept changing while it was cancelled; cancel it again")
    detail = "cancelled before it was submitted to Batch"
    if state != "received":
        error = terminate(ctx, moved.get("jobId"), run_id)
        detail = f"cancelled; its Batch task {moved.get('jobId')}/{run_id} was terminated"
        if error:
            ctx.runs.merge(pipeline, run_id, {"terminateError": error})
            detail = (f"recorded cancelled, but its Batch task could not be terminated ({error}); run the cancel "
                      "again to retry that")
    notify_failure(ctx, moved, cancel_message(moved))
    return RunAction(run_id, pipeline, "cancelled", detail)


def _cancelled_before(ctx: AppContext, record: dict) -> RunAction:
    pipeline, run_id = record["PartitionKey"], record["RowKey"]
    if record.get("terminateError"):
        error = terminate(ctx, record.get("jobId"), run_id)
        if error:
            return RunAction(run_id, pipeline, "error", f"already cancelled; its Batch task still could not be "
                                                        f"terminated: {error}")
        ctx.runs.merge(pipeline, run_id, {"terminateError": ""})
        return RunAction(run_id, pipeline, "unchanged", "already cancelled; its Batch task is terminated now")
    return RunAction(run_id, pipeline, "unchanged", f"already cancelled by {record.get('cancelledBy')} at "
                                                    f"{record.get('cancelledAt')}: nothing changed")


def terminate(ctx: AppContext, job_id: str | None, task_id: str) -> str | None:
    """Terminate a task; None when it is stopped (or was gone, or had completed), else the error."""
    if not job_id:
        return None
    try:
        call(lambda: ctx.batch.terminate_task(job_id, task_id), f"terminate task {task_id}", budget=TERMINATE_BUDGET)
    except ResourceNotFoundError:
        return None  # the task or its job is gone: nothing runs
    except HttpResponseError as exc:
        if exc.status_code == 409 or error_code(exc) == "TaskCompleted":
            return None
        return f"{exc.status_code} {error_code(exc) or ''}: {str(exc).splitlines()[0][:200]}".strip()
    return None


def cancel_message(record: dict) -> dict:
    """The failure message of a cancelled run (the shape of every failure message, state `cancelled`)."""
    name = record.get("inputName")
    return {"runId": record["RowKey"], "state": "cancelled", "pipeline": record["PartitionKey"],
            "jobId": record.get("jobId"), "taskId": record["RowKey"], "requestId": record.get("requestId"),
            "input": {"container": record.get("inputContainer"), "name": name, "etag": record.get("inputEtag"),
                      "size": record.get("inputSize")} if name else None,
            "exitCode": None, "result": "failure", "failure": {"code": CANCELLED_CODE, "message": record.get("reason")},
            "cancelledBy": record.get("cancelledBy"), "cancelledAt": record.get("cancelledAt"),
            "cancelledFrom": record.get("cancelledFrom")}


# ---- retry -----------------------------------------------------------------------------------------------------
def retry_runs(ctx: AppContext, selection: Selection, by: str, force: bool = False) -> ControlReport:
    """New attempts of the selected failed or cancelled runs (succeeded ones too with `force`); a request or a
    pipeline+state selection takes its current failed and cancelled runs (and resumes retries that Batch did not
    take yet)."""
    selection.check(ctx, ("failed", "cancelled", "succeeded") if force else ("failed", "cancelled"))
    report = ControlReport("retry", by)
    records = select(ctx, selection, report)
    if not selection.runs:
        wanted = ("failed", "cancelled", "succeeded") if force else ("failed", "cancelled")
        records = [r for r in records if (r.get("state") in wanted and r.get("kind") != "barrier")
                   or (r.get("state") == "received" and r.get("retryOf"))]
    for result in plan_retries(ctx, records, by, force):
        report.add(result)
    return report
