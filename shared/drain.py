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
        page = list(client.receive_messages(messages_per_page=32, max_messages=min(32, limit - len(out)),
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


def drain(ctx: AppContext, limit: int | None = None, now: datetime | None = None) -> DrainResult:
    result = DrainResult()
    messages = receive(ctx, limit or ctx.settings.drain_max_messages)
    result.messages = len(messages)
    if not messages:
        return result
    by_pipeline: dict[str, dict[str, tuple]] = defaultdict(dict)  # pipeline -> task id -> (spec, etag, messages)
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
        pipeline = ctx.config.pipeline(item.pipeline)
        try:
            if pipeline is None:
                raise Rejection("unknown-pipeline", f"pipeline {item.pipeline!r} no longer exists")
            spec = build_task(item, pipeline, ctx.access, now=now)
        except Rejection as exc:
            reject(ctx, partition=item.pipeline, run_id=ids.rejection_id("blob", item.blob.container, item.blob.name,
                                                                         item.blob.etag),
                   rejection=exc, source="blob", payload=m.content)
            result.rejected += 1
            done.append(m)
            continue
        entry = by_pipeline[item.pipeline].get(spec.task_id)
        if entry:
            entry[2].append(m)
        else:
            by_pipeline[item.pipeline][spec.task_id] = (spec, data.get("recordEtag"), [m])
    deferred = []
    for pipeline_name, entries in by_pipeline.items():
        job_id = ids.job_id(ctx.settings.job_prefix, pipeline_name, ctx.settings.job_period, now)
        try:
            ctx.submitter.ensure_job(job_id, pipeline_name)
            outcome = ctx.submitter.submit(job_id, [spec for spec, _, _ in entries.values()])
        except Exception:  # noqa: BLE001 - Batch unreachable: leave these messages for the next tick
            log.exception("submitting %d %s task(s) failed; they stay queued", len(entries), pipeline_name)
            deferred.extend(m for _, _, ms in entries.values() for m in ms)
            continue
        result.batch_calls += outcome.calls
        result.jobs[job_id] = len(outcome.accepted)
        ctx.runs.advance_many(pipeline_name, {t: entries[t][1] for t in outcome.accepted}, "submitted",
                              {"jobId": job_id})
        for task_id in outcome.accepted:
            done.extend(entries[task_id][2])
        result.submitted += len(outcome.accepted)
        for task_id, reason in outcome.rejected.items():
            ctx.runs.advance(pipeline_name, task_id, "rejected", {"reason": reason, "jobId": job_id,
                                                                  "rejectionCode": "batch-client-error"})
            spec = entries[task_id][0]
            ctx.messenger.reject({"runId": task_id, "state": "rejected", "code": "batch-client-error",
                                  "reason": reason, "source": "blob", "pipeline": pipeline_name,
                                  "container": spec.work_item.blob.container, "name": spec.work_item.blob.name})
            done.extend(entries[task_id][2])
            result.rejected += 1
        for task_id in outcome.unsubmitted:
            deferred.extend(entries[task_id][2])
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
