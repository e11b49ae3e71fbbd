"""`eventbatch submit | status | logs` as a user types them, against the running app (host included)."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time

import pytest

from devstack.common import paths

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def eventbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def wait_for_states(run_ids: set[str], timeout: float = 90) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        out = eventbatch("status", "--json", "--limit", "0")
        assert out.returncode == 0, out.stderr
        rows = {r["run_id"]: r for r in json.loads(out.stdout) if r["run_id"] in run_ids}
        if len(rows) == len(run_ids) and all(r["state"] in ("succeeded", "failed", "rejected") for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, f"runs not finished: {rows}"
        time.sleep(1)


def test_submit_files_then_status_and_logs(app_stack, tmp_path):
    tag = f"e2e-cli-{secrets.token_hex(3)}"
    doc = tmp_path / "notes (v2).txt"
    doc.write_text("three little words\nand four more here\n")
    out = eventbatch("submit", "transform", str(doc), "--prefix", tag)
    assert out.returncode == 0, out.stderr
    run_id = re.search(r"-> run (\S+)", out.stdout).group(1)
    assert f"input/transform/{tag}/notes (v2).txt" in out.stdout

    row = wait_for_states({run_id})[run_id]
    assert row["state"] == "succeeded" and row["exit_code"] == 0
    assert row["input"] == f"input/transform/{tag}/notes (v2).txt"
    assert row["output_count"] >= 2  # result.txt + summary.json

    table = eventbatch("status", "--pipeline", "transform", "--state", "succeeded", "--wide")
    line = next(li for li in table.stdout.splitlines() if li.startswith(run_id))
    assert "succeeded" in line and "notes (v2).txt" in line and row["output_prefix"] in line

    logs = eventbatch("logs", run_id[:-3])  # a unique prefix is enough
    assert logs.returncode == 0, logs.stderr
    assert "==> stdout" in logs.stdout and f"transform: {len(doc.read_bytes())} bytes, 2 lines" in logs.stdout
    only_err = eventbatch("logs", run_id, "--stderr")
    assert only_err.returncode == 0 and "transform:" not in only_err.stdout


def test_submit_request_fans_out_and_merges(app_stack, tmp_path):
    tag = f"e2e-req-{secrets.token_hex(3)}"
    files = []
    for i, words in enumerate((3, 5)):
        f = tmp_path / f"w{i}.txt"
        f.write_text(" ".join(["word"] * words) + "\n")
        files.append(str(f))
    out = eventbatch("submit", "wordcount", "--request", *files, "--prefix", tag)
    assert out.returncode == 0, out.stderr
    request_id = re.search(r"request id (\S+)", out.stdout).group(1)
    run_ids = set(re.findall(r"^  run (\S+)", out.stdout, re.M))
    assert len(run_ids) == 3  # two inputs + the merge

    rows = wait_for_states(run_ids)
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    assert sorted(r["kind"] for r in rows.values()) == ["merge", "task", "task"]
    assert all(r["request_id"] == request_id for r in rows.values())
    by_request = eventbatch("status", "--request", request_id)
    assert f"(merge of request {request_id})" in by_request.stdout
    merge = next(r for r in rows.values() if r["kind"] == "merge")
    logs = eventbatch("logs", merge["run_id"], "--stdout")
    assert "merge: 2 files, 8 words" in logs.stdout


def test_mistakes_get_a_message_and_a_non_zero_exit(app_stack, tmp_path):
    unknown = eventbatch("submit", "no-such-pipeline", str(tmp_path))
    assert unknown.returncode == 1 and "unknown pipeline 'no-such-pipeline'" in unknown.stderr
    blob_only = eventbatch("submit", "wordcount", str(tmp_path / "x.txt"))
    assert blob_only.returncode == 1 and "--request" in blob_only.stderr
    missing = eventbatch("logs", "transform-does-not-exist")
    assert missing.returncode == 1 and "eventbatch status" in missing.stderr
    missing_input = eventbatch("submit", "wordcount", "--request", "--inputs", "uploads/never-uploaded.txt")
    assert missing_input.returncode == 1 and "never-uploaded.txt" in missing_input.stderr
