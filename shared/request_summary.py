"""What a request's run records say about the request as a whole, and its completion message. Pure.

A request (the runs that share a request id: one per input, plus the merge and its barrier tasks when the pipeline
has a merge) is summed up from its run records every time, never by incrementing counters, so a repeated event, a
redelivered message or a retry cannot skew it. A record with `supersededBy` (an attempt replaced by a retry) and
bookkeeping rows do not count.

The request's state, once every counted run has ended:
    succeeded   every input succeeded (and the merge, if there is one)
    partial     some inputs succeeded and some did not (failed, cancelled, rejected), and the merge (if any)
                succeeded over what there was
    failed      no input succeeded, or the merge failed or was skipped (merge.requireAll with a failed input)
Before that it is `open`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.manifest import MESSAGE_BUDGET_BYTES, message_bytes
from shared.records import STATES, TERMINAL, is_hidden

OPEN = "open"
NO_TASK = ("NotSubmitted", "TaskGone")  # failure codes of runs that have no Batch task a merge could wait for
MAX_LISTED = 50  # failed inputs and output prefixes named in one message (the counts always tell the whole story)
# What a summary needs of each run record (a $select, so a request of thousands of runs stays a small read).
SUMMARY_FIELDS = ["RowKey", "state", "kind", "supersededBy", "inputContainer", "inputName", "failureCode",
                  "failureMessage", "reason", "rejectionCode", "outputContainer", "outputPrefix", "manifestBlob",
                  "jobId", "receivedAt", "endedAt", "partial", "inputsFailed", "stderrTail"]


@dataclass(frozen=True)
class RequestSummary:
    pipeline: str
    request_id: str
    counts: dict[str, int]  # total (inputs) and one count per run state, over the inputs
    ended: bool  # every counted run (inputs, barriers, merge) is in a terminal state
    state: str  # open | succeeded | partial | failed
    digest: str  # of the counted runs and their states: a new set after a retry is a new completion
    inputs: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # the inputs that did not succeed, in run-id order
    merge: dict | None = None  # the merge run's record
    barriers: list[dict] = field(default_factory=list)

    @property
    def pending_steps(self) -> list[dict]:
        """Barrier and merge runs not ended yet (what merge.requireAll skips once an input failed)."""
        return [r for r in [*self.barriers, *([self.merge] if self.merge else [])] if r.get("state") not in TERMINAL]


def counted(records: Iterable[dict]) -> list[dict]:
    """The run records that count for their request: not bookkeeping rows, not attempts replaced by a retry."""
    return [r for r in records if not is_hidden(r.get("RowKey", "")) and not r.get("supersededBy")]


def summarize(pipeline: str, request_id: str, records: Iterable[dict], require_all: bool = False) -> RequestSummary:
    runs = sorted(counted(records), key=lambda r: r["RowKey"])
    inputs = [r for r in runs if (r.get("kind") or "task") == "task"]
    merge = next((r for r in runs if r.get("kind") == "merge"), None)
    barriers = [r for r in runs if r.get("kind") == "barrier"]
    counts = {"total": len(inputs), **{s: 0 for s in STATES}}
    for r in inputs:
        state = r.get("state") or "received"
        counts[state] = counts.get(state, 0) + 1
    failed = [r for r in inputs if r.get("state") in TERMINAL and r.get("state") != "succeeded"]
    ended = all(r.get("state") in TERMINAL for r in runs)
    digest = hashlib.sha256("\n".join(f"{r['RowKey']}={r.get('state')}" for r in runs).encode()).hexdigest()[:32]
    return RequestSummary(pipeline=pipeline, request_id=request_id, counts=counts, ended=ended,
                          state=_state(counts, failed, merge, require_all) if ended else OPEN, digest=digest,
                          inputs=inputs, failed=failed, merge=merge, barriers=barriers)


def _state(counts: dict[str, int], failed: list[dict], merge: dict | None, require_all: bool) -> str:
    if not counts.get("succeeded"):
        return "failed"
    if merge is not None and merge.get("state") != "succeeded":
        return "failed"
    if failed:
        return "failed" if require_all else "partial"
    return "succeeded"


def blocking_inputs(summary: RequestSummary, require_all: bool) -> list[dict]:
    """The ended inputs that keep the merge from ever running: every failed one with merge.requireAll (they block
    it), else those that never had a Batch task to wait for (rejected by Batch, never submitted, task gone)."""
    if summary.merge is None:
        return []
    if require_all:
        return list(summary.failed)
    return [r for r in summary.failed if r.get("state") == "rejected" or r.get("failureCode") in NO_TASK]


def input_label(record: dict) -> str:
    """How a person names an input: container/name (a run id when the record names none)."""
    if record.get("inputName"):
        return f"{record.get('inputContainer')}/{record['inputName']}"
    return record["RowKey"]


def failure_entry(record: dict) -> dict:
    """A failed input as a person reads it: which run and input, the code, the reason and, for a task that ran,
    the last line of its stderr (the worker's own words)."""
    reason = record.get("failureMessage") or record.get("reason") or ""
    entry = {"runId": record["RowKey"], "input": input_label(record), "state": record.get("state"),
             "code": record.get("failureCode") or record.get("rejectionCode"), "reason": str(reason)[:300]}
    tail = [line for line in str(record.get("stderrTail") or "").splitlines() if line.strip()]
    if tail:
        entry["stderr"] = tail[-1][:300]
    return entry


def merge_fields(summary: RequestSummary) -> dict:
    """What the merge's run record says about the inputs it was given (partial, inputsFailed)."""
    return {"partial": bool(summary.failed), "inputsFailed": len(summary.failed),
            "inputsExpected": summary.counts["total"]}


def request_message_id(pipeline: str, request_id: str, generation: int) -> str:
    """One id per completion of a request: a request reopened by a retry that ends again is a new generation."""
    return f"request:{pipeline}:{request_id}:{generation}"


def common_prefix(prefixes: list[str]) -> str:
    """The longest folder (whole path segments) that holds every prefix."""
    if not prefixes:
        return ""
    parts = [p.split("/") for p in prefixes]
    out = []
    for segment in zip(*parts, strict=False):
        if any(s != segment[0] for s in segment):
            break
        out.append(segment[0])
    if len(prefixes) == 1:
        out = out[:-1] or out  # one input: the folder around its output, as for many
    return "/".join(out)


def outputs_of(summary: RequestSummary) -> dict:
    """Where the request's outputs are: the container, the folder that holds them all, the merge's results; the
    succeeded inputs' own folders are added by request_message as far as the message has room."""
    container = next((r.get("outputContainer") for r in summary.inputs if r.get("outputContainer")), None)
    out = {"container": container,
           "prefix": common_prefix([r["outputPrefix"] for r in summary.inputs if r.get("outputPrefix")]),
           "prefixes": []}
    merge = summary.merge
    if merge is not None:
        out["merge"] = {"runId": merge["RowKey"], "state": merge.get("state"),
                        "container": merge.get("outputContainer"), "prefix": merge.get("outputPrefix"),
                        "manifest": merge.get("manifestBlob"), **merge_fields(summary)}
        if merge.get("failureCode"):
            out["merge"]["failure"] = {"code": merge.get("failureCode"),
                                       "message": str(merge.get("failureMessage") or "")[:500]}
    return out


def request_message(summary: RequestSummary, generation: int, ended_at: str) -> dict:
    """The request-completion message, bounded by construction (it fits on a queue however large the request):
    up to MAX_LISTED failed inputs and succeeded inputs' output folders are named while there is room, with
    `failedTruncated` / `outputs.prefixesTruncated` when some are left out; the counts always tell the whole."""
    message = {"kind": "request", "pipeline": summary.pipeline, "requestId": summary.request_id,
               "state": summary.state, "counts": dict(summary.counts), "outputs": outputs_of(summary),
               "failed": [], "generation": generation, "endedAt": ended_at,
               "messageId": request_message_id(summary.pipeline, summary.request_id, generation)}
    size = message_bytes(message) + 64  # room for the two truncation flags
    half = (MESSAGE_BUDGET_BYTES - size) // 2
    failures = [failure_entry(r) for r in summary.failed[:MAX_LISTED]]
    message["failed"], used = _fill(failures, half)
    if len(message["failed"]) < len(summary.failed):
        message["failedTruncated"] = True
    prefixes = [r["outputPrefix"] for r in summary.inputs if r.get("state") == "succeeded" and r.get("outputPrefix")]
    message["outputs"]["prefixes"], _ = _fill(prefixes[:MAX_LISTED], MESSAGE_BUDGET_BYTES - size - used)
    if len(message["outputs"]["prefixes"]) < len(prefixes):
        message["outputs"]["prefixesTruncated"] = True
    return message


def _fill(items: list, room: int) -> tuple[list, int]:
    """The first items whose JSON fits in `room` bytes, and the bytes they take."""
    kept, used = [], 0
    for item in items:
        size = len(json.dumps(item, ensure_ascii=False).encode("utf-8")) + 1
        if used + size > room:
            break
        kept.append(item)
        used += size
    return kept, used


def record_fields(summary: RequestSummary) -> dict:
    """The request record's columns (flat: a table entity holds no nested objects)."""
    merge = summary.merge or {}
    return {"requestId": summary.request_id, "pipeline": summary.pipeline, "kind": "request",
            "state": summary.state, "digest": summary.digest, "runsTotal": summary.counts["total"],
            **{f"count{s.capitalize()}": n for s, n in summary.counts.items() if s != "total"},
            "mergeRunId": merge.get("RowKey"), "mergeState": merge.get("state"),
            "inputsFailed": len(summary.failed)}
