"""Cancel and retry, the pure parts: control messages, selections, which runs may be retried, the new attempt's
task (its id, output folder and dependencies), the cancelled state and the principal recorded."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from devstack.tools.control import principal_of
from shared.control import cancel_message
from shared.control_messages import parse_control
from shared.errors import ConfigError, Rejection
from shared.records import ORDER, STATES, TERMINAL, is_current
from shared.retry_attempts import attempt_id, eligible, merge_attempt, merge_attempt_id
from shared.run_actions import ControlError, ControlReport, RunAction, Selection
from shared.settings import load_settings
from shared.task_spec import build_task, retarget
from shared.work_items import BlobInfo, WorkItem

BATCH = {"BATCH_ACCOUNT_URL": "http://127.0.0.1:8095", "BATCH_ACCOUNT_NAME": "acct", "BATCH_ACCOUNT_KEY": "a2V5"}


class Runs:
    """Records by id (get only): what eligible() reads about the attempt that superseded a run."""

    def __init__(self, *records):
        self.records = {r["RowKey"]: r for r in records}

    def get(self, pipeline, run_id):
        return self.records.get(run_id)


def _run(run_id="r1", state="failed", **fields):
    return {"PartitionKey": "transform", "RowKey": run_id, "state": state, **fields}


# ---- the cancelled state -----------------------------------------------------------------------------------
def test_cancelled_is_a_terminal_state_ranked_with_the_other_ends():
    assert "cancelled" in STATES and "cancelled" in TERMINAL
    assert ORDER["cancelled"] == ORDER["succeeded"] == 4 > ORDER["running"]
    assert is_current(_run()) and not is_current(_run(supersededBy="r2"))


def test_control_queue_setting_defaults_validates_and_must_differ():
    assert load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", **BATCH}).queues.control == "control"
    with pytest.raises(ConfigError, match="CONTROL_QUEUE"):
        load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", "CONTROL_QUEUE": "Bad_Name", **BATCH})
    with pytest.raises(ConfigError, match="different names"):
        load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", "CONTROL_QUEUE": "requests", **BATCH})


# ---- control messages --------------------------------------------------------------------------------------
def test_a_cancel_message_names_the_runs_who_and_why():
    cmd = parse_control(json.dumps({"action": "cancel", "runs": ["a", "b"], "by": "ops@example.com",
                                    "reason": "wrong input"}))
    assert (cmd.action, cmd.selection.runs, cmd.by, cmd.reason) == ("cancel", ("a", "b"), "ops@example.com",
                                                                    "wrong input")
    retry = parse_control(b'{"action": "retry", "request": "k123", "force": true}')
    assert retry.selection.request == "k123" and retry.force and retry.by == "control queue"


@pytest.mark.parametrize(("body", "words"), [
    ("not json", "not valid JSON"),
    ('["cancel"]', "not an object"),
    ('{"action": "delete", "runs": ["a"]}', 'action must be "cancel" or "retry"'),
    ('{"action": "cancel", "runs": "a"}', "runs must be a list"),
    ('{"action": "cancel", "runs": ["a"], "everything": true}', "unknown field(s) 'everything'"),
    ('{"action": "cancel", "runs": ["a"], "force": true}', "force belongs to retry"),
    ('{"action": "retry", "runs": ["a"], "force": "yes"}', "force must be true or false"),
    ('{"action": "cancel", "runs": ["a"], "by": ""}', "by must be a non-empty string"),
])
def test_a_bad_control_message_is_refused_naming_what_is_wrong(body, words):
    with pytest.raises(Rejection) as info:
        parse_control(body)
    assert words in info.value.reason


def test_a_selection_takes_exactly_one_selector(config):
    ctx = SimpleNamespace(config=config)
    states = ("received", "submitted", "running")
    Selection(runs=("a",)).check(ctx, states)
    Selection(pipeline="transform", state="running").check(ctx, states)
    for bad, words in [(Selection(), "exactly one"), (Selection(runs=("a",), request="r"), "exactly one"),
                       (Selection(state="running"), "needs --pipeline"),
                       (Selection(pipeline="nope", state="running"), "unknown pipeline 'nope'"),
                       (Selection(pipeline="transform", state="succeeded"), "cannot be selected")]:
        with pytest.raises(ControlError, match=words):
            bad.check(ctx, states)


# ---- which runs may be retried -----------------------------------------------------------------------------
@pytest.mark.parametrize(("record", "force", "outcome", "words"), [
    (_run(state="rejected", reason="bad name"), False, "refused", "rejected and never ran (bad name)"),
    (_run(state="running"), False, "refused", "still running"),
    (_run(state="succeeded"), False, "refused", "add --force"),
    (_run(state="failed", kind="barrier"), False, "refused", "barrier"),
    (_run(supersededBy="r2"), False, "unchanged", "already retried as r2 (attempt 2, succeeded)"),
])
def test_runs_that_are_not_retried_say_why(record, force, outcome, words):
    ctx = SimpleNamespace(runs=Runs(_run("r2", "succeeded", attempt=2, retryOf="r1")))
    old, result = eligible(ctx, record, force)
    assert old is None and result.outcome == outcome and words in result.detail


def test_failed_cancelled_and_forced_succeeded_runs_are_retried():
    ctx = SimpleNamespace(runs=Runs())
    for record, force in [(_run(state="failed"), False), (_run(state="cancelled"), False),
                          (_run(state="succeeded"), True)]:
        assert eligible(ctx, record, force) == (record, None)


def test_an_attempt_batch_did_not_take_yet_stands_for_its_old_run():
    old = _run("r1", "cancelled", supersededBy="r2")
    pending = _run("r2", "received", attempt=2, retryOf="r1")
    ctx = SimpleNamespace(runs=Runs(old, pending))
    assert eligible(ctx, old, False) == (old, None)  # asked again by the old id: the same attempt is submitted
    assert eligible(ctx, pending, False) == (old, None)  # or by the new one


# ---- the new attempt's task --------------------------------------------------------------------------------
def _item():
    return WorkItem(pipeline="transform", blob=BlobInfo("input", "transform/a.txt", "0x1", 5), source="blob")


def test_an_attempt_has_its_own_id_and_output_folder_and_the_same_input(config, access):
    pipeline = config.pipeline("transform")
    first = build_task(_item(), pipeline, access)
    new_id = attempt_id("transform", first.task_id)
    again = retarget(first, pipeline, access, new_id, first.output_prefix + "/attempt-2", "attempt 2")
    assert new_id != first.task_id and new_id == attempt_id("transform", first.task_id)  # asked twice: one attempt
    assert len(new_id) <= 64 and again.task_id == new_id == again.body["id"]
    env = {e["name"]: e["value"] for e in again.body["environmentSettings"]}
    assert env["EVENTBATCH_RUN_ID"] == new_id and env["INPUT_NAME"] == "transform/a.txt"
    assert again.body["resourceFiles"] == first.body["resourceFiles"]
    paths = [f["destination"]["container"]["path"] for f in again.body["outputFiles"]]
    assert paths and all(p.startswith(first.output_prefix + "/attempt-2") for p in paths)
    assert again.output_prefix == first.output_prefix + "/attempt-2"
    assert again.body["displayName"].endswith("attempt 2")


def test_a_new_merge_attempt_waits_for_the_new_inputs_and_reads_only_current_outputs(config, access):
    pipeline = config.pipeline("wordcount")
    old_merge = {"RowKey": "wordcount-mold", "outputPrefix": "wordcount/req/_merged", "attempt": 1}
    new_id = merge_attempt_id("wordcount", "req", 2)
    sources = ["wordcount/req/a.txt/attempt-2", "wordcount/req/b.txt", "wordcount/req/b.txt"]
    attempt = merge_attempt(SimpleNamespace(task_access=access), pipeline, "req", old_merge, 2, new_id,
                            ["wordcount-new1"], sources, "alice")
    body = attempt.spec.body
    assert body["id"] == new_id and body["dependsOn"] == {"taskIds": ["wordcount-new1"]}
    # One folder per current input: the replaced attempt's outputs (wordcount/req/a.txt/count.txt) are not read.
    assert [r["blobPrefix"] for r in body["resourceFiles"]] == ["wordcount/req/a.txt/attempt-2/",
                                                                 "wordcount/req/b.txt/"]
    assert all(r["filePath"] == "in" and r["storageContainerUrl"] for r in body["resourceFiles"])
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env["EVENTBATCH_INPUT_COUNT"] == "2"
    assert attempt.fields["outputPrefix"] == "wordcount/req/_merged/attempt-2"
    assert attempt.fields["retryOf"] == "wordcount-mold" and attempt.fields["retriedBy"] == "alice"
    alone = merge_attempt(SimpleNamespace(task_access=access), pipeline, "req", old_merge, 2, new_id, [], sources,
                          "alice")
    assert "dependsOn" not in alone.spec.body  # a merge retried on its own runs over what is there


# ---- reports, messages, who -----------------------------------------------------------------------------------
def test_a_cancelled_runs_message_is_a_failure_message_with_who_and_when():
    record = _run("r1", "cancelled", jobId="eb-transform-20260101", requestId=None, inputContainer="input",
                  inputName="transform/a.txt", cancelledBy="alice", cancelledAt="2026-01-01T00:00:00.000Z",
                  reason="cancelled by alice", cancelledFrom="running")
    message = cancel_message(record)
    assert message["state"] == "cancelled" and message["result"] == "failure"
    assert message["failure"] == {"code": "Cancelled", "message": "cancelled by alice"}
    assert (message["cancelledBy"], message["cancelledAt"], message["cancelledFrom"]) == (
        "alice", "2026-01-01T00:00:00.000Z", "running")
    assert message["input"]["name"] == "transform/a.txt"


def test_a_report_counts_outcomes_and_lists_pending_attempts():
    report = ControlReport("retry", "alice")
    report.add(RunAction("a", "p", "retried", "ok", "a2"))
    report.add(RunAction("b", "p", "pending", "later", "b2"))
    report.add(RunAction("c", "p", "retried", "ok", "c2"))
    assert report.counts() == {"retried": 2, "pending": 1}
    assert [r.run_id for r in report.pending] == ["b"]
    assert report.as_json()["runs"][1] == {"run_id": "b", "pipeline": "p", "outcome": "pending", "detail": "later",
                                           "new_run_id": "b2"}


def _token(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{part}.sig"


def test_the_signed_in_principal_is_read_from_the_token():
    assert principal_of(_token({"upn": "alice@contoso.com", "oid": "123"})) == "alice@contoso.com"
    assert principal_of(_token({"oid": "0000-1111"})) == "0000-1111"  # a managed identity has only its object id
    assert principal_of("not-a-token") is None


def test_an_input_is_not_retried_while_other_inputs_of_its_request_still_run(config, access):
    from shared.retry_attempts import plan_retries

    failed = {"PartitionKey": "wordcount", "RowKey": "wordcount-a", "state": "failed", "kind": "task",
              "requestId": "req", "mergeTaskId": "wordcount-m", "inputContainer": "uploads", "inputName": "a.txt",
              "inputEtag": "0x1", "outputPrefix": "wordcount/req/a.txt"}
    running = {**failed, "RowKey": "wordcount-b", "state": "running", "inputName": "b.txt"}
    merge = {"PartitionKey": "wordcount", "RowKey": "wordcount-m", "state": "cancelled", "kind": "merge",
             "requestId": "req"}
    runs = SimpleNamespace(by_request=lambda p, r: {x["RowKey"]: x for x in (failed, running, merge)},
                           get=lambda p, r: None)
    storage = SimpleNamespace(lookup_blob=lambda c, n: BlobInfo(c, n, "0x1", 2))
    ctx = SimpleNamespace(config=config, runs=runs, storage=storage, task_access=access)
    (result,) = plan_retries(ctx, [failed], "alice", force=False)
    assert result.run_id == "wordcount-a" and result.outcome == "refused"
    assert "other input(s) of its request are still running (wordcount-b" in result.detail
