"""Getting runs onto Batch: one bulk submission, the records that follow it, and bounded retries.

`submit_runs` is the one place where created runs become Batch tasks. It adds the completion marker to every
task (the only thing that depends on the job id), adds the tasks in bulk (shared.submitter: up to 100 per call,
TaskExists = success, 413 split, 400 bisected), then moves the accepted runs to `submitted` in table
transactions, and turns Batch's refusals into recorded rejections with one message each (shared.outcomes).

What Batch could not take yet (it is unavailable, throttling past the retry budget, the pool is missing, the job
cannot be created) is not retried in a loop: the runs stay `received` and one retry message per chunk goes to the
submit queue, invisible for a back-off that grows with each attempt. The queue-triggered drain
(functions/submit_drain.py -> `retry_from_message`) rebuilds the tasks from their records and tries again; after
SUBMIT_MAX_ATTEMPTS the runs are failed with the last error as the reason and a failure message, instead of
waiting for a queue's time-to-live to drop them silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared import ids, quotas, telemetry
from shared.app_context import AppContext
from shared.errors import Rejection
from shared.job_limits import JobQuotaReached
from shared.messages import RetryMessage
from shared.outcomes import fail_run, reject_refused
from shared.task_spec import TaskSpec, build_task, with_completion_marker
from shared.work_items import BlobInfo, WorkItem, check_enabled

log = logging.getLogger("eventbatch.submission")
MAX_RUNS_PER_RETRY_MESSAGE = 400  # ~60 bytes per run id: well under the 64 KiB message limit


@dataclass(frozen=True)
class PendingRun:
    """A run whose record exists in state `received`, with the task to add for it."""

    spec: TaskSpec
    etag: str | None = None  # the record's ETag when it was created (None: re-read before moving it)
    attempt: int = 1


@dataclass
class SubmitReport:
    job_id: str | None = None
    submitted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)  # beyond the pipeline's maxConcurrentTasks (shared.quotas)
    batch_calls: int = 0


def submit_runs(ctx: AppContext, pipeline: str, runs: Sequence[PendingRun], *, now: datetime | None = None,
                job_id: str | None = None, defer: bool = True, admitted: bool = False) -> SubmitReport:
    """Submit the runs of one pipeline in bulk and record what became of each; never raises for Batch's answers.
    `defer=False` leaves unsubmitted runs to the caller (a request message that the host retries). A pipeline with
    maxConcurrentTasks holds back what is beyond it (shared.quotas) unless `admitted` (released held runs)."""
    report = SubmitReport(job_id=job_id or ids.job_id(ctx.settings.job_prefix, pipeline, ctx.settings.job_period,
                                                      now))
    unique = list({r.spec.task_id: r for r in runs}.values())
    if not unique:
        return report
    if quotas.limit_of(ctx, pipeline) is None or admitted:
        return _submit(ctx, pipeline, unique, report, defer)
    with quotas.lock(pipeline):
        unique, held = quotas.admit(ctx, pipeline, unique, is_request=_of_request)
        report.held = [r.spec.task_id for r in held]
        return _submit(ctx, pipeline, unique, report, defer) if unique else report


def _of_request(run: PendingRun) -> bool:
    return run.spec.work_item is None or bool(run.spec.work_item.request_id)


def release_held(ctx: AppContext, pipeline: str, now: datetime | None = None) -> SubmitReport:
    """Submit the pipeline's held runs that fit under its maxConcurrentTasks now, oldest first (every held run when
    the limit was removed). The notify hook (through the Batcher) and the safety net call it; one inbox query."""
    report = SubmitReport()
    limit = quotas.limit_of(ctx, pipeline)
    with quotas.lock(pipeline):
        entries = ctx.runs.inbox(pipeline)
        held = quotas.held_entries(entries)
        free = len(held) if limit is None else max(0, limit - quotas.in_flight(entries))
        pending, gone = [], []
        for entry in held[:free]:
            run_id = quotas.run_id_of(entry)
            record = ctx.runs.get(pipeline, run_id)
            if record is None or record.get("state") != "received":
                gone.append(run_id)  # it got further meanwhile (or is gone): the mark is all that is left
                continue
            run = rebuild(ctx, record, attempt=1, now=now)
            if run is not None:
                pending.append(run)
        quotas.unmark_held(ctx, pipeline, [r.spec.task_id for r in pending] + gone)
        if pending:
            log.info("%s: releasing %d held run(s) (%d still held)", pipeline, len(pending), len(held) - free)
            report = _submit(ctx, pipeline, pending, SubmitReport(job_id=ids.job_id(
                ctx.settings.job_prefix, pipeline, ctx.settings.job_period, now)), True)
    return report


def _submit(ctx: AppContext, pipeline: str, unique: list[PendingRun], report: SubmitReport,
            defer: bool) -> SubmitReport:
    identity = ctx.task_access.identity_reference()
    try:
        ctx.submitter.ensure_job(report.job_id, pipeline)
    except Exception as exc:  # noqa: BLE001 - pool missing, job quota, Batch down: every run waits for a retry
        reason = str(exc) if isinstance(exc, JobQuotaReached) else \
            f"the job {report.job_id} could not be created or its pool is not usable: {_reason(exc)}"
        log.warning("%s (%d run(s) wait)", reason, len(unique))
        report.deferred = {r.spec.task_id: reason for r in unique}
        if defer:
            _defer(ctx, pipeline, unique, report)
        return report
    marker_urls: dict = {}  # one URL per lifetime: a burst's tasks mostly share one

    def marker_url(spec: TaskSpec) -> str:
        if spec.sas_lifetime not in marker_urls:
            marker_urls[spec.sas_lifetime] = ctx.task_access.write_container_url(ctx.settings.marker_container,
                                                                            report.job_id, spec.sas_lifetime)
        return marker_urls[spec.sas_lifetime]

    specs = [with_completion_marker(r.spec, report.job_id, marker_url(r.spec), identity) for r in unique]
    started = time.monotonic()
    outcome = ctx.submitter.submit(report.job_id, specs)
    seconds = time.monotonic() - started
    report.batch_calls = outcome.calls
    by_id = {r.spec.task_id: r for r in unique}
    accepted = [t for t in outcome.accepted if t in by_id]
    report.submitted = accepted
    moved = {"jobId": report.job_id, "submitSeconds": round(seconds, 3)}
    if quotas.limit_of(ctx, pipeline) is not None:
        moved["held"] = ""  # a released run's reason goes with its move
    ctx.runs.advance_many(pipeline, {t: by_id[t].etag for t in accepted}, "submitted", moved)
    telemetry.runs_submitted(pipeline, len(accepted), seconds, outcome.calls)
    for task_id, reason in outcome.rejected.items():
        report.rejected[task_id] = reject_refused(ctx, pipeline, by_id[task_id].spec, reason, report.job_id)
    report.deferred = dict(outcome.unsubmitted)
    if report.deferred and defer:
        _defer(ctx, pipeline, [by_id[t] for t in report.deferred], report)
    return report


def _reason(exc: Exception) -> str:
    text = str(getattr(getattr(exc, "error", None), "message", None) or exc) or type(exc).__name__
    return text.splitlines()[0][:400]


# ---- deferral and bounded retries ---------------------------------------------------------------------------
def retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt + 1`: 15 s, 30 s, 1 min, 2 min, ... capped at 10 min."""
    return int(min(600, 15 * 2 ** max(0, attempt - 1)))


def _defer(ctx: AppContext, pipeline: str, runs: Sequence[PendingRun], report: SubmitReport) -> None:
    attempt = max(r.attempt for r in runs)
    reason = next(iter(report.deferred.values()), "Batch did not accept the task")
    if attempt >= ctx.settings.submit_max_attempts:
        for r in runs:
            why = (f"not submitted to Batch after {attempt} attempt(s); last error: "
                   f"{report.deferred.get(r.spec.task_id) or reason}")
            fail_run(ctx, pipeline, r.spec.task_id, why, "NotSubmitted")
            report.failed[r.spec.task_id] = why
        return
    ids_ = [r.spec.task_id for r in runs]
    for i in range(0, len(ids_), MAX_RUNS_PER_RETRY_MESSAGE):
        chunk = ids_[i:i + MAX_RUNS_PER_RETRY_MESSAGE]
        message = RetryMessage(pipeline, tuple(chunk), attempt + 1, reason)
        ctx.messenger.submit(message.to_message(), delay=retry_delay(attempt))
    # The reason on the records too, where `eventbatch status` shows it (e.g. the active job quota).
    text = reason[:500]
    ctx.runs.note_many(pipeline, {r: {"lastError": text} for r in ids_},
                       {r: {"attempts": attempt, "lastError": text} for r in ids_})


def work_item_of(record: dict) -> WorkItem:
    """The work item a blob run's record describes (what intake saw), to rebuild its task."""
    return WorkItem(pipeline=record["PartitionKey"], source=record.get("source") or "blob",
                    blob=BlobInfo(record["inputContainer"], record["inputName"], record["inputEtag"],
                                  int(record.get("inputSize") or 0), record.get("inputContentType")))


def rebuild(ctx: AppContext, record: dict, attempt: int, now: datetime | None = None) -> PendingRun | None:
    """The task of a `received` blob run, built again from its record; None when it cannot be (the run is
    failed with the reason)."""
    pipeline_name = record["PartitionKey"]
    pipeline = ctx.config.pipeline(pipeline_name)
    try:
        if pipeline is None:
            raise Rejection("unknown-pipeline", f"pipeline {pipeline_name!r} no longer exists")
        check_enabled(ctx.config, pipeline)
        if record.get("requestId") or not record.get("inputName"):
            raise Rejection("not-resubmittable", "the run belongs to a queue request, which is retried as a whole")
        spec = build_task(work_item_of(record), pipeline, ctx.task_access, now=now)
    except Rejection as exc:
        fail_run(ctx, pipeline_name, record["RowKey"], f"cannot be submitted again: {exc.reason}", "NotSubmitted")
        return None
    if spec.task_id != record["RowKey"]:
        fail_run(ctx, pipeline_name, record["RowKey"], "cannot be submitted again: its task id changed (the "
                 "pipeline's configuration changed)", "NotSubmitted")
        return None
    return PendingRun(spec=spec, etag=record.get("_etag"), attempt=attempt)


def retry_from_message(ctx: AppContext, body: str | bytes, now: datetime | None = None) -> SubmitReport | None:
    """A retry message from the submit queue: resubmit its runs that are still `received`."""
    try:
        message = RetryMessage.from_body(body)
    except ValueError:
        log.error("dropping a submit message that is not ours: %.200r", body)
        return None
    pipeline = message.pipeline
    pending = []
    for run_id in message.run_ids:
        record = ctx.runs.get(pipeline, run_id)
        if record is None or record.get("state") != "received":
            continue  # submitted meanwhile (the safety net, or a redelivery), or finished: nothing to do
        run = rebuild(ctx, record, message.attempt, now)
        if run is not None:
            pending.append(run)
    if not pending:
        return SubmitReport()
    # Let through before (they count as in flight while they wait): not held again behind later runs.
    return submit_runs(ctx, pipeline, pending, now=now, admitted=True)

