"""Killing the Functions host mid-run and starting it again loses nothing and duplicates nothing (issue 5,
acceptance 3), at the level a user sees: runs, manifests and completion messages.

Inputs are uploaded, the host is SIGKILLed while their runs are in flight (during the intake: some received,
others not yet seen; or while their tasks are on Batch), more inputs arrive while it is down, then it is started again. Every input must end with exactly one run
record (the id the app derives from its name and ETag), succeeded, one manifest, and exactly one completion message.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time

import pytest

from devstack.tools.submit import upload_inputs
from shared import ids
from tests.helpers import gone, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TERMINAL = ("succeeded", "failed", "rejected")


def _records(access, prefix: str) -> list[dict]:
    return access.runs.query("PartitionKey eq 'transform' and inputName ge @a and inputName lt @b",
                             {"a": prefix, "b": prefix + "\uffff"})




def _completion_counts(access, run_ids: set[str]) -> dict[str, int]:
    """How many completion/failure messages name each of `run_ids`; ours are deleted once counted, the others
    become visible again after a short while."""
    counts = dict.fromkeys(run_ids, 0)
    for queue_name in (access.settings.queues.completions, access.settings.queues.failures):
        queue = access.storage.queue.get_queue_client(queue_name)
        while True:
            page = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=20))
            if not page:
                break
            for m in page:
                run_id = json.loads(m.content).get("runId")
                if run_id in counts:
                    counts[run_id] += 1
                    queue.delete_message(m)
    return counts


def _killable(phase: str, states: list[str]) -> bool:
    if not states or any(s in TERMINAL for s in states):
        return False
    if phase == "intake":  # the blob trigger has handled some inputs, not necessarily all
        return True
    return any(s in ("submitted", "running") for s in states)  # tasks are on Batch, none recorded yet


@pytest.mark.parametrize("phase", ["intake", "batch"])
def test_killed_host_loses_nothing_and_duplicates_nothing(app_stack, tmp_path, phase):
    access = app_stack.access
    transform = access.config.pipeline("transform")
    tag = f"e2e-kill-{secrets.token_hex(3)}"
    prefix = f"{transform.blob_input.prefix}{tag}/"
    files = []
    for i in range(10):
        path = tmp_path / f"part {i:02d}.txt"
        path.write_text(f"line one of file {i}\nline two\n")
        files.append(path)

    before = upload_inputs(access, transform, files[:6], tag)

    wait_for(lambda: _killable(phase, [r["state"] for r in _records(access, prefix)]), 60, f"runs in the {phase} phase",
          interval=0.05)
    pid = app_stack.host_pid()
    assert pid, "the host is not running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), 20, f"the killed host (pid {pid}) to be reaped")
    states_at_kill = sorted(r["state"] for r in _records(access, prefix))
    print(f"states when the host was killed: {states_at_kill}")

    during = upload_inputs(access, transform, files[6:], tag)  # arrive while no host runs
    time.sleep(1.0)
    assert app_stack.start_host() == "started"

    expected = {u.run_id for u in before + during}
    assert len(expected) == len(files)

    def all_done():
        records = _records(access, prefix)
        return records if len(records) >= len(files) and all(r["state"] in TERMINAL for r in records) else None

    records = wait_for(all_done, 120, f"all {len(files)} runs to finish (states at kill: {states_at_kill})", 0.5)
    assert {r["RowKey"] for r in records} == expected, "one run per input, with the id the app derives"
    assert all(r["state"] == "succeeded" for r in records), [(r["RowKey"], r["state"], r.get("reason"))
                                                              for r in records]
    for r in records:
        assert r["RowKey"] == ids.blob_task_id("transform", r["inputContainer"], r["inputName"], r["inputEtag"])
        manifest = json.loads(access.storage.blob.get_blob_client(r["outputContainer"], r["manifestBlob"])
                              .download_blob().readall())
        assert manifest["runId"] == r["RowKey"] and manifest["state"] == "succeeded"
    # Give a late duplicate (a redelivered submit message, a re-fired blob) a moment to show up before counting.
    time.sleep(3)
    assert _completion_counts(access, expected) == dict.fromkeys(expected, 1)
    assert len(_records(access, prefix)) == len(files)


def test_new_content_runs_again_but_a_restart_does_not_rerun_handled_blobs(app_stack, tmp_path):
    from devstack.stack.processes import stop

    access = app_stack.access
    transform = access.config.pipeline("transform")
    tag = f"e2e-again-{secrets.token_hex(3)}"
    prefix = f"{transform.blob_input.prefix}{tag}/"
    doc = tmp_path / "report.txt"
    doc.write_text("first version\n")
    (first,) = upload_inputs(access, transform, [doc], tag)
    wait_for(lambda: [r for r in _records(access, prefix) if r["state"] in TERMINAL], 60, "the first run")

    stop(app_stack.host_service)  # a graceful restart: the host rescans the container from scratch
    assert app_stack.start_host() == "started"
    time.sleep(3)  # several scans and drain/reconciler ticks
    assert [r["RowKey"] for r in _records(access, prefix)] == [first.run_id]

    doc.write_text("second version, longer\n")
    (second,) = upload_inputs(access, transform, [doc], tag)
    assert second.run_id != first.run_id  # same name, new ETag: a new run

    def both_done():
        records = {r["RowKey"]: r for r in _records(access, prefix)}
        return records if len(records) == 2 and all(r["state"] in TERMINAL for r in records.values()) else None

    records = wait_for(both_done, 60, "the run of the new content")
    assert set(records) == {first.run_id, second.run_id}
    assert records[second.run_id]["state"] == "succeeded"
    r = records[second.run_id]
    result = access.storage.blob.get_blob_client(r["outputContainer"], f"{r['outputPrefix']}/result.txt") \
        .download_blob().readall()
    assert result == b"SECOND VERSION, LONGER\n"
