"""Intake: a blob event or a queue request -> run records + Batch tasks, or one rejection.

A blob event writes its run record in state `received` (with its inbox entry, one table transaction) and hands
the task to this worker's Batcher (shared.batcher), which adds it at once when it arrived alone, or together with
the others of a burst, so 1,000 files cost about ten Batch calls instead of a thousand. A request already is a
batch, so it is submitted directly, within its invocation.
Rejections happen once per bad input: a record in state `rejected` (keyed by the input's identity, so a
redelivered bad event finds it) and one message on the rejected queue, sent by whoever created the record.
A request that cannot be submitted yet (Batch or Storage unavailable) raises RequestDeferred, so the host delivers
it again; its last delivery (shared.deliveries) fails its unsubmitted runs with the last error (NotSubmitted) and
sends their failure messages instead, so no run is left `received` behind a poisoned message.
An idempotency key is bound to the first request that used it (a digest of the canonical request in the request
row, shared.records): the same request again is a duplicate and runs nothing new, another request with that key is
rejected as `idempotency-conflict`. Override values are redacted in everything but the Batch task
(shared.redaction).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared import ids, telemetry
from shared.app_context import AppContext
from shared.deliveries import is_last_delivery
from shared.errors import Rejection, RequestDeferred
from shared.outcomes import UNROUTED, IntakeResult, fail_run, reject
from shared.records import RequestConflict
from shared.redaction import redact_overrides, redact_request_text
from shared.storage import blob_info
from shared.submission import PendingRun, submit_runs
from shared.task_spec import build_task, plan_merge
from shared.work_items import (
    WorkItem,
    blob_matches,
    check_size,
    decode_request,
    parse_request,
    request_digest,
    resolve_inputs,
    route_blob,
)

log = logging.getLogger("eventbatch.intake")


# ---- blob events -----------------------------------------------------------------------------------------
def handle_blob(ctx: AppContext, container: str, name: str, props_loader=None) -> IntakeResult:
    """A BlobCreated event for container/name. `props_loader()` returns the blob's properties (a HEAD through the
    trigger's BlobClient); it is called only once the name was routed and found safe."""
    # The pipeline whose location the blob is in (if any) owns the record, even when the name is then refused.
    pipeline_name = next((p.name for p in ctx.config.pipelines.values() if blob_matches(p, container, name)),
                         UNROUTED)
    etag = ""
    payload = json.dumps({"container": container, "name": name}, ensure_ascii=False)
    try:
        pipeline = route_blob(ctx.config, container, name)
        pipeline_name = pipeline.name
        if props_loader is None:
            info = ctx.storage.lookup_blob(container, name)
        else:
            try:
                info = blob_info(props_loader(), container, name)
            except ResourceNotFoundError:
                info = None
        if info is None:
            raise Rejection("missing-blob", f"blob {container}/{name} no longer exists (deleted after its event)")
        etag = info.etag
        check_size(pipeline, info)
        item = WorkItem(pipeline=pipeline.name, blob=info, source="blob")
        spec = build_task(item, pipeline, ctx.task_access)  # validates the output path
    except Rejection as exc:
        run_id = ids.rejection_id("blob", container, name, etag)
        return reject(ctx, partition=pipeline_name, run_id=run_id, rejection=exc, source="blob", payload=payload,
                      fields={"inputContainer": container, "inputName": name, "inputEtag": etag or None})
    created, record = ctx.runs.create(pipeline.name, spec.task_id, "received", record_fields(item, spec))
    if created:
        telemetry.runs_received(pipeline.name)
        ctx.batcher.offer(pipeline.name, PendingRun(spec=spec, etag=record.get("_etag")))
        return IntakeResult("queued", (spec.task_id,))
    if record.get("state") == "received" and _older_than(record.get("receivedAt"), ctx.settings.resubmit_after):
        # A repeated event for a run whose first worker seems to have died before submitting it: submit it now
        # (its record is read again just before the add) rather than waiting for the safety net.
        ctx.batcher.offer(pipeline.name, PendingRun(spec=spec, etag=record.get("_etag")), recheck=True)
        return IntakeResult("queued", (spec.task_id,))
    log.info("duplicate event for %s/%s (run %s is %s)", container, name, spec.task_id, record.get("state"))
    return IntakeResult("duplicate", (spec.task_id,))


def _older_than(stamp, age) -> bool:
    try:
        then = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True
    return datetime.now(then.tzinfo) - then >= age


def record_fields(item: WorkItem, spec) -> dict:
    b = item.blob
    return {"pipeline": item.pipeline, "source": item.source, "kind": spec.kind, "inputContainer": b.container,
            "inputName": b.name, "inputEtag": b.etag, "inputSize": b.size, "inputContentType": b.content_type,
            "requestId": item.request_id, "idempotencyKey": item.idempotency_key, "taskId": spec.task_id,
            "outputContainer": spec.output_container, "outputPrefix": spec.output_prefix,
            "overrides": json.dumps(redact_overrides(item.overrides.as_dict())) if item.overrides.as_dict() else None,
            "mergeTaskId": spec.merge_task_id}


# ---- queue requests --------------------------------------------------------------------------------------
def handle_request_delivery(ctx: AppContext, body: bytes | str, message_id: str | None = None,
                            dequeue_count: int | None = 1, now: datetime | None = None) -> IntakeResult:
    """One delivery of a request message by the host. Raises RequestDeferred while the host will deliver it again;
    on its last delivery, the runs Batch did not take are failed with the reason and announced instead."""
    try:
        return handle_request(ctx, body, message_id, now=now)
    except RequestDeferred as exc:
        deferred = exc
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
        # Storage (the run table, a blob lookup) is unavailable: nothing may have been recorded yet.
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        deferred = RequestDeferred(f"storage unavailable: {text[:300]}")
        deferred.__cause__ = exc
    if not is_last_delivery(dequeue_count, ctx.settings.environ) or not deferred.unsubmitted:
        # Delivered again by the host; a request that got no records at all goes to the poison queue on its last
        # delivery, from where `eventbatch replay` brings it back.
        raise deferred
    failed = []
    for run_id, error in deferred.unsubmitted.items():
        reason = (f"not submitted to Batch after {dequeue_count} deliveries of its request; last error: "
                  f"{error}")[:1000]
        if fail_run(ctx, deferred.pipeline, run_id, reason, "NotSubmitted"):
            failed.append(run_id)
    log.warning("request %s: %d run(s) failed after its last delivery: %s", deferred.request_id, len(failed),
                deferred.reason)
    return IntakeResult("failed", tuple(failed), deferred.reason)


def handle_request(ctx: AppContext, body: bytes | str, message_id: str | None = None,
                   now: datetime | None = None) -> IntakeResult:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    pipeline_name = UNROUTED
    extra: dict = {}
    try:
        data = decode_request(body)
        if isinstance(data.get("pipeline"), str) and data["pipeline"] in ctx.config.pipelines:
            pipeline_name = data["pipeline"]
        try:
            request = parse_request(ctx.config, data, ctx.storage.blob_endpoint)
        except (Rejection, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - a message parse_request did not foresee: rejected, not retried
            where = traceback.extract_tb(exc.__traceback__)[-1]
            # Not the exception's text: it may quote the request, override values included.
            log.error("request %s could not be parsed: %s at %s:%d", message_id, type(exc).__name__,
                      where.filename, where.lineno)
            raise Rejection("malformed", f"the request could not be read ({type(exc).__name__}); check it against "
                                         "the request schema in docs/configuration.md") from None
        pipeline = request.pipeline
        key = request.idempotency_key
        digest = request_digest(request)
        bound = ctx.runs.get_request(pipeline.name, key) if key else None
        if bound is not None and bound.get("digest") != digest:
            extra = {"idempotencyKey": key, "conflictsWith": bound.get("requestId")}
            raise _conflict(key, pipeline.name, bound)
        infos = resolve_inputs(request, lambda ref: ctx.storage.lookup_blob(ref.container, ref.name),
                               lambda ref, cap, keep: ctx.storage.list_blobs(ref.container, ref.prefix, cap, keep))
        request_id = ids.request_id(key, message_id, text)
        items = [WorkItem(pipeline=pipeline.name, blob=info, source="queue", request_id=request_id,
                          idempotency_key=key, overrides=request.overrides) for info in infos]
        specs = [build_task(item, pipeline, ctx.task_access, now=now, merge_follows=pipeline.merge is not None)
                 for item in items]
        if pipeline.merge is not None:
            specs = plan_merge(pipeline, request_id, specs, ctx.task_access, now=now)
        row = None
        if key and bound is None:
            row = {"idempotencyKey": key, "digest": digest, "requestId": request_id, "runCount": len(specs),
                   "messageId": message_id}
    except Rejection as exc:
        return _reject_request(ctx, pipeline_name, text, message_id, exc, extra)
    try:
        return submit_request(ctx, pipeline.name, request_id, specs, now=now, request_row=row, bound=bound)
    except RequestConflict as exc:  # another request took the key between our look and our write
        return _reject_request(ctx, pipeline.name, text, message_id, _conflict(key, pipeline.name, exc.existing),
                               {"idempotencyKey": key, "conflictsWith": exc.existing.get("requestId")})


def _reject_request(ctx: AppContext, partition: str, text: str, message_id: str | None, rejection: Rejection,
                    extra: dict) -> IntakeResult:
    run_id = ids.rejection_id("request", message_id or "", text if not message_id else "")
    return reject(ctx, partition=partition, run_id=run_id, rejection=rejection, source="queue",
                  payload=redact_request_text(text), fields={"messageId": message_id, **extra})


def _conflict(key: str, pipeline: str, bound: dict) -> Rejection:
    return Rejection("idempotency-conflict", f"idempotencyKey {key!r} was already used for another request to "
                                             f"pipeline {pipeline} (request {bound.get('requestId')}, received "
                                             f"{bound.get('receivedAt')}); send new work with a new key, or the "
                                             "first request unchanged to repeat it")


def _spec_fields(spec, request_id: str) -> dict:
    if spec.work_item is not None:
        return record_fields(spec.work_item, spec)
    return {"pipeline": spec.pipeline, "source": "queue", "kind": spec.kind, "requestId": request_id,
            "taskId": spec.task_id, "outputContainer": spec.output_container, "outputPrefix": spec.output_prefix,
            "mergeTaskId": spec.merge_task_id}


def submit_request(ctx: AppContext, pipeline: str, request_id: str, specs: list, now: datetime | None = None,
                   request_row: dict | None = None, bound: dict | None = None) -> IntakeResult:
    """Record and submit a request's runs. `request_row` (a keyed request seen for the first time) is written with
    its first records; `bound` (the row of a keyed request recorded before) makes this a repeat: once all of that
    request's runs are recorded nothing new is created, only runs still `received` (a crash before their add) are
    submitted, and a repeat that submits nothing is a `duplicate`. RequestConflict when the key was taken."""
    existing = ctx.runs.by_request(pipeline, request_id)
    if bound is not None and len(existing) >= int(bound.get("runCount") or 0):
        specs = [s for s in specs if s.task_id in existing]  # e.g. a blob rewritten since: not a new run
    etags = ctx.runs.create_many(pipeline, [(s.task_id, _spec_fields(s, request_id)) for s in specs
                                            if s.task_id not in existing], request=request_row)
    telemetry.runs_received(pipeline, len(etags))
    etags.update({rid: r.get("_etag") for rid, r in existing.items() if r.get("state") == "received"})
    # A redelivered request stays in the job it was first submitted to (the merge task depends on its siblings).
    job_id = next((r["jobId"] for r in existing.values() if r.get("jobId")), None) or ids.job_id(
        ctx.settings.job_prefix, pipeline, ctx.settings.job_period, now)
    runs = [PendingRun(spec=s, etag=etags[s.task_id]) for s in specs if s.task_id in etags]
    if not runs:
        log.info("request %s repeated: all %d run(s) recorded before, nothing submitted", request_id,
                 len(existing))
        return IntakeResult("duplicate", tuple(existing), job_id=job_id)
    report = submit_runs(ctx, pipeline, runs, now=now, job_id=job_id, defer=False)
    if report.deferred:
        # Leave the message to the host: it comes back (dequeue count) and the IDs make the retry idempotent.
        raise RequestDeferred(f"{len(report.deferred)} task(s) of request {request_id} could not be submitted "
                              f"yet ({next(iter(report.deferred.values()))}); the request will be retried",
                              pipeline, request_id, report.deferred)
    return IntakeResult("submitted", tuple(s.task_id for s in specs), job_id=job_id, batch_calls=report.batch_calls)
