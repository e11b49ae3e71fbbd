"""The day-2 loop on the running app, as an operator types it: watch a request, cancel it while its containers
run, read the request-completion message, retry what did not succeed, wait for it, read the new message."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.e2e.test_control import eventbatch, record, running_containers, submit_sleep_request
from tests.e2e.test_requests import _request_messages
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def request_message(app_stack, request_id: str, generation: int) -> dict:
    """The request's completion message of one generation (the queue is read until it is there)."""
    found: dict[int, dict] = {}

    def arrived():
        for m in _request_messages(app_stack.access, request_id):
            found.setdefault(m["generation"], m)
        return found.get(generation)

    message = wait_for(arrived, 90, f"request {request_id}'s completion message (generation {generation})",
                       interval=1)
    assert sorted(found) == [generation], found  # one message per generation, never a repeat
    return message


def test_cancel_a_running_request_retry_it_and_wait_for_it(app_stack, tmp_path):
    tag = f"e2e-ops-{secrets.token_hex(3)}"
    request_id, run_ids = submit_sleep_request(tmp_path, tag, count=2)
    wait_for(lambda: running_containers(app_stack, run_ids) == set(run_ids), 90, "both containers to run",
             interval=0.5)

    # Still running: wait gives up at its timeout with exit code 2 and says where the request stands.
    early = eventbatch("wait", "--request", request_id, "--timeout", "2", "--json")
    assert early.returncode == 2, early.stderr + early.stdout
    assert json.loads(early.stdout)["timedOut"] is True

    out = eventbatch("cancel", "--request", request_id, "--by", "e2e-ops", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["counts"] == {"cancelled": 2}
    ended = eventbatch("wait", "--request", request_id, "--timeout", "60", "--json")
    assert ended.returncode == 1, ended.stderr + ended.stdout  # ended, not all succeeded
    assert {r["state"] for r in json.loads(ended.stdout)["runs"]} == {"cancelled"}

    first = request_message(app_stack, request_id, 1)
    assert first["state"] == "failed" and first["pipeline"] == "sleep"  # nothing succeeded
    assert first["counts"]["cancelled"] == 2 and not first["counts"].get("succeeded")
    assert first["messageId"].endswith(":1")

    out = eventbatch("retry", "--request", request_id, "--failed", "--by", "e2e-ops", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    new_ids = [r["new_run_id"] for r in json.loads(out.stdout)["runs"]]
    assert len(new_ids) == 2 and all(new_ids)
    done = eventbatch("wait", "--request", request_id, "--timeout", "180", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    rows = json.loads(done.stdout)["runs"]
    assert sorted(r["run_id"] for r in rows) == sorted(new_ids)  # the cancelled attempts no longer count
    assert {r["state"] for r in rows} == {"succeeded"} and {r["attempt"] for r in rows} == {2}

    second = request_message(app_stack, request_id, 2)
    assert second["state"] == "succeeded" and second["counts"]["succeeded"] == 2
    assert not second["counts"].get("cancelled")  # superseded attempts are not counted
    assert second["messageId"].endswith(":2")
    prefixes = {record(app_stack, "sleep", n)["outputPrefix"] for n in new_ids}
    assert all(p.endswith("/attempt-2") for p in prefixes)
    assert set(second["outputs"]["prefixes"]) == prefixes  # where the results are: the new attempts' folders
