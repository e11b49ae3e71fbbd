"""How `eventbatch status` shows run records: columns a person reads, and untrusted names made harmless."""

from __future__ import annotations

from datetime import UTC, datetime

from devstack.tools import runs_view


def record(**fields) -> dict:
    base = {"PartitionKey": "transform", "RowKey": "transform-abc", "pipeline": "transform", "kind": "task",
            "receivedAt": "2026-11-28T10:00:00.000Z"}
    return {**base, **fields}


def test_succeeded_run_shows_duration_exit_code_and_where_the_outputs_are():
    row = runs_view.to_row(record(state="succeeded", inputContainer="input", inputName="transform/a.txt",
                                  durationSeconds=1.25, exitCode=0, outputContainer="output",
                                  outputPrefix="transform/transform/a.txt", outputCount=2,
                                  manifestBlob="transform/transform/a.txt/manifest.json",
                                  succeededAt="2026-11-28T10:00:03.000Z"))
    text = runs_view.table([row])
    header, line = text.splitlines()
    assert header.split()[:6] == ["RUN", "PIPELINE", "INPUT", "STATE", "DURATION", "EXIT"]
    assert line.split()[:6] == ["transform-abc", "transform", "input/transform/a.txt", "succeeded", "1.2s", "0"]
    assert line.endswith("output/transform/transform/a.txt/ (2 files)")
    assert row.manifest == "output/transform/transform/a.txt/manifest.json"


def test_failed_and_rejected_runs_show_why():
    failed = runs_view.to_row(record(state="failed", exitCode=3, failureCode="FailureExitCode",
                                     failureMessage="The task exited with an exit code representing a failure"))
    rejected = runs_view.to_row(record(RowKey="rej-x", state="rejected", kind=None,
                                       reason="no pipeline takes blob input/x"))
    lines = runs_view.table([failed, rejected]).splitlines()
    assert "FailureExitCode: The task exited" in lines[1] and " 3 " in lines[1]
    assert lines[2].endswith("no pipeline takes blob input/x")
    assert rejected.kind == "rejection"


def test_open_runs_show_their_age_and_merge_tasks_their_request():
    row = runs_view.to_row(record(state="running", kind="merge", requestId="kreq", inputName=None))
    now = datetime(2026, 11, 28, 10, 0, 42, tzinfo=UTC)
    line = runs_view.table([row], now=now).splitlines()[1]
    assert "(merge of request kreq)" in line and "(42s)" in line


def test_control_characters_in_names_cannot_reach_the_terminal_raw():
    evil = "transform/\x1b[2Jcleared\nfake line\r.txt"
    row = runs_view.to_row(record(state="received", inputContainer="input", inputName=evil))
    text = runs_view.table([row], wide=True)
    assert "\x1b" not in text and "\r" not in text and len(text.splitlines()) == 2
    assert "\\x1b[2Jcleared\\nfake line\\r.txt" in text


def test_long_names_are_cut_unless_wide():
    row = runs_view.to_row(record(state="received", inputContainer="input", inputName="transform/" + "n" * 200))
    assert "\u2026" in runs_view.table([row]) and "n" * 200 in runs_view.table([row], wide=True)


def test_rows_sort_newest_first_and_counts_cover_every_state():
    old = runs_view.to_row(record(RowKey="a", state="succeeded"))
    new = runs_view.to_row(record(RowKey="b", state="failed", receivedAt="2026-11-28T11:00:00.000Z"))
    assert [r.run_id for r in runs_view.sort_rows([old, new])] == ["b", "a"]
    assert runs_view.counts([old, new]) == {"received": 0, "submitted": 0, "running": 0, "succeeded": 1,
                                            "failed": 1, "rejected": 0, "cancelled": 0}
