"""The app's metrics computed from run records: records in, figures out. Pure.

The same figures the app sends to Application Insights (shared.telemetry), from the timestamps every run record
carries, so `eventbatch metrics` needs no collector:
    receivedAt     the run was recorded (intake)          submittedAt   Batch accepted its task (submission)
    startedAt      Batch started the task                 endedAt       the task ended (Batch's times, completion)
    <state>At      the run reached that state             submitSeconds the bulk add that submitted it took
    durationSeconds  the task's run time (Batch's start -> end)
queue wait = received -> started, submit wait = received -> submitted, submit latency = submitSeconds, task
duration = durationSeconds. Percentiles are nearest-rank (p95 of 20 values is the 19th smallest): a figure that
happened, never an interpolation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.durations import parse_timestamp
from shared.records import STATES, TERMINAL

TOP_REASONS = 5



def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end`; None when either is unknown or the clock ran backwards."""
    if start is None or end is None:
        return None
    seconds = (end - start).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None


@dataclass(frozen=True)
class Timings:
    queue_wait: float | None  # received -> started on Batch
    submit_wait: float | None  # received -> submitted
    submit_latency: float | None  # the bulk add that submitted the run
    task_duration: float | None  # Batch's start -> end


def timings(record: Mapping) -> Timings:
    received = parse_timestamp(record.get("receivedAt"))
    duration = _number(record.get("durationSeconds"))
    if duration is None:
        duration = seconds_between(parse_timestamp(record.get("startedAt")), parse_timestamp(record.get("endedAt")))
    return Timings(queue_wait=seconds_between(received, parse_timestamp(record.get("startedAt"))),
                   submit_wait=seconds_between(received, parse_timestamp(record.get("submittedAt"))),
                   submit_latency=_number(record.get("submitSeconds")), task_duration=duration)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def spread(values: Iterable[float | None]) -> dict:
    """{count, p50, p95, max} in seconds (None figures when there are no values)."""
    known = [v for v in values if v is not None]
    if not known:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    return {"count": len(known), "p50": percentile(known, 0.5), "p95": percentile(known, 0.95), "max": max(known)}


# The stamps of a run's own life (arrival, each state, Batch's start and end); bookkeeping written later (the
# notification's mark, a repair, a retry superseding it) is not activity of the run.
LIFE_STAMPS = ("receivedAt", "startedAt", "endedAt", *(f"{state}At" for state in STATES))


def last_activity(record: Mapping) -> datetime | None:
    stamps = [parse_timestamp(record.get(k)) for k in LIFE_STAMPS]
    known = [s for s in stamps if s is not None]
    return max(known) if known else None


def ended_at(record: Mapping) -> datetime | None:
    """When a terminal run reached its state (None for a run still under way)."""
    state = record.get("state")
    return parse_timestamp(record.get(f"{state}At")) if state in TERMINAL else None


def in_window(record: Mapping, since: datetime | None) -> bool:
    """A run belongs to the window when it arrived, changed state, started or ended since `since`, or it is still
    under way."""
    if since is None or record.get("state") not in TERMINAL:
        return True
    last = last_activity(record)
    return last is not None and last >= since


def reason_key(record: Mapping) -> tuple[str, str]:
    """(state, code) of a run that did not succeed: Batch's failure code, our failure or rejection code, with the
    exit code when the task exited non-zero."""
    state = record.get("state") or "?"
    code = record.get("failureCode") or record.get("rejectionCode") or ("cancelled" if state == "cancelled"
                                                                         else "unknown")
    exit_code = record.get("exitCode")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
        code = f"{code} (exit {exit_code})"
    return state, code


def failure_reasons(records: Iterable[Mapping], top: int = TOP_REASONS) -> list[dict]:
    """The most frequent reasons runs did not succeed, most frequent first, each with its newest example."""
    counts: Counter = Counter()
    example: dict[tuple[str, str], tuple[str, str]] = {}
    for r in records:
        if r.get("state") not in TERMINAL or r.get("state") == "succeeded":
            continue
        key = reason_key(r)
        counts[key] += 1
        when = str(r.get(f"{r.get('state')}At") or "")
        text = r.get("reason") or r.get("failureMessage") or ""
        if key not in example or when >= example[key][0]:
            example[key] = (when, str(text)[:300])
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"state": s, "code": c, "count": n, "example": example[(s, c)][1]} for (s, c), n in ranked]


def figures(records: list[Mapping], window_minutes: float | None, top: int = TOP_REASONS) -> dict:
    """The figures of one set of runs (one pipeline, or all)."""
    states = {s: 0 for s in STATES}
    for r in records:
        states[r.get("state") or "?"] = states.get(r.get("state") or "?", 0) + 1
    times = [timings(r) for r in records]
    ended = sum(1 for r in records if r.get("state") in TERMINAL and r.get("state") != "rejected")
    per_minute = round(ended / window_minutes, 3) if window_minutes else None
    return {
        "runs": len(records), "states": states,
        "superseded": sum(1 for r in records if r.get("supersededBy")),
        "queueWait": spread(t.queue_wait for t in times),
        "submitWait": spread(t.submit_wait for t in times),
        "submitLatency": spread(t.submit_latency for t in times),
        "taskDuration": spread(t.task_duration for t in times),
        "throughput": {"ended": ended, "perMinute": per_minute},
        "failureReasons": failure_reasons(records, top),
    }


def summarize(records: Iterable[Mapping], now: datetime, since: datetime | None = None,
              pipeline: str | None = None, top: int = TOP_REASONS) -> dict:
    """Per pipeline and in total: counts by state, queue wait / submit wait / submit latency / task duration
    (count, p50, p95, max, seconds), throughput (runs that ended per minute over the window) and the top failure
    reasons. `since` None: every run, the window starting at the oldest one."""
    chosen = [r for r in records if in_window(r, since) and
              (pipeline is None or (r.get("pipeline") or r.get("PartitionKey")) == pipeline)]
    start = since
    if start is None:
        firsts = [parse_timestamp(r.get("receivedAt") or r.get("rejectedAt")) for r in chosen]
        known = [f for f in firsts if f is not None]
        start = min(known) if known else None
    minutes = max((now - start) / timedelta(minutes=1), 1.0) if start is not None else None
    groups: dict[str, list[Mapping]] = {}
    for r in chosen:
        groups.setdefault(r.get("pipeline") or r.get("PartitionKey") or "?", []).append(r)
    return {
        "since": _iso(start), "until": _iso(now), "windowMinutes": round(minutes, 3) if minutes else None,
        "pipelines": {name: figures(rs, minutes, top) for name, rs in sorted(groups.items())},
        "total": figures(chosen, minutes, top),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None

