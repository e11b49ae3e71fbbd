"""`eventbatch metrics` from run records: the figures an operator reads (counts, waits, throughput, reasons)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from devstack.tools import metrics
from shared import run_metrics

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def at(minutes_ago: float, seconds: float = 0) -> str:
    stamp = NOW - timedelta(minutes=minutes_ago) + timedelta(seconds=seconds)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run(run_id: str, state: str, minutes_ago: float = 10, pipeline: str = "transform", wait: float = 2.0,
        duration: float = 5.0, **fields) -> dict:
    """A record as the app writes it: received, submitted 0.2 s later (in a 0.15 s bulk add), started after
    `wait` seconds, ended after `duration` more."""
    record = {"PartitionKey": pipeline, "RowKey": run_id, "pipeline": pipeline, "state": state,
              "receivedAt": at(minutes_ago)}
    if state in ("submitted", "running", "succeeded", "failed"):
        record.update(submittedAt=at(minutes_ago, 0.2), submitSeconds=0.15)
    if state in ("succeeded", "failed"):
        record.update(startedAt=at(minutes_ago, wait), endedAt=at(minutes_ago, wait + duration),
                      durationSeconds=duration, exitCode=0 if state == "succeeded" else 1)
        record[f"{state}At"] = at(minutes_ago, wait + duration + 0.5)
    return {**record, **fields}


def test_counts_latencies_and_throughput_per_pipeline():
    records = [run(f"t{i}", "succeeded", minutes_ago=30 - i, wait=float(i + 1), duration=float(10 * (i + 1)))
               for i in range(20)]
    records += [run("t-run", "running"), run("w1", "failed", pipeline="wordcount",
                                             failureCode="FailureExitCode", failureMessage="exited 1")]
    out = run_metrics.summarize(records, NOW, since=NOW - timedelta(hours=1))
    transform = out["pipelines"]["transform"]
    assert transform["runs"] == 21
    assert transform["states"]["succeeded"] == 20 and transform["states"]["running"] == 1
    assert transform["queueWait"] == {"count": 20, "p50": 10.0, "p95": 19.0, "max": 20.0}  # nearest rank
    assert transform["taskDuration"]["p95"] == 190.0 and transform["taskDuration"]["max"] == 200.0
    assert transform["submitWait"]["max"] == 0.2
    assert transform["submitLatency"] == {"count": 21, "p50": 0.15, "p95": 0.15, "max": 0.15}
    assert transform["throughput"] == {"ended": 20, "perMinute": round(20 / 60, 3)}
    assert out["total"]["runs"] == 22 and out["total"]["states"]["failed"] == 1
    assert out["windowMinutes"] == 60.0 and out["since"] == "2026-12-04T11:00:00Z"


def test_the_window_keeps_recent_and_unfinished_runs_only():
    records = [run("old-done", "succeeded", minutes_ago=300), run("old-stuck", "submitted", minutes_ago=300),
               run("new", "succeeded", minutes_ago=5)]
    out = run_metrics.summarize(records, NOW, since=NOW - timedelta(hours=1))
    assert out["total"]["runs"] == 2  # the finished run of five hours ago is out; the one still waiting is in
    assert out["total"]["states"]["submitted"] == 1 and out["total"]["throughput"]["ended"] == 1
    everything = run_metrics.summarize(records, NOW)
    assert everything["total"]["runs"] == 3
    assert everything["since"] == at(300)[:19] + "Z"  # without --since the window starts at the oldest run


def test_bookkeeping_written_later_does_not_bring_an_old_run_into_the_window():
    # Ended five hours ago; its message was repaired, and a retry superseded it, within the last hour.
    late = run("old-done", "failed", minutes_ago=300, notifiedAt=at(2), notifyClaimedAt=at(3),
               supersededAt=at(1), supersededBy="old-done-a2")
    out = run_metrics.summarize([late], NOW, since=NOW - timedelta(hours=1))
    assert out["total"]["runs"] == 0


def test_one_pipeline_only():
    records = [run("a", "succeeded"), run("b", "succeeded", pipeline="wordcount")]
    out = run_metrics.summarize(records, NOW, pipeline="wordcount")
    assert list(out["pipelines"]) == ["wordcount"] and out["total"]["runs"] == 1


def test_failure_reasons_are_grouped_by_code_most_frequent_first():
    records = [run(f"f{i}", "failed", minutes_ago=20 - i, failureCode="FailureExitCode",
                   failureMessage=f"attempt {i}") for i in range(3)]
    records += [run("g", "failed", failureCode="TaskGone", exitCode=None, reason="the task was deleted"),
                run("rej", "rejected", rejectionCode="too-large", reason="input is 3 GiB, limit 1 GiB",
                    rejectedAt=at(1)),
                run("ok", "succeeded")]
    reasons = run_metrics.summarize(records, NOW)["total"]["failureReasons"]
    assert reasons[0] == {"state": "failed", "code": "FailureExitCode (exit 1)", "count": 3,
                          "example": "attempt 2"}  # the newest example
    assert {(r["state"], r["code"], r["count"]) for r in reasons[1:]} == {("failed", "TaskGone", 1),
                                                                         ("rejected", "too-large", 1)}
    assert len(run_metrics.summarize(records, NOW, top=1)["total"]["failureReasons"]) == 1


def test_rejections_do_not_count_as_throughput_and_have_no_latencies():
    records = [run("rej", "rejected", rejectedAt=at(1), rejectionCode="unknown-pipeline")]
    out = run_metrics.summarize(records, NOW, since=NOW - timedelta(minutes=30))
    total = out["total"]
    assert total["states"]["rejected"] == 1 and total["throughput"]["ended"] == 0
    assert total["queueWait"] == {"count": 0, "p50": None, "p95": None, "max": None}


def test_retried_runs_are_counted_as_such():
    records = [run("a", "failed", supersededBy="a-2"), run("a-2", "succeeded", attempt=2, retryOf="a")]
    assert run_metrics.summarize(records, NOW)["total"]["superseded"] == 1


def test_a_state_added_later_is_counted():
    total = run_metrics.summarize([run("c", "cancelled", cancelledAt=at(1))], NOW)["total"]
    assert total["states"]["cancelled"] == 1 and total["runs"] == 1


def test_clock_skew_gives_no_negative_wait():
    record = run("x", "succeeded", startedAt=at(20), receivedAt=at(10))
    assert run_metrics.timings(record).queue_wait is None


@pytest.mark.parametrize(("text", "expected"), [
    ("1h", NOW - timedelta(hours=1)), ("30m", NOW - timedelta(minutes=30)), ("2d", NOW - timedelta(days=2)),
    ("90s", NOW - timedelta(seconds=90)), ("2026-12-04T09:00:00Z", datetime(2026, 12, 4, 9, tzinfo=UTC)),
    ("2026-12-04T09:00:00", datetime(2026, 12, 4, 9, tzinfo=UTC)),
])
def test_since_takes_spans_and_times(text, expected):
    assert metrics.parse_since(text, NOW) == expected


def test_since_says_what_it_takes():
    with pytest.raises(argparse.ArgumentTypeError, match="1h, 30m, 2d"):
        metrics.parse_since("yesterday", NOW)


def test_the_text_report_shows_a_row_per_pipeline_and_the_latencies():
    records = [run("a", "succeeded", wait=3.0, duration=75.0),
               run("b", "failed", pipeline="wordcount", failureCode="FailureExitCode", failureMessage="bad\x1b[2J")]
    text = metrics.render(run_metrics.summarize(records, NOW, since=NOW - timedelta(hours=1)))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("PIPELINE"))
    assert header.split() == ["PIPELINE", "RUNS", "SUCCEEDED", "FAILED", "ENDED/MIN"]
    assert next(line for line in lines if line.startswith("transform")).split() == ["transform", "1", "1", "0",
                                                                                   "0.02"]
    assert any(line.startswith("(all)") for line in lines)
    wait = next(line for line in lines if "queue wait" in line)
    assert "p50    3.0s" in wait and "(1 run)" in wait
    assert any("task duration" in line and "1m15s" in line for line in lines)
    assert any("submit latency" in line and "150ms" in line for line in lines)
    reason = next(line for line in lines if "FailureExitCode" in line)
    assert "\x1b" not in reason and "\\x1b[2J" in reason  # an untrusted message cannot drive the terminal


def test_an_empty_window_says_how_to_widen_it():
    assert "--since 1d" in metrics.render(run_metrics.summarize([], NOW, since=NOW - timedelta(hours=1)))
