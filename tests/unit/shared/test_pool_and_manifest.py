from shared.manifest import build_manifest, completion_message, task_outcome
from shared.pipelines import load_config
from shared.pool_spec import build_pool
from tests.unit.shared.conftest import LOCAL, REPO


def test_autoscale_pool_prefetches_images_with_registry_credentials(config):
    body = build_pool(config.pools["eventbatch-standard"])
    cc = body["virtualMachineConfiguration"]["containerConfiguration"]
    assert cc == {"type": "dockerCompatible", "containerImageNames": [LOCAL["WORKER_IMAGE"]],
                  "containerRegistries": [{"registryServer": "127.0.0.1:5055", "username": "eventbatch",
                                           "password": "eventbatch-local"}]}
    assert body["enableAutoScale"] and "$TargetDedicatedNodes" in body["autoScaleFormula"]
    assert body["startTask"]["waitForSuccess"] is True and body["taskSlotsPerNode"] == 4


def test_fixed_pool_and_identity_registry():
    cfg = load_config(REPO / "pipelines.yaml", {**LOCAL, "REGISTRY_USERNAME": "", "REGISTRY_PASSWORD": "",
                                                "POOL_IDENTITY_RESOURCE_ID": "/id/pool", "POOL_SCALE_MODE": "fixed"})
    body = build_pool(cfg.pools["eventbatch-standard"])
    assert body["targetDedicatedNodes"] == 2 and body["enableAutoScale"] is False
    reg = body["virtualMachineConfiguration"]["containerConfiguration"]["containerRegistries"][0]
    assert reg == {"registryServer": "127.0.0.1:5055", "identityReference": {"resourceId": "/id/pool"}}


def test_failed_task_manifest_and_message():
    task = {"id": "t1", "state": "completed", "executionInfo": {
        "startTime": "2026-11-28T10:00:00Z", "endTime": "2026-11-28T10:00:02.5Z", "exitCode": 3,
        "result": "failure", "retryCount": 1, "requeueCount": 0,
        "failureInfo": {"category": "usererror", "code": "FailureExitCode", "message": "exit code 3"}}}
    outcome = task_outcome(task)
    assert outcome["state"] == "failed" and outcome["durationSeconds"] == 2.5 and outcome["retryCount"] == 1
    record = {"RowKey": "t1", "pipeline": "transform", "inputContainer": "input", "inputName": "transform/a b",
              "inputEtag": "e", "inputSize": 3}
    m = build_manifest(record, "job", "t1", outcome, [], {}, "boom\n", "now")
    assert m["input"]["name"] == "transform/a b" and m["exitCode"] == 3 and m["stderrTail"] == "boom\n"
    msg = completion_message(m, "output", "x/manifest.json")
    assert msg["state"] == "failed" and msg["failure"]["code"] == "FailureExitCode"


def test_outputs_of_a_nested_run_are_not_claimed():
    from shared.manifest import split_outputs

    listing = [("t/a/result.txt", 3), ("t/a/logs/stdout.txt", 1), ("t/a/logs/stderr.txt", 0),
               ("t/a/sub/extra.txt", 2),  # the worker of run 'a' wrote out/sub/extra.txt
               ("t/a/b/result.txt", 5), ("t/a/b/logs/stdout.txt", 1),  # run 'a/b' (input named a/b)
               ("t/a/manifest.json", 9), ("t/ab/result.txt", 7)]
    outputs, logs = split_outputs("out", "t/a", listing)
    assert [o["name"] for o in outputs] == ["t/a/result.txt", "t/a/sub/extra.txt"]
    assert logs == {"stdout": {"container": "out", "name": "t/a/logs/stdout.txt", "size": 1},
                    "stderr": {"container": "out", "name": "t/a/logs/stderr.txt", "size": 0}}


def _succeeded_manifest(outputs: list[str], **record_extra) -> dict:
    task = {"id": "t1", "state": "completed", "executionInfo": {
        "startTime": "2026-11-28T10:00:00Z", "endTime": "2026-11-28T10:00:02Z", "exitCode": 0, "result": "success"}}
    record = {"RowKey": "t1", "pipeline": "transform", "inputContainer": "input", "inputName": "transform/a",
              "inputEtag": "e", "inputSize": 3, **record_extra}
    return build_manifest(record, "job", "t1", task_outcome(task),
                          [{"container": "output", "name": n, "size": 1} for n in outputs], {}, None, "now")


def _base64_size(message: dict) -> int:
    import base64
    import json

    return len(base64.b64encode(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()))


def test_a_message_with_every_output_name_when_they_fit():
    names = [f"transform/reports/out/part-{i:05d}-of-00060.parquet" for i in range(60)]
    msg = completion_message(_succeeded_manifest(names), "output", "transform/a/manifest.json")
    assert msg["outputs"] == names and msg["outputCount"] == 60 and "outputsTruncated" not in msg


def test_a_message_whose_outputs_would_pass_the_queue_limit_carries_the_first_and_the_count():
    names = [f"transform/reports-{'x' * 150}/out/part-{i:05d}-of-01000.parquet" for i in range(1000)]
    msg = completion_message(_succeeded_manifest(names, inputContentType="text/plain; " + "p=1;" * 5000),
                             "output", "transform/a/manifest.json")
    assert _base64_size({**msg, "messageId": "t1:succeeded"}) <= 64 * 1024
    assert msg["outputsTruncated"] is True and msg["outputCount"] == 1000
    assert 0 < len(msg["outputs"]) < 1000 and msg["outputs"] == names[:len(msg["outputs"])]
    assert msg["manifest"] == {"container": "output", "name": "transform/a/manifest.json"}
    assert len(msg["input"]["contentType"]) <= 256


def test_a_long_failure_message_is_cut_on_its_own_and_the_message_stays_json():
    task = {"id": "t1", "state": "completed", "executionInfo": {
        "exitCode": 1, "result": "failure", "failureInfo": {"code": "FailureExitCode", "message": "é" * 70000}}}
    m = build_manifest({"RowKey": "t1", "pipeline": "transform"}, "job", "t1", task_outcome(task), [], {}, None,
                       "now")
    msg = completion_message(m, "output", "x/manifest.json")
    assert len(msg["failure"]["message"]) <= 2000 and msg["failure"]["message"].startswith("éé")
    assert _base64_size(msg) <= 64 * 1024
