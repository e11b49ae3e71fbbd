"""`eventbatch metrics` after real runs on the local stack: a success, a failure and a rejection, with plausible
waits, latencies and durations, and no collector anywhere."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.common import paths
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def eventbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def send_request(app_stack, body: dict) -> None:
    queue = app_stack.access.storage.queue.get_queue_client(app_stack.access.settings.queues.requests)
    queue.send_message(json.dumps(body))


def transform_runs_under_way(app_stack) -> list[str]:
    from shared.records import TERMINAL, is_hidden

    clause = " and ".join(f"state ne @s{i}" for i in range(len(TERMINAL)))
    rows = app_stack.access.runs.query(f"PartitionKey eq 'transform' and {clause}",
                                       {f"s{i}": s for i, s in enumerate(TERMINAL)})
    return [r["RowKey"] for r in rows if not is_hidden(r["RowKey"])]


def test_metrics_report_the_runs_of_the_window(app_stack, tmp_path):
    # The window holds every run still under way: start it once earlier tests' transform runs have ended.
    wait_for(lambda: not transform_runs_under_way(app_stack), 120, "earlier transform runs to end", interval=1)
    # --since takes whole seconds: start at the next one, so that the runs which just ended stay out of it.
    start = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.05)
    since = start.isoformat(timespec="seconds").replace("+00:00", "Z")
    tag = f"e2e-metrics-{secrets.token_hex(3)}"
    files = []
    for i in range(2):
        f = tmp_path / f"m{i}.txt"
        f.write_text(f"metrics sample {i}\n")
        files.append(str(f))
    out = eventbatch("submit", "transform", *files, "--prefix", tag)
    assert out.returncode == 0, out.stderr
    # A run of one of those files whose task exits 2 (an override the worker refuses), and a request naming a
    # blob that does not exist.
    send_request(app_stack, {"pipeline": "transform", "inputs": [f"input/transform/{tag}/m0.txt"],
                             "overrides": {"environment": {"TRANSFORM_MODE": "sideways"}}})
    send_request(app_stack, {"pipeline": "transform", "inputs": [f"input/transform/{tag}/missing.txt"]})

    wanted = {"succeeded": 2, "failed": 1, "rejected": 1}
    deadline = time.monotonic() + 240
    while True:
        out = eventbatch("metrics", "--json", "--pipeline", "transform", "--since", since)
        assert out.returncode == 0, out.stderr
        figures = json.loads(out.stdout)
        transform = figures["pipelines"].get("transform") or {"states": {}}
        states = {s: transform["states"].get(s, 0) for s in wanted}
        if states == wanted and transform["runs"] == 4:
            break
        assert time.monotonic() < deadline, f"runs not finished: {transform}"
        time.sleep(2)

    assert list(figures["pipelines"]) == ["transform"]
    assert figures["since"] == since
    # Three runs reached Batch: their waits, submit latency and durations are real figures, and plausible.
    for key in ("queueWait", "submitWait", "submitLatency", "taskDuration"):
        spread = transform[key]
        assert spread["count"] == 3, (key, spread)
        assert 0 <= spread["p50"] <= spread["p95"] <= spread["max"] < 180, (key, spread)
    assert transform["queueWait"]["max"] > 0 and transform["taskDuration"]["max"] > 0
    # a run's submit wait (arrival -> its add recorded) holds the bulk add that submitted it
    assert transform["submitWait"]["max"] >= transform["submitLatency"]["max"] > 0
    assert transform["throughput"]["ended"] == 3 and transform["throughput"]["perMinute"] > 0
    reasons = {(r["state"], r["code"]): r for r in transform["failureReasons"]}
    assert set(reasons) == {("failed", "FailureExitCode (exit 2)"), ("rejected", "missing-blob")}, reasons
    assert "missing.txt" in reasons[("rejected", "missing-blob")]["example"]

    text = eventbatch("metrics", "--pipeline", "transform", "--since", since)
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.startswith("transform"))
    assert row.split()[:2] == ["transform", "4"]
    assert "queue wait" in text.stdout and "FailureExitCode (exit 2)" in text.stdout
