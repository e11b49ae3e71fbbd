"""The safety net: what no event reports, found on a timer minutes apart (RECONCILE_SCHEDULE, every 5 min).

Runs are submitted on arrival (shared.batcher) and completed on their marker's event (shared.completion). A tick
of the safety net finds what those paths cannot:
- completed tasks nobody recorded: a task that failed before it ran (a resource file or image pull failure
  uploads nothing, so no marker), a lost or late marker event. One jobs listing plus one $select-ed task listing
  per job (paged at 1000), however many tasks there are;
- unfinished runs, from the inbox (shared.records, one key-range query per pipeline): a run left `received` with no
  task after RESUBMIT_AFTER (its worker died before submitting) is submitted again, once its record is read again;
  a `submitted` run whose task no longer exists is failed with a reason, and so is a run stuck for RUN_STUCK_AFTER;
  a run whose message was claimed but never marked sent (its worker died in between) gets its message, and so
  does a request whose completion message was (shared.requests.repair);
- cleanup: recorded tasks are deleted (TASK_RETENTION), dependency chains once their merge is recorded, and jobs
  of past periods with nothing left, so listings stay short and the active-job quota is never reached;
- quotas (shared.quotas, shared.job_limits): held runs (maxConcurrentTasks) that a lost event left held are
  released, higher priority pipelines first; a run whose job ended before its task did (the job's maxWallClockTime
  expired, or someone terminated the job) is failed with the job's terminate reason (JobEnded).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared import ids, requests
from shared.app_context import AppContext
from shared.batch_client import call
from shared.completion import TASK_FIELDS, Completer, delete_marker, pipeline_of_job
from shared.durations import parse_timestamp
from shared.manifest import completion_message
from shared.notify import notify_completion, notify_failure, notify_rejection
from shared.outcomes import fail_run
from shared.records import INBOX_PREFIX, TERMINAL
from shared.submission import rebuild, release_held, submit_runs

log = logging.getLogger("eventbatch.reconcile")
WORKERS = 8


@dataclass
class ReconcileResult:
    recorded: list[str] = field(default_factory=list)
    running: int = 0
    resubmitted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    renotified: list[str] = field(default_factory=list)
    deleted_tasks: int = 0
    deleted_jobs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    batch_calls: int = 0



class Reconciler:
    def __init__(self, ctx: AppContext, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.ctx = ctx
        self.clock = clock
        self.completer = Completer(ctx)
        self._running_seen: set[str] = set()
        # Tasks recorded but still in Batch (retention, or fan-out tasks waiting for their merge): remembered so
        # that each tick does not read their records again.
        self._known: dict[str, dict] = {}
        self._ended: dict[str, str] = {}  # job id -> terminate reason, of this tick's completed jobs
        self._stranded: dict[str, tuple[str, str]] = {}  # task id -> (job id, task state): unfinished in such a job

    @property
    def batch(self):
        return self.ctx.batch

    def tick(self) -> ReconcileResult:
        result = ReconcileResult()
        prefix = self.ctx.settings.job_prefix + "-"
        jobs = call(lambda: list(self.batch.list_jobs(filter=f"startswith(id,'{prefix}')",
                                                      select=["id", "state", "executionInfo"])), "list jobs")
        self._ended = {j["id"]: (j.get("executionInfo") or {}).get("terminateReason") or "terminated"
                       for j in jobs if j.get("state") == "completed"}
        self._stranded = {}
        result.batch_calls += 1
        seen: dict[str, str] = {}  # task id -> state, of every job listed
        listed: set[str] = set()
        for job in jobs:
            job_id = job["id"]
            pipeline = pipeline_of_job(self.ctx, job_id)
            if pipeline is None:
                continue
            clean = True
            if job.get("state") in ("active", "terminating", "completed", "disabled"):
                clean = self._reconcile_job(job_id, pipeline, result, seen)
                if clean:
                    listed.add(job_id)
            if clean:
                self._cleanup_job(job_id, job.get("state"), result)
        by_priority = sorted(self.ctx.config.pipelines.values(), key=lambda p: -p.priority)
        for pipeline in (p.name for p in by_priority):
            try:
                self._inbox(pipeline, seen, listed, result)
            except Exception:  # noqa: BLE001 - one pipeline's trouble must not stop the others
                log.exception("safety net: the inbox of %s could not be processed", pipeline)
                result.errors.append(f"inbox:{pipeline}")
        return result

    # ---- tasks Batch has finished --------------------------------------------------------------------------
    def _reconcile_job(self, job_id: str, pipeline: str, result: ReconcileResult, seen: dict[str, str]) -> bool:
        try:
            tasks = call(lambda: [t.as_dict() for t in self.batch.list_tasks(
                job_id, select=TASK_FIELDS, max_results=1000)], f"list tasks of {job_id}")
        except ResourceNotFoundError:
            return False
        result.batch_calls += max(1, -(-len(tasks) // 1000))
        seen.update((t["id"], t.get("state")) for t in tasks)
        if job_id in self._ended:
            self._stranded.update((t["id"], (job_id, t.get("state"))) for t in tasks if t.get("state") != "completed")
        completed = [t for t in tasks if t.get("state") == "completed"]
        for t in tasks:
            if t.get("state") == "running" and t["id"] not in self._running_seen:
                self._mark_running(pipeline, t)
                result.running += 1
        ok = True
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            outcomes = list(pool.map(lambda t: self._safe_finish(job_id, pipeline, t), completed))
            deletions = []
            finished = {t["id"] for t, (status, _) in zip(completed, outcomes, strict=True)
                        if status in ("recorded", "known")}
            for task, (status, record) in zip(completed, outcomes, strict=True):
                if status == "error":
                    ok = False
                    result.errors.append(task["id"])
                    continue
                if status == "fresh":
                    ok = False  # not recorded yet: its job must not be cleaned up (a past period's would go)
                    continue
                if status == "recorded":
                    result.recorded.append(task["id"])
                if status not in ("recorded", "known"):
                    continue
                # A task that something waits for (mergeTaskId: a merge or barrier task) stays until that one is
                # recorded, which then takes it along; a merge whose dependencies vanished would wait forever.
                deps = (task.get("dependsOn") or {}).get("taskIds") or []
                if deps and not all(d in finished or d in self._known for d in deps):
                    continue  # a dependency is not recorded yet: next tick
                keep_self = bool((record or {}).get("mergeTaskId"))
                if deps or not keep_self:
                    deletions.append((task, deps, keep_self))
            for count in pool.map(lambda d: self._delete_if_due(job_id, *d), deletions):
                result.deleted_tasks += count
                result.batch_calls += count
        return ok

    @staticmethod
    def _completed_before(task: dict, cutoff: datetime) -> bool:
        when = task.get("stateTransitionTime")
        when = when if isinstance(when, datetime) else parse_timestamp(when)
        return when is None or when <= cutoff

    def _mark_running(self, pipeline: str, task: dict) -> None:
        started = (task.get("executionInfo") or {}).get("startTime")
        if self.ctx.runs.advance(pipeline, task["id"], "running", {"startedAt": str(started) if started else None}):
            log.info("run %s is running", task["id"])
        self._running_seen.add(task["id"])

    def _safe_finish(self, job_id: str, pipeline: str, task: dict) -> tuple[str, dict | None]:
        task_id = task["id"]
        self._running_seen.discard(task_id)
        if task_id in self._known:
            return "known", self._known[task_id]
        try:
            record = self.ctx.runs.get(pipeline, task_id)
            # A task that completed moments ago is its marker event's to record; the safety net takes it only
            # once the event had time to arrive.
            grace = min(self.ctx.settings.resubmit_after, timedelta(seconds=60))
            if record is not None and record.get("state") not in TERMINAL and \
                    not self._completed_before(task, self.clock() - grace):
                return "fresh", record
            status, record = self.completer.finish(job_id, pipeline, task, record=record)
        except Exception:  # noqa: BLE001 - one bad task must not stop the others; retried next tick
            log.exception("recording task %s/%s failed", job_id, task_id)
            return "error", None
        if status in ("recorded", "known"):
            self._known[task_id] = {"mergeTaskId": (record or {}).get("mergeTaskId")}
            delete_marker(self.ctx, job_id, task_id)
        return status, record

    # ---- unfinished runs (the inbox) -----------------------------------------------------------------------
    def _inbox(self, pipeline: str, seen: dict[str, str], listed: set[str], result: ReconcileResult) -> None:
        settings = self.ctx.settings
        now = self.clock()
        resubmit, held = [], 0
        for entry in self.ctx.runs.inbox(pipeline):
            if entry.get("kind") == requests.REQUEST_KIND:
                self._request(pipeline, entry, result)
                continue
            run_id = entry.get("runId") or entry["RowKey"].removeprefix(INBOX_PREFIX)
            since = parse_timestamp(entry.get("since")) or now
            age = now - since
            state = entry.get("state")
            if state in TERMINAL:
                if age >= settings.notify_repair_after:
                    self._renotify(pipeline, run_id, result)
                continue
            if run_id in self._stranded:  # its job ended first: the task never runs (the inbox may say received)
                self._job_ended(pipeline, run_id, *self._stranded[run_id], result)
                continue
            if state == "received" and entry.get("held"):
                held += 1  # waits for a slot (shared.quotas): released below, not resubmitted
                continue
            if state == "received":
                if age < settings.resubmit_after or entry.get("attempts"):
                    continue  # its worker may still hold it; a deferred run has its own retry message
                record = self.ctx.runs.get(pipeline, run_id)
                if record is None:
                    self.ctx.runs.forget(pipeline, run_id)
                    continue
                state = record.get("state")  # the inbox keeps `received` when a burst moved on in bulk
                if state == "received":
                    if run_id in seen:
                        continue  # added, and its record not moved yet
                    if record.get("requestId"):
                        if age >= settings.run_stuck_after:
                            self._fail(pipeline, run_id, f"its request was never submitted in {_words(age)}",
                                       result)
                        continue  # a request is retried through its queue message
                    run = rebuild(self.ctx, record, attempt=1)
                    if run is not None:
                        resubmit.append(run)
                    continue
                if state in TERMINAL:
                    if age >= settings.notify_repair_after and not record.get("notified"):
                        self._renotify(pipeline, run_id, result)
                    elif record.get("notified"):
                        self.ctx.runs.forget(pipeline, run_id)
                    continue
                entry = {**entry, "jobId": record.get("jobId")}
                self.ctx.runs.touch_inbox(pipeline, run_id, {"state": state, "jobId": record.get("jobId")})
            if state not in ("submitted", "running"):
                continue
            if run_id in seen:
                if seen[run_id] != "completed" and age >= settings.run_stuck_after:
                    self._stuck(pipeline, run_id, entry.get("jobId"), seen[run_id], age, result)
                continue  # Batch has it: a completed one was recorded by the listing above
            if age >= settings.resubmit_after and (entry.get("jobId") in listed or not entry.get("jobId")):
                # Its job was listed and the task is not in it (or it never got a job): gone.
                self._check_submitted(pipeline, run_id, entry.get("jobId"), age, result)
        if resubmit:
            report = submit_runs(self.ctx, pipeline, resubmit)
            result.resubmitted.extend(report.submitted)
            result.batch_calls += report.batch_calls
            log.info("safety net: %d run(s) of %s were left received; %d submitted again", len(resubmit),
                     pipeline, len(report.submitted))
        if held:
            report = release_held(self.ctx, pipeline)
            result.resubmitted.extend(report.submitted)
            result.batch_calls += report.batch_calls

    def _job_ended(self, pipeline: str, run_id: str, job_id: str, task_state: str | None,
                   result: ReconcileResult) -> None:
        """The run's job is completed while its task is not: the task will never run (or finish)."""
        why = self._ended[job_id]
        detail = " (the job's maxWallClockTime, JOB_MAX_WALL_CLOCK)" if why == "MaxWallClockTimeExpiry" else ""
        self._fail(pipeline, run_id, f"its job {job_id} ended ({why}{detail}) while its task was still {task_state}",
                   result, "JobEnded")

    def _request(self, pipeline: str, entry: dict, result: ReconcileResult) -> None:
        """A request whose completion message was claimed and never marked sent: send it (shared.requests)."""
        sent = requests.repair(self.ctx, pipeline, entry, now=self.clock())
        if sent:
            result.renotified.append(f"request:{sent}")

    def _check_submitted(self, pipeline: str, run_id: str, job_id: str | None, age: timedelta,
                         result: ReconcileResult) -> None:
        record = self.ctx.runs.get(pipeline, run_id)
        if record is None or record.get("state") in TERMINAL:
            return
        job_id = job_id or record.get("jobId")
        try:
            task = call(lambda: self.batch.get_task(job_id, run_id, select=TASK_FIELDS).as_dict(),
                        f"get task {job_id}/{run_id}") if job_id else None
        except ResourceNotFoundError:
            task = None
        result.batch_calls += 1
        if task is None:
            self._fail(pipeline, run_id, f"its Batch task {job_id}/{run_id} no longer exists (deleted outside the "
                                         "app, or its job was deleted)", result, "TaskGone")
        elif task.get("state") == "completed":
            status, _ = self._safe_finish(job_id, pipeline, task)
            if status == "recorded":
                result.recorded.append(run_id)
        elif age >= self.ctx.settings.run_stuck_after:
            self._stuck(pipeline, run_id, job_id, task.get("state"), age, result)

    def _stuck(self, pipeline: str, run_id: str, job_id: str | None, state: str | None, age: timedelta,
               result: ReconcileResult) -> None:
        reason = f"its task was still {state} after {_words(age)} (RUN_STUCK_AFTER)"
        if job_id:
            try:
                call(lambda: self.batch.terminate_task(job_id, run_id), f"terminate task {run_id}")
                result.batch_calls += 1
            except HttpResponseError as exc:
                log.warning("terminating stuck task %s: %s", run_id, exc)
        self._fail(pipeline, run_id, reason, result, "Stuck")

    def _fail(self, pipeline: str, run_id: str, reason: str, result: ReconcileResult,
              code: str = "NotSubmitted") -> None:
        if fail_run(self.ctx, pipeline, run_id, reason, code):
            result.failed.append(run_id)

    def _renotify(self, pipeline: str, run_id: str, result: ReconcileResult) -> None:
        """A terminal run whose message was claimed but never marked sent: claim it again and send it."""
        record = self.ctx.runs.get(pipeline, run_id)
        if record is None:
            self.ctx.runs.forget(pipeline, run_id)
            return
        if record.get("notified"):
            self.ctx.runs.forget(pipeline, run_id)
            return
        claimed_at = parse_timestamp(record.get("notifyClaimedAt"))
        if claimed_at and self.clock() - claimed_at < self.ctx.settings.notify_repair_after:
            return
        claimed = self.ctx.runs.claim_notification(record)
        if claimed is None:
            return
        # The worker that held the claim may have sent the message and died before marking it: this copy says it
        # may repeat one (same messageId), so a consumer can tell.
        repeat = {"possibleDuplicate": True}
        state = claimed.get("state")
        if state == "rejected":
            notify_rejection(self.ctx, claimed, {"runId": run_id, "state": "rejected",
                                                 "code": claimed.get("rejectionCode"), "reason": claimed.get("reason"),
                                                 "source": claimed.get("source"), "pipeline": pipeline,
                                                 "requestId": claimed.get("requestId"), **repeat})
        elif claimed.get("manifestBlob"):
            container, name = claimed.get("outputContainer"), claimed["manifestBlob"]
            try:
                manifest = json.loads(self.ctx.storage.blob.get_blob_client(container, name).download_blob().readall())
                notify_completion(self.ctx, claimed, {**completion_message(manifest, container, name), **repeat})
            except (ResourceNotFoundError, ValueError):
                notify_failure(self.ctx, claimed, {**_bare_message(claimed, pipeline), **repeat})
        else:
            notify_failure(self.ctx, claimed, {**_bare_message(claimed, pipeline), **repeat})
        result.renotified.append(run_id)
        log.warning("safety net: sent the message of run %s, whose worker stopped before sending it", run_id)

    # ---- cleanup -----------------------------------------------------------------------------------------
    def _delete_if_due(self, job_id: str, task: dict, also: list[str], keep_self: bool = False) -> int:
        """Delete a recorded task (unless keep_self) and the recorded tasks it waited for, once the retention has
        passed; returns the number of delete calls."""
        retention = self.ctx.settings.task_retention
        if retention > timedelta(0):
            ended = parse_timestamp((task.get("executionInfo") or {}).get("endTime"))
            if ended is None or self.clock() - ended < retention:
                return 0
        calls = 0
        for task_id in [*also, *([] if keep_self else [task["id"]])]:
            try:
                calls += 1
                call(lambda tid=task_id: self.batch.delete_task(job_id, tid), f"delete task {task_id}")
            except ResourceNotFoundError:
                pass
            self._known.pop(task_id, None)
        return calls

    def _cleanup_job(self, job_id: str, state: str | None, result: ReconcileResult) -> None:
        start = ids.job_period_start(job_id, self.ctx.settings.job_prefix)
        length = timedelta(hours=1) if "t" in job_id.rsplit("-", 1)[-1] else timedelta(days=1)
        if start is None or self.clock() < start + length + self.ctx.settings.job_retention:
            return
        try:
            counts = call(lambda: self.batch.get_job_task_counts(job_id), f"task counts of {job_id}")
            result.batch_calls += 1
            c = counts["taskCounts"]
            if c["active"] or c["running"]:
                return
            if c["completed"] and self.clock() < start + length + self.ctx.settings.job_retention + \
                    self.ctx.settings.task_retention:
                return
            call(lambda: self.batch.begin_delete_job(job_id), f"delete job {job_id}")
            result.batch_calls += 1
            self.ctx.submitter.forget_job(job_id)
            result.deleted_jobs.append(job_id)
            log.info("deleted finished job %s (state %s)", job_id, state)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            log.warning("cleanup of job %s: %s", job_id, exc)


def _bare_message(record: dict, pipeline: str) -> dict:
    return {"runId": record["RowKey"], "state": record.get("state"), "pipeline": pipeline,
            "taskId": record["RowKey"], "requestId": record.get("requestId"), "exitCode": record.get("exitCode"),
            "failure": {"code": record.get("failureCode"), "message": record.get("failureMessage")}
            if record.get("failureCode") else None}


def _words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


_reconciler: Reconciler | None = None


def reconcile(ctx: AppContext) -> ReconcileResult:
    global _reconciler
    if _reconciler is None or _reconciler.ctx is not ctx:
        _reconciler = Reconciler(ctx)
    return _reconciler.tick()
