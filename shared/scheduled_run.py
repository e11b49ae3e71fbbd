"""One occurrence of a pipeline's schedule (shared.schedules): every blob under the schedule's prefix, as ONE request.

The request's idempotency key is `occurrence_key(pipeline, occurrence)`, so its request id and every run id follow
from the pipeline, the scheduled time and the blob: a second firing of the same occurrence finds the request row
and its runs recorded and creates nothing (`duplicate`); a blob written after the first firing is not added to it.

The listing pages through the container (the SDK fetches 5000 names per call) and keeps at most the pipeline's
maxInputs + 1 blobs, as a queue request over a prefix does: a prefix holding more is rejected as a whole, with the
count, so nothing is cut short silently. Each blob gets its own outcome: a blob over maxInputBytes or with a name
the tasks cannot take is rejected with the reason (its own record and notification), the others are submitted
together through submit_request / submit_runs (addTaskCollection, 100 tasks a call: 1000 blobs are ~10 Batch calls).
"""

from __future__ import annotations

import fnmatch
import json
import logging
from datetime import datetime

from shared import ids
from shared.app_context import AppContext
from shared.errors import Rejection
from shared.intake import submit_request
from shared.names import check_blob_name
from shared.outcomes import IntakeResult, reject
from shared.pipelines import Pipeline
from shared.schedules import occurrence_key, occurrence_time
from shared.task_spec import build_task, plan_merge
from shared.work_items import (
    Overrides,
    PrefixRef,
    Request,
    WorkItem,
    blob_matches,
    check_enabled,
    check_size,
    request_digest,
)

log = logging.getLogger("eventbatch.scheduled")
SOURCE = "schedule"


def _selected(pipeline: Pipeline, name: str) -> bool:
    """The schedule's glob (relative to its prefix) when it has one, else the pipeline's inputs.blob policy."""
    schedule = pipeline.schedule
    if schedule.glob is None:
        return blob_matches(pipeline, pipeline.blob_input.container, name)
    return name.startswith(schedule.prefix) and fnmatch.fnmatchcase(name[len(schedule.prefix):], schedule.glob)


def run_occurrence(ctx: AppContext, pipeline_name: str, occurrence: datetime,
                   now: datetime | None = None) -> IntakeResult:
    """Run `pipeline_name` over its schedule's prefix for the occurrence scheduled at `occurrence` (UTC)."""
    pipeline = ctx.config.pipeline(pipeline_name)
    if pipeline is None or pipeline.schedule is None:
        raise ValueError(f"pipeline {pipeline_name!r} has no schedule")
    when = occurrence_time(occurrence)
    key = occurrence_key(pipeline.name, when)
    request_id = ids.request_id(key, None, "")
    container, prefix = pipeline.blob_input.container, pipeline.schedule.prefix
    request = Request(pipeline=pipeline, inputs=(PrefixRef(container, prefix),), overrides=Overrides(),
                      idempotency_key=key)
    digest = request_digest(request)
    bound = ctx.runs.get_request(pipeline.name, key)
    payload = json.dumps({"pipeline": pipeline.name, "schedule": pipeline.schedule.cron, "occurrence":
                          when.isoformat(), "container": container, "prefix": prefix}, ensure_ascii=False)
    try:
        check_enabled(ctx.config, pipeline)  # no timer is registered for it; a stray firing is refused, visibly
    except Rejection as exc:
        return reject(ctx, partition=pipeline.name, run_id=ids.rejection_id(SOURCE, request_id), rejection=exc,
                      source=SOURCE, payload=payload, fields={"requestId": request_id, "idempotencyKey": key})
    infos = ctx.storage.list_blobs(container, prefix, pipeline.max_inputs + 1, lambda b: _selected(pipeline, b.name))
    if len(infos) > pipeline.max_inputs:
        rejection = Rejection("outside-policy", f"schedule occurrence {when.isoformat()} of pipeline {pipeline.name}:"
                                                f" more than {pipeline.max_inputs} blobs under {container}/{prefix};"
                                                f" maxInputs is {pipeline.max_inputs} (no input was submitted)")
        return reject(ctx, partition=pipeline.name, run_id=ids.rejection_id(SOURCE, request_id), rejection=rejection,
                      source=SOURCE, payload=payload, fields={"requestId": request_id, "idempotencyKey": key})
    specs, rejected = [], []
    for info in infos:
        item = WorkItem(pipeline=pipeline.name, blob=info, source=SOURCE, request_id=request_id, idempotency_key=key)
        try:
            check_blob_name(info.name)
            check_size(pipeline, info)
            specs.append(build_task(item, pipeline, ctx.task_access, now=now, merge_follows=pipeline.merge is not None))
        except Rejection as exc:
            run_id = ids.rejection_id(SOURCE, request_id, container, info.name, ids.etag_of(info.etag))
            reject(ctx, partition=pipeline.name, run_id=run_id, rejection=exc, source=SOURCE, payload=payload,
                   fields={"requestId": request_id, "idempotencyKey": key, "inputContainer": container,
                           "inputName": info.name, "inputEtag": info.etag})
            rejected.append(run_id)
    if not specs:
        log.info("schedule %s of %s: nothing to submit under %s/%s (%d rejected)", when.isoformat(), pipeline.name,
                 container, prefix, len(rejected))
        return IntakeResult("rejected" if rejected else "duplicate" if bound else "empty", tuple(rejected))
    if pipeline.merge is not None:
        specs = plan_merge(pipeline, request_id, specs, ctx.task_access, now=now)
    row = None
    if bound is None:
        row = {"idempotencyKey": key, "digest": digest, "requestId": request_id, "runCount": len(specs),
               "messageId": None}
    result = submit_request(ctx, pipeline.name, request_id, specs, now=now, request_row=row, bound=bound)
    log.info("schedule %s of %s: %s, %d run(s), %d rejected", when.isoformat(), pipeline.name, result.status,
             len(result.run_ids), len(rejected))
    return IntakeResult(result.status, result.run_ids + tuple(rejected), result.reason, result.job_id,
                        result.batch_calls)
