"""Requests as a unit: a request summed up from its run records, its completion message, and what a merge is told
about failed inputs (the fan-out tasks' extra output file and dependency action; merge.requireAll)."""

from __future__ import annotations

import json

import pytest
import yaml

from shared.errors import ConfigError
from shared.manifest import MESSAGE_BUDGET_BYTES, message_bytes
from shared.pipelines import parse_config
from shared.request_summary import request_message, summarize
from shared.task_spec import build_task, fanout_prefix, plan_merge
from shared.work_items import BlobInfo, WorkItem
from tests.unit.shared.conftest import LOCAL, REPO


def run(run_id: str, state: str, kind: str = "task", **fields) -> dict:
    return {"PartitionKey": "wordcount", "RowKey": run_id, "state": state, "kind": kind, "requestId": "kreq",
            "inputContainer": "input", "inputName": f"wc/{run_id}.txt" if kind == "task" else None,
            "outputContainer": "output", "outputPrefix": f"wordcount/kreq/wc/{run_id}.txt" if kind == "task" else
            "wordcount/kreq/_merged", **fields}


def request(*runs: dict, require_all: bool = False):
    return summarize("wordcount", "kreq", runs, require_all)


def test_a_request_is_open_until_every_run_and_its_merge_ended():
    s = request(run("a", "succeeded"), run("b", "running"), run("m", "submitted", "merge"))
    assert (s.state, s.ended) == ("open", False)
    assert s.counts["total"] == 2 and s.counts["succeeded"] == 1 and s.counts["running"] == 1
    s = request(run("a", "succeeded"), run("b", "succeeded"), run("m", "submitted", "merge"))
    assert (s.state, s.ended) == ("open", False)  # the merge is part of the request
    assert request(run("a", "succeeded"), run("b", "succeeded"), run("m", "succeeded", "merge")).state == "succeeded"


@pytest.mark.parametrize(("states", "merge", "require_all", "expected"), [
    (["succeeded", "failed"], "succeeded", False, "partial"),
    (["succeeded", "rejected"], None, False, "partial"),
    (["succeeded", "failed"], "failed", True, "failed"),  # requireAll: one failed input fails the request
    (["failed", "failed"], "succeeded", False, "failed"),  # nothing succeeded
    (["succeeded", "succeeded"], "failed", False, "failed"),  # the merge is the request's result
    (["succeeded", "succeeded"], None, False, "succeeded"),
])
def test_the_state_of_an_ended_request(states, merge, require_all, expected):
    runs = [run(f"r{i}", st) for i, st in enumerate(states)] + ([run("m", merge, "merge")] if merge else [])
    s = request(*runs, require_all=require_all)
    assert s.ended and s.state == expected
    assert s.counts["failed"] + s.counts["rejected"] == states.count("failed") + states.count("rejected")


def test_attempts_replaced_by_a_retry_and_bookkeeping_rows_do_not_count():
    old = run("a", "failed", supersededBy="a2")
    s = request(old, run("a2", "succeeded", attempt=2, retryOf="a"), run("b", "succeeded"),
                {"PartitionKey": "wordcount", "RowKey": "~req-kreq", "state": "partial", "requestId": "kreq"})
    assert s.state == "succeeded" and s.counts["total"] == 2 and s.counts["failed"] == 0
    # The retry's set of runs is another completion than the first one (a new generation of the message).
    assert s.digest != request(run("a", "failed"), run("b", "succeeded")).digest


def test_the_completion_message_names_counts_outputs_the_merge_and_the_failed_inputs():
    s = request(run("a", "succeeded"), run("b", "failed", failureCode="FailureExitCode",
                                               failureMessage="The task exited with an exit code"),
                run("m", "succeeded", "merge", manifestBlob="wordcount/kreq/_merged/manifest.json"))
    message = request_message(s, 1, "2026-12-04T10:00:00.000Z")
    assert message["kind"] == "request" and message["state"] == "partial"
    assert message["counts"]["total"] == 2 and message["counts"]["succeeded"] == 1
    assert message["messageId"] == "request:wordcount:kreq:1"
    assert request_message(s, 2, "x")["messageId"] == "request:wordcount:kreq:2"
    out = message["outputs"]
    assert out["container"] == "output" and out["prefix"] == "wordcount/kreq/wc"
    assert out["prefixes"] == ["wordcount/kreq/wc/a.txt"]  # where the succeeded inputs' outputs are
    assert out["merge"]["manifest"] == "wordcount/kreq/_merged/manifest.json"
    assert out["merge"]["partial"] is True and out["merge"]["inputsFailed"] == 1
    assert message["failed"] == [{"runId": "b", "input": "input/wc/b.txt", "state": "failed",
                                  "code": "FailureExitCode", "reason": "The task exited with an exit code"}]


def test_a_huge_request_still_fits_in_one_message():
    runs = [run(f"r{i:04d}-" + "x" * 40, "failed" if i % 2 else "succeeded",
                failureMessage="boom " * 100, outputPrefix="wordcount/kreq/" + "d" * 900 + f"/{i}")
            for i in range(5000)]
    message = request_message(request(*runs), 1, "now")
    assert message["counts"]["failed"] == 2500 and message["failedTruncated"] and message["outputs"][
        "prefixesTruncated"]
    assert 0 < len(message["failed"]) <= 50 and message["failed"][0]["runId"] == runs[1]["RowKey"]
    assert message["outputs"]["prefixes"]
    assert message_bytes(message) < MESSAGE_BUDGET_BYTES


def _config(require_all):
    data = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    wordcount = next(p for p in data["pipelines"] if p["name"] == "wordcount")
    wordcount["merge"]["requireAll"] = require_all
    return parse_config(data, LOCAL)


def _fanout(pipeline, access, n=2):
    items = [WorkItem(pipeline=pipeline.name, blob=BlobInfo("input", f"wc/{i}.txt", f"0x{i}", 10),
                      source="queue", request_id="kreq") for i in range(n)]
    return [build_task(i, pipeline, access, merge_follows=True) for i in items]


@pytest.mark.parametrize(("require_all", "action"), [(False, "satisfy"), (True, "block")])
def test_fan_out_tasks_leave_their_failure_for_the_merge(access, require_all, action):
    p = _config(require_all).pipeline("wordcount")
    assert p.merge.require_all is require_all
    spec = _fanout(p, access)[0]
    failed = [f for f in spec.body["outputFiles"] if f["uploadOptions"]["uploadCondition"] == "taskfailure"]
    assert failed == [{"filePattern": "../stderr.txt", "uploadOptions": {"uploadCondition": "taskfailure"},
                       "destination": {"container": {
                           "containerUrl": access.endpoint + "/output?sig=write",
                           "path": f"{fanout_prefix(p, 'kreq')}/_failed/{spec.task_id}"}}}]
    # Under the folder the merge downloads, so it finds in/_failed/<run id>.
    merge = plan_merge(p, "kreq", [spec], access)[-1]
    assert failed[0]["destination"]["container"]["path"].startswith(merge.body["resourceFiles"][0]["blobPrefix"])
    assert spec.body["exitConditions"] == {"default": {"dependencyAction": action}}
    env = {e["name"]: e["value"] for e in merge.body["environmentSettings"]}
    assert env["EVENTBATCH_INPUT_COUNT"] == "1"
    # Batch keeps a downloaded blob's whole name under filePath: where the merge finds the failed inputs' files.
    assert env["EVENTBATCH_FAILED_DIR"] == f"in/{fanout_prefix(p, 'kreq')}/_failed"


def test_a_lone_task_has_no_failure_file(config, access):
    p = config.pipeline("transform")
    spec = build_task(WorkItem(pipeline="transform", blob=BlobInfo("input", "transform/a.txt", "0x1", 3),
                               source="blob"), p, access)
    assert all(f["uploadOptions"]["uploadCondition"] != "taskfailure" for f in spec.body["outputFiles"])
    assert "exitConditions" not in spec.body


def test_require_all_is_validated_and_the_sample_strict_pipeline_has_it(config):
    assert config.pipeline("wordcount-strict").merge.require_all is True
    assert config.pipeline("wordcount").merge.require_all is False
    with pytest.raises(ConfigError, match=r"merge\.requireAll.*not true or false"):
        _config("sometimes")


def test_the_request_message_is_json_a_consumer_can_read():
    s = request(run("a", "succeeded"))
    text = json.dumps(request_message(s, 1, "now"))
    back = json.loads(text)
    assert back["state"] == "succeeded" and back["outputs"]["prefix"] == "wordcount/kreq/wc"
    assert "merge" not in back["outputs"] and back["failed"] == []


def test_inputs_that_keep_the_merge_from_ever_running():
    from shared.request_summary import blocking_inputs

    ran = run("a", "failed", failureCode="FailureExitCode")
    never = run("b", "failed", failureCode="NotSubmitted")
    refused = run("c", "rejected", rejectionCode="batch-client-error")
    s = request(run("ok", "succeeded"), ran, never, refused, run("m", "submitted", "merge"))
    # Without requireAll a failure that ran satisfies the merge; inputs with no Batch task never complete for it.
    assert [r["RowKey"] for r in blocking_inputs(s, require_all=False)] == ["b", "c"]
    assert [r["RowKey"] for r in blocking_inputs(s, require_all=True)] == ["a", "b", "c"]
    assert [r["RowKey"] for r in s.pending_steps] == ["m"]
    assert blocking_inputs(request(ran, never), require_all=True) == []  # no merge: nothing to skip
