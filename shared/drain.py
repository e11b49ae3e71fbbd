"""The submit-queue drain: everything the blob trigger buffered goes to Batch in as few calls as possible.

Runs on a one-second timer. It pulls up to DRAIN_MAX_MESSAGES submit messages (32 per receive call), builds the
tasks, adds them with addTaskCollection (100 per call) and deletes a message only after Batch accepted its task
(added, or TaskExists). A message whose task hit a server error stays on the queue and comes back after a short
back-off; a client error becomes a rejection. Nothing is lost if the process dies mid-way: messages that were
not deleted reappear after their visibility timeout and are submitted again under the same task IDs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from shared import ids
from shared.context import AppContext
from shared.errors import Rejection
from shared.intake import reject
from shared.task_spec import build_task
from shared.work_items import BlobInfo, WorkItem

log = logging.getLogger("eventbatch.drain")
RETRY_VISIBILITY = 15  # seconds before a message whose task met a server error is tried again


@dataclass
class DrainResult:
    messages: int = 0
    submitted: int = 0
    rejected: int = 0
    deferred: int = 0
    batch_calls: int = 0
    jobs: dict[str, int] = field(default_factory=dict)


def receive(ctx: AppContext, limit: int) -> list:
    client = ctx.messenger.client(ctx.settings.queues.submit)
    visibility = int(ctx.settings.submit_visibility.total_seconds())
    out = []
    while len(out) < limit:
        want = min(32, limit - len(out))  # 32 is the service's maximum per receive
        page = list(client.receive_messages(messages_per_page=want, max_messages=want,
                                            visibility_timeout=visibility))
        if not page:
            break
        out.extend(page)
    return out


def _delete(ctx: AppContext, messages: list) -> None:
    client = ctx.messenger.client(ctx.settings.queues.submit)

    def one(m):
        try:
            client.delete_message(m.id, m.pop_receipt)
        except ResourceNotFoundError:
            pass  # already gone (visibility ran out and someone else handled it)

    if len(messages) <= 4:
        for m in messages:
            one(m)
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, messages))


@dataclass
class _Pending:
    """The tasks of one pipeline waiting to be submitted: task id -> (spec, record ETag, its messages)."""

    entries: dict[str, tuple] = field(default_factory=dict)

    def add(self, spec, etag: str | None, message) -> None:
        if spec.task_id in self.entries:
            self.entries[spec.task_id][2].append(message)  # a duplicate event: one task, both messages go
        else:
            self.entries[spec.task_id] = (spec, etag, [message])

    def messages(self, task_ids) -> list:
        return [m for t in task_ids for m in self.entries[t][2]]


def _parse(ctx: AppContext, messages: list, result: DrainResult, now: datetime | None
           ) -> tuple[dict[str, _Pending], list]:
    """Messages -> pending tasks per pipeline; returns also the messages that are finished already."""
    pending: dict[str, _Pending] = defaultdict(_Pending)
    done = []
    for m in messages:
        try:
            data = json.loads(m.content)
            item = WorkItem(pipeline=data["pipeline"], source="blob",
                            blob=BlobInfo(data["container"], data["name"], data["etag"], int(data["size"]),
                                          data.get("contentType")))
        except (ValueError, KeyError, TypeError):
            log.error("dropping a submit message that is not ours: %.200r", m.content)
            done.append(m)
            continue
        if _already_submitted(ctx, m, data):
            done.append(m)
            continue
        pipeline = ctx.config.pipeline(item.pipeline)
        try:
            if pipeline is None:
                raise Rejection("unknown-pipeline", f"pipeline {item.pipeline!r} no longer exists")
            spec = build_task(item, pipeline, ctx.access, now=now)
        except Rejection as exc:  # the configuration changed since the event was accepted
            b = item.blob
            reject(ctx, partition=item.pipeline, run_id=ids.rejection_id("blob", b.container, b.name, b.etag),
                   rejection=exc, source="blob", payload=m.content)
            result.rejected += 1
            done.append(m)
            continue
        pending[item.pipeline].add(spec, data.get("recordEtag"), m)
    return pending, done


def _already_submitted(ctx: AppContext, message, data: dict) -> bool:
    """A redelivered submit message whose run went past `received` must not add the task again: after the
    reconciler recorded and deleted the task, a second add would run the container a second time. Only
    redeliveries are checked (a first delivery always follows a fresh `received` record), so a burst costs no
    extra table reads."""
    if (getattr(message, "dequeue_count", 1) or 1) <= 1 or not data.get("runId"):
        return False
    record = ctx.runs.get(data["pipeline"], data["runId"])
    if record is None or record.get("state") == "received":
        return False
    log.info("submit message for run %s is a redelivery; the run is already %s", data["runId"], record["state"])
    return True


def _submit(ctx: AppContext, pipeline: str, work: _Pending, result: DrainResult, now: datetime | None
            ) -> tuple[list, list]:
    """Submit one pipeline's tasks; returns (finished messages, messages to try again later)."""
    job_id = ids.job_id(ctx.settings.job_prefix, pipeline, ctx.settings.job_period, now)
    try:
        ctx.submitter.ensure_job(job_id, pipeline)
        outcome = ctx.submitter.submit(job_id, [spec for spec, _, _ in work.entries.values()])
    except Exception:  # noqa: BLE001 - Batch unreachable: leave these messages for the next tick
        log.exception("submitting %d %s task(s) failed; they stay queued", len(work.entries), pipeline)
        return [], work.messages(work.entries)
    result.batch_calls += outcome.calls
    result.jobs[job_id] = len(outcome.accepted)
    result.submitted += len(outcome.accepted)
    ctx.runs.advance_many(pipeline, {t: work.entries[t][1] for t in outcome.accepted}, "submitted",
                          {"jobId": job_id})
    for task_id, reason in outcome.rejected.items():
        blob = work.entries[task_id][0].work_item.blob
        ctx.runs.advance(pipeline, task_id, "rejected", {"reason": reason, "jobId": job_id,
                                                         "rejectionCode": "batch-client-error"})
        ctx.messenger.reject({"runId": task_id, "state": "rejected", "code": "batch-client-error", "reason": reason,
                              "source": "blob", "pipeline": pipeline, "container": blob.container,
                              "name": blob.name})
        result.rejected += 1
    return work.messages([*outcome.accepted, *outcome.rejected]), work.messages(outcome.unsubmitted)


def drain(ctx: AppContext, limit: int | None = None, now: datetime | None = None) -> DrainResult:
    """One tick: receive, submit per pipeline, delete what Batch took, put back what it could not take yet."""
    result = DrainResult()
    messages = receive(ctx, limit or ctx.settings.drain_max_messages)
    result.messages = len(messages)
    if not messages:
        return result
    pending, done = _parse(ctx, messages, result, now)
    deferred = []
    for pipeline, work in pending.items():
        finished, later = _submit(ctx, pipeline, work, result, now)
        done.extend(finished)
        deferred.extend(later)
    _delete(ctx, done)
    client = ctx.messenger.client(ctx.settings.queues.submit)
    for m in deferred:
        try:
            client.update_message(m.id, m.pop_receipt, visibility_timeout=RETRY_VISIBILITY)
        except ResourceNotFoundError:
            pass
    result.deferred = len(deferred)
    return result


def drain_until_empty(ctx: AppContext, budget_seconds: float = 30.0) -> DrainResult:
    """Drain repeatedly (for tools and tests); stops when the queue is empty or the budget is spent."""
    total = DrainResult()
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        r = drain(ctx)
        for attr in ("messages", "submitted", "rejected", "deferred", "batch_calls"):
            setattr(total, attr, getattr(total, attr) + getattr(r, attr))
        total.jobs.update(r.jobs)
        if r.messages == 0:
            break
    return total
