"""New attempts of runs that ended (shared.control's retry): records, task specs, submission.

An attempt is a new run: a new record (RowKey = a new task id derived from the old run's id, so the same retry
asked twice makes one attempt), `attempt` = old + 1, `retryOf` = the old run id, the same `requestId`, and its own
output folder, `<first attempt's output folder>/attempt-<n>/` (so the old outputs and logs stay where they were and
`eventbatch logs` shows each attempt's own). The old record keeps its state and outputs and gets `supersededBy` =
the new run id: it no longer counts for its request (shared.records.is_current).

An input of a request with a merge is retried with a new merge attempt, which depends on the new attempts and reads
the output folders of the request's current runs: the inputs that succeeded before and the new attempts, never the
outputs of an attempt that was replaced (a forced retry of a succeeded input is merged once). Retrying only the
merge makes a new merge attempt over what is there.

Attempts are submitted within the call (never deferred to the submit queue, whose retries rebuild a run from the
blob event that made it): an attempt Batch does not take yet stays `received` and is reported `pending` (its inbox
entry says so, so the safety net leaves it), and asking for the same retry again submits it; a control message
asks again by being delivered again, and its last delivery fails what is still pending (shared.control_messages).

A retry reads the input again, so it is refused when the input was deleted or changed since (another version is
new work: upload it again), and when the request set environment overrides: their values are not kept anywhere but
the first Batch task (they may be secrets), so only sending the request again can repeat them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from shared import ids
from shared.app_context import AppContext
from shared.errors import Rejection
from shared.intake import record_fields
from shared.pipelines import Pipeline
from shared.records import TERMINAL, is_current, now_iso
from shared.run_actions import RunAction
from shared.submission import PendingRun, SubmitReport, submit_runs
from shared.task_spec import TaskSpec, build_merge_task, build_task, retarget
from shared.work_items import Overrides, WorkItem, check_enabled, shown

MAX_MERGE_SOURCES = 500  # one resource file per fan-out folder; a task (with its SAS URLs) must stay under 1 MB


@dataclass(frozen=True)
class Attempt:
    old: dict | None  # the record this attempt supersedes (None: a request whose merge record is missing)
    spec: TaskSpec
    fields: dict
    number: int


def attempt_id(pipeline: str, old_run_id: str) -> str:
    return f"{pipeline}-{ids.digest('retry', pipeline, old_run_id)}"


def merge_attempt_id(pipeline: str, request_id: str, number: int) -> str:
    return f"{pipeline}-m{ids.digest('merge', pipeline, request_id, 'attempt', str(number), length=25)}"


def plan_retries(ctx: AppContext, records: Sequence[dict], by: str, force: bool) -> list[RunAction]:
    """Retry each record that may be retried (see eligible); one submission per pipeline and request."""
    results: list[RunAction] = []
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for record in records:
        old, refusal = eligible(ctx, record, force)
        if refusal is not None:
            results.append(refusal)
            continue
        groups.setdefault((old["PartitionKey"], old.get("requestId") or ""), {})[old["RowKey"]] = old
    for (pipeline, request_id), olds in sorted(groups.items()):
        results += _retry_group(ctx, pipeline, request_id or None, list(olds.values()), by)
    return results


def eligible(ctx: AppContext, record: dict, force: bool) -> tuple[dict | None, RunAction | None]:
    """(the record to make a new attempt of, None) or (None, why not). An attempt that Batch did not take yet
    (`received`, with `retryOf`) stands for its old run, so asking again submits it."""
    pipeline, run_id, state = record["PartitionKey"], record["RowKey"], record.get("state")

    def refuse(why: str, outcome: str = "refused", new: str | None = None):
        return None, RunAction(run_id, pipeline, outcome, why, new)

    if record.get("supersededBy"):
        new = ctx.runs.get(pipeline, record["supersededBy"]) or {}
        if new.get("state") == "received":
            return record, None
        return refuse(f"already retried as {record['supersededBy']} (attempt {new.get('attempt')}, "
                      f"{new.get('state')}): retry that run instead", "unchanged", record["supersededBy"])
    if state == "received" and record.get("retryOf"):
        old = ctx.runs.get(pipeline, record["retryOf"])
        if old is not None:
            return old, None
    if state == "rejected":
        return refuse(f"it was rejected and never ran ({record.get('reason')}): fix the input and send it again")
    if state not in TERMINAL:
        return refuse(f"it is still {state}: wait for it to end, or cancel it first")
    if state == "succeeded" and not force:
        return refuse("it succeeded; add --force to run it again (the new attempt writes to its own folder)")
    if record.get("kind") == "barrier":
        return refuse("a barrier task runs again with its request's merge: retry the merge, or --request ID")
    return record, None


def _retry_group(ctx: AppContext, pipeline_name: str, request_id: str | None, olds: list[dict],
                 by: str) -> list[RunAction]:
    pipeline = ctx.config.pipeline(pipeline_name)
    try:
        if pipeline is None:
            raise Rejection("unknown-pipeline", f"pipeline {pipeline_name!r} is no longer in pipelines.yaml")
        check_enabled(ctx.config, pipeline)
    except Rejection as exc:
        return [RunAction(r["RowKey"], pipeline_name, "refused", exc.reason) for r in olds]
    fanout = [r for r in olds if (r.get("kind") or "task") == "task"]
    merges = [r for r in olds if r.get("kind") == "merge"]
    with_merge = bool(pipeline.merge and request_id and (merges or any(r.get("mergeTaskId") for r in fanout)))
    siblings = ctx.runs.by_request(pipeline_name, request_id) if with_merge else {}
    old_merge, merge_number, merge_id = None, 0, None
    if with_merge:
        current = next((r for r in siblings.values() if r.get("kind") == "merge" and is_current(r)), None)
        if current is not None and current.get("state") == "received" and current.get("retryOf"):
            old_merge, merge_number, merge_id = siblings.get(current["retryOf"]), int(current["attempt"]), current["RowKey"]
        elif current is not None and current.get("state") not in TERMINAL:
            return [RunAction(r["RowKey"], pipeline_name, "refused", f"its request's merge {current['RowKey']} is "
                              f"still {current.get('state')}: wait for it to end, or cancel it, first") for r in olds]
        else:
            old_merge, merge_number = current, int((current or {}).get("attempt") or 1) + 1
            merge_id = merge_attempt_id(pipeline_name, request_id, merge_number)
    results, attempts = [], []
    for old in fanout:
        try:
            attempts.append(fanout_attempt(ctx, pipeline, old, by, merge_id))
        except Rejection as exc:
            results.append(RunAction(old["RowKey"], pipeline_name, "refused", exc.reason))
    if with_merge and (attempts or merges):
        ours = {a.old["RowKey"] for a in attempts if a.old} | {a.spec.task_id for a in attempts}
        others = [r for r in siblings.values() if (r.get("kind") or "task") == "task" and is_current(r)
                  and r["RowKey"] not in ours]
        try:
            unfinished = [r["RowKey"] for r in others if r.get("state") not in TERMINAL]
            if unfinished:  # the new merge could not wait for them: they are tasks of another job
                raise Rejection("request-unfinished", f"{len(unfinished)} other input(s) of its request are still "
                                                      f"running ({unfinished[0]}, ...): retry once they have ended")
            sources = [a.spec.output_prefix for a in attempts] + [r["outputPrefix"] for r in others
                                                                  if r.get("outputPrefix")]
            attempts.append(merge_attempt(ctx, pipeline, request_id, old_merge, merge_number, merge_id,
                                          [a.spec.task_id for a in attempts], sources, by))
        except Rejection as exc:
            return [*results, *(RunAction(r["RowKey"], pipeline_name, "refused", exc.reason)
                                for r in [*(a.old for a in attempts if a.old), *merges])]
    if not attempts:
        return results
    barriers = [r["RowKey"] for r in siblings.values() if r.get("kind") == "barrier" and is_current(r)]
    return results + _submit(ctx, pipeline_name, attempts, barriers, merge_id)


def _submit(ctx: AppContext, pipeline: str, attempts: list[Attempt], barriers: list[str],
            merge_id: str | None) -> list[RunAction]:
    """Record the attempts (those that exist already: a repeated retry), supersede the old runs, submit."""
    created = ctx.runs.create_many(pipeline, [(a.spec.task_id, a.fields) for a in attempts])
    pending, existing = [], {}
    for a in attempts:
        etag = created.get(a.spec.task_id)
        if a.spec.task_id not in created:
            record = ctx.runs.get(pipeline, a.spec.task_id) or {}
            if record.get("state") != "received":
                existing[a.spec.task_id] = record.get("state")
                continue
            etag = record.get("_etag")
        pending.append(PendingRun(spec=a.spec, etag=etag))
    stamp = now_iso()
    for old_id, new_id in [*((a.old["RowKey"], a.spec.task_id) for a in attempts if a.old), *((b, merge_id)
                                                                                          for b in barriers)]:
        ctx.runs.merge(pipeline, old_id, {"supersededBy": new_id, "supersededAt": stamp})
    # Let through as a whole, like a request (shared.quotas): a held attempt would be rebuilt from its blob event.
    report = submit_runs(ctx, pipeline, pending, defer=False, admitted=True) if pending else SubmitReport()
    results = []
    for a in attempts:
        new_id = a.spec.task_id
        old_id = a.old["RowKey"] if a.old else new_id
        where = f"{a.spec.output_container}/{a.spec.output_prefix}/"
        if new_id in existing:
            results.append(RunAction(old_id, pipeline, "unchanged", f"attempt {a.number} exists already as "
                                                                     f"{new_id} ({existing[new_id]})", new_id))
        elif new_id in report.submitted:
            what = "new merge attempt" if a.spec.kind == "merge" else "new attempt"
            results.append(RunAction(old_id, pipeline, "retried", f"{what} {a.number} is run {new_id} in job "
                                                                   f"{report.job_id}; its outputs go to {where}",
                                     new_id))
        elif new_id in report.rejected:
            results.append(RunAction(old_id, pipeline, "refused", f"Batch refused the new attempt {new_id}: "
                                                                   f"{report.rejected[new_id]}", new_id))
        else:
            why = report.deferred.get(new_id) or "not submitted"
            # Not the safety net's to resubmit (it rebuilds a run from its blob event, which made the first attempt)
            ctx.runs.touch_inbox(pipeline, new_id, {"attempts": 1, "lastError": why[:500]})
            results.append(RunAction(old_id, pipeline, "pending", f"attempt {a.number} is recorded as {new_id}, but "
                                                                   f"Batch did not take it yet ({why}); ask for the "
                                                                   "same retry again to submit it", new_id))
    return results


def work_item(ctx: AppContext, old: dict) -> WorkItem:
    """The old run's input, looked up again: Rejection when it is gone or changed, or when the request's
    environment overrides (not kept) would be needed to repeat it."""
    container, name = old.get("inputContainer"), old.get("inputName")
    if not name:
        raise Rejection("not-retriable", "the run names no input to run again")
    overrides = Overrides()
    if old.get("overrides"):
        try:
            data = json.loads(old["overrides"])
        except ValueError:
            data = {"environment": {"?": ""}}
        if not isinstance(data, dict) or data.get("environment"):
            names = sorted(data["environment"]) if isinstance(data, dict) and isinstance(data["environment"], dict) \
                else ["?"]
            raise Rejection("not-retriable", f"its request set environment overrides ({', '.join(names)}) whose "
                                             "values are kept only in the first task (they may be secrets): send the "
                                             "request again to repeat them")
        overrides = Overrides(retries=data.get("retries"), max_wall_clock_time=data.get("maxWallClockTime"))
    info = ctx.storage.lookup_blob(container, name)
    if info is None:
        raise Rejection("missing-blob", f"its input {container}/{shown(name)} no longer exists")
    if info.etag != ids.etag_of(old.get("inputEtag") or ""):
        raise Rejection("input-changed", f"its input {container}/{shown(name)} changed since the run: another "
                                         "version is new work (upload it again to run it)")
    return WorkItem(pipeline=old["PartitionKey"], blob=info, source=old.get("source") or "blob",
                    request_id=old.get("requestId"), idempotency_key=old.get("idempotencyKey"), overrides=overrides)


def _attempt_fields(old: dict | None, number: int, by: str, base: str) -> dict:
    return {"attempt": number, "retryOf": old["RowKey"] if old else None, "retriedBy": by[:200],
            "attemptBasePrefix": base}


def fanout_attempt(ctx: AppContext, pipeline: Pipeline, old: dict, by: str, merge_id: str | None) -> Attempt:
    number = int(old.get("attempt") or 1) + 1
    item = work_item(ctx, old)
    spec = build_task(item, pipeline, ctx.task_access, merge_follows=merge_id is not None)
    base = old.get("attemptBasePrefix") or old.get("outputPrefix") or spec.output_prefix
    spec = replace(retarget(spec, pipeline, ctx.task_access, attempt_id(pipeline.name, old["RowKey"]),
                            f"{base}/attempt-{number}", f"attempt {number}"), merge_task_id=merge_id)
    return Attempt(old, spec, {**record_fields(item, spec), **_attempt_fields(old, number, by, base)}, number)


def merge_attempt(ctx: AppContext, pipeline: Pipeline, request_id: str, old: dict | None, number: int, merge_id: str,
                  depends_on: list[str], sources: list[str], by: str) -> Attempt:
    """A new merge of the request, after the new attempts (`depends_on`), over the output folders of the request's
    current fan-out runs (`sources`): the inputs that succeeded before and the new attempts, not the outputs of
    the attempts they replace. A request with more inputs than MAX_MERGE_SOURCES is merged over its whole fan-out
    folder, as its first merge was."""
    spec = build_merge_task(pipeline, request_id, depends_on, ctx.task_access)
    base = (old or {}).get("attemptBasePrefix") or (old or {}).get("outputPrefix") or spec.output_prefix
    spec = retarget(spec, pipeline, ctx.task_access, merge_id, f"{base}/attempt-{number}", f"attempt {number}")
    body = {k: v for k, v in spec.body.items() if k != "dependsOn" or depends_on}
    sources = sorted(set(sources))  # an attempt asked for again is a current run already
    if len(sources) <= MAX_MERGE_SOURCES:
        folder = body["resourceFiles"][0]
        body["resourceFiles"] = [{**folder, "blobPrefix": prefix + "/"} for prefix in sources]
    body["environmentSettings"] = [e if e["name"] != "EVENTBATCH_INPUT_COUNT" else
                                   {"name": "EVENTBATCH_INPUT_COUNT", "value": str(len(sources))}
                                   for e in body["environmentSettings"]]
    spec = replace(spec, body=body)
    fields = {"pipeline": pipeline.name, "source": "queue", "kind": "merge", "requestId": request_id,
              "taskId": merge_id, "outputContainer": spec.output_container, "outputPrefix": spec.output_prefix,
              **_attempt_fields(old, number, by, base)}
    return Attempt(old, spec, fields, number)
